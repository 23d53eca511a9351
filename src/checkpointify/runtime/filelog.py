"""The log file: fsync, the background sync thread, and :class:`FileStore` (its lock: :mod:`.lock`)."""

from __future__ import annotations

import atexit
import errno
import os
import sys
import threading
import time
from pathlib import Path

from .errors import (
    _TAKEN_OVER,
    CheckpointError,
    CheckpointLockedError,
    CheckpointWriteError,
    CorruptCheckpointError,
    _describe,
    _describe_connection,
    _shown,
)
from .frames import _header_frame, _Scan, _scan
from .lite import TYPE_CHECKING
from .lock import _fcntl, _Lock, _lock_path
from .settings import _crash, _hostname, _Settings
from .trust import _check_trusted, _make_folder, _remove_folder

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple

    from .store import Owner

_FSYNC_INTERVAL = 1.0  # seconds between fsyncs in the default "batched" policy
_MKDIR_ATTEMPTS = 5  # the default directory can vanish under a concurrent complete()


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
        self.thread = threading.current_thread()  # the thread that runs the loop
        self.owner: Callable[[], Optional[Owner]] = lambda: None  # a weak reference
        #: the owner's accumulators as of its last record (kept when the owner is gone), and
        #: those of the checkpoint of this loop in this process it took over from
        self.trackers: Optional[List[Any]] = None
        self.previous_trackers: Optional[List[Any]] = None
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
        if older is not None and older.pid == os.getpid() and not older.closed:
            if older.thread is not threading.current_thread() and older.thread.is_alive():
                # Another thread runs the same loop with the same key (an executor running the
                # same function twice): it keeps its log; this one is refused (and runs unchecked).
                raise CheckpointLockedError(
                    "checkpoint %s of loop %r is in use by another thread of this process (%s)"
                    % (_shown(self.path), self.loop_id, older.thread.name),
                    {"pid": os.getpid(), "thread": older.thread.name},
                )
            # A newer checkpoint of the same loop in this thread (a retried call after an
            # exception, or an abandoned one) takes over: the old one writes its completed units
            # and stops.
            owner = older.owner()
            if owner is not None:
                try:
                    owner._flush_if_safe()
                except CheckpointError:
                    pass  # the old one failed: its valid records stay, its pending units run again
            self.previous_trackers = older.trackers  # see Checkpoint._already_applied
            older.close(remove=False)
            older.failed = _TAKEN_OVER
        for attempt in range(_MKDIR_ATTEMPTS):
            try:
                _make_folder(self.path.parent)  # 0700, a .gitignore in the default folder, trusted
                self.lock.acquire(self.loop_id, self.path)
                break
            except FileNotFoundError as exc:
                # another loop's complete() removed the (then empty) default directory between
                # our mkdir and our open: make it again
                if attempt == _MKDIR_ATTEMPTS - 1:
                    self._fail(exc, "create the lock of")
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
            host=_hostname(),
        )
        _write_all(fd, _header_frame(header))
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


# ------------------------------------------------------------------------ the file store


class FileStore:
    """The :class:`~.store.Store` of a loop whose records live in its log file: the default,
    and ``transaction=`` for a connection that cannot hold them (``commit_first``: each record
    is written after ``commit_first.commit()``, at-least-once). Holds the file's lock from
    :meth:`open` to :meth:`close` or :meth:`remove`."""

    def __init__(
        self,
        path: Path,
        loop_id: str,
        settings: _Settings,
        header: Dict[str, Any],
        owner: Callable[[], Optional[Owner]],
        default_dir: bool,
        commit_first: object = None,
    ) -> None:
        self.path = path
        self.log = _Log(path, loop_id, settings, header)
        self._owner = owner
        self._default_dir = default_dir  # the directory is ours to remove once empty
        self._commit_first = commit_first

    @property
    def where(self) -> str:
        return _shown(self.path)

    @property
    def closed(self) -> bool:
        return self.log.closed

    def open(self) -> None:
        self.log.acquire()
        self.log.owner = self._owner

    @property
    def previous_trackers(self) -> Optional[List[Any]]:
        """The accumulator trackers of the checkpoint of this loop in this process that this
        one took over from (see ``Checkpoint._already_applied``)."""
        return self.log.previous_trackers

    def keep_trackers(self, trackers: List[Any]) -> None:
        self.log.trackers = trackers

    def read(self) -> Tuple[bytes, _Scan, bool]:
        """The valid prefix of the log (a torn tail is reported, and cut off by :meth:`resume`);
        moves a corrupt log aside and raises :class:`CorruptCheckpointError`; refuses a log
        another user could have written (:func:`~.trust._check_trusted`)."""
        _check_trusted(self.path)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return b"", _scan(b""), False
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
        return data, scan, False

    def _say(self, message: str) -> None:
        if not self.log.settings.quiet:
            print("checkpointify: " + message, file=sys.stderr)

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

    def resume(self, scan: _Scan) -> None:
        if scan.frames:
            self.log.open_existing(scan.valid_end, scan.size)

    def check(self) -> None:
        self.log.check()

    def poison(self, message: str) -> None:
        self.log.failed = message

    def start_unit(self) -> None:
        """Nothing to do: the file is created with the first record."""

    def write(self, frame: bytes, first: int, last: int) -> float:
        if self._commit_first is not None:
            _commit_transaction(self._commit_first)  # at-least-once: commit, then record
        return self.log.write(frame, first, last)

    def end(self) -> None:
        self.log.sync()

    def discard(self, reason: str) -> None:
        """A stale log (the default, or ``CHECKPOINTIFY_ON_STALE=restart``): archive it as ``<name>.stale``."""
        archived = self.path.with_name(self.path.name + ".stale")
        try:
            os.replace(str(self.path), str(archived))
            _fsync_dir(self.path.parent)
        except OSError as exc:
            raise CheckpointError(
                "cannot archive stale checkpoint %s: %s" % (_shown(self.path), _describe(exc))
            ) from exc
        print(
            "checkpointify: warning: %s: input changed (%s); archived it as %s and starting from zero"
            % (_shown(self.path), reason, archived.name),
            file=sys.stderr,
        )

    def how_to_start_over(self) -> str:
        command = "checkpointify checkpoints clear %s" % self.path.name[: -len(".ckpt")]
        if not self._default_dir and not os.environ.get("CHECKPOINTIFY_DIR"):
            command += " --dir %s" % _shown(self.path.parent)
        return "to start over, run `%s` (or delete the file)" % command

    def remove(self) -> None:
        """Delete the log durably and release the lock; in the default directory, also the
        directory if no other loop's files are left in it."""
        self.log.close(remove=True)
        if self._default_dir:
            _remove_folder(self.path.parent)  # only when no other loop's files are left

    def close(self) -> None:
        self.log.close(remove=False)


def _commit_transaction(conn: Any) -> None:
    """``conn.commit()`` for the file-log fallback of ``transaction=``; refuses an asynchronous
    commit (a coroutine that nobody would await commits nothing)."""
    result = conn.commit()
    if hasattr(result, "__await__"):
        close = getattr(result, "close", None)
        if callable(close):
            close()
        raise CheckpointError(
            "transaction=%s: its commit() returns an awaitable; transaction= needs a synchronous commit()"
            % _describe_connection(conn)
        )
