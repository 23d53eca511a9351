"""The object store: a loop's records on object storage (``CHECKPOINTIFY_DIR=s3://bucket/prefix``).

Objects are immutable and written whole, so the log is not a file appended to but a
sequence of objects under ``<prefix>/<name>.ckpt/``:

* ``seg-<seq>``: a **segment**, the records written by one upload (a time-bounded batch of
  units: by default at most one upload a second per loop, ``CHECKPOINTIFY_UPLOAD_INTERVAL``
  or ``checkpoint(upload_interval=)``), created with a create-only PUT. Segment 0 starts
  with the header frame. Each segment is ``CKPS | version u8 | token u64 | seq u64 | body
  length u32 | crc32 u32 | body``: an object cut short or damaged fails its length or its
  checksum and is never taken for records;
* ``snap-<lo>-<hi>``: a **snapshot**, the bodies of the objects covering sequence numbers
  ``lo``..``hi`` merged into one, in the segment format with ``seq = hi``. Compaction is
  tiered (a log-structured merge): an object covering ``n`` segments has level
  ``floor(log_F n)`` (``F = _FANOUT``, 8); whenever the last ``F`` objects of the log
  have the same level they are merged into one of the next level, written create-only,
  and only then deleted. So each record is uploaded again once per level, O(log n) times
  in all (not once every few uploads, which is quadratic), and a restore reads at most
  ``F - 1`` objects a level (14 for the 1000 segments of the benchmark). (``snap-<seq>``, the snapshot of
  version 1 of the runtime, covers ``0``..``seq`` and is still read.)
* ``lease``: who writes the log (:mod:`.lease`): one writer per loop across machines, with a
  fencing token carried by every segment it writes.

**Restore** lists the log and covers the sequence numbers from 0 greedily, each time with
the valid object that starts there and reaches furthest (all fetched at once), and joins
their bodies into the same frames a log file holds (:mod:`.frames`). A merge that a crash
cut short left either its inputs alone, or its output and (some of) its inputs: the
output is preferred, inputs it covers are deleted, and an output that fails its checksum
while its inputs are valid (a torn merge) is deleted too; so every kill point of a
compaction restores the same records.
A segment whose token is lower than one already seen before it was written by a writer
whose lease had expired (a zombie): it is ignored. An invalid last segment is a torn
upload (only possible on a backend whose PUT is not atomic): it is deleted and its units
run again. An invalid segment followed by valid ones is damage: the log is archived as
``<name>.ckpt.corrupt-<time>`` (one object in the log-file format) and the loop starts
from zero.

**One writer.** The writer takes the lease, then creates an empty *epoch* segment (its
token, no records) after the last segment it restored. A zombie that wakes up later can
only write at sequence numbers that now exist: its create-only PUT fails with 412 and,
finding a higher token there, it knows it was fenced off (it stops checkpointing and runs
on, as every failure of a checkpoint does; strict mode raises
:class:`CheckpointLockedError`).

**Failures.** Network and server errors are retried with backoff (``CHECKPOINTIFY_RETRIES``,
default 5: about 6 s); a create-only PUT retried after a lost answer finds its own bytes
and counts as done. When the retries fail, the store is poisoned: the loop stops
checkpointing and runs on with one warning (strict: :class:`CheckpointWriteError`).
"""

from __future__ import annotations

import atexit
import os
import struct
import sys
import threading
import time
import zlib

from .errors import (
    _TAKEN_OVER,
    CheckpointError,
    CheckpointLockedError,
    CheckpointWriteError,
    CorruptCheckpointError,
)
from .frames import _header_frame, _Scan, _scan
from .lite import TYPE_CHECKING
from .settings import _crash, _hostname, _Settings

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

    from .lease import Lease
    from .remote import Bucket
    from .store import Owner

_SEGMENT = struct.Struct("<4sBQQII")  # magic, version, token, seq, body length, crc32(head|body)
_MAGIC = b"CKPS"
_VERSION = 1
_FANOUT = 8  # compaction merges the last _FANOUT objects of the log when they have one level
_UPLOAD_INTERVAL = 1.0  # seconds between uploads of one loop (default)


