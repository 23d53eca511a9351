"""The checkpoint runtime that rewritten loops call. Standard library only; Python >= 3.9.

A rewritten loop looks like this::

    results = []
    ckpt = checkpoint("job.py::main::results", items, lambda: (results,))
    [results] = ckpt.restore()
    for item in ckpt:
        results.append(expensive_operation(item))
    save_results(results)
    ckpt.complete()

Contract (the public API is ``checkpoint``, ``Checkpoint`` and the three errors):

* ``restore()`` reads the loop's log, checks that the items recorded there are the first
  items of the current input (by fingerprint), re-applies each recorded unit's effect to
  the accumulators and returns their values. Nothing is applied unless every recorded item
  matches: a changed input raises :class:`StaleCheckpointError` (or, with
  ``CHECKPOINTIFY_ON_STALE=restart``, archives the old log and starts from zero).
* Iterating hands out the remaining items. When the loop asks for the next item, the
  previous unit has finished (normally or by ``continue``): its effect on the accumulators
  is appended to the log as one checksummed record and handed to the OS before the next
  item is returned. A unit that raises, or that ends the loop with ``break``, is not
  recorded and runs again on resume.
* ``complete()``, placed after the final save, removes the log: the next run starts from
  zero.
* Every failed write raises :class:`CheckpointWriteError`; nothing is retried or swallowed.

The log is ``<dir>/<slug>-<hash>.ckpt`` where ``<dir>`` is ``$CHECKPOINTIFY_DIR`` or
``./.checkpointify``. Each frame is ``magic u8 | kind u8 | length u32 | crc32 u32 |
payload``; a torn or zero-filled tail (the process died mid-write) is ignored on restore
and truncated before the next append.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import re
import socket
import struct
import sys
import time
import zlib
from collections import deque
from itertools import compress
from operator import is_not
from pathlib import Path, PurePath
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    FrozenSet,
    Generic,
    Iterable,
    Iterator,
    List,
    Optional,
    Set,
    Tuple,
    TypeVar,
)

__all__ = [
    "checkpoint",
    "Checkpoint",
    "CheckpointError",
    "CheckpointWriteError",
    "StaleCheckpointError",
    "fingerprint",
    "key_fingerprint",
    "RUNTIME_VERSION",
]

RUNTIME_VERSION = "1"
FORMAT = "checkpointify/1"

T = TypeVar("T")

_MAGIC = 0xC7
_KIND_HEADER = 1
_KIND_UNIT = 2
_FRAME = struct.Struct("<BBII")  # magic, kind, payload length, crc32(kind|length|payload)
_MAX_PAYLOAD = 1 << 30
_PICKLE_PROTOCOL = 4  # readable by every Python the runtime supports


class CheckpointError(Exception):
    """Base class: something about the checkpoint prevents a correct run."""


class StaleCheckpointError(CheckpointError):
    """The checkpoint was written for other input than the loop sees now."""


class CheckpointWriteError(CheckpointError):
    """Writing the checkpoint failed; the unit is not recorded and the loop stops."""


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
    """Remembers an accumulator's value at the end of the last unit, and diffs against it.

    Each diff is O(what the unit added) for sequences, numbers and strings, and one
    C-speed pass over the entries for dicts and sets (about 10-40 ns an entry).
    """

    __slots__ = ("obj", "size", "values", "lens", "seen")

    def __init__(self, value: object) -> None:
        self.obj: object = None
        self.size = 0
        self.values: List[object] = []
        self.lens: Optional[List[int]] = None
        self.seen: Set[object] = set()
        self.rebase(value)

    def rebase(self, value: object) -> None:
        self.obj = value
        self.size = 0
        self.values, self.lens, self.seen = [], None, set()
        if isinstance(value, dict):
            self.values = list(value.values())
            self.size = len(self.values)
            if any(isinstance(v, _NESTED) for v in self.values):
                self.lens = [len(v) if isinstance(v, _NESTED) else -1 for v in self.values]
        elif isinstance(value, (set, frozenset)):
            self.seen = set(value)
            self.size = len(value)
        elif isinstance(value, (_APPENDABLE, _IMMUTABLE_SEQ)):
            self.size = len(value)

    def delta(self, value: object) -> Optional[Tuple[str, object]]:
        """How ``value`` differs from the remembered one; then remembers ``value``."""
        old = self.obj
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
        changed = set(compress(range(n), map(is_not, vals, self.values)))
        if self.lens is not None or any(isinstance(v, _NESTED) for v in vals[n:]):
            # values that are containers can grow in place (defaultdict(list)): compare sizes
            lens = [len(v) if isinstance(v, _NESTED) else -1 for v in vals]
            old_lens = self.lens if self.lens is not None else [-1] * n
            changed.update(i for i in range(n) if lens[i] != old_lens[i])
            self.lens = lens
        self.values, self.size = vals, len(vals)
        if not changed and len(vals) == n:
            return None
        keys = list(value)
        items = [(keys[i], vals[i]) for i in sorted(changed)]
        items.extend(zip(keys[n:], vals[n:]))
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
# unpickled from a checkpoint they would be fresh copies. Each record therefore lists the
# identifier-like strings it holds that were interned when it was written, and restore
# interns those again; runtime strings that were distinct objects stay distinct.

_IDENTIFIER_MAX = 64
_WALK_BUDGET = 100000


def _interned_strings(value: object) -> Tuple[str, ...]:
    found: Set[str] = set()
    stack: List[Any] = [value]
    seen: Set[int] = set()
    budget = _WALK_BUDGET
    while stack and budget:
        budget -= 1
        x = stack.pop()
        t = type(x)
        if t is str:
            if len(x) <= _IDENTIFIER_MAX and x.isidentifier() and sys.intern(x) is x:
                found.add(x)
        elif t in (list, tuple, set, frozenset) or isinstance(x, dict) or hasattr(x, "__dict__"):
            if id(x) in seen:
                continue
            seen.add(id(x))
            if isinstance(x, dict):
                stack.extend(x.keys())
                stack.extend(x.values())
            elif t in (list, tuple, set, frozenset):
                stack.extend(x)
            elif type(getattr(x, "__dict__", None)) is dict:
                stack.extend(x.__dict__.values())
    return tuple(sorted(found))


def _reintern(value: Any, names: FrozenSet[str], memo: Dict[int, Any]) -> Any:
    """``value`` with the strings in ``names`` replaced by their interned copies (in place where possible)."""
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


# ------------------------------------------------------------------------ frames on disk


def _frame(kind: int, payload: bytes) -> bytes:
    head = struct.pack("<BI", kind, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return _FRAME.pack(_MAGIC, kind, len(payload), crc) + payload


def _read_frames(data: bytes) -> Tuple[List[Tuple[int, bytes]], int]:
    """The longest valid prefix of frames, and the byte offset where it ends."""
    frames: List[Tuple[int, bytes]] = []
    pos, end, size = 0, len(data), _FRAME.size
    while pos + size <= end:
        magic, kind, length, crc = _FRAME.unpack_from(data, pos)
        if magic != _MAGIC or length > _MAX_PAYLOAD or pos + size + length > end:
            break
        payload = data[pos + size : pos + size + length]
        if zlib.crc32(payload, zlib.crc32(struct.pack("<BI", kind, length))) != crc:
            break
        frames.append((kind, payload))
        pos += size + length
    return frames, pos


def checkpoint_dir() -> Path:
    """Where logs live: ``$CHECKPOINTIFY_DIR``, else ``.checkpointify`` in the working directory."""
    configured = os.environ.get("CHECKPOINTIFY_DIR")
    return Path(configured) if configured else Path.cwd() / ".checkpointify"


def log_name(loop_id: str, key_fp: str = "") -> str:
    """The file name of a loop's log: readable slug plus a hash that keeps names unique."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", loop_id).strip("_")[:80]
    digest = hashlib.blake2b((loop_id + "\0" + key_fp).encode("utf-8"), digest_size=4).hexdigest()
    return "%s-%s.ckpt" % (slug, digest)


