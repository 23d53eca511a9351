"""The checkpoint runtime that rewritten loops call. Standard library only; Python >= 3.9.

A rewritten loop looks like this::

    results = []
    ckpt = checkpoint("job.py::main::results", items, lambda: (results,))
    [results] = ckpt.restore()
    for item in ckpt:
        results.append(expensive_operation(item))
    save_results(results)
    ckpt.complete()

The public API is :func:`checkpoint`, :class:`Checkpoint`, :func:`acknowledge_each`,
:class:`Acknowledger`, :func:`read_info`, :func:`remove`, :class:`CheckpointInfo` and the
errors. The same checkpoint serves four loop shapes:

* ``for`` over an iterable, as above;
* ``while``: ``checkpoint(loop_id, state=...)`` without an iterable; the loop's test
  becomes ``while ckpt.advance() and <test>:``. ``restore()`` re-applies every recorded
  unit (there are no items to check);
* ``async for`` over an async iterable: ``[acc] = await ckpt.arestore()``, then
  ``async for item in ckpt:`` (position resume only);
* ``transaction=conn`` (rows written per item, one commit after the loop): the records
  live in table ``checkpointify_log`` of the connection's own database and are committed
  with each unit's writes, so exactly the committed units are skipped (a DB-API 2
  connection or a SQLAlchemy Session/Connection; any other object with ``commit()`` is
  committed, then recorded in the log file: at-least-once).

:func:`acknowledge_each` is for message loops that ack the whole batch after the loop:
it acks each unit as it completes and stores nothing (the broker is the progress
marker). What the log-file checkpoint promises:

* **Restore.** ``restore()`` takes the loop's lock, reads its log, re-applies each
  completed unit's effect to the accumulators and returns their values. By default
  (``resume="position"``) the items recorded must be the first items of the current input
  (checked by fingerprint); otherwise nothing is applied and :class:`StaleCheckpointError`
  is raised (``CHECKPOINTIFY_ON_STALE=restart`` archives the log and starts from zero
  instead). With ``resume="identity"`` units are matched by item instead, wherever the item
  now is in the input (for ``os.listdir``, ``glob``, sets): see :class:`Checkpoint`.
* **Record.** When the loop asks for the next item, the previous unit has finished
  (normally or by ``continue``): its effect on the accumulators is appended to the log as
  a framed, checksummed record and handed to the operating system (``os.write``, no user
  space buffer) before the next item is returned. A unit that raises, or that ends the loop
  with ``break``, is not recorded and runs again on resume. A record that is present in the
  log means the unit is done; its effect is applied exactly once.
* **Cheap units.** Writing a record costs something (computing the unit's effect, pickling,
  one ``write``). When a unit takes less than about 20 times that cost, records are batched
  so that writing takes at most about 5 % of the loop's time: units wait until 20 write
  costs (at most 1 s) have passed since the last write, then go out as one record. A
  ``kill -9``, an exception or a ``break`` then loses at most the units completed in that
  window; they simply run again. ``CHECKPOINTIFY_BATCH=off`` (and
  ``CHECKPOINTIFY_FSYNC=always``) writes every unit before the next starts, whatever it
  costs.
* **fsync.** ``CHECKPOINTIFY_FSYNC=batched`` (the default) syncs the log from a background
  thread about once a second (Redis' ``appendfsync everysec``), and synchronously when the
  input is exhausted, on ``close()`` and at interpreter exit; the directory is synced with
  the log's first sync and when ``complete()`` removes it. So a power loss costs at most
  about a second of completed units. ``always`` syncs every record before the next unit
  starts; ``never`` leaves it to the OS.
* **Failures.** A failed write or fsync raises :class:`CheckpointWriteError`, naming the
  file and the OS error: at once, or at the loop's next step when the sync thread met it.
  Nothing is retried (a retried fsync can report success for data the kernel already
  dropped); the checkpoint refuses every later write.
* **Damage.** On restore the longest valid prefix of frames is kept. A torn, zero-filled
  or garbage tail (the writer died mid-write, or the machine lost power) is cut off before
  the next append. A damaged frame followed by a valid one is corruption: the file is
  moved aside to ``<name>.corrupt-<time>`` and :class:`CorruptCheckpointError` is raised.
* **One writer.** A second process that opens the same checkpoint while the first runs
  gets :class:`CheckpointLockedError` naming it (``fcntl.flock``, released by the kernel
  when the holder dies, so a killed run never blocks a re-run). Without ``fcntl``
  (Windows) there is no lock.
* **Complete.** ``complete()``, placed after the final save, removes the log: the next run
  starts from zero.

The log is ``<dir>/<slug>-<hash>.ckpt`` where ``<dir>`` is the ``directory=`` argument,
else ``$CHECKPOINTIFY_DIR``, else ``./.checkpointify``; its lock is ``<name>.ckpt.lock``. Each frame is ``magic u8 | kind u8 |
length u32 | crc32 u32 | payload`` (little endian; the CRC covers kind, length and
payload). The first frame is a JSON header; each later frame holds one or more units:
``first seq u64 | count u32 | count x (item fingerprint 8s | replaced seq i64 | flags u8)``
followed by the pickle of the units' deltas.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import errno
import gc
import hashlib
import io
import json
import os
import pickle
import re
import socket
import struct
import sys
import threading
import time
import weakref
import zlib
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import compress, islice
from operator import is_not, ne
from pathlib import Path, PurePath
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Deque,
    Dict,
    FrozenSet,
    Generic,
    Iterable,
    Iterator,
    List,
    NoReturn,
    Optional,
    Sequence,
    Set,
    Tuple,
    TypeVar,
    Union,
)

try:
    import fcntl as _fcntl_module

    _fcntl: Any = _fcntl_module
except ImportError:  # pragma: no cover - Windows: no advisory locks, documented
    _fcntl = None

__all__ = [
    "acknowledge_each",
    "Acknowledger",
    "checkpoint",
    "Checkpoint",
    "CheckpointInfo",
    "CheckpointError",
    "CheckpointLockedError",
    "CheckpointWriteError",
    "CorruptCheckpointError",
    "StaleCheckpointError",
    "checkpoint_dir",
    "fingerprint",
    "key_fingerprint",
    "log_name",
    "read_info",
    "remove",
    "RUNTIME_VERSION",
]

RUNTIME_VERSION = "2"
FORMAT = "checkpointify/2"
_FORMAT_V1 = "checkpointify/1"  # 0.1 logs: one unit per frame, fully pickled; still readable

T = TypeVar("T")

_MAGIC = 0xC7
_KIND_HEADER = 1
_KIND_UNIT = 2
_FRAME = struct.Struct("<BBII")  # magic, kind, payload length, crc32(kind|length|payload)
_FRAME_CRC_HEAD = struct.Struct("<BI")
_RECORD = struct.Struct("<QI")  # seq of the first unit, number of units
_UNIT = struct.Struct("<8sqB")  # item fingerprint, seq of the unit it replaces (-1: none), flags
_REORDERABLE = 1  # flag: the unit's effect does not depend on the units before it
_COMBINED = 2  # flag: the record's units share one delta (a batch of cheap units)
_MAX_PAYLOAD = 1 << 30
_PICKLE_PROTOCOL = 4  # readable by every Python the runtime supports

_FSYNC_INTERVAL = 1.0  # seconds between fsyncs in the default "batched" policy
_WRITE_SHARE = 0.05  # batching keeps the time spent writing records under about this share
_MAX_BATCH_WINDOW = 1.0  # seconds: units never wait longer than this to be written
_BATCH_MAX_UNITS = 4096  # never hold more units than this in memory
_LOCK_PATIENCE = 0.25  # seconds to retry a held lock (`checkpointify checkpoints` probes it briefly)


class CheckpointError(Exception):
    """Base class: something about the checkpoint prevents a correct run."""


class StaleCheckpointError(CheckpointError):
    """The checkpoint was written for other input than the loop sees now."""


class CheckpointWriteError(CheckpointError):
    """Writing or syncing the checkpoint failed; the unit is not recorded and the loop stops."""


class CorruptCheckpointError(CheckpointError):
    """A record in the middle of the log is damaged; the log was moved aside to ``moved_to``."""

    def __init__(self, message: str, path: Path, moved_to: Optional[Path]) -> None:
        super().__init__(message)
        self.path = path
        self.moved_to = moved_to


class CheckpointLockedError(CheckpointError):
    """Another live process is running the same loop with the same checkpoint."""

    def __init__(self, message: str, holder: Dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


# --------------------------------------------------------------------------- fingerprints


def fingerprint(item: object) -> bytes:
    """An 8-byte fingerprint of an item, stable across processes and runs.

    Built-in scalars and containers are hashed structurally (sets independent of their
    iteration order); other objects by their pickle, or, when they cannot be pickled, by
    their type and ``repr`` with memory addresses removed.
    """
    h = hashlib.blake2b(digest_size=8)
    _feed(h, item)
    return h.digest()


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_KEY_SCALARS = (str, bytes, int, float, bool, type(None), PurePath)


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
    for value in parts:
        if isinstance(value, _KEY_SCALARS) and not (isinstance(value, (str, bytes)) and len(value) > 4096):
            summary.append(str(value) if isinstance(value, PurePath) else value)
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
    elif isinstance(x, PurePath):
        h.update(b"p")
        _feed(h, str(x))
    else:
        try:
            data = pickle.dumps(x, _PICKLE_PROTOCOL)
            h.update(b"P%d:" % len(data))
            h.update(data)
        except Exception:
            h.update(b"r")
            _feed(h, "%s.%s" % (t.__module__, t.__qualname__))
            _feed(h, _ADDRESS.sub("", repr(x)))


# ----------------------------------------------------------------------- state deltas
#
# A unit's record holds, for each accumulator, how it changed during the unit:
#   None            unchanged
#   ("e", suffix)   grew at the end (list, str, bytes, tuple, bytearray, deque)
#   ("d", items)    these keys were set (dict and its subclasses: Counter, defaultdict, ...)
#   ("s", elems)    these elements were added (set)
#   ("v", value)    replaced by this value (numbers, and anything that changed otherwise)

_APPENDABLE = (list, bytearray, deque)
_IMMUTABLE_SEQ = (str, bytes, tuple)
_NESTED = (list, dict, set, bytearray, deque)
_SCALARS = (int, float, complex, bool, type(None), frozenset)


class _Tracker:
    """Remembers an accumulator's value as of the last record, and diffs against it.

    A diff is O(what changed) for sequences, numbers and strings. For a dict it is one
    C-speed pass over the values (is each still the same object?) plus one over the values
    that are containers (is each still as long? ``defaultdict(list)`` grows them in place),
    about 20-40 ns an entry, and Python-level work only for the entries that changed or are
    new; for a set, one C-speed set difference. Batching (see ``_WRITE_SHARE``) keeps even
    a large dict's passes to a small share of the loop's time.
    """

    __slots__ = ("obj", "size", "values", "seen", "reorderable", "n_pos", "n_obj", "n_len", "n_slot")

    def __init__(self, value: object) -> None:
        self.obj: object = None
        #: whether the last delta's effect is independent of the units before it: it only
        #: appended to a sequence, added to a set or created dict keys (see resume="identity")
        self.reorderable = True
        self.size = 0
        self.values: List[object] = []
        self.seen: Set[object] = set()
        # dict values that are containers: their positions, the objects and their lengths
        self.n_pos: List[int] = []
        self.n_obj: List[Any] = []
        self.n_len: List[int] = []
        self.n_slot: Dict[int, int] = {}  # position -> index in the three lists above
        self.rebase(value)

    def rebase(self, value: object) -> None:
        self.obj = value
        self.size = 0
        self.values, self.seen = [], set()
        self.n_pos, self.n_obj, self.n_len, self.n_slot = [], [], [], {}
        if isinstance(value, dict):
            self.values = list(value.values())
            self.size = len(self.values)
            for index, item in enumerate(self.values):
                if isinstance(item, _NESTED):
                    self._track(index, item)
        elif isinstance(value, (set, frozenset)):
            self.seen = set(value)
            self.size = len(value)
        elif isinstance(value, (_APPENDABLE, _IMMUTABLE_SEQ)):
            self.size = len(value)

    def _track(self, index: int, item: Any) -> None:
        """Remember the dict value at ``index`` (its length, if it is a container)."""
        slot = self.n_slot.get(index)
        nested = isinstance(item, _NESTED)
        if slot is None:
            if nested:
                self.n_slot[index] = len(self.n_pos)
                self.n_pos.append(index)
                self.n_obj.append(item)
                self.n_len.append(len(item))
        elif nested:
            self.n_obj[slot], self.n_len[slot] = item, len(item)
        else:  # no longer a container: an empty tuple never grows
            self.n_obj[slot], self.n_len[slot] = (), 0

    def delta(self, value: object) -> Optional[Tuple[str, object]]:
        """How ``value`` differs from the remembered one; then remembers ``value``."""
        old = self.obj
        self.reorderable = True
        result: Optional[Tuple[str, object]] = ("v", value)
        if type(value) is type(old):
            if isinstance(value, dict):
                result = self._dict_delta(value)
            elif isinstance(value, set):
                result = self._set_delta(value)
            elif isinstance(value, (_APPENDABLE, _IMMUTABLE_SEQ)):
                result = self._seq_delta(value, old)
            elif value is old and isinstance(value, _SCALARS):
                result = None
        if result is not None and result[0] == "v":
            self.rebase(value)
            self.reorderable = False
        self.obj = value
        return result

    def _seq_delta(self, value: Any, old: Any) -> Optional[Tuple[str, object]]:
        n = self.size
        if len(value) < n or (value is not old and isinstance(value, _IMMUTABLE_SEQ) and value[:n] != old):
            return ("v", value)
        self.size = len(value)
        if self.size == n:
            return None
        return ("e", list(value)[n:] if isinstance(value, deque) else value[n:])

    def _dict_delta(self, value: Dict[Any, Any]) -> Optional[Tuple[str, object]]:
        n = self.size
        if len(value) < n:
            return ("v", value)  # something was deleted: fall back to a snapshot
        vals = list(value.values())
        # an existing key keeps its position in a dict, and a replaced value has a new identity
        replaced = set(compress(range(n), map(is_not, vals, self.values)))
        # container values can grow in place (defaultdict(list)): compare their lengths
        grown = set(compress(self.n_pos, map(ne, map(len, self.n_obj), self.n_len))) if self.n_pos else set()
        for index in grown:
            slot = self.n_slot[index]
            self.n_len[slot] = len(self.n_obj[slot])
        for index in replaced:
            self._track(index, vals[index])
        for index in range(n, len(vals)):
            self._track(index, vals[index])
        self.values, self.size = vals, len(vals)
        changed = replaced | grown
        if not changed and len(vals) == n:
            return None
        self.reorderable = not changed  # only new keys: the unit did not read-modify-write
        if changed:
            keys = list(value)
            items = [(keys[i], vals[i]) for i in sorted(changed)]
            items.extend(zip(keys[n:], vals[n:]))
        else:  # only new keys, at the end: no need to list them all
            items = list(zip(reversed(list(islice(reversed(value), len(vals) - n))), vals[n:]))
        return ("d", items)

    def _set_delta(self, value: Set[Any]) -> Optional[Tuple[str, object]]:
        if len(value) == self.size:
            return None  # sets only grow in an accumulating loop
        if len(value) < self.size:
            return ("v", value)
        added = value - self.seen
        self.seen.update(added)
        self.size = len(value)
        return ("s", list(added))


def _apply(value: Any, delta: Optional[Tuple[str, Any]]) -> Any:
    """Re-apply one recorded delta; mutable accumulators are changed in place."""
    if delta is None:
        return value
    tag, data = delta
    if tag == "v":
        return data
    if tag == "e":
        if isinstance(value, _APPENDABLE):
            value.extend(data)
            return value
        return value + data
    if tag == "d":
        for k, v in data:
            value[k] = v
        return value
    if tag == "s":
        value.update(data)
        return value
    raise CheckpointError("unknown record type %r" % (tag,))


# ------------------------------------------------------------------ string identity
#
# pickle shares repeated objects, so the bytes a program's final ``pickle.dump`` writes
# depend on which strings are the *same object*. In the original run, literal keys and
# values (``{"id": x, "status": "ok"}``) are interned constants shared by every unit;
# unpickled from a checkpoint they would be fresh copies. So a record marks each
# identifier-like string that is interned when it is written (a pickle "persistent id"),
# and restore interns exactly those occurrences again; runtime strings that were distinct
# objects stay distinct. Only the marked strings cost anything on restore.

_IDENTIFIER_MAX = 64


class _RecordPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is str and len(obj) <= _IDENTIFIER_MAX and obj.isidentifier() and sys.intern(obj) is obj:
            return obj
        return None


def _dumps(value: object) -> bytes:
    buffer = io.BytesIO()
    _RecordPickler(buffer, _PICKLE_PROTOCOL).dump(value)
    return buffer.getvalue()


def _loads(data: Any) -> Any:
    unpickler = pickle.Unpickler(io.BytesIO(data))
    unpickler.persistent_load = sys.intern  # type: ignore[method-assign]  # C to C: no Python frame
    return unpickler.load()


def _reintern(value: Any, names: FrozenSet[str], memo: Dict[int, Any]) -> Any:
    """``value`` with the strings in ``names`` replaced by their interned copies (in place
    where possible): how logs of format 1 (0.1) recorded string identity."""
    t = type(value)
    if t is str:
        return sys.intern(value) if value in names else value
    key = id(value)
    if key in memo:
        return memo[key]
    if t is list:
        memo[key] = value
        value[:] = [_reintern(e, names, memo) for e in value]
        return value
    if t is tuple or t is set or t is frozenset:
        items = [_reintern(e, names, memo) for e in value]
        new = value if all(a is b for a, b in zip(items, value)) else t(items)
        memo[key] = new
        return new
    if isinstance(value, dict):
        memo[key] = value
        items = [(_reintern(k, names, memo), _reintern(v, names, memo)) for k, v in value.items()]
        dict.clear(value)
        dict.update(value, items)
        return value
    state = getattr(value, "__dict__", None)
    if type(state) is dict:
        memo[key] = value
        _reintern(state, names, memo)
    return value


_MUTABLE = (list, dict, set, bytearray, deque)


def _apply_in_place(value: Any, delta: Tuple[str, Any]) -> None:
    """Apply one delta to a mutable accumulator without rebinding it (resume="identity")."""
    tag, data = delta
    if tag == "e":
        value.extend(data)
    elif tag == "d":
        for k, v in data:
            value[k] = v
    elif tag == "s":
        value.update(data)
    elif isinstance(value, dict):  # "v": a snapshot; dict's own methods (Counter.update adds)
        dict.clear(value)
        dict.update(value, data)
    elif isinstance(value, set):
        value.clear()
        value.update(data)
    elif isinstance(value, deque):
        value.clear()
        value.extend(data)
    else:  # list, bytearray
        value[:] = data


def _applicable_in_place(value: Any, delta: Optional[Tuple[str, Any]], new_keys_only: bool) -> bool:
    """Whether :func:`_apply_in_place` can apply ``delta`` to ``value`` (and, for dicts with
    ``new_keys_only``, whether none of the keys it sets exists yet)."""
    if delta is None:
        return True
    tag, data = delta
    if tag == "e":
        return isinstance(value, _APPENDABLE)
    if tag == "d":
        return isinstance(value, dict) and not (new_keys_only and any(k in value for k, _ in data))
    if tag == "s":
        return isinstance(value, set)
    return type(value) is type(data) and isinstance(value, _MUTABLE)


# ------------------------------------------------------------------------ frames on disk


def _frame(kind: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(_FRAME_CRC_HEAD.pack(kind, len(payload))))
    return _FRAME.pack(_MAGIC, kind, len(payload), crc) + payload


def _frame_end(view: memoryview, pos: int, end: int, kinds: Tuple[int, ...]) -> int:
    """The end offset of a valid frame of one of ``kinds`` starting at ``pos``, or -1."""
    if pos + _FRAME.size > end:
        return -1
    magic, kind, length, crc = _FRAME.unpack_from(view, pos)
    stop: int = pos + _FRAME.size + length
    if magic != _MAGIC or kind not in kinds or stop > end:
        return -1
    if zlib.crc32(view[pos + _FRAME.size : stop], zlib.crc32(_FRAME_CRC_HEAD.pack(kind, length))) != crc:
        return -1
    return stop


@dataclass(frozen=True)
class _Scan:
    """The longest valid prefix of a log, and what follows it."""

    frames: List[Tuple[int, int, int]]  # kind, payload start, payload end
    valid_end: int  # where the valid prefix ends
    size: int
    corrupt_at: int  # offset of a bad frame that a valid frame follows (-1: the tail is only torn)


def _scan(data: bytes) -> _Scan:
    """Read frames from the start until one is short, has a bad magic/kind/length or fails
    its CRC. Whatever follows is a *torn tail* (the writer died mid-write, or a power loss
    left zeros or garbage) unless a valid record frame starts somewhere after it: then the
    log is *corrupt* in the middle, and nothing may be skipped silently."""
    view = memoryview(data)
    frames: List[Tuple[int, int, int]] = []
    pos, size = 0, len(data)
    kinds = (_KIND_HEADER,)  # the header comes first, records after it
    while True:
        stop = _frame_end(view, pos, size, kinds)
        if stop < 0:
            break
        frames.append((data[pos + 1], pos + _FRAME.size, stop))
        pos, kinds = stop, (_KIND_UNIT,)
    corrupt_at = -1
    candidate = data.find(bytes([_MAGIC]), pos + 1)
    while pos < size and candidate >= 0:
        if _frame_end(view, candidate, size, (_KIND_UNIT,)) >= 0:
            corrupt_at = pos
            break
        candidate = data.find(bytes([_MAGIC]), candidate + 1)
    return _Scan(frames, pos, size, corrupt_at)


class _Unit:
    """One completed unit as read back from a log. Units written together as a batch
    share one effect: ``batch`` holds them all, and the effect (``deltas``) is on the last
    one; the others carry no effect of their own."""

    __slots__ = ("seq", "fp", "replaces", "flags", "deltas", "batch")

    def __init__(self, seq: int, fp: bytes, replaces: int, flags: int, deltas: Tuple[Any, ...]) -> None:
        self.seq = seq
        self.fp = fp
        self.replaces = replaces
        self.flags = flags
        self.deltas = deltas
        self.batch: Optional[Tuple[_Unit, ...]] = None

    @property
    def keyed(self) -> bool:
        """Whether its effect (or its batch's) touches a dict or set, not only sequences."""
        effect = self.batch[-1].deltas if self.batch is not None else self.deltas
        return any(d is not None and d[0] != "e" for d in effect)


# (seq, item fingerprint, seq of the unit it replaces or -1): a completed unit not yet written
_PendingUnit = Tuple[int, bytes, int]


def _encode_record(units: Sequence[_PendingUnit], flags: int, deltas: Tuple[Any, ...]) -> bytes:
    """One frame holding ``units`` and their joint effect ``deltas``. Raises whatever
    pickle raises for a value it cannot serialise."""
    body = _dumps([deltas])
    head = _RECORD.pack(units[0][0], len(units)) + b"".join(_UNIT.pack(u[1], u[2], flags) for u in units)
    if len(head) + len(body) > _MAX_PAYLOAD:
        raise CheckpointError(
            "a unit's record is larger than %d bytes; checkpoints hold results up to 1 GiB a unit"
            % _MAX_PAYLOAD
        )
    return _frame(_KIND_UNIT, head + body)


def _decode_units(data: bytes, scan: _Scan, v1: bool) -> List[_Unit]:
    """Every unit of the valid prefix, in log order (raises on a record pickle cannot load)."""
    view = memoryview(data)
    units: List[_Unit] = []
    for _kind, start, stop in scan.frames[1:]:
        payload = view[start:stop]
        if v1:
            seq, fp, deltas, interned = pickle.loads(payload)
            if interned:
                deltas = _reintern(deltas, frozenset(interned), {})
            units.append(_Unit(seq, fp, -1, 0, deltas))
            continue
        seq, count = _RECORD.unpack_from(payload, 0)
        offset = _RECORD.size + count * _UNIT.size
        deltas_list = _loads(payload[offset:])
        combined = len(deltas_list) == 1 and count > 1  # a batch: its effect is on its last unit
        nothing = (None,) * len(deltas_list[0]) if combined else ()
        record = []
        for index in range(count):
            fp, replaces, flags = _UNIT.unpack_from(payload, _RECORD.size + index * _UNIT.size)
            if combined:
                deltas = deltas_list[0] if index == count - 1 else nothing
            else:
                deltas = deltas_list[index]
            record.append(_Unit(seq + index, fp, replaces, flags, deltas))
        if combined:
            batch = tuple(record)
            for unit in record:
                unit.batch = batch
        units.extend(record)
    return units


def _live(units: List[_Unit]) -> List[_Unit]:
    """The units whose effect still counts: not replaced by a later re-run of their item,
    and not in a batch of which any unit was replaced (a batch's effect is indivisible)."""
    replaced = {u.replaces for u in units if u.replaces >= 0}
    if not replaced:
        return units
    dead = {id(u.batch) for u in units if u.batch is not None and u.seq in replaced}
    return [u for u in units if u.seq not in replaced and (u.batch is None or id(u.batch) not in dead)]


def _count_units(data: bytes, scan: _Scan, v1: bool) -> Tuple[int, int]:
    """(units, replaced units) of the valid prefix, read without unpickling anything."""
    total, replaced = 0, set()
    view = memoryview(data)
    for _kind, start, _stop in scan.frames[1:]:
        if v1:
            total += 1
            continue
        _seq, count = _RECORD.unpack_from(view, start)
        total += count
        for index in range(count):
            _fp, replaces, _flags = _UNIT.unpack_from(view, start + _RECORD.size + index * _UNIT.size)
            if replaces >= 0:
                replaced.add(replaces)
    return total, len(replaced)


def _header(data: bytes, scan: _Scan) -> Dict[str, Any]:
    if not scan.frames:
        return {}
    _kind, start, stop = scan.frames[0]
    try:
        header = json.loads(data[start:stop].decode("utf-8"))
    except ValueError:
        return {}
    return header if isinstance(header, dict) else {}


def checkpoint_dir() -> Path:
    """Where logs live: ``$CHECKPOINTIFY_DIR``, else ``.checkpointify`` in the working directory."""
    configured = os.environ.get("CHECKPOINTIFY_DIR")
    return Path(configured) if configured else Path.cwd() / ".checkpointify"


def log_name(loop_id: str, key_fp: str = "") -> str:
    """The file name of a loop's log: readable slug plus a hash that keeps names unique."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", loop_id).strip("_")[:80]
    digest = hashlib.blake2b((loop_id + "\0" + key_fp).encode("utf-8"), digest_size=4).hexdigest()
    return "%s-%s.ckpt" % (slug, digest)


# ------------------------------------------------------------------------- settings


_FAULT_POINTS = (
    "before-write",
    "mid-record",
    "after-write",
    "after-commit",  # transaction=: after the unit's commit, before the loop goes on
    "during-complete",
    "enospc",
    "eio",
    "eio-fsync",
)


@dataclass(frozen=True)
class _Settings:
    """The environment variables, read once when a checkpoint is created."""

    fsync: str  # always | batched | never
    on_stale: str  # error | restart
    quiet: bool
    batch: bool  # cheap units may wait to be written together (CHECKPOINTIFY_BATCH=auto)
    fault: Optional[Tuple[str, int]]  # test-only fault injection (CHECKPOINTIFY_FAULT)

    @staticmethod
    def from_env() -> "_Settings":
        env = os.environ
        fsync = env.get("CHECKPOINTIFY_FSYNC", "").strip().lower() or "batched"
        if fsync not in ("always", "batched", "never"):
            raise CheckpointError("CHECKPOINTIFY_FSYNC must be always, batched or never, not %r" % fsync)
        on_stale = env.get("CHECKPOINTIFY_ON_STALE", "").strip().lower() or "error"
        if on_stale not in ("error", "restart"):
            raise CheckpointError("CHECKPOINTIFY_ON_STALE must be error or restart, not %r" % on_stale)
        batch = env.get("CHECKPOINTIFY_BATCH", "").strip().lower() or "auto"
        if batch not in ("auto", "off"):
            raise CheckpointError("CHECKPOINTIFY_BATCH must be auto or off, not %r" % batch)
        quiet = env.get("CHECKPOINTIFY_QUIET", "").strip().lower() not in ("", "0", "false", "no")
        return _Settings(
            fsync,
            on_stale,
            quiet,
            batch == "auto" and fsync != "always",
            _parse_fault(env.get("CHECKPOINTIFY_FAULT", "")),
        )


def _parse_fault(text: str) -> Optional[Tuple[str, int]]:
    """``CHECKPOINTIFY_FAULT=<point>:<unit>`` (test-only; see the README's fault injection)."""
    text = text.strip()
    if not text:
        return None
    point, _, unit = text.partition(":")
    try:
        number = int(unit) if unit else 0
    except ValueError:
        number = -1
    if point not in _FAULT_POINTS or number < 0:
        raise CheckpointError(
            "CHECKPOINTIFY_FAULT is a test hook: <point>:<unit> with point one of %s, not %r"
            % (", ".join(_FAULT_POINTS), text)
        )
    return point, number


def _crash() -> NoReturn:
    """A fault point: die like ``kill -9`` would (no atexit, no flushing)."""
    os._exit(137)


# ---------------------------------------------------------------------------- locking


def _lock_path(log: Path) -> Path:
    return log.with_name(log.name + ".lock")


def _read_holder(lock: Path) -> Dict[str, Any]:
    try:
        holder = json.loads(lock.read_bytes().decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe_holder(holder: Dict[str, Any]) -> str:
    if not holder.get("pid"):
        return "another process"
    text = "process %s on %s" % (holder["pid"], holder.get("host", "?"))
    if holder.get("since"):
        text += " (since %s" % holder["since"]
        text += ": %s)" % holder["argv"] if holder.get("argv") else ")"
    return text


def _lock_holder(lock: Path) -> Optional[Dict[str, Any]]:
    """Who holds ``lock`` right now (``None``: nobody). Read-only except for an instant's
    shared lock, which a starting writer rides out (it retries for a quarter second)."""
    if _fcntl is None:
        return None
    try:
        fd = os.open(str(lock), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            _fcntl.flock(fd, _fcntl.LOCK_SH | _fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return _read_holder(lock) or {"pid": None}
            return None
        _fcntl.flock(fd, _fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class _Lock:
    """``flock`` on ``<log>.lock``: one writer per checkpoint; the kernel drops it when the
    holder dies, so a lock left by ``kill -9`` never blocks a re-run. The holder's pid,
    host and command line are written into the file so that a second process can name it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: Optional[int] = None

    def acquire(self, loop_id: str, log: Path) -> None:
        """Take the lock or raise :class:`CheckpointLockedError` (``OSError`` if the file
        cannot be created)."""
        if _fcntl is None:  # pragma: no cover - Windows
            return
        deadline = time.monotonic() + _LOCK_PATIENCE
        while True:
            fd = os.open(str(self.path), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                holder = _read_holder(self.path)
                raise CheckpointLockedError(
                    "checkpoint %s%s is in use by %s. Only one process at a time can run a loop "
                    "with its checkpoint; wait for that one to finish or stop it (a lock left by a "
                    "process that died is released automatically)"
                    % (_shown(log), " of loop %r" % loop_id if loop_id else "", _describe_holder(holder)),
                    holder,
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(str(self.path)).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the previous holder removed the file between our open and flock
                os.close(fd)
                continue
            holder = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "argv": " ".join(sys.argv)[:200],
                "loop_id": loop_id,
            }
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(holder).encode("utf-8"), 0)
            except OSError:
                os.close(fd)
                raise
            self.fd = fd
            return

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(str(self.path))  # while still holding it: see acquire()'s inode check
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


# --------------------------------------------------------------------------- the log file


def _fsync(fd: int) -> None:
    """Flush ``fd`` to the device: F_FULLFSYNC on macOS (plain fsync stops at the drive's
    cache there), fdatasync where it exists (an append changes the size, which it syncs)."""
    if _fcntl is not None and hasattr(_fcntl, "F_FULLFSYNC"):  # pragma: no cover - macOS
        try:
            _fcntl.fcntl(fd, _fcntl.F_FULLFSYNC)
            return
        except OSError:
            pass
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # pragma: no cover
        os.fsync(fd)


def _fsync_dir(directory: Path) -> None:
    """Make a created, renamed or removed name durable (fsync(2): the file's own fsync does
    not cover its directory entry). Not possible on Windows; a file system that does not
    support it (EINVAL) is skipped."""
    if os.name == "nt":  # pragma: no cover
        return
    fd = os.open(str(directory), os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class _Log:
    """One checkpoint's open log: its lock and its file descriptor; it writes the records
    its :class:`Checkpoint` (``owner``) encodes, and fsyncs them by the policy: ``always``
    after each record, ``batched`` from the sync thread (:func:`_sync_forever`) and at the
    end of the input, close and exit, ``never`` not at all.

    Every write or fsync failure poisons it (``failed``): it is raised as
    :class:`CheckpointWriteError` (by the loop's next step when the sync thread met it)
    and every later call refuses to write. A failed fsync is never retried.
    """

    def __init__(self, path: Path, loop_id: str, settings: _Settings, header: Dict[str, Any]) -> None:
        self.path = path
        self.loop_id = loop_id
        self.settings = settings
        self.header = header
        self.lock = _Lock(_lock_path(path))
        self.fd: Optional[int] = None
        self.pid = os.getpid()
        self.owner: Callable[[], Optional[Checkpoint[Any]]] = lambda: None  # a weak reference
        self.last_sync = time.monotonic()
        self.failed: Optional[str] = None
        self.closed = False
        self.unsynced = False  # records written since the last fsync
        self._dir_synced = False  # the log's directory entry was fsynced once
        self._io = threading.Lock()  # an fsync (in either thread) against closing the fd
        self._fsync_fault = False

    # -- opening -----------------------------------------------------------------------

    def acquire(self) -> None:
        key = os.path.abspath(str(self.path))
        older = _OPEN.get(key)
        if older is not None and older.pid == os.getpid():
            # A newer checkpoint of the same loop in this process (a retried call after an
            # exception) takes over: the old one writes its completed units and stops.
            owner = older.owner()
            if owner is not None:
                owner._flush_if_safe()
            older.close(remove=False)
            older.failed = "a newer checkpoint of the same loop took over in this process"
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.lock.acquire(self.loop_id, self.path)
        except OSError as exc:
            self._fail(exc, "create the lock of")
        _OPEN[key] = self
        if self.settings.fsync == "batched":
            _start_sync_thread()

    def open_existing(self, valid_end: int, size: int) -> None:
        """Append to an existing log, first cutting off a torn tail (made durable at once)."""
        try:
            fd = os.open(str(self.path), os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0))
            self.fd = fd
            if size > valid_end:
                os.ftruncate(fd, valid_end)
                if self.settings.fsync != "never":
                    _fsync(fd)
        except OSError as exc:
            self._fail(exc, "open")

    def _create(self) -> int:
        fd = os.open(
            str(self.path),
            os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_BINARY", 0),
            0o600,
        )
        self.fd = fd
        header = dict(self.header)
        header.update(
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            pid=os.getpid(),
            host=socket.gethostname(),
        )
        _write_all(fd, _frame(_KIND_HEADER, json.dumps(header, sort_keys=True).encode("utf-8")))
        self.unsynced = True  # the first sync also syncs the directory entry
        return fd

    # -- writing -----------------------------------------------------------------------

    def check(self) -> None:
        """Raise if this log may not be written any more."""
        if self.failed is not None:
            raise CheckpointWriteError("checkpoint %s failed earlier: %s" % (_shown(self.path), self.failed))
        if self.closed:
            raise CheckpointError("checkpoint %s was closed; it records no more units" % _shown(self.path))

    def write(self, frame: bytes, first: int, last: int) -> float:
        """Hand one record (units ``first``..``last``) to the OS, then fsync if the policy
        says it is time. Returns the seconds spent creating the file or syncing it (costs
        that batching records would not reduce)."""
        self.check()
        extra = 0.0
        fault = self.settings.fault
        point = fault[0] if fault is not None and first <= fault[1] <= last else ""
        if point == "before-write":
            _crash()
        try:
            fd = self.fd
            if fd is None:
                started = time.perf_counter()
                fd = self._create()
                extra = time.perf_counter() - started
            if point in ("enospc", "eio"):
                code = errno.ENOSPC if point == "enospc" else errno.EIO
                raise OSError(code, os.strerror(code))
            if point == "mid-record":
                _write_all(fd, frame[: len(frame) // 2])
                _crash()
            _write_all(fd, frame)
        except OSError as exc:
            self._fail(exc, "write")
        if point == "after-write":
            _crash()
        self.unsynced = True
        if point == "eio-fsync":
            self._fsync_fault = True
        if self.settings.fsync == "always" or self._fsync_fault:
            started = time.perf_counter()
            self.sync()
            extra += time.perf_counter() - started
        return extra

    def sync(self) -> None:
        """fsync what was written since the last sync (unless the policy is ``never``), and
        the directory entry the first time. A failure is raised and never retried."""
        if self.settings.fsync == "never" or not self.unsynced:
            return
        with self._io:
            if self.fd is None or self.closed or self.failed is not None:
                return
            try:
                self._sync_now(self.fd)
            except OSError as exc:
                self._fail(exc, "sync")

    def background_sync(self) -> None:
        """The sync thread's pass: like :meth:`sync`, but a failure only poisons the log;
        the loop raises it at its next step."""
        if not self.unsynced or self.failed is not None or self.closed:
            return
        with self._io:
            if self.fd is None or self.closed or self.failed is not None:
                return
            try:
                self._sync_now(self.fd)
            except OSError as exc:
                self.failed = "cannot sync checkpoint %s: %s" % (_shown(self.path), _describe(exc))

    def _sync_now(self, fd: int) -> None:
        self.unsynced = False  # before the fsync: a record written meanwhile needs the next one
        if self._fsync_fault:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        _fsync(fd)
        if not self._dir_synced:
            _fsync_dir(self.path.parent)
            self._dir_synced = True
        self.last_sync = time.monotonic()

    def _fail(self, exc: OSError, verb: str) -> NoReturn:
        self.failed = "cannot %s checkpoint %s: %s" % (verb, _shown(self.path), _describe(exc))
        raise CheckpointWriteError(self.failed) from exc

    # -- closing -----------------------------------------------------------------------

    def close(self, remove: bool) -> None:
        """Release the log: with ``remove``, delete it (and make that durable); otherwise
        write what is queued and fsync, so that a re-run resumes from here."""
        if self.closed:
            return
        try:
            if not remove and self.failed is None:
                self.sync()
        finally:
            with self._io:
                self.closed = True
                if self.fd is not None:
                    os.close(self.fd)
                    self.fd = None
            try:
                if remove:
                    self._remove_file()
            finally:
                self.lock.release()
                key = os.path.abspath(str(self.path))
                if _OPEN.get(key) is self:
                    del _OPEN[key]

    def _remove_file(self) -> None:
        try:
            os.unlink(str(self.path))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise CheckpointError(
                "cannot remove completed checkpoint %s: %s" % (_shown(self.path), _describe(exc))
            ) from exc
        if self.settings.fsync != "never":
            try:
                _fsync_dir(self.path.parent)
            except OSError as exc:
                raise CheckpointWriteError(
                    "cannot sync the removal of checkpoint %s: %s" % (_shown(self.path), _describe(exc))
                ) from exc


# Open logs of this process, by absolute path: synced by the sync thread and at interpreter
# exit, and taken over by a newer checkpoint of the same loop.
_OPEN: Dict[str, _Log] = {}
_SYNC_THREAD_PID = 0  # the process whose sync thread runs (a forked child starts its own)
_EXITING = False


def _start_sync_thread() -> None:
    global _SYNC_THREAD_PID
    if _SYNC_THREAD_PID == os.getpid():
        return
    _SYNC_THREAD_PID = os.getpid()
    thread = threading.Thread(
        target=_sync_forever, args=(os.getpid(),), name="checkpointify-fsync", daemon=True
    )
    thread.start()


def _sync_forever(pid: int) -> None:
    """Redis' ``appendfsync everysec``: every ``_FSYNC_INTERVAL``, fsync each ``batched``
    log of this process that was written since its last sync. The loop never waits for the
    device, and what a power loss can take is about one interval of completed units, even
    while a long unit runs."""
    while not _EXITING:
        time.sleep(_FSYNC_INTERVAL)
        try:
            for log in list(_OPEN.values()):
                if log.pid == pid and log.settings.fsync == "batched":
                    log.background_sync()
        except Exception:  # pragma: no cover - interpreter shutdown
            return


def _sync_open_logs_at_exit() -> None:
    global _EXITING
    _EXITING = True
    for log in list(_OPEN.values()):
        if log.pid != os.getpid() or log.closed:
            continue  # a forked child does not own its parent's logs
        try:
            owner = log.owner()
            if owner is not None:
                owner._flush_if_safe()  # transaction= without a shared transaction: commits first
            log.sync()
        except Exception as exc:
            print("checkpointify: at exit: %s" % exc, file=sys.stderr)


atexit.register(_sync_open_logs_at_exit)


def _forget_logs_in_child() -> None:
    """After ``fork()``: the child shares its parent's open file descriptions, and a flock
    belongs to those, so a child that outlived a killed parent would keep the lock and block
    every re-run. The child closes its copies (the parent's lock is unaffected) and forgets
    the parent's logs; checkpoints it opens itself get their own."""
    global _SYNC_THREAD_PID
    for log in list(_OPEN.values()):
        for fd in (log.fd, log.lock.fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        log.fd = log.lock.fd = None
        log.closed = True
        log.failed = "this checkpoint belongs to the parent process"
    _OPEN.clear()
    _SYNC_THREAD_PID = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_logs_in_child)


def _unpicklable(loop_id: str, units: Sequence[_PendingUnit], deltas: Tuple[Any, ...], exc: Exception) -> str:
    """Name the loop, the unit(s), the accumulator and the value pickle refused."""
    which = "unit #%d" % units[0][0] if len(units) == 1 else "units #%d-#%d" % (units[0][0], units[-1][0])
    for index, delta in enumerate(deltas):
        try:
            pickle.dumps(delta, _PICKLE_PROTOCOL)
        except Exception as inner:
            value = _culprit(delta)
            return (
                "cannot checkpoint %s of loop %r: accumulator %d of %d received a value of type %s "
                "that cannot be pickled (%s; %s: %s). Checkpointed loops must collect picklable "
                "results"
                % (
                    which,
                    loop_id,
                    index + 1,
                    len(deltas),
                    _type_name(value),
                    _short(value),
                    type(inner).__name__,
                    inner,
                )
            )
    return "cannot checkpoint loop %r: pickling failed (%s: %s)" % (loop_id, type(exc).__name__, exc)


def _culprit(delta: Any) -> Any:
    """The first value inside a delta that pickle refuses (the delta itself if none is)."""
    if delta is None:
        return None
    tag, data = delta
    if tag == "v":
        return data
    values = [x for pair in data for x in pair] if tag == "d" else list(data)
    for value in values:
        try:
            pickle.dumps(value, _PICKLE_PROTOCOL)
        except Exception:
            return value
    return data


def _type_name(value: object) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else "%s.%s" % (t.__module__, t.__qualname__)


# ------------------------------------------------------------- records in the database
#
# ``checkpoint(..., transaction=conn)`` (CKP002: rows written per item, one commit after
# the loop) keeps the loop's records in the connection's own database, in the transaction
# that holds the units' writes, and commits it per unit (or per batch of cheap units): a
# unit's rows and its record become durable together or not at all, so a re-run skips
# exactly the committed units. The table holds the same frames as a log file, one a row.

_TABLE = "checkpointify_log"
_HEADER_SEQ = -1  # the row holding the header frame
_OPEN_SEQ = -2  # the "open transaction" marker (see _Database)
_PARAMSTYLES = ("qmark", "numeric", "named", "format", "pyformat")
_PLACEHOLDER = re.compile(r":([a-z_]+)")


def _bind(sql: str, paramstyle: str, params: Dict[str, Any]) -> Tuple[str, Any]:
    """``sql`` written with ``:name`` placeholders, in the driver's ``paramstyle``."""
    if paramstyle == "named":
        return sql, params
    names = _PLACEHOLDER.findall(sql)
    if paramstyle == "qmark":
        text = _PLACEHOLDER.sub("?", sql)
    elif paramstyle == "numeric":
        numbers = iter(range(1, len(names) + 1))
        text = _PLACEHOLDER.sub(lambda _m: ":%d" % next(numbers), sql)
    else:  # format, pyformat (%s is valid in both)
        text = _PLACEHOLDER.sub("%s", sql)
    return text, tuple(params[name] for name in names)


def _dbapi_module(conn: Any) -> Any:
    """The DB-API 2 module of ``conn`` (the first module of its class, or of a base class,
    or a parent package of one, that declares a ``paramstyle``), or ``None``."""
    if not (callable(getattr(conn, "cursor", None)) and callable(getattr(conn, "commit", None))):
        return None
    for cls in type(conn).__mro__:
        parts = (getattr(cls, "__module__", "") or "").split(".")
        for n in range(1, len(parts) + 1):
            module = sys.modules.get(".".join(parts[:n]))
            if getattr(module, "paramstyle", None) in _PARAMSTYLES:
                return module
    return None


def _autocommits(conn: Any) -> bool:
    """Whether ``conn`` commits every statement by itself (then a unit's writes and its record
    cannot share a transaction): sqlite3 with ``isolation_level=None`` or ``autocommit=True``,
    ``conn.autocommit = True`` (psycopg, pyodbc, mysql-connector), PyMySQL's ``get_autocommit()``."""
    sqlite = sys.modules.get("sqlite3")
    if sqlite is not None and isinstance(conn, sqlite.Connection):
        mode = getattr(conn, "autocommit", -1)  # Python >= 3.12; -1 is LEGACY_TRANSACTION_CONTROL
        if mode is True or mode is False:
            return mode
        return conn.isolation_level is None
    flag = getattr(conn, "autocommit", None)
    if isinstance(flag, bool):
        return flag
    getter = getattr(conn, "get_autocommit", None)
    if callable(getter):
        try:
            return bool(getter())
        except Exception:
            return False
    return False


def _describe_connection(conn: Any) -> str:
    return "%s.%s" % (type(conn).__module__, type(conn).__qualname__)


class _Database:
    """A loop's records in table ``checkpointify_log`` of the connection's own database.

    Columns: ``log_id`` (the log file's name without ``.ckpt``: loop id and key), ``seq``
    (the header is row -1; a record's row is the seq of its first unit) and ``record``
    (base64 of the frame a log file would hold, CRC included). The primary key
    ``(log_id, seq)`` is what keeps two processes from recording the same unit: the second
    insert fails, its unit is rolled back and :class:`CheckpointLockedError` raised.

    The *open marker* (row -2) is inserted with the first unit of every transaction the
    loop opens, and deleted just before the loop's own commit, so a transaction the loop
    commits never holds it. Found committed on restore, it means that someone else
    committed while a unit was in flight: the ``commit()`` after a loop that ended with
    ``break`` (or a commit after an exception), with a crash before ``complete()``. That
    unit's writes are durable but it has no record, so the re-run must not run it again:
    the loop ends there, as it did.
    """

    def __init__(self, conn: Any, kind: str, paramstyle: str, log_id: str, text: Any, conflict: Any) -> None:
        self.conn = conn
        self.kind = kind  # "dbapi" | "sqlalchemy"
        self.paramstyle = paramstyle
        self.log_id = log_id
        self._text = text  # sqlalchemy.text
        self._conflict = conflict  # the driver's IntegrityError (a class, or None)
        self._cursor: Any = None
        self.failed: Optional[str] = None
        self.closed = False

    @property
    def shown(self) -> str:
        return "table %s (log %s) of %s" % (_TABLE, self.log_id, _describe_connection(self.conn))

    def _run(self, sql: str, params: Dict[str, Any], fetch: bool) -> List[Any]:
        if self.kind == "sqlalchemy":
            result = self.conn.execute(self._text(sql), params)
            return list(result.fetchall()) if fetch else []
        if self._cursor is None:
            self._cursor = self.conn.cursor()
        statement, args = _bind(sql, self.paramstyle, params)
        self._cursor.execute(statement, args)
        return list(self._cursor.fetchall()) if fetch else []

    def run(self, what: str, sql: str, fetch: bool = False, **params: Any) -> List[Any]:
        """One statement of ours; a failure poisons the store and is raised as
        :class:`CheckpointWriteError` naming the table and what was being done."""
        self.check()
        try:
            return self._run(sql, params, fetch)
        except Exception as exc:
            self.failed = "cannot %s in %s: %s: %s" % (what, self.shown, type(exc).__name__, exc)
            raise CheckpointWriteError(self.failed) from exc

    def check(self) -> None:
        if self.failed is not None:
            raise CheckpointWriteError("checkpoint in %s failed earlier: %s" % (self.shown, self.failed))
        if self.closed:
            raise CheckpointError("checkpoint in %s was closed; it records no more units" % self.shown)

    def setup(self) -> None:
        """Create the table if it is missing, in the current transaction (nothing is committed;
        sqlite3 runs DDL outside a transaction when none is open, and MySQL commits on DDL)."""
        self.run(
            "create the checkpoint table",
            "CREATE TABLE IF NOT EXISTS %s (log_id VARCHAR(100) NOT NULL, seq BIGINT NOT NULL, "
            "record TEXT NOT NULL, PRIMARY KEY (log_id, seq))" % _TABLE,
        )

    def read(self) -> List[Tuple[int, str]]:
        rows = self.run(
            "read the records",
            "SELECT seq, record FROM %s WHERE log_id = :log_id ORDER BY seq" % _TABLE,
            fetch=True,
            log_id=self.log_id,
        )
        return [(int(seq), str(record)) for seq, record in rows]

    def insert(self, seq: int, frame: bytes, loop_id: str) -> None:
        """Add a row in the open transaction. A row that exists already (another process
        recorded this unit meanwhile) rolls the transaction back and raises
        :class:`CheckpointLockedError`."""
        self.check()
        params = {"log_id": self.log_id, "seq": seq, "record": base64.b64encode(frame).decode("ascii")}
        try:
            self._run(
                "INSERT INTO %s (log_id, seq, record) VALUES (:log_id, :seq, :record)" % _TABLE, params, False
            )
        except Exception as exc:
            if self._conflict is None or not isinstance(exc, self._conflict):
                self.failed = (
                    "cannot write a record in %s: %s: %s (a second process running the same loop on this "
                    "database fails this way too: it waits for the first one's lock, or finds the table "
                    "gone once that one completed; only one process at a time can run a loop)"
                    % (self.shown, type(exc).__name__, exc)
                )
                raise CheckpointWriteError(self.failed) from exc
            if seq == _HEADER_SEQ:
                what = "started the loop in this table first"
            elif seq == _OPEN_SEQ:
                what = "has a unit of it in flight"
            else:
                what = "recorded unit #%d first" % seq
            self.failed = "another process %s" % what
            try:
                self.conn.rollback()
            except Exception:
                pass
            raise CheckpointLockedError(
                "%s: another process is running loop %r on the same database and %s. Only one process "
                "at a time can run a loop; this process's open unit was rolled back (%s: %s)"
                % (self.shown, loop_id, what, type(exc).__name__, exc),
                {},
            ) from exc

    def delete(self, seq: int) -> None:
        self.run(
            "delete a row",
            "DELETE FROM %s WHERE log_id = :log_id AND seq = :seq" % _TABLE,
            log_id=self.log_id,
            seq=seq,
        )

    def delete_all(self) -> None:
        self.run("delete the records", "DELETE FROM %s WHERE log_id = :log_id" % _TABLE, log_id=self.log_id)

    def commit(self) -> None:
        """The connection's own commit: the user's writes and ours. Its failure (which may
        be the user's data: a deferred constraint) is raised as it is, and poisons the store."""
        self.check()
        try:
            self.conn.commit()
        except Exception as exc:
            self.failed = "the commit failed (%s: %s)" % (type(exc).__name__, exc)
            raise

    def remove(self) -> None:
        """Delete the loop's rows, drop the table if no other loop has rows in it, and commit."""
        self.delete_all()
        [(count,)] = self.run("count the records", "SELECT COUNT(*) FROM %s" % _TABLE, fetch=True)
        if not count:
            self.run("drop the empty checkpoint table", "DROP TABLE %s" % _TABLE)
        self.commit()
        self.close()

    def close(self) -> None:
        self.closed = True
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            try:
                cursor.close()
            except Exception:
                pass


def _database(conn: Any, log_id: str) -> Tuple[Optional[_Database], str]:
    """The store for ``transaction=conn``: a :class:`_Database` when ``conn`` can hold the
    records in its own transactions, else ``(None, why not)``: the records then go to the
    log file, each written after ``conn.commit()`` (at-least-once). Raises
    :class:`CheckpointError` for an object without ``commit()`` or an async session."""
    module = type(conn).__module__ or ""
    if module.startswith("sqlalchemy."):
        if module.startswith("sqlalchemy.ext.asyncio"):
            raise CheckpointError(
                "transaction= needs a synchronous SQLAlchemy Session or Connection; %s is asynchronous "
                "(its commit() must be awaited)" % _describe_connection(conn)
            )
        sqlalchemy = sys.modules.get("sqlalchemy")
        if (
            sqlalchemy is not None
            and callable(getattr(conn, "execute", None))
            and callable(getattr(conn, "commit", None))
        ):
            exc_module = sys.modules.get("sqlalchemy.exc")
            return (
                _Database(
                    conn,
                    "sqlalchemy",
                    "named",
                    log_id,
                    sqlalchemy.text,
                    getattr(exc_module, "IntegrityError", None),
                ),
                "",
            )
    dbapi = _dbapi_module(conn)
    if dbapi is not None:
        if _autocommits(conn):
            return (
                None,
                "it commits every statement by itself (autocommit), so no transaction can hold a unit",
            )
        return _Database(
            conn, "dbapi", dbapi.paramstyle, log_id, None, getattr(dbapi, "IntegrityError", None)
        ), ""
    if not callable(getattr(conn, "commit", None)):
        raise CheckpointError(
            "transaction= must be a DB-API connection, a SQLAlchemy Session or Connection, or an object with a "
            "commit() method; %s has no commit()" % _describe_connection(conn)
        )
    return None, "it is neither a DB-API connection nor a SQLAlchemy Session or Connection"


def _commit_transaction(conn: Any) -> None:
    """``conn.commit()`` for the file-log fallback; refuses an asynchronous commit (a
    coroutine that nobody would await commits nothing)."""
    result = conn.commit()
    if hasattr(result, "__await__"):
        close = getattr(result, "close", None)
        if callable(close):
            close()
        raise CheckpointError(
            "transaction=%s: its commit() returns an awaitable; transaction= needs a synchronous commit()"
            % _describe_connection(conn)
        )


# ------------------------------------------------------------------ resume by identity


class _Plan:
    """How a ``resume="identity"`` run reuses recorded units over the current input.

    A recorded unit is reused when its item comes up (wherever it now is) if either
    (a) *exact*: every unit before it in the log was reused, in log order, and no body ran
    in between, so the accumulators are exactly as they were when it was recorded; or
    (b) *independent*: its effect did not depend on earlier units (it only appended to
    lists, added to sets or created dict keys that do not exist yet), and no unit recorded
    before it has vanished from the input while the loop has dict or set accumulators (a
    vanished unit may have added an element or key that later units then added again
    invisibly). A batch (cheap units written together, with one joint effect) is reused
    only whole and exact: its items come up next to each other, in log order. Otherwise
    the item runs again, and the new record replaces the old one.
    """

    __slots__ = ("items", "fps", "pos", "by_fp", "order", "exact_pos", "exact", "cut", "keyed")

    def __init__(self, items: List[Any], fps: List[bytes], units: List[_Unit], keyed: bool) -> None:
        self.items = items
        self.fps = fps
        self.pos = 0
        live = _live(units)
        self.by_fp: Dict[bytes, Deque[_Unit]] = {}
        for unit in live:
            self.by_fp.setdefault(unit.fp, deque()).append(unit)
        wanted = Counter(fps)
        self.cut: Optional[int] = None  # units after this seq may miss invisible effects
        for fp, queue in self.by_fp.items():
            for unit in list(queue)[wanted.get(fp, 0) :]:  # recorded more often than it occurs now
                if unit.keyed:
                    self.cut = unit.seq if self.cut is None else min(self.cut, unit.seq)
        self.order = [u.seq for u in live]
        self.exact_pos = 0
        self.exact = True
        self.keyed = keyed

    @property
    def recorded(self) -> int:
        return len(self.order)


# ------------------------------------------------------------------------ the checkpoint


_NO_ITEM = bytes(8)  # the "item fingerprint" of a while loop's units: there is no item


def _no_state() -> Tuple[Any, ...]:
    return ()


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Restoring only allocates; collections over the growing heap cost about half the time."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@dataclass(frozen=True)
class _Recorded:
    """What restore() found: the valid frames and the units they hold."""

    scan: _Scan
    units: List[_Unit]


class Checkpoint(Generic[T]):
    """One loop's checkpoint: restores, hands out the remaining items, records each unit.

    Use :func:`checkpoint` to create one. Not thread-safe: one loop, one thread.

    ``resume="position"`` (the default): a re-run must see the same input in the same
    order; the recorded units are its first items (checked by fingerprint, else
    :class:`StaleCheckpointError`), re-applied by ``restore()``.

    ``resume="identity"``: for input whose order may change between runs (``os.listdir``,
    ``glob``, sets). ``restore()`` returns the accumulators untouched and reads the whole
    input (so it must be finite); iterating then walks the *current* input and, for each
    item that was completed before, applies that unit's recorded effect in place at that
    point and skips the body; other items run. The accumulators must be mutable (lists,
    dicts, sets, deques, bytearrays and their subclasses). Items that are no longer in the
    input are ignored, so the result equals an uninterrupted run over the current input. A
    unit whose effect depended on earlier units (a counter incremented, a list inside a
    dict grown, an entry overwritten) is reused only while the order is unchanged up to
    it; after the first difference it runs again (see :class:`_Plan`).

    Three more shapes (see :func:`checkpoint`): a ``while`` loop (no iterable; the test
    calls :meth:`advance`), ``async for`` over an async iterable (:meth:`arestore`, then
    ``async for``; position mode only) and ``transaction=`` (the records live in the
    connection's database, committed with each unit's writes).
    """

    def __init__(
        self,
        loop_id: str,
        iterable: Optional[Union[Iterable[T], AsyncIterable[T]]],
        state: Optional[Callable[[], Tuple[Any, ...]]],
        key: object = None,
        directory: Optional[Path] = None,
        *,
        resume: str = "position",
        source: str = "",
        transaction: object = None,
    ) -> None:
        if resume not in ("position", "identity"):
            raise ValueError("resume must be 'position' or 'identity', not %r" % (resume,))
        if iterable is None and resume != "position":
            raise ValueError("resume='identity' matches units by item; a while loop (no iterable) has none")
        self.loop_id = loop_id
        self.resume = resume
        self.source = source
        self._state: Callable[[], Tuple[Any, ...]] = state if state is not None else _no_state
        self._iterable: Optional[Any] = iterable
        self._iterator: Iterator[T] = iter(())
        self._aiterator: Optional[AsyncIterator[T]] = None
        #: "for", "async for" (once arestore() ran) or "while" (no iterable)
        self._shape = "while" if iterable is None else "for"
        self._transaction = transaction
        self._key_fp = key_fingerprint(key) if key is not None else ""
        self._default_dir = directory is None and not os.environ.get("CHECKPOINTIFY_DIR")
        self.directory = directory if directory is not None else checkpoint_dir()
        self.path = self.directory / log_name(loop_id, self._key_fp)
        self._settings = _Settings.from_env()
        self._log: Optional[_Log] = None
        self._db: Optional[_Database] = None  # transaction=: the records live in the database
        self._commit_first: Any = None  # transaction= without a shared transaction: commit, then record
        self._db_header = False  # the database holds this log's header row
        self._marker = False  # the open marker is in the loop's open transaction (see _Database)
        self._ended_early = False  # a committed open marker: the last run's loop ended at this unit
        self._accumulators = 0
        self._trackers: List[_Tracker] = []
        self._replay: Deque[T] = deque()
        self._plan: Optional[_Plan] = None
        self._inflight: Optional[Tuple[bytes, int]] = None  # fingerprint, replaced seq
        self._pending: List[_PendingUnit] = []  # completed units not written yet (a batch)
        self._last_write = 0.0  # perf_counter() when the last record was written
        # what writing a record costs: the minimum of the last few writes (a write that was
        # descheduled must not make slow units wait), growing with the accumulators
        self._write_costs: Deque[float] = deque(maxlen=8)
        # units wait to be written while less than this has passed since the last write
        self._window = 0.0 if self._settings.batch else -1.0
        self._seq = 0
        self._restored = False
        self._finished = False
        self._completed = False
        self._trackers_stale = False
        self._reused = 0
        self._rerun = 0
        #: how many recorded units restore() applied (identity mode: how many were reused so far)
        self.restored_units = 0

    # -- restore ----------------------------------------------------------------------

    def restore(self) -> List[Any]:
        """Take the loop's lock, re-apply the recorded units and return the accumulators.

        Raises :class:`StaleCheckpointError` (position mode) when the recorded items are
        not the first items of the current input (nothing is applied then),
        :class:`CorruptCheckpointError` when the log is damaged in the middle,
        :class:`CheckpointLockedError` when another process runs the loop, and
        :class:`CheckpointWriteError` when the directory is not writable. A checkpoint over
        an async iterable is refused: use :meth:`arestore`.

        For a ``while`` loop (no iterable) every recorded unit is re-applied: there are no
        items whose fingerprints could show that the input changed.
        """
        self._check_restorable()
        iterable = self._iterable
        if iterable is not None and not hasattr(iterable, "__iter__") and hasattr(iterable, "__aiter__"):
            raise CheckpointError(
                "checkpoint %r is over an async iterable (%s): restore it with `await ckpt.arestore()` and "
                "iterate it with `async for`" % (self.loop_id, _type_name(iterable))
            )
        values = self._open()
        try:
            with _gc_paused():
                if iterable is not None:
                    self._iterator = iter(iterable)
                self._iterable = None
                recorded = self._read_records()
                if self.resume == "identity":
                    values = self._restore_by_identity(values, recorded)
                else:
                    live = _live(recorded.units)
                    consumed, mismatch = self._match_items(live)
                    values = self._restore_by_position(values, recorded, live, consumed, mismatch)
        except BaseException:
            self._release()
            raise
        return self._ready(values)

    async def arestore(self) -> List[Any]:
        """:meth:`restore` for ``async for`` over an async iterable: the recorded items are
        read from it (awaited) and checked by fingerprint. Position mode only (identity
        would need the whole input first). Refused for a synchronous iterable or a while
        loop, which use :meth:`restore`."""
        self._check_restorable()
        iterable = self._iterable
        if iterable is None or not hasattr(iterable, "__aiter__"):
            raise CheckpointError(
                "arestore() is for `async for` over an async iterable; checkpoint %r is over %s: use "
                "restore() and a plain `%s` loop"
                % (self.loop_id, "no iterable" if iterable is None else _type_name(iterable), self._shape)
            )
        if self.resume != "position":
            raise CheckpointError(
                "checkpoint %r: resume=%r needs the whole input before the loop starts; an async iterable "
                "supports resume='position' only" % (self.loop_id, self.resume)
            )
        values = self._open()
        try:
            self._aiterator = iterable.__aiter__()
            self._iterable = None
            self._shape = "async for"
            recorded = self._read_records()
            live = _live(recorded.units)
            consumed, mismatch = await self._amatch_items(live)
            with _gc_paused():
                values = self._restore_by_position(values, recorded, live, consumed, mismatch)
        except BaseException:
            self._release()
            raise
        return self._ready(values)

    def _check_restorable(self) -> None:
        if self._restored:  # a restore() that failed (locked, stale...) may be retried
            raise CheckpointError("restore() was already called for checkpoint %r" % self.loop_id)

    def _open(self) -> List[Any]:
        """Read the accumulators' initial values and open the store: the log file (taking
        its lock) or, for ``transaction=``, the database table (no file, no lock: the
        transaction is the progress marker and the table's primary key stops a second
        writer)."""
        values = list(self._state())
        if self.resume == "identity":
            _check_mutable(self.loop_id, values)
        self._accumulators = len(values)
        if self._transaction is not None:
            db, why_not = _database(self._transaction, self.path.name[: -len(".ckpt")])
            if db is not None:
                db.setup()
                self._db = db
                self._last_write = time.perf_counter()
                return values
            self._commit_first = self._transaction
            self._say(
                "%s: transaction=%s: %s; progress is kept in %s, written after each commit (at-least-once: "
                "a unit committed just before a crash runs again)"
                % (self.loop_id, _describe_connection(self._transaction), why_not, _shown(self.path))
            )
        log = _Log(self.path, self.loop_id, self._settings, self._header())
        log.acquire()
        log.owner = weakref.ref(self)
        self._log = log
        self._last_write = time.perf_counter()
        return values

    def _release(self) -> None:
        """restore() failed: let go of the log (the database needs nothing: nothing was written)."""
        if self._log is not None:
            self._log.close(remove=False)
        if self._db is not None:
            self._db.close()

    def _ready(self, values: List[Any]) -> List[Any]:
        self._trackers = [_Tracker(v) for v in values]
        self._restored = True
        return values

    def _header(self) -> Dict[str, Any]:
        return {
            "format": FORMAT,
            "loop_id": self.loop_id,
            "key": self._key_fp,
            "source": self.source,
            "resume": self.resume,
            "loop": "while" if self._shape == "while" else "for",
            "state": self._accumulators,
            "python": sys.version.split()[0],
            "runtime": RUNTIME_VERSION,
        }

    def _restore_by_identity(self, values: List[Any], recorded: _Recorded) -> List[Any]:
        units = recorded.units
        items = list(self._iterator)
        keyed = any(isinstance(v, (dict, set)) for v in values)
        self._plan = _Plan(items, [fingerprint(x) for x in items], units, keyed)
        self._seq = max((u.seq for u in units), default=-1) + 1
        self._open_existing(recorded.scan)
        if units:
            self._say(
                "resuming %s by item identity: %d completed units recorded in %s"
                % (self.loop_id, self._plan.recorded, self._where())
            )
        return values

    def _restore_by_position(
        self,
        values: List[Any],
        recorded: _Recorded,
        live: List[_Unit],
        consumed: List[T],
        mismatch: Optional[str],
    ) -> List[Any]:
        if live:
            if mismatch is not None:
                self._on_stale(mismatch, consumed)  # raises, or archives the log
                return values
            for unit in live:
                if len(unit.deltas) != len(values):
                    raise StaleCheckpointError(
                        "checkpoint %s records %d accumulators but the loop has %d; %s"
                        % (self._where(), len(unit.deltas), len(values), self._how_to_start_over())
                    )
                values = [_apply(v, d) for v, d in zip(values, unit.deltas)]
            self.restored_units = len(live)
            self._say(
                "resuming %s: %d completed units restored from %s" % (self.loop_id, len(live), self._where())
            )
        self._seq = max((u.seq for u in recorded.units), default=-1) + 1
        if self._ended_early:
            self._say(
                "%s: the last run left this loop at unit #%d without completing it (a `break`, or an "
                "exception) and its writes were committed after the loop; the loop ends there again instead "
                "of writing them twice" % (self.loop_id, self._seq)
            )
        self._open_existing(recorded.scan)
        return values

    def _open_existing(self, scan: _Scan) -> None:
        if self._log is not None and scan.frames:
            self._log.open_existing(scan.valid_end, scan.size)

    def _where(self) -> str:
        return self._db.shown if self._db is not None else _shown(self.path)

    def _read_records(self) -> _Recorded:
        data, scan, units = self._read_database() if self._db is not None else self._read_log()
        return _Recorded(scan, units)

    def _read_log(self) -> Tuple[bytes, _Scan, List[_Unit]]:
        """The valid prefix of the log, decoded; moves a corrupt log aside and raises."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return b"", _scan(b""), []
        except OSError as exc:
            raise CheckpointError(
                "cannot read checkpoint %s: %s" % (_shown(self.path), _describe(exc))
            ) from exc
        scan = _scan(data)
        if scan.corrupt_at >= 0:
            self._corrupt(scan)
        if scan.valid_end < scan.size:
            self._say(
                "%s: dropped %d bytes at the end: a record torn by a crash mid-write (or a "
                "power loss); the units it held run again" % (_shown(self.path), scan.size - scan.valid_end)
            )
        return data, scan, self._decode(data, scan)

    def _read_database(self) -> Tuple[bytes, _Scan, List[_Unit]]:
        """The rows of this loop, decoded. A transaction is all or nothing, so there is no
        torn tail here: any frame that fails its checks is damage, and is raised."""
        db = self._db
        assert db is not None
        frames: List[bytes] = []
        for seq, text in db.read():
            if seq == _OPEN_SEQ:
                self._ended_early = True
                continue
            try:
                frames.append(base64.b64decode(text.encode("ascii"), validate=True))
            except (binascii.Error, ValueError, UnicodeError):
                frames.append(b"\0")  # fails the scan below
        data = b"".join(frames)
        scan = _scan(data)
        if scan.valid_end < scan.size:
            raise CorruptCheckpointError(
                "checkpoint %s is corrupt: the frame at byte %d of its rows fails its checksum (damage, or "
                "rows written by something else). Nothing was restored; %s"
                % (db.shown, scan.valid_end, self._how_to_start_over()),
                self.path,
                None,
            )
        self._db_header = bool(scan.frames)
        return data, scan, self._decode(data, scan)

    def _decode(self, data: bytes, scan: _Scan) -> List[_Unit]:
        if not scan.frames:
            return []
        header = _header(data, scan)
        if header.get("format") not in (FORMAT, _FORMAT_V1) or header.get("loop_id") != self.loop_id:
            raise CheckpointError(
                "%s is not a checkpoint of loop %r (header %r); %s"
                % (self._where(), self.loop_id, header, self._how_to_start_over())
            )
        shape = "while" if self._shape == "while" else "for"
        if header.get("loop", "for") != shape:
            raise StaleCheckpointError(
                "checkpoint %s was written by a %s loop, but loop %r is now a %s loop; %s"
                % (self._where(), header.get("loop"), self.loop_id, shape, self._how_to_start_over())
            )
        try:
            return _decode_units(data, scan, v1=header.get("format") == _FORMAT_V1)
        except Exception as exc:
            raise CheckpointError(
                "cannot load a unit recorded in %s (%s: %s); was it written by other code? %s"
                % (self._where(), type(exc).__name__, exc, self._how_to_start_over())
            ) from exc

    def _corrupt(self, scan: _Scan) -> NoReturn:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name("%s.corrupt-%s" % (self.path.name, stamp))
        serial = 1
        while target.exists():
            serial += 1
            target = self.path.with_name("%s.corrupt-%s-%d" % (self.path.name, stamp, serial))
        try:
            os.replace(str(self.path), str(target))
            _fsync_dir(self.path.parent)
        except OSError as exc:
            raise CorruptCheckpointError(
                "checkpoint %s is corrupt (a damaged frame at byte %d is followed by valid records) "
                "and could not be moved aside: %s" % (_shown(self.path), scan.corrupt_at, _describe(exc)),
                self.path,
                None,
            ) from exc
        raise CorruptCheckpointError(
            "checkpoint %s is corrupt: the frame at byte %d fails its checksum but valid records "
            "follow it, so this is not a write torn by a crash but damage (the disk, the file "
            "system, or another program). Nothing was restored and nothing is skipped silently: "
            "the log was moved to %s for inspection, and the next run starts from zero"
            % (_shown(self.path), scan.corrupt_at, _shown(target)),
            self.path,
            target,
        )

    def _match_items(self, units: List[_Unit]) -> Tuple[List[T], Optional[str]]:
        """Pull one input item per unit and compare fingerprints: (the items pulled, a
        description of the first mismatch or ``None``). A while loop has nothing to match."""
        consumed: List[T] = []
        if self._shape == "while":
            return consumed, None
        iterator = self._iterator
        for index, unit in enumerate(units):
            try:
                item = next(iterator)
            except StopIteration:
                return consumed, _input_ended(index, units)
            consumed.append(item)
            mismatch = _item_mismatch(index, item, unit)
            if mismatch is not None:
                return consumed, mismatch
        return consumed, None

    async def _amatch_items(self, units: List[_Unit]) -> Tuple[List[T], Optional[str]]:
        """:meth:`_match_items` over the async iterator."""
        consumed: List[T] = []
        aiterator = self._aiterator
        assert aiterator is not None
        for index, unit in enumerate(units):
            try:
                item = await aiterator.__anext__()
            except StopAsyncIteration:
                return consumed, _input_ended(index, units)
            consumed.append(item)
            mismatch = _item_mismatch(index, item, unit)
            if mismatch is not None:
                return consumed, mismatch
        return consumed, None

    def _how_to_start_over(self) -> str:
        if self._db is not None:
            return "to start over, delete its rows (DELETE FROM %s WHERE log_id = '%s') and commit" % (
                _TABLE,
                self._db.log_id,
            )
        command = "checkpointify checkpoints clear %s" % self.path.name[: -len(".ckpt")]
        if not self._default_dir and not os.environ.get("CHECKPOINTIFY_DIR"):
            command += " --dir %s" % _shown(self.directory)
        return "to start over, run `%s` (or delete the file)" % command

    def _on_stale(self, reason: str, consumed: List[T]) -> None:
        if self._settings.on_stale == "restart":
            if self._db is not None:
                # no archive in the user's database: the rows go, in the loop's first transaction
                self._db.delete_all()
                self._db_header = False
                self._ended_early = False
                print(
                    "checkpointify: %s: input changed (%s); deleted its records and starting from zero"
                    % (self._db.shown, reason),
                    file=sys.stderr,
                )
                self._replay.extend(consumed)
                return
            archived = self.path.with_name(self.path.name + ".stale")
            try:
                os.replace(str(self.path), str(archived))
                _fsync_dir(self.path.parent)
            except OSError as exc:
                raise CheckpointError(
                    "cannot archive stale checkpoint %s: %s" % (_shown(self.path), _describe(exc))
                ) from exc
            print(
                "checkpointify: %s: input changed (%s); archived it as %s and starting from zero"
                % (_shown(self.path), reason, archived.name),
                file=sys.stderr,
            )
            self._replay.extend(consumed)
            return
        raise StaleCheckpointError(
            "checkpoint %s does not match the input: %s. It was written by a run over other "
            "input; %s, or set CHECKPOINTIFY_ON_STALE=restart to archive it and start from zero"
            % (self._where(), reason, self._how_to_start_over())
        )

    def _say(self, message: str) -> None:
        if not self._settings.quiet:
            print("checkpointify: " + message, file=sys.stderr)

    # -- iteration --------------------------------------------------------------------

    def __iter__(self) -> "Checkpoint[T]":
        if self._shape != "for":
            raise CheckpointError(self._wrong_loop("for"))
        return self

    def __next__(self) -> T:
        if self._step():
            raise StopIteration
        if self._ended_early:
            self._end()
            raise StopIteration
        if self._plan is not None:
            item, fp, replaces = self._next_by_identity()
        else:
            if self._replay:
                item = self._replay.popleft()
            else:
                try:
                    item = next(self._iterator)
                except StopIteration:
                    self._end()
                    raise
            fp, replaces = fingerprint(item), -1
        self._start_unit(fp, replaces)
        return item

    def __aiter__(self) -> "Checkpoint[T]":
        if self._shape != "async for":
            raise CheckpointError(self._wrong_loop("async for"))
        return self

    async def __anext__(self) -> T:
        if self._step():
            raise StopAsyncIteration
        if self._replay:
            item = self._replay.popleft()
        elif self._ended_early:
            self._end()
            raise StopAsyncIteration
        else:
            assert self._aiterator is not None
            try:
                item = await self._aiterator.__anext__()
            except StopAsyncIteration:
                self._end()
                raise
        self._start_unit(fingerprint(item), -1)
        return item

    def advance(self) -> bool:
        """For a ``while`` loop (a checkpoint without an iterable): call it at every
        evaluation of the loop's test (``while ckpt.advance() and <test>:``). It records the
        previous unit, if one was handed out (a unit that ended by ``break`` or an exception
        never gets here, so it is not recorded; ``continue`` comes here, so it counts as
        done), then marks that a unit starts and returns True. It returns False only when
        the database shows that the last run's loop ended at this point (``transaction=``;
        see :class:`_Database`)."""
        if self._shape != "while":
            raise CheckpointError(
                "advance() is for while loops; checkpoint %r is over an iterable: iterate over it instead"
                % self.loop_id
            )
        if self._step():
            return False
        if self._ended_early:
            self._end()
            return False
        self._start_unit(_NO_ITEM, -1)
        return True

    def _wrong_loop(self, used: str) -> str:
        if not self._restored:
            how = "`await ckpt.arestore()`" if used == "async for" else "restore()"
            return "call %s before iterating over checkpoint %r" % (how, self.loop_id)
        if self._shape == "while":
            return (
                "checkpoint %r has no iterable: it is for a while loop (`while ckpt.advance():`)"
                % self.loop_id
            )
        return "checkpoint %r is over %s iterable: iterate it with `%s`, not `%s`" % (
            self.loop_id,
            "an async" if self._shape == "async for" else "a synchronous",
            self._shape,
            used,
        )

    def _step(self) -> bool:
        """The loop asks for its next unit: record the one in flight. True when the input
        was exhausted before (hand out nothing)."""
        now = time.perf_counter()
        if self._inflight is not None:
            self._finish_unit(now)
        elif not self._restored:
            raise CheckpointError(
                "call %s before iterating over checkpoint %r"
                % ("`await ckpt.arestore()`" if self._shape == "async for" else "restore()", self.loop_id)
            )
        if self._finished:
            return True
        if self._completed:
            raise CheckpointError("checkpoint %r was completed; it cannot hand out items" % self.loop_id)
        self._check_store()  # closed, taken over or failed: hand out nothing more
        return False

    def _check_store(self) -> None:
        if self._db is not None:
            self._db.check()
        else:
            assert self._log is not None
            self._log.check()

    def _start_unit(self, fp: bytes, replaces: int) -> None:
        """A unit starts. With a database, the first unit of a transaction opens it with the
        open marker (and the header row, the first time)."""
        db = self._db
        if db is not None and not self._marker:
            if not self._db_header:
                header = dict(self._header(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), pid=os.getpid())
                header["host"] = socket.gethostname()
                db.insert(
                    _HEADER_SEQ,
                    _frame(_KIND_HEADER, json.dumps(header, sort_keys=True).encode()),
                    self.loop_id,
                )
                self._db_header = True
            db.insert(_OPEN_SEQ, b"", self.loop_id)
            self._marker = True
        self._inflight = (fp, replaces)

    def _finish_unit(self, now: float) -> None:
        """The unit handed out last has finished: record it, now or with the next batch."""
        assert self._inflight is not None
        fp, replaces = self._inflight
        self._inflight = None
        self._pending.append((self._seq, fp, replaces))
        self._seq += 1
        if now - self._last_write >= self._window or len(self._pending) >= _BATCH_MAX_UNITS:
            self._flush()

    def _flush(self) -> None:
        """Write the completed units that wait as one record with their joint effect (with a
        database: insert it and commit, which makes the units' own writes durable with it).
        Only call it between units: it reads the accumulators, which must then hold
        completed units only."""
        units = self._pending
        if not units or (self._log is None and self._db is None):
            return
        self._check_store()
        started = time.perf_counter()
        self._pending = []
        trackers = self._trackers
        deltas = tuple([t.delta(v) for t, v in zip(trackers, self._state())])
        flags = _REORDERABLE if all(t.reorderable for t in trackers) else 0
        if len(units) > 1:
            flags |= _COMBINED
        try:
            frame = _encode_record(units, flags, deltas)
        except CheckpointError as exc:
            self._poison(str(exc))
            raise
        except Exception as exc:
            message = _unpicklable(self.loop_id, units, deltas, exc)
            self._poison(message)
            raise CheckpointError(message) from exc
        if self._db is not None:
            extra = self._commit_record(frame, units[0][0], units[-1][0])
        else:
            assert self._log is not None
            if self._commit_first is not None:
                _commit_transaction(self._commit_first)  # at-least-once: commit, then record
            extra = self._log.write(frame, units[0][0], units[-1][0])
        now = time.perf_counter()
        self._write_costs.append(now - started - extra)  # fsync: bounded by its own clock (1 s)
        if self._settings.batch:
            self._window = min(min(self._write_costs) / _WRITE_SHARE, _MAX_BATCH_WINDOW)
        self._last_write = now

    def _poison(self, message: str) -> None:
        if self._db is not None:
            self._db.failed = message
        elif self._log is not None:
            self._log.failed = message

    def _commit_record(self, frame: bytes, first: int, last: int) -> float:
        """Insert the record, take the open marker out and commit: the units' writes and
        their record become durable together. Honours the fault points before-write,
        after-write (the record inserted, not committed) and after-commit. Returns the
        seconds the commit took."""
        db = self._db
        assert db is not None
        fault = self._settings.fault
        point = fault[0] if fault is not None and first <= fault[1] <= last else ""
        if point == "before-write":
            _crash()
        db.insert(first, frame, self.loop_id)
        if point == "after-write":
            _crash()
        started = time.perf_counter()
        self._commit_database()
        if point == "after-commit":
            _crash()
        # Like an fsync of the log file, the commit is the storage's durability cost, not the
        # cost of encoding records that batching amortizes: a unit slower than 20 encodings is
        # committed before the next one starts, whatever the commit costs (as with
        # CHECKPOINTIFY_FSYNC=always). Only microsecond units share a transaction.
        return time.perf_counter() - started

    def _commit_database(self) -> None:
        db = self._db
        assert db is not None
        if self._marker:
            db.delete(_OPEN_SEQ)
            self._marker = False
        db.commit()

    def _flush_if_safe(self) -> None:
        """Write the waiting units, unless a unit is in flight: its partial effect is in the
        accumulators and cannot be told apart (the batch is then lost and runs again)."""
        if self._pending and self._inflight is None:
            self._flush()

    def _end(self) -> None:
        """The input is exhausted: write what is queued and fsync (with a database: commit)."""
        self._finished = True
        if self._db is not None:
            self._flush()
            if self._marker:
                self._commit_database()
        elif self._log is not None:
            self._flush()
            self._log.sync()
        plan = self._plan
        if plan is not None and (self._rerun or plan.recorded > self._reused + self._rerun):
            self._say(
                "%s: reused %d of %d recorded units; %d ran again (their effect depends on the "
                "order, which changed); %d no longer match an input item"
                % (
                    self.loop_id,
                    self._reused,
                    plan.recorded,
                    self._rerun,
                    plan.recorded - self._reused - self._rerun,
                )
            )

    def _next_by_identity(self) -> Tuple[T, bytes, int]:
        plan = self._plan
        assert plan is not None
        while plan.pos < len(plan.items):
            index = plan.pos
            plan.pos += 1
            fp = plan.fps[index]
            queue = plan.by_fp.get(fp)
            replaces = -1
            if queue:
                unit = queue.popleft()
                if self._reuse(plan, unit):
                    continue
                self._rerun += 1
                replaces = unit.seq
            plan.exact = False
            if self._trackers_stale:  # forget the reused effects: they are not this unit's
                for tracker, value in zip(self._trackers, self._state()):
                    tracker.delta(value)
                self._trackers_stale = False
            return plan.items[index], fp, replaces
        self._end()
        raise StopIteration

    def _reuse(self, plan: _Plan, unit: _Unit) -> bool:
        """Apply ``unit``'s recorded effect in place if that is exact here (see :class:`_Plan`);
        for a batch, the whole batch's, skipping its other items."""
        values = self._state()
        if len(unit.deltas) != len(values):
            raise StaleCheckpointError(
                "checkpoint %s records %d accumulators but the loop has %d; %s"
                % (_shown(self.path), len(unit.deltas), len(values), self._how_to_start_over())
            )
        members = unit.batch or (unit,)
        exact = (
            plan.exact
            and unit is members[0]
            and plan.exact_pos < len(plan.order)
            and plan.order[plan.exact_pos] == unit.seq
        )
        if unit.batch is not None:
            exact = exact and self._batch_comes_next(plan, members[1:])
            if not exact:
                plan.exact = False
                return False
        elif not exact:
            plan.exact = False
            if not unit.flags & _REORDERABLE or (plan.keyed and plan.cut is not None and unit.seq > plan.cut):
                return False
        effect = members[-1].deltas
        if not all(_applicable_in_place(v, d, not exact) for v, d in zip(values, effect)):
            plan.exact = False
            return False
        self._flush_if_safe()  # fresh units first: their joint effect must not include this one
        for member in members[1:]:
            plan.by_fp[member.fp].popleft()
        plan.pos += len(members) - 1
        for value, delta in zip(values, effect):
            if delta is not None:
                _apply_in_place(value, delta)
        if exact:
            plan.exact_pos += len(members)
        self._trackers_stale = True
        self._reused += len(members)
        self.restored_units += len(members)
        return True

    @staticmethod
    def _batch_comes_next(plan: _Plan, rest: Sequence[_Unit]) -> bool:
        """Whether the input items right after the current one are ``rest``'s, in order."""
        if plan.pos + len(rest) > len(plan.items):
            return False
        for offset, member in enumerate(rest):
            queue = plan.by_fp.get(plan.fps[plan.pos + offset])
            if not queue or queue[0] is not member:
                return False
        return True

    # -- completion -------------------------------------------------------------------

    def complete(self) -> None:
        """The final save (or commit) succeeded: remove the log (durably) and release the
        lock, so that the next run starts from zero. With a database: delete the loop's
        rows, drop the table if no other loop has rows in it, and commit."""
        if self._completed:
            return
        if self._transaction is not None and self._log is None and (self._db is None or self._db.closed):
            db, _why_not = _database(self._transaction, self.path.name[: -len(".ckpt")])
            if db is not None:  # complete() without restore(): the rows may still be there
                db.setup()
                self._db = db
        if self._db is not None:
            if self._settings.fault is not None and self._settings.fault[0] == "during-complete":
                _crash()
            self._completed = True
            self._inflight = None
            self._db.remove()
            return
        log = self._log
        if log is None or log.closed:
            log = _Log(self.path, self.loop_id, self._settings, self._header())
            log.acquire()  # never remove the log of a process that is still running
        if self._settings.fault is not None and self._settings.fault[0] == "during-complete":
            _crash()
        self._completed = True
        self._inflight = None
        log.close(remove=True)
        if self._default_dir:
            try:
                self.directory.rmdir()  # only succeeds when no other loop's files are left
            except OSError:
                pass

    def close(self) -> None:
        """Stop without completing: write the completed units that are still queued, fsync
        and release the lock (with a database: commit them). The log stays, so the next run
        resumes. (The unit in flight, if any, is not recorded.)"""
        if self._log is not None or self._db is not None:
            self._flush_if_safe()
            self._inflight = None
        if self._log is not None:
            self._log.close(remove=False)
        if self._db is not None:
            self._db.close()


def _check_mutable(loop_id: str, values: List[Any]) -> None:
    for index, value in enumerate(values):
        if not isinstance(value, _MUTABLE):
            raise CheckpointError(
                "resume='identity' applies each reused unit's effect in place, so it needs mutable "
                "accumulators (list, dict, set, deque, bytearray); accumulator %d of %d of loop %r "
                "is %s. Use resume='position' for this loop"
                % (index + 1, len(values), loop_id, _type_name(value))
            )


def _describe(exc: OSError) -> str:
    code = exc.errno
    if code == errno.ENOSPC:
        return "no space left on the device (%s)" % exc
    if code == getattr(errno, "EDQUOT", -1):
        return "disk quota exceeded (%s)" % exc
    if code == errno.EROFS:
        return "the file system is read-only (%s); set CHECKPOINTIFY_DIR to a writable directory" % exc
    if code in (errno.EACCES, errno.EPERM):
        return "the checkpoint directory is not writable (%s); set CHECKPOINTIFY_DIR" % exc
    if code == errno.EIO:
        return "I/O error: the device reported a failure (%s)" % exc
    return str(exc)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (shorter messages)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _input_ended(index: int, units: Sequence["_Unit"]) -> str:
    """Why resume stops when the input runs out after ``index`` of the completed ``units``."""
    return "the input now has %d items but %d were completed" % (index, len(units))


def _item_mismatch(index: int, item: object, unit: "_Unit") -> Optional[str]:
    """Why resume stops at ``item``, the ``index``-th of the input, or None when it is the
    item ``unit`` recorded (the sync and async resumes share this check)."""
    if fingerprint(item) == unit.fp:
        return None
    return "item #%d (%s) is not the item recorded at that position" % (index, _short(item))


def _short(item: object) -> str:
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def checkpoint(
    loop_id: str,
    iterable: Optional[Union[Iterable[T], AsyncIterable[T]]] = None,
    state: Optional[Callable[[], Tuple[Any, ...]]] = None,
    *,
    key: object = None,
    resume: str = "position",
    transaction: object = None,
    directory: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> Checkpoint[T]:
    """Open the checkpoint of loop ``loop_id``.

    ``iterable`` is what the loop iterates: a ``for`` loop iterates the checkpoint
    instead (after :meth:`Checkpoint.restore`), an ``async for`` loop over an async
    iterable too (after ``await`` :meth:`Checkpoint.arestore`). Without it the checkpoint
    is for a ``while`` loop, whose test calls :meth:`Checkpoint.advance`. ``state`` returns
    the loop's accumulators (a tuple, in a fixed order; ``None``: none, and ``restore()``
    returns ``[]``); ``key`` separates calls of the same loop over different inputs (the
    function parameters the iterable depends on; see :func:`key_fingerprint`); ``resume``
    is ``"position"`` (the input is the same sequence on every run) or ``"identity"`` (its
    order may change: see :class:`Checkpoint`).

    ``transaction`` is the database connection the loop writes through (CKP002): a DB-API 2
    connection or a SQLAlchemy ``Session``/``Connection`` keeps the records in its own
    database, in table ``checkpointify_log``, and each unit (or batch of cheap units) is
    committed with its record: exactly once. Any other object with ``commit()`` (or a
    connection that autocommits) is committed per unit and the record then written to the
    log file: at-least-once.

    The log lives in ``directory``, else ``$CHECKPOINTIFY_DIR``, else ``./.checkpointify``
    (only that default folder is removed when it is left empty). Nothing is read, locked
    or written until :meth:`Checkpoint.restore`.
    """
    caller = sys._getframe(1)
    source = "%s:%d" % (_shown(Path(caller.f_code.co_filename)), caller.f_lineno)
    return Checkpoint(
        loop_id,
        iterable,
        state,
        key=key,
        directory=Path(directory) if directory is not None else None,
        resume=resume,
        source=source,
        transaction=transaction,
    )


# --------------------------------------------------------------------- acknowledge each


class Acknowledger(Generic[T]):
    """What :func:`acknowledge_each` returns: iterate it (``for``, or ``async for`` over an
    async iterable) instead of the messages. ``acknowledged`` counts the acks it made."""

    def __init__(
        self,
        iterable: Union[Iterable[T], AsyncIterable[T]],
        ack: Callable[..., Any],
        grown: Optional[Callable[[], Sequence[Any]]],
        latest: Optional[Callable[[], Any]],
    ) -> None:
        if grown is not None and latest is not None:
            raise ValueError("acknowledge_each() takes grown= or latest=, not both")
        self._iterable = iterable
        self._ack = ack
        self._grown = grown
        self._latest = latest
        self._iterator: Optional[Iterator[T]] = None
        self._aiterator: Optional[AsyncIterator[T]] = None
        self._inflight = False
        self._done = False
        self._size = 0  # len(grown()) as of the last ack
        self._acked: Any = None  # the tag acknowledged last
        self.acknowledged = 0

    def _start(self) -> None:
        if self._grown is not None:
            self._size = len(self._grown())  # what was there before the loop is not its to ack

    def _settle(self) -> Any:
        """The unit handed out last has completed: acknowledge it (returns what ``ack``
        returned, or ``None`` when nothing was due)."""
        if not self._inflight:
            return None
        self._inflight = False
        if self._grown is not None:
            current = self._grown()
            new = list(islice(current, self._size, None))
            self._size = len(current)
            if not new:
                return None
            arguments: Tuple[Any, ...] = (new,)
        elif self._latest is not None:
            tag = self._latest()
            if tag is None or tag == self._acked:
                return None
            self._acked = tag
            arguments = (tag,)
        else:
            arguments = ()
        self.acknowledged += 1
        return self._ack(*arguments)

    def __iter__(self) -> "Acknowledger[T]":
        if self._iterator is None:
            iterable = self._iterable
            if not hasattr(iterable, "__iter__") and hasattr(iterable, "__aiter__"):
                raise CheckpointError(
                    "acknowledge_each() over an async iterable (%s): iterate it with `async for`"
                    % _type_name(iterable)
                )
            self._iterator = iter(iterable)  # type: ignore[arg-type]
            self._start()
        return self

    def __next__(self) -> T:
        if self._iterator is None:
            self.__iter__()
        result = self._settle()
        if hasattr(result, "__await__"):
            close = getattr(result, "close", None)
            if callable(close):
                close()
            raise CheckpointError(
                "the ack callback of acknowledge_each() returned an awaitable, which a plain `for` loop "
                "cannot await: iterate with `async for`, or acknowledge synchronously"
            )
        if self._done:
            raise StopIteration
        assert self._iterator is not None
        try:
            item = next(self._iterator)
        except StopIteration:
            self._done = True
            raise
        self._inflight = True
        return item

    def __aiter__(self) -> "Acknowledger[T]":
        if self._aiterator is None:
            iterable = self._iterable
            if not hasattr(iterable, "__aiter__"):
                raise CheckpointError(
                    "acknowledge_each() over a synchronous iterable (%s): iterate it with `for`"
                    % _type_name(iterable)
                )
            self._aiterator = iterable.__aiter__()
            self._start()
        return self

    async def __anext__(self) -> T:
        if self._aiterator is None:
            self.__aiter__()
        result = self._settle()
        if hasattr(result, "__await__"):
            await result
        if self._done:
            raise StopAsyncIteration
        assert self._aiterator is not None
        try:
            item = await self._aiterator.__anext__()
        except StopAsyncIteration:
            self._done = True
            raise
        self._inflight = True
        return item


def acknowledge_each(
    iterable: Union[Iterable[T], AsyncIterable[T]],
    ack: Callable[..., Any],
    *,
    grown: Optional[Callable[[], Sequence[Any]]] = None,
    latest: Optional[Callable[[], Any]] = None,
) -> Acknowledger[T]:
    """Hand out the messages of ``iterable`` and acknowledge each unit as soon as it has
    completed (CKP003): when the loop asks for the next message, or the messages run out.
    A unit that raises or ends the loop with ``break`` is never acknowledged.

    * ``grown`` (a callable returning the list the body appends to, e.g. the ids to ack):
      ``ack(new)`` with the elements the unit appended, if it appended any;
    * ``latest`` (a callable returning the latest delivery tag, e.g. for
      ``basic_ack(delivery_tag=tag, multiple=True)``): ``ack(tag)`` when the tag is not
      ``None`` and differs from the one acknowledged last;
    * neither: ``ack()``.

    Nothing is stored: the broker is the progress marker, so a re-run simply receives what
    was not acknowledged. At-least-once: the message in flight at a crash is redelivered
    and processed again. Over an async iterable iterate with ``async for``; an ``ack`` that
    returns an awaitable is then awaited.
    """
    return Acknowledger(iterable, ack, grown, latest)


# ------------------------------------------------------------------------- inspection


@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`read_info` reads from a log without changing it or unpickling anything."""

    path: Path
    loop_id: str
    source: str  # "file:line" of the checkpoint(...) call that created the log
    key: str  # fingerprint of the key= values ("" without key)
    resume: str  # "position" or "identity"
    created: str  # ISO 8601, when the log was created
    pid: Optional[int]  # the process that created it
    host: str
    python: str
    format: str
    units: int  # completed units recorded (units replaced by a re-run not counted)
    records: int  # frames after the header
    size: int  # bytes on disk
    valid_bytes: int  # bytes of the valid prefix
    damage: str  # "" | "torn tail of N bytes" | "corrupt at byte N"
    modified: float  # mtime (seconds since the epoch): the last unit written
    writer: Optional[Dict[str, Any]]  # the process holding the lock right now, if any
    archived: str  # "" for a live log, "stale" or "corrupt" for an archive


def read_info(path: Path) -> CheckpointInfo:
    """Describe the checkpoint log at ``path`` (a live ``*.ckpt`` or an archived
    ``*.ckpt.stale`` / ``*.ckpt.corrupt-*``). Read-only: nothing is truncated, moved or
    unpickled. A log whose header is torn or damaged is described with empty header fields
    and its ``damage``. Raises :class:`CheckpointError` if the file cannot be read or its
    first frame is a valid frame of something else."""
    path = Path(path)
    try:
        data = path.read_bytes()
        stat = path.stat()
    except OSError as exc:
        raise CheckpointError("cannot read checkpoint %s: %s" % (_shown(path), _describe(exc))) from exc
    scan = _scan(data)
    header = _header(data, scan)
    if header.get("format") not in (FORMAT, _FORMAT_V1) and scan.frames:
        raise CheckpointError("%s is not a checkpointify log (its header is not one)" % _shown(path))
    units, replaced = _count_units(data, scan, v1=header.get("format") == _FORMAT_V1)
    if scan.corrupt_at >= 0:
        damage = "corrupt at byte %d" % scan.corrupt_at
    elif scan.valid_end < scan.size:
        damage = "torn tail of %d bytes" % (scan.size - scan.valid_end)
    else:
        damage = ""
    name = path.name
    archived = "stale" if name.endswith(".stale") else "corrupt" if ".ckpt.corrupt-" in name else ""
    return CheckpointInfo(
        path=path,
        loop_id=str(header.get("loop_id", "")),
        source=str(header.get("source", "")),
        key=str(header.get("key", "")),
        resume=str(header.get("resume", "position")),
        created=str(header.get("created", "")),
        pid=header.get("pid") if isinstance(header.get("pid"), int) else None,
        host=str(header.get("host", "")),
        python=str(header.get("python", "")),
        format=str(header.get("format", "")),
        units=units - replaced,
        records=max(0, len(scan.frames) - 1),
        size=scan.size,
        valid_bytes=scan.valid_end,
        damage=damage,
        modified=stat.st_mtime,
        writer=None if archived else _lock_holder(_lock_path(path)),
        archived=archived,
    )


def remove(path: Path) -> None:
    """Delete the checkpoint log at ``path`` and its lock file, so that its loop starts from
    zero. Raises :class:`CheckpointLockedError` if a process is running the loop (its log is
    never removed under it). Archives (``.stale``, ``.corrupt-*``) are simply deleted."""
    path = Path(path)
    if not path.name.endswith(".ckpt"):
        path.unlink()
        return
    lock = _Lock(_lock_path(path))
    try:
        lock.acquire("", path)
    except OSError as exc:
        raise CheckpointWriteError("cannot lock checkpoint %s: %s" % (_shown(path), _describe(exc))) from exc
    try:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    finally:
        lock.release()