def upload_interval(argument: Optional[float] = None) -> float:
    """Seconds between two uploads of a loop's records: ``argument``, else
    ``$CHECKPOINTIFY_UPLOAD_INTERVAL``, else 1."""
    if argument is not None:
        value = float(argument)
    else:
        text = os.environ.get("CHECKPOINTIFY_UPLOAD_INTERVAL", "").strip()
        try:
            value = float(text) if text else _UPLOAD_INTERVAL
        except ValueError:
            value = -1.0
    if not value >= 0:
        raise CheckpointError("the upload interval must be a number of seconds >= 0, not %r" % (argument,))
    return value


def encode_segment(token: int, seq: int, body: bytes) -> bytes:
    head = _SEGMENT.pack(_MAGIC, _VERSION, token, seq, len(body), 0)
    crc = zlib.crc32(body, zlib.crc32(head[:-4]))
    return _SEGMENT.pack(_MAGIC, _VERSION, token, seq, len(body), crc) + body


def decode_segment(data: Optional[bytes], seq: int) -> Optional[Tuple[int, bytes]]:
    """(token, body) of a valid segment with sequence number ``seq``, else None."""
    if data is None or len(data) < _SEGMENT.size:
        return None
    magic, version, token, found, length, crc = _SEGMENT.unpack_from(data, 0)
    if magic != _MAGIC or version != _VERSION or found != seq or len(data) != _SEGMENT.size + length:
        return None
    body = data[_SEGMENT.size :]
    if zlib.crc32(body, zlib.crc32(data[: _SEGMENT.size - 4])) != crc:
        return None
    return token, body


def seg_key(log: str, seq: int) -> str:
    return "%s/seg-%012d" % (log, seq)


def snap_key(log: str, lo: int, hi: int) -> str:
    return "%s/snap-%012d-%012d" % (log, lo, hi)


class Run:
    """One object of the log as its writer holds it: sequence numbers ``lo``..``hi``, its
    key, and its body (the records of the accepted segments in that range)."""

    __slots__ = ("lo", "hi", "key", "body")

    def __init__(self, lo: int, hi: int, key: str, body: bytes) -> None:
        self.lo, self.hi, self.key, self.body = lo, hi, key, body

    @property
    def level(self) -> int:
        """``floor(log_F(segments covered))``: compaction merges ``F`` runs of one level."""
        size, level = self.hi - self.lo + 1, 0
        while size >= _FANOUT:
            size //= _FANOUT
            level += 1
        return level


class Layout:
    """What a listing of one log holds: its objects by first sequence number, each list
    ``(hi, key)`` reaching furthest first."""

    def __init__(self, log: str, keys: List[str]) -> None:
        self.starting: Dict[int, List[Tuple[int, str]]] = {}
        self.lease = False
        for key in keys:
            name = key[len(log) + 1 :]
            if name == "lease":
                self.lease = True
            span = _span(name)
            if span is not None:
                self.starting.setdefault(span[0], []).append((span[1], key))
        for found in self.starting.values():
            found.sort(reverse=True)

    def objects(self) -> List[Tuple[int, int, str]]:
        """Every segment and snapshot as ``(lo, hi, key)``, in order."""
        return sorted((lo, hi, key) for lo, found in self.starting.items() for hi, key in found)


def _span(name: str) -> Optional[Tuple[int, int]]:
    """The sequence numbers an object of the log covers, from its name (None: not one)."""
    if name.startswith("seg-") and name[4:].isdigit():
        return int(name[4:]), int(name[4:])
    if name.startswith("snap-"):
        parts = name[5:].split("-")
        if all(p.isdigit() for p in parts) and len(parts) in (1, 2):
            return (0, int(parts[0])) if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    return None


class Loaded:
    """A log read from the store: its frames joined, and where the next segment goes."""

    def __init__(self) -> None:
        self.body = b""  # header frame + record frames
        self.next_seq = 0
        self.max_token = 0
        self.runs: List[Run] = []  # the objects read, in order (the writer merges them later)
        self.keys: List[str] = []  # every segment and snapshot object of the log
        self.torn: List[str] = []  # invalid objects at the end (an upload torn by a crash)
        self.corrupt = ""  # the key of an invalid object followed by valid ones
        self.superseded: List[str] = []  # inside a merged object read instead, or a torn merge
        self.ignored = 0  # zombie segments


def load(bucket: Bucket, log: str) -> Loaded:
    """Read a log (see the module docstring). An object listed but gone when read (a
    compaction of another writer deleted it meanwhile) makes it list and read again."""
    for attempt in range(3):
        layout = Layout(log, bucket.list(log))
        loaded, vanished = _load(bucket, layout)
        if not vanished or attempt == 2:
            return loaded
    raise AssertionError("unreachable")


