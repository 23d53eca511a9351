"""Fingerprints: of an item (checked on resume) and of a checkpoint's key.

Stable across processes, runs and Python versions the runtime supports."""

from __future__ import annotations

import sys

from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, List, Tuple

try:  # hashlib itself loads OpenSSL; blake2 is built in
    from _blake2 import blake2b as _builtin_blake2b
except ImportError:  # pragma: no cover - an interpreter without the builtin module
    from hashlib import blake2b as _builtin_blake2b

_blake2b = _builtin_blake2b  # the same class as hashlib.blake2b

_PICKLE_PROTOCOL = 4  # readable by every Python the runtime supports


# --------------------------------------------------------------------------- fingerprints


def fingerprint(item: object) -> bytes:
    """An 8-byte fingerprint of an item, stable across processes and runs.

    Built-in scalars and containers are hashed structurally (sets independent of their
    iteration order); other objects by their pickle, or, when they cannot be pickled, by
    their type and ``repr`` with memory addresses removed.
    """
    h = _blake2b(digest_size=8)
    _feed(h, item)
    return h.digest()


_KEY_SCALARS = (str, bytes, int, float, bool, type(None))


def _path_types() -> Tuple[type, ...]:
    """``(pathlib.PurePath,)``, or ``()`` while ``pathlib`` is not imported: then no object is
    a path (the runtime does not import ``pathlib`` just to ask)."""
    pathlib = sys.modules.get("pathlib")
    return (pathlib.PurePath,) if pathlib is not None else ()


def key_fingerprint(key: object) -> str:
    """A cheap fingerprint of a checkpoint key (hex), computed once per loop.

    Scalars (strings and bytes up to 4 KiB, numbers, booleans, None, paths) count by
    value; containers by type and length; other objects by type only. So
    ``process(split="train")`` and ``process(split="test")`` get separate checkpoints,
    while a large list argument costs nothing to fingerprint (its items are checked one by
    one on resume anyway).
    """
    parts = key if isinstance(key, tuple) else (key,)
    summary: List[object] = []
    paths = _path_types()
    for value in parts:
        if isinstance(value, paths):
            summary.append(str(value))
        elif isinstance(value, _KEY_SCALARS) and not (isinstance(value, (str, bytes)) and len(value) > 4096):
            summary.append(value)
        elif isinstance(value, (list, tuple, dict, set, frozenset, str, bytes)):
            summary.append("%s[%d]" % (type(value).__name__, len(value)))
        else:
            summary.append("%s.%s" % (type(value).__module__, type(value).__qualname__))
    return fingerprint(tuple(summary)).hex()


def _feed(h: Any, x: Any) -> None:
    t = type(x)
    if t is str:
        data = x.encode("utf-8", "surrogatepass")
        h.update(b"s%d:" % len(data))
        h.update(data)
    elif t is int or t is bool:
        h.update(b"i%r;" % (x,))
    elif t is float:
        h.update(b"f" + x.hex().encode() + b";")
    elif x is None:
        h.update(b"n;")
    elif t is bytes:
        h.update(b"b%d:" % len(x))
        h.update(x)
    elif t is tuple or t is list:
        h.update((b"t%d:" if t is tuple else b"l%d:") % len(x))
        for e in x:
            _feed(h, e)
    elif t is dict:
        h.update(b"d%d:" % len(x))
        for k, v in x.items():
            _feed(h, k)
            _feed(h, v)
    elif t is set or t is frozenset:
        h.update(b"S%d:" % len(x))
        for d in sorted(fingerprint(e) for e in x):
            h.update(d)
    elif isinstance(x, _path_types()):
        h.update(b"p")
        _feed(h, str(x))
    else:
        import pickle  # the first non-builtin item pays for it

        try:
            data = pickle.dumps(x, _PICKLE_PROTOCOL)
            h.update(b"P%d:" % len(data))
            h.update(data)
        except Exception:
            h.update(b"r")
            _feed(h, "%s.%s" % (t.__module__, t.__qualname__))
            _feed(h, _without_addresses(repr(x)))


def _without_addresses(text: str) -> str:
    """``text`` without `` at 0x7f...`` (a repr's memory address differs in every run)."""
    if " at 0x" not in text:
        return text
    import re

    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)
