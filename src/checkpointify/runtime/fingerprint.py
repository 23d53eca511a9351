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

    Large buffers and arrays are *sampled*, so that fingerprinting a unit stays cheap
    whatever the item (a 40 MB array costs well under a millisecond instead of pickling and
    hashing all of it): ``bytes``, ``bytearray`` and ``memoryview`` over 256 KiB, and
    objects with ``shape``, ``dtype`` and ``nbytes`` over 256 KiB (NumPy arrays; tensors
    through their ``numpy()`` view) are hashed by type, shape, dtype and length plus a
    fixed-size sample of their bytes: the first and last 16 KiB and 64 KiB spread evenly
    over the rest. **A changed array that keeps its sampled bytes is not detected**: if
    the input of a resumed loop can change in place that subtly, give the loop a
    ``key=`` that tells the versions apart (a file's modification time, a version number).
    Arrays of Python objects (``dtype=object``) are pickled whole, as before.
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
    """The fingerprint of a checkpoint key (hex), computed once per loop: calls whose keys
    differ get separate checkpoints, so a run never resumes another run's units.

    Keys count by value: scalars (strings, bytes, numbers, booleans, None), paths, enums,
    lists, tuples, dicts and sets of them, ``argparse.Namespace``/``types.SimpleNamespace``
    (their attributes), dataclass instances (their fields), dates, decimals, UUIDs, and
    arrays (sampled like items: see :func:`fingerprint`). So ``--model small`` and
    ``--model large`` (an argparse ``Namespace``), or two settings dicts, never share a log.
    Other objects (a model, a client, a connection) count by type only: their state is not
    a value the runtime can read. At most ``_KEY_BUDGET`` values are read; the rest of a very
    large key counts by type and length (a large list argument is usually the loop's input,
    whose items are checked one by one on resume anyway).
    """
    parts = key if isinstance(key, tuple) else (key,)
    summary: List[object] = []
    paths = _path_types()
    budget = [_KEY_BUDGET]
    for value in parts:
        if isinstance(value, paths):
            summary.append(str(value))
        elif isinstance(value, _KEY_SCALARS) and not (isinstance(value, (str, bytes)) and len(value) > 4096):
            summary.append(value)  # as runtime 2 did: a log it wrote for such a key keeps its name
        else:
            h = _blake2b(digest_size=8)
            try:
                _feed_key(h, value, budget, 0)
            except Exception:  # a field or attribute that raises when read: the type is all there is
                h = _blake2b(digest_size=8)
                _feed(h, ("T", "%s.%s" % (type(value).__module__, type(value).__qualname__)))
            summary.append(b"v" + h.digest())
    return fingerprint(tuple(summary)).hex()


def _legacy_key_fingerprint(key: object) -> str:
    """The key fingerprint of runtime version 2 and earlier (scalars by value, containers by
    type and length, other objects by type): the name of a log those versions wrote."""
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


_KEY_BUDGET = 2000  # values of a key read at most (a sampled array counts _KEY_ARRAY_COST)
_KEY_ARRAY_COST = 100
_KEY_DEPTH = 8  # nesting levels of a key read at most
# value types of the standard library whose repr is their value
_VALUE_MODULES = frozenset(("datetime", "decimal", "fractions", "uuid", "ipaddress"))
_NAMESPACES = frozenset((("argparse", "Namespace"), ("types", "SimpleNamespace")))


def _feed_key(h: Any, x: Any, budget: List[int], depth: int) -> None:
    """Feed one key value (see :func:`key_fingerprint`), reading at most ``budget[0]`` values."""
    t = type(x)
    budget[0] -= 1
    name = "%s.%s" % (t.__module__, t.__qualname__)
    if budget[0] < 0 or depth > _KEY_DEPTH:
        sized = len(x) if isinstance(x, (list, tuple, dict, set, frozenset, str, bytes)) else -1
        _feed(h, ("~", name, sized))
        return
    if x is None or t in (str, bytes, int, float, bool, complex, range) or isinstance(x, _path_types()):
        _feed(h, x if t not in (complex, range) else repr(x))
        return
    enum = sys.modules.get("enum")
    if enum is not None and isinstance(x, enum.Enum):
        _feed(h, ("E", name, x.name))
        return
    if isinstance(x, (list, tuple)):
        h.update(b"L%d:" % len(x))
        _feed(h, name)
        for e in x:
            _feed_key(h, e, budget, depth + 1)
        return
    if isinstance(x, (dict, set, frozenset)):
        entries = x.items() if isinstance(x, dict) else [(e, None) for e in x]
        digests = []
        for k, v in entries:  # in no particular order: {"a": 1, "b": 2} is {"b": 2, "a": 1}
            one = _blake2b(digest_size=8)
            _feed_key(one, k, budget, depth + 1)
            _feed_key(one, v, budget, depth + 1)
            digests.append(one.digest())
        h.update(b"D%d:" % len(digests))
        _feed(h, name)
        for d in sorted(digests):
            h.update(d)
        return
    fields = getattr(t, "__dataclass_fields__", None)
    if isinstance(fields, dict) and not isinstance(x, type):
        _feed(h, ("C", name))
        for field in fields:
            _feed(h, field)
            _feed_key(h, getattr(x, field, None), budget, depth + 1)
        return
    if (t.__module__, t.__qualname__) in _NAMESPACES:
        _feed(h, ("N", name))
        _feed_key(h, dict(vars(x)), budget, depth + 1)
        return
    if t.__module__ in _VALUE_MODULES:
        _feed(h, ("R", name, _without_addresses(repr(x))))
        return
    budget[0] -= _KEY_ARRAY_COST - 1
    if budget[0] >= 0 and _feed_sampled(h, x, 0):
        return
    _feed(h, ("T", name))  # an object whose state is no value the runtime can read: its type


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
        if len(x) > _SAMPLE_ABOVE:
            _feed_buffer_sample(h, memoryview(x))
        else:
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
    elif _sampled(h, x):
        return
    else:
        import pickle  # the first non-builtin item pays for it

        try:
            data = pickle.dumps(x, _PICKLE_PROTOCOL)
            h.update(b"P%d:" % len(data))
            h.update(data)
        except Exception:
            h.update(b"r")
            _feed(h, "%s.%s" % (t.__module__, t.__qualname__))
            try:
                text = repr(x)
            except Exception:  # a repr that fails: the type is all there is to go on
                text = ""
            _feed(h, _without_addresses(text))


# A buffer or array larger than this is sampled, not hashed whole.
_SAMPLE_ABOVE = 256 * 1024
_SAMPLE_EDGE = 16 * 1024  # bytes hashed at each end
_SAMPLE_SPREAD = 64  # blocks spread evenly between the ends...
_SAMPLE_BLOCK = 1024  # ...of this many bytes


def _feed_buffer_sample(h: Any, view: memoryview) -> None:
    """A fixed-size sample of a contiguous byte buffer: both ends and blocks spread between."""
    _feed_sample(h, len(view), 1, lambda start, stop: view[start:stop])


def _sample_ranges(count: int, itemsize: int) -> List[Tuple[int, int]]:
    """The element ranges (C order) a sample of ``count`` elements of ``itemsize`` bytes
    reads, in order: the first and last ``_SAMPLE_EDGE`` bytes and ``_SAMPLE_SPREAD``
    blocks spread evenly between."""
    edge = max(_SAMPLE_EDGE // itemsize, 1)
    block = max(_SAMPLE_BLOCK // itemsize, 1)
    ranges = [(0, edge), (count - edge, count)]
    stride = max((count - 2 * edge) // _SAMPLE_SPREAD, block)
    for start in range(edge, count - edge, stride):
        ranges.append((start, min(start + block, count - edge)))
    return ranges


def _feed_sample(h: Any, count: int, itemsize: int, read: Any) -> None:
    """Feed a fixed-size sample of ``count`` elements of ``itemsize`` bytes, read in C order
    by ``read(start, stop)`` (element indices): see :func:`_sample_ranges`. The same elements
    are read whatever the memory layout, so an array and its copy get the same fingerprint."""
    for start, stop in _sample_ranges(count, itemsize):
        h.update(read(start, stop))


def _feed_c_order(h: Any, array: Any, start: int, stop: int) -> None:
    """Feed elements ``start:stop`` (C order) of ``array``, in any memory layout (a strided
    view, a transposed or Fortran-ordered array), without copying more than them: the range
    is cut into a partial leading row, whole rows (``array[i:j].tobytes()``, one C loop) and
    a partial trailing row, each partial row cut the same way one axis down. So a sample of
    a 40 MB strided array costs a few hundred small copies, not one slow ``flat`` slice per
    block, and feeds the same bytes as the contiguous copy of the array."""
    if stop <= start:
        return
    if array.ndim <= 1:
        h.update(array[start:stop].tobytes())
        return
    row = 1
    for extent in array.shape[1:]:
        row *= int(extent)
    if row <= 0:
        return
    first, head = divmod(start, row)
    last, tail = divmod(stop, row)
    if first == last:
        _feed_c_order(h, array[first], head, tail)
        return
    if head:
        _feed_c_order(h, array[first], head, row)
        first += 1
    if last > first:
        h.update(array[first:last].tobytes())
    if tail:
        _feed_c_order(h, array[last], 0, tail)


def _sampled(h: Any, x: Any) -> bool:
    """:func:`_feed_sampled` for an item; an object whose ``shape``, ``dtype`` or buffer
    raises when asked is hashed the ordinary way (its pickle, or its repr)."""
    probe = h.copy()
    try:
        found = _feed_sampled(probe, x, _SAMPLE_ABOVE)
    except Exception:
        return False
    if found:
        h.update(probe.digest())
    return found


def _feed_sampled(h: Any, x: Any, above: int) -> bool:
    """Feed a large buffer or array by a bounded sample (see :func:`fingerprint`); False when
    ``x`` is none (or no larger than ``above`` bytes): the caller hashes it whole."""
    t = type(x)
    if t is bytearray or t is memoryview:
        view = memoryview(x)
        if view.nbytes <= above or not view.contiguous:
            return False
        h.update(b"B%d:%s:" % (view.nbytes, t.__name__.encode()))
        _feed_buffer_sample(h, view.cast("B"))
        return True
    dtype = getattr(x, "dtype", None)
    shape = getattr(x, "shape", None)
    if dtype is None or shape is None or isinstance(x, type):
        return False
    if getattr(dtype, "hasobject", False) or getattr(dtype, "kind", "") == "O":
        return False  # an array of Python objects: its bytes are pointers
    nbytes = getattr(x, "nbytes", None)
    if not isinstance(nbytes, int) or nbytes <= above:
        return False
    array = x if hasattr(x, "flat") else _host_array(x)
    if array is None:
        return False
    try:
        flat = array.flat
        size = int(array.size)
    except Exception:
        return False
    if size <= 0:
        return False
    h.update(b"A")
    _feed(h, "%s.%s" % (t.__module__, t.__qualname__))
    _feed(h, repr(tuple(shape)))
    _feed(h, str(dtype))
    h.update(b"%d:" % nbytes)
    itemsize = max(nbytes // size, 1)
    view = _contiguous_bytes(array)
    if view is not None:  # the buffer protocol: no copy at all
        _feed_sample(h, size, itemsize, lambda start, stop: view[start * itemsize : stop * itemsize])
    elif hasattr(array, "ndim") and hasattr(array, "tobytes"):  # strided: the sampled elements only
        for start, stop in _sample_ranges(size, itemsize):
            _feed_c_order(h, array, start, stop)
    else:
        _feed_sample(h, size, itemsize, lambda start, stop: flat[start:stop].tobytes())
    return True


def _contiguous_bytes(array: Any) -> Any:
    """``array``'s bytes as a flat memoryview when it is C-contiguous, else None."""
    try:
        view = memoryview(array)
    except (TypeError, ValueError):  # no buffer protocol, or a dtype it cannot express
        return None
    if not view.c_contiguous:
        return None
    try:
        return view.cast("B")
    except (TypeError, ValueError):  # a format that memoryview cannot cast
        return None


def _host_array(x: Any) -> Any:
    """A tensor's NumPy view on the host (``x.numpy()``), or None when it has none."""
    to_numpy = getattr(x, "numpy", None)
    if not callable(to_numpy):
        return None
    try:
        try:
            array = to_numpy(force=True)  # torch: detached, on the CPU
        except TypeError:
            array = to_numpy()
    except Exception:
        return None
    return array if hasattr(array, "flat") and hasattr(array, "size") else None


def _without_addresses(text: str) -> str:
    """``text`` without `` at 0x7f...`` (a repr's memory address differs in every run)."""
    if " at 0x" not in text:
        return text
    import re

    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)