def _load(bucket: Bucket, layout: Layout) -> Tuple[Loaded, bool]:
    loaded = Loaded()
    objects = layout.objects()
    loaded.keys = sorted(key for _lo, _hi, key in objects)
    cover: List[str] = []  # the objects a restore reads when all are valid: fetched at once
    position = 0
    while layout.starting.get(position):
        hi, key = layout.starting[position][0]
        cover.append(key)
        position = hi + 1
    blobs = bucket.cat(cover)
    vanished = False

    def fetch(key: str) -> Optional[bytes]:
        nonlocal vanished
        if key not in blobs:
            got = bucket.get(key)
            blobs[key] = got[0] if got is not None else None
        if blobs[key] is None:
            vanished = True
        return blobs[key]

    parts: List[bytes] = []
    position = 0
    while True:
        found = layout.starting.get(position, [])
        chosen: Optional[Tuple[int, str, Tuple[int, bytes]]] = None
        for hi, key in found:
            decoded = decode_segment(fetch(key), hi)
            if decoded is not None:
                chosen = (hi, key, decoded)
                break
            loaded.superseded.append(key)  # a torn merge, if a valid object below replaces it
        if chosen is None:
            later = [key for lo, hi, key in objects if lo >= position]
            if any(decode_segment(fetch(key), hi) for lo, hi, key in objects if lo > position):
                loaded.corrupt = later[0]
            else:
                loaded.torn = later
            loaded.superseded = [k for k in loaded.superseded if k not in later]
            break
        hi, key, (token, body) = chosen
        lo, position = position, hi + 1
        loaded.next_seq = position
        if token < loaded.max_token:
            loaded.ignored += 1  # written by a writer whose lease had expired: fenced off
            continue
        loaded.max_token = token
        loaded.runs.append(Run(lo, hi, key, body))
        parts.append(body)
    read = {run.key for run in loaded.runs}
    loaded.superseded += [
        key
        for lo, hi, key in objects
        if hi < loaded.next_seq and key not in read and key not in loaded.superseded
    ]
    loaded.body = b"".join(parts)
    return loaded, vanished


# ------------------------------------------------------------------------ the store


