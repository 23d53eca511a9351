"""The runtime's exceptions, and the helpers that word its messages."""

from __future__ import annotations

import errno

from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Dict, Optional


class CheckpointError(Exception):
    """Base class: something about the checkpoint prevents a correct run."""


class StaleCheckpointError(CheckpointError):
    """The checkpoint was written for other input than the loop sees now (``reason`` says
    how it differs)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message

    @classmethod
    def because(cls, reason: str) -> "StaleCheckpointError":
        return cls(reason, reason)


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


class UntrustedCheckpointError(CheckpointError):
    """A log or its folder may have been written by another user (it is owned by someone
    else, or group or others may write it): it is not read, since unpickling runs code."""


#: why a log refuses writes after a newer checkpoint of the same loop took it over
_TAKEN_OVER = "a newer checkpoint of the same loop took over in this process"


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
    from pathlib import Path  # loaded already: ``path`` is one

    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _short(item: object) -> str:
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: object) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ == "builtins" else "%s.%s" % (t.__module__, t.__qualname__)


def _describe_connection(conn: Any) -> str:
    return "%s.%s" % (type(conn).__module__, type(conn).__qualname__)
