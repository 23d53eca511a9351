"""The lock of a log file: one writer per checkpoint (``flock`` on ``<name>.ckpt.lock``).

Also what ``checkpointify checkpoints`` uses to name a running writer without disturbing it.
"""

from __future__ import annotations

import errno
import os
import sys
import time

from .errors import CheckpointLockedError, _shown
from .lite import TYPE_CHECKING
from .settings import _hostname

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Dict, Optional

try:
    import fcntl as _fcntl_module

    _fcntl: Any = _fcntl_module
except ImportError:  # pragma: no cover - Windows: no advisory locks, documented
    _fcntl = None

_LOCK_PATIENCE = 0.25  # seconds to retry a held lock (`checkpointify checkpoints` probes it briefly)


def _lock_path(log: Path) -> Path:
    return log.with_name(log.name + ".lock")


def _read_holder(lock: Path) -> Dict[str, Any]:
    import json

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
                "host": _hostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "argv": " ".join(sys.argv)[:200],
                "loop_id": loop_id,
            }
            import json

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