# ---------------------------------------------------------------------- fsync policy


def _fsync_policy() -> str:
    policy = os.environ.get("CHECKPOINTIFY_FSYNC", "batched").strip().lower() or "batched"
    if policy not in ("always", "batched", "never"):
        raise CheckpointError("CHECKPOINTIFY_FSYNC must be always, batched or never, not %r" % policy)
    return policy


_FSYNC_INTERVAL = 1.0  # seconds between fsyncs in the default "batched" policy


# ------------------------------------------------------------------------ the checkpoint


class Checkpoint(Generic[T]):
    """One loop's checkpoint: restores, hands out the remaining items, records each unit.

    Use :func:`checkpoint` to create one. Not thread-safe: one loop, one thread.
    """

    def __init__(
        self,
        loop_id: str,
        iterable: Iterable[T],
        state: Callable[[], Tuple[Any, ...]],
        key: object = None,
        directory: Optional[Path] = None,
    ) -> None:
        self.loop_id = loop_id
        self._state = state
        self._iterator: Iterator[T] = iter(iterable)
        self._key_fp = key_fingerprint(key) if key is not None else ""
        self._default_dir = directory is None and not os.environ.get("CHECKPOINTIFY_DIR")
        self.directory = directory if directory is not None else checkpoint_dir()
        self.path = self.directory / log_name(loop_id, self._key_fp)
        self._fsync = _fsync_policy()
        self._fd: Optional[int] = None
        self._valid_end = 0
        self._trackers: List[_Tracker] = []
        self._replay: Deque[T] = deque()
        self._pending: Optional[bytes] = None
        self._seq = 0
        self._restored = False
        self._failed: Optional[BaseException] = None
        self._last_sync = time.monotonic()
        #: how many units the last restore() found already completed
        self.restored_units = 0

    # -- restore ----------------------------------------------------------------------

    def restore(self) -> List[Any]:
        """Re-apply the recorded units and return the accumulators' values, in order.

        Raises :class:`StaleCheckpointError` when the recorded items are not the first
        items of the current input (nothing is applied in that case).
        """
        values = list(self._state())
        records = self._read_log()
        if records:
            consumed: List[T] = []
            mismatch = self._match_items(records, consumed)
            if mismatch is not None:
                self._on_stale(mismatch, consumed)
            else:
                for _seq, _fp, deltas, interned in records:
                    if interned:
                        deltas = _reintern(deltas, frozenset(interned), {})
                    if len(deltas) != len(values):
                        raise StaleCheckpointError(
                            "checkpoint %s records %d accumulators but the loop has %d; "
                            "delete it to start over" % (_shown(self.path), len(deltas), len(values))
                        )
                    values = [_apply(v, d) for v, d in zip(values, deltas)]
                self._seq = len(records)
                self.restored_units = len(records)
                if not os.environ.get("CHECKPOINTIFY_QUIET"):
                    print(
                        "checkpointify: resuming %s: %d completed units restored from %s"
                        % (self.loop_id, len(records), _shown(self.path)),
                        file=sys.stderr,
                    )
        self._trackers = [_Tracker(v) for v in values]
        self._restored = True
        return values

    def _read_log(self) -> List[Tuple[int, bytes, Tuple[Any, ...], Tuple[str, ...]]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise CheckpointError("cannot read checkpoint %s: %s" % (_shown(self.path), exc)) from exc
        frames, self._valid_end = _read_frames(data)
        if not frames:
            self._valid_end = 0
            return []
        kind, payload = frames[0]
        header = json.loads(payload.decode("utf-8")) if kind == _KIND_HEADER else {}
        if header.get("format") != FORMAT or header.get("loop_id") != self.loop_id:
            raise CheckpointError(
                "%s is not a checkpoint of loop %r (header %r); move it away to start over"
                % (_shown(self.path), self.loop_id, header)
            )
        records = []
        for kind, payload in frames[1:]:
            if kind == _KIND_UNIT:
                try:
                    records.append(pickle.loads(payload))
                except Exception as exc:
                    raise CheckpointError(
                        "cannot load a unit recorded in %s (%s: %s); was it written by other "
                        "code? Delete it to start over" % (_shown(self.path), type(exc).__name__, exc)
                    ) from exc
        return records

    def _match_items(
        self,
        records: List[Tuple[int, bytes, Tuple[Any, ...], Tuple[str, ...]]],
        consumed: List[T],
    ) -> Optional[str]:
        """Pull one input item per record and compare fingerprints; describe a mismatch."""
        for index, (_seq, fp, _deltas, _interned) in enumerate(records):
            try:
                item = next(self._iterator)
            except StopIteration:
                return "the input now has %d items but %d were completed" % (
                    index,
                    len(records),
                )
            consumed.append(item)
            if fingerprint(item) != fp:
                return "item #%d (%s) is not the item recorded at that position" % (
                    index,
                    _short(item),
                )
        return None

    def _on_stale(self, reason: str, consumed: List[T]) -> None:
        if os.environ.get("CHECKPOINTIFY_ON_STALE", "error").strip().lower() == "restart":
            archived = self.path.with_name(self.path.name + ".stale")
            try:
                os.replace(self.path, archived)
            except OSError as exc:
                raise CheckpointError(
                    "cannot archive stale checkpoint %s: %s" % (_shown(self.path), exc)
                ) from exc
            print(
                "checkpointify: %s: input changed (%s); archived it as %s and starting from zero"
                % (_shown(self.path), reason, archived.name),
                file=sys.stderr,
            )
            self._replay.extend(consumed)
            self._valid_end = 0
            return
        raise StaleCheckpointError(
            "checkpoint %s does not match the input: %s. It was written by a run over other "
            "input; delete it to start over, or set "
            "CHECKPOINTIFY_ON_STALE=restart to archive it and start from zero" % (_shown(self.path), reason)
        )

    # -- iteration --------------------------------------------------------------------

    def __iter__(self) -> "Checkpoint[T]":
        return self

    def __next__(self) -> T:
        if not self._restored:
            raise CheckpointError("call restore() before iterating over checkpoint %r" % self.loop_id)
        if self._pending is not None:
            self._commit(self._pending)
            self._pending = None
        if self._replay:
            item = self._replay.popleft()
        else:
            try:
                item = next(self._iterator)
            except StopIteration:
                self._sync()
                raise
        self._pending = fingerprint(item)
        return item

    def _commit(self, item_fp: bytes) -> None:
        if self._failed is not None:
            raise CheckpointWriteError("checkpoint %s failed earlier: %s" % (_shown(self.path), self._failed))
        values = self._state()
        deltas = tuple(t.delta(v) for t, v in zip(self._trackers, values))
        try:
            payload = pickle.dumps(
                (self._seq, item_fp, deltas, _interned_strings(deltas)),
                _PICKLE_PROTOCOL,
            )
        except Exception as exc:
            raise CheckpointError(
                "cannot checkpoint unit #%d of %r: a value it added cannot be pickled (%s: %s)"
                % (self._seq, self.loop_id, type(exc).__name__, exc)
            ) from exc
        self._write(_frame(_KIND_UNIT, payload))
        self._seq += 1

    # -- writing ----------------------------------------------------------------------

    def _open_for_append(self) -> int:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(
                str(self.path),
                os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0),
                0o600,
            )
            os.ftruncate(fd, self._valid_end)  # drop a torn tail before appending
            os.lseek(fd, 0, os.SEEK_END)
            if self._valid_end == 0:
                header = {
                    "format": FORMAT,
                    "loop_id": self.loop_id,
                    "key": self._key_fp,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "python": sys.version.split()[0],
                    "runtime": RUNTIME_VERSION,
                }
                _write_all(
                    fd,
                    _frame(_KIND_HEADER, json.dumps(header, sort_keys=True).encode("utf-8")),
                )
            return fd
        except OSError as exc:
            self._failed = exc
            raise CheckpointWriteError(
                "cannot open checkpoint %s: %s" % (_shown(self.path), _describe(exc))
            ) from exc

    def _write(self, frame: bytes) -> None:
        if self._fd is None:
            self._fd = self._open_for_append()
        try:
            _write_all(self._fd, frame)
            if self._fsync == "always" or (
                self._fsync == "batched" and time.monotonic() - self._last_sync >= _FSYNC_INTERVAL
            ):
                os.fsync(self._fd)
                self._last_sync = time.monotonic()
        except OSError as exc:
            self._failed = exc
            raise CheckpointWriteError(
                "cannot write checkpoint %s: %s" % (_shown(self.path), _describe(exc))
            ) from exc

    def _sync(self) -> None:
        if self._fd is not None and self._fsync != "never":
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._failed = exc
                raise CheckpointWriteError(
                    "cannot sync checkpoint %s: %s" % (_shown(self.path), _describe(exc))
                ) from exc
            self._last_sync = time.monotonic()

    # -- completion -------------------------------------------------------------------

    def complete(self) -> None:
        """The final save succeeded: remove the log so that the next run starts from zero."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(str(self.path))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CheckpointError(
                "cannot remove completed checkpoint %s: %s" % (_shown(self.path), exc)
            ) from exc
        if self._default_dir:
            try:
                self.directory.rmdir()  # only succeeds when no other loop's log is left
            except OSError:
                pass
        self._pending = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device (%s)" % exc
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "the checkpoint directory is not writable (%s); set CHECKPOINTIFY_DIR" % exc
    return str(exc)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (shorter messages)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _short(item: object) -> str:
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def checkpoint(
    loop_id: str,
    iterable: Iterable[T],
    state: Callable[[], Tuple[Any, ...]],
    *,
    key: object = None,
) -> Checkpoint[T]:
    """Open the checkpoint of loop ``loop_id`` over ``iterable``.

    ``state`` returns the loop's accumulators (a tuple, in a fixed order); ``key``
    separates calls of the same loop over different inputs (the function parameters the
    iterable depends on; see :func:`key_fingerprint`); the log lives in
    ``$CHECKPOINTIFY_DIR`` or ``./.checkpointify``.
    Nothing is read or written until :meth:`Checkpoint.restore`.
    """
    return Checkpoint(loop_id, iterable, state, key=key)