class ObjectStore:
    """The :class:`~.store.Store` of a loop whose records live on object storage."""

    def __init__(
        self,
        url: str,
        name: str,
        loop_id: str,
        settings: _Settings,
        header: Dict[str, Any],
        owner: Callable[[], Optional[Owner]],
        interval: float,
        commit_first: object = None,
    ) -> None:
        from .remote import Bucket

        self.url = url.rstrip("/")
        self.name = name  # <slug>-<hash>.ckpt: the "folder" of the log's objects
        self.loop_id = loop_id
        self.settings = settings
        self.header = header
        self._owner = owner
        self.min_window = interval  # Checkpoint batches units for at least this long
        self._commit_first = commit_first
        self.bucket = Bucket(self.url)
        self.lease: Optional[Lease] = None
        self.failed: Optional[str] = None
        self.fenced = False
        self._closed = False
        self.next_seq = 0
        self.pid = os.getpid()
        self.thread = threading.current_thread()
        self._uploading: Optional[threading.Thread] = None
        # a background upload failed and no later step has raised it yet: close() says so
        self._unreported = False
        # the log as stored, object by object (header and record frames): compaction merges
        # the last ones into a snapshot and deletes them without reading anything back
        self._runs: List[Run] = []
        self._compacting = True  # False after a failed compaction: not tried again this run
        #: bytes uploaded as segments and snapshots (the benchmark's write amplification)
        self.uploaded = 0

    @property
    def where(self) -> str:
        return "%s/%s" % (self.url, self.name)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- opening ---------------------------------------------------------------------

    def open(self) -> None:
        from .lease import Lease

        self._take_over_in_process()
        lease = Lease(self.bucket, self.name, self.loop_id, self.where, self._on_lost)
        try:
            lease.acquire()
        except CheckpointError:
            self._closed = True
            raise
        self.lease = lease
        _OPEN[id(self)] = self
        _register_exit_hook()

    def _take_over_in_process(self) -> None:
        """A newer checkpoint of the same loop in this process (a retried call, a notebook
        cell run again) takes over, as with a log file: the older one uploads its completed
        units and releases the lease, so this one need not wait for it."""
        for older in list(_OPEN.values()):
            if older is self or older.where != self.where or older.pid != os.getpid() or older.closed:
                continue
            if older.thread is not threading.current_thread() and older.thread.is_alive():
                continue  # another thread runs it: the lease decides (this one runs unchecked)
            owner = older._owner()
            if owner is not None:
                try:
                    owner._flush_if_safe()
                except CheckpointError:
                    pass  # its valid segments stay; its waiting units run again
            older.close()
            older.failed = _TAKEN_OVER

    def _on_lost(self, message: str) -> None:
        """The lease thread found the lease taken over (or could not renew it in time)."""
        self.fenced = True
        self.failed = message

    def read(self) -> Tuple[bytes, _Scan, bool]:
        """The log's frames; an invalid last segment (a torn upload) is deleted; an invalid
        one in the middle archives the log (:class:`CorruptCheckpointError`). Then the
        epoch segment fences off any earlier writer."""
        while True:
            loaded = load(self.bucket, self.name)
            if loaded.corrupt:
                self._corrupt(loaded)
            if loaded.torn:
                self._say(
                    "%s: ignored %d segment(s) at the end that fail their checksum (an upload torn by a "
                    "crash); the units they held run again" % (self.where, len(loaded.torn))
                )
                self.bucket.delete(loaded.torn)
            if loaded.ignored:
                self._say(
                    "%s: ignored %d segment(s) written by a writer whose lease had expired"
                    % (self.where, loaded.ignored)
                )
            self.next_seq = loaded.next_seq
            self._runs = loaded.runs
            if self._write_epoch(loaded):
                if loaded.superseded:  # left by a compaction that a crash cut short
                    self.bucket.delete(loaded.superseded)
                break
        return loaded.body, _scan(loaded.body), False

    def _write_epoch(self, loaded: Loaded) -> bool:
        """An empty segment with this writer's token after the last one restored (segment 0
        holds the header): False if another writer created that segment meanwhile (read
        again)."""
        from .remote import PreconditionFailed

        body = _header_frame(self._header()) if not loaded.body else b""
        try:
            self._put_segment(self.next_seq, body)
        except PreconditionFailed:
            self._check_not_fenced(self.next_seq)
            return False
        return True

    def _header(self) -> Dict[str, Any]:
        header = dict(self.header)
        header.update(created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), pid=os.getpid(), host=_hostname())
        return header

    def _put_segment(self, seq: int, body: bytes) -> None:
        assert self.lease is not None
        data = encode_segment(self.lease.token, seq, body)
        self.bucket.put_new(seg_key(self.name, seq), data)
        self.uploaded += len(data)
        self.next_seq = seq + 1
        self._runs.append(Run(seq, seq, seg_key(self.name, seq), body))

    def _check_not_fenced(self, seq: int) -> None:
        """A create-only PUT of segment ``seq`` lost: fenced if a newer writer made it."""
        assert self.lease is not None
        got = self.bucket.get(seg_key(self.name, seq))
        decoded = decode_segment(got[0] if got is not None else None, seq)
        if decoded is not None and decoded[0] > self.lease.token:
            self._fence("a newer writer (token %d) took over the log" % decoded[0])

    def _fence(self, why: str) -> None:
        self.fenced = True
        self.failed = (
            "checkpoint %s: this process lost its lease (%s); another process now runs this loop and "
            "owns the log" % (self.where, why)
        )
        raise CheckpointLockedError(self.failed, {})

    def _corrupt(self, loaded: Loaded) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = "%s.corrupt-%s" % (self.name, stamp)
        self._archive(loaded, target)
        raise CorruptCheckpointError(
            "checkpoint %s is corrupt: segment %s fails its checksum but valid segments follow it, so "
            "this is damage, not an upload torn by a crash. Nothing was restored and nothing is skipped "
            "silently: the log was archived as %s/%s for inspection, and the next run starts from zero"
            % (self.where, loaded.corrupt.rpartition("/")[2], self.url, target),
            None,  # type: ignore[arg-type]
            target,  # type: ignore[arg-type]
        )

    def _archive(self, loaded: Loaded, target: str) -> None:
        """Keep the log's records as one object in the log-file format (readable by
        ``checkpointify checkpoints show``), then delete its segments."""
        body = loaded.body
        if not body:
            blobs = self.bucket.cat(loaded.keys)
            body = b"".join(b or b"" for b in blobs.values())
        self.bucket.put(target, body)
        self.bucket.delete(loaded.keys)

    def resume(self, scan: _Scan) -> None:
        """Nothing to cut off: the next segment follows the epoch segment."""

    # -- writing ---------------------------------------------------------------------

    def check(self) -> None:
        if self.failed is not None:
            self._unreported = False  # raised here: the owner warns (or, strict, raises)
            if self.fenced:
                raise CheckpointLockedError(self.failed, {})
            raise CheckpointWriteError("checkpoint %s failed earlier: %s" % (self.where, self.failed))
        if self._closed:
            raise CheckpointError("checkpoint %s was closed; it records no more units" % self.where)

    def poison(self, message: str) -> None:
        self.failed = message

    def start_unit(self) -> None:
        """Nothing to do: records go out in the next segment."""

    def write(self, frame: bytes, first: int, last: int) -> float:
        """Upload one record (a batch of units) as the next segment, from a background
        thread: the loop goes on while it travels (the loop's next record first waits for
        it, so at most one upload is in flight and segments stay in order; ``end()``,
        ``close()`` and exit wait for it too). A failed upload is raised by the next
        :meth:`check`. Then compacts (:meth:`_compact`). Returns 0."""
        self.wait()
        self.check()
        if self._commit_first is not None:  # at-least-once: the upload follows the commit
            from .filelog import _commit_transaction

            _commit_transaction(self._commit_first)
            self._upload(frame, "")
            return 0.0
        fault = self.settings.fault
        point = fault[0] if fault is not None and first <= fault[1] <= last else ""
        if point or not self.settings.batch:
            # CHECKPOINTIFY_BATCH=off (or FSYNC=always): each unit is stored before the next
            # starts; and the test hooks act in this thread, where they can stop the process
            self._upload(frame, point)
            return 0.0
        self._uploading = threading.Thread(
            target=self._upload_in_background, args=(frame,), name="checkpointify-upload", daemon=True
        )
        self._uploading.start()
        return 0.0

    def wait(self) -> None:
        """Wait for the upload in flight, if any (its failure is left for :meth:`check`)."""
        uploading = self._uploading
        if uploading is not None:
            uploading.join()
            self._uploading = None

    def _upload_in_background(self, frame: bytes) -> None:
        try:
            self._upload(frame, "")
        except CheckpointError:
            self._unreported = True  # recorded in self.failed: the loop's next step raises it
        except Exception as exc:  # pragma: no cover - a bug must not pass for an upload
            self.failed = "cannot upload to %s: %s: %s" % (self.where, type(exc).__name__, exc)
            self._unreported = True

    def _upload(self, frame: bytes, point: str) -> None:
        from .remote import PreconditionFailed

        if point == "before-write":
            _crash()
        assert self.lease is not None
        seq = self.next_seq
        try:
            if point in ("enospc", "eio", "eio-fsync"):
                raise CheckpointWriteError(
                    "cannot write %s: simulated network failure (%s)" % (self.where, point)
                )
            if point == "mid-record":  # what a backend without atomic PUTs may leave: half an object
                data = encode_segment(self.lease.token, seq, frame)
                self.bucket.put(seg_key(self.name, seq), data[: len(data) // 2])
                _crash()
            self.lease.check()
            try:
                self._put_segment(seq, frame)
            except PreconditionFailed:
                self._check_not_fenced(seq)
                raise CheckpointWriteError(
                    "cannot write %s: segment %d exists already (written by another process)"
                    % (self.where, seq)
                ) from None
        except CheckpointLockedError as exc:
            self.fenced = True
            self.failed = str(exc)
            raise
        except CheckpointError as exc:
            self.failed = str(exc)
            raise
        if point == "after-write":
            _crash()
        self._compact(point)

    def _compact(self, point: str = "") -> None:
        """While the last ``_FANOUT`` objects of the log have one level, merge them into a
        snapshot (created only if absent), then delete them: a crash in between leaves
        both, and a restore prefers the snapshot. A failure here loses nothing (the objects
        stay): it is reported once and the store goes on without compaction for this run.
        The ``CHECKPOINTIFY_FAULT=mid-compaction:N`` test hook (``point``) ends the process
        after the first snapshot that the upload of unit N triggers is stored, before its
        inputs are deleted."""
        while self._compacting:
            top = self._runs[-_FANOUT:]
            if len(top) < _FANOUT or len({run.level for run in top}) != 1:
                return
            try:
                assert self.lease is not None
                self.lease.check()
                lo, hi = top[0].lo, top[-1].hi
                body = b"".join(run.body for run in top)
                key = snap_key(self.name, lo, hi)
                data = encode_segment(self.lease.token, hi, body)
                self.bucket.put_new(key, data)
                self.uploaded += len(data)
                self._runs[-_FANOUT:] = [Run(lo, hi, key, body)]
                if point == "mid-compaction":
                    _crash()
                self.bucket.delete([run.key for run in top])
            except CheckpointLockedError:
                raise
            except Exception as exc:
                self._compacting = False
                self._warn("%s: compaction failed (%s); the log stays as it is" % (self.where, exc))

    def end(self) -> None:
        """The input is exhausted: wait for the last upload (raise if it failed)."""
        self.wait()
        self.check()

    # -- stale, done, closed ---------------------------------------------------------

    def discard(self, reason: str) -> None:
        """A stale log: archive it as ``<name>.stale`` (one object), then start a new one."""
        self.bucket.put(self.name + ".stale", b"".join(run.body for run in self._runs))
        self.bucket.delete([k for k in self.bucket.list(self.name) if not k.endswith("/lease")])
        self.next_seq = 0
        self._runs = []
        self._write_epoch(Loaded())
        print(
            "checkpointify: warning: %s: input changed (%s); archived it as %s.stale and starting from zero"
            % (self.where, reason, self.name),
            file=sys.stderr,
        )

    def how_to_start_over(self) -> str:
        return "to start over, run `checkpointify checkpoints clear %s --dir %s`" % (
            self.name[: -len(".ckpt")],
            self.url,
        )

    def remove(self) -> None:
        """``complete()``: delete every object of the log (the lease last) and release it."""
        try:
            self.wait()
            if self.lease is None or self._closed:
                raise CheckpointError("checkpoint %s is not open" % self.where)
            if self.fenced:
                return  # another process owns the log now
            keys = [k for k in self.bucket.list(self.name) if not k.endswith("/lease")]
            self.bucket.delete(keys)
            self.lease.release(delete=True)
        finally:
            self._close_quietly()

    def close(self) -> None:
        """Keep the records; release the lease so a re-run need not wait for it to expire.
        A background upload that failed with no later step to raise it (a parallel site's
        last batch) is reported here, once: its results are not stored."""
        try:
            self.wait()
            if self._unreported and not self.fenced:
                self._unreported = False
                self._warn(
                    "%s: the last upload failed (%s); its results are not stored, and a re-run "
                    "does that work again" % (self.where, self.failed)
                )
            if self.lease is not None and not self.fenced:
                self.lease.release(delete=False)
        finally:
            self._close_quietly()

    def _close_quietly(self) -> None:
        self._closed = True
        if self.lease is not None:
            self.lease.stop()
        _OPEN.pop(id(self), None)

    def _say(self, message: str) -> None:
        if not self.settings.quiet:
            print("checkpointify: " + message, file=sys.stderr)

    def _warn(self, message: str) -> None:
        print("checkpointify: warning: " + message, file=sys.stderr)


# Open object stores of this process: at interpreter exit their waiting units are uploaded
# and their leases released (a re-run then need not wait for them to expire).
_OPEN: Dict[int, ObjectStore] = {}


def _flush_at_exit() -> None:
    for store in list(_OPEN.values()):
        if store.pid != os.getpid() or store.closed:
            continue
        try:
            owner = store._owner()
            if owner is not None:
                owner._flush_if_safe()
            store.close()
        except Exception as exc:
            print("checkpointify: at exit: %s" % exc, file=sys.stderr)


atexit.register(_flush_at_exit)
_HOOKED = [0]  # the pid whose threading exit hook is registered


def _register_exit_hook() -> None:
    """Upload at exit *before* ``concurrent.futures`` shuts its thread pools down (aiohttp
    resolves host names in one): threading's exit hooks run in reverse order of
    registration and before ``atexit``, so this one, registered once the store has made its
    first request, runs first. (``atexit`` above stays as the fallback.)"""
    if _HOOKED[0] == os.getpid():
        return
    _HOOKED[0] = os.getpid()
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_flush_at_exit)
        except RuntimeError:  # pragma: no cover - already shutting down
            pass


def _forget_in_child() -> None:
    """After ``fork()``: the parent's stores and leases are the parent's."""
    for store in list(_OPEN.values()):
        store._closed = True
        store.failed = "this checkpoint belongs to the parent process"
        if store.lease is not None:
            store.lease.orphan()
    _OPEN.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
