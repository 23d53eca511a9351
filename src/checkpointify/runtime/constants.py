"""Module constants in a loop's identity (``checkpoint(..., constants={"MODEL": MODEL})``).

A rewritten loop passes the module-level constants its body reads (``MODEL = "gpt-4o"``,
``TEMPERATURE = 0.2``, a prompt) as ``constants=``. They count in the log's name like
``key=`` does, so a run with other values never resumes the log of a run with the old ones.
Unlike a function's arguments (``key=``), whose other values are other calls of the same
loop with logs of their own, a constant has one value per run of the program: a log of the
same loop written under other constants belongs to a run of an earlier version of the
program and can never be resumed. It is archived as ``<name>.stale`` with a warning naming
the constants that changed (strict mode raises :class:`StaleCheckpointError`), so that
nothing stale is left behind silently. A log whose writer is still running (its lock is
held) is left alone.
"""

from __future__ import annotations

import os

from .errors import CheckpointLockedError, StaleCheckpointError, UntrustedCheckpointError, _shown
from .fingerprint import key_fingerprint
from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Callable, Dict, List, Mapping, Optional


def constants_fingerprints(constants: Mapping[str, object]) -> Dict[str, str]:
    """Each constant's value fingerprint (see :func:`~.fingerprint.key_fingerprint`), by name."""
    return {str(name): key_fingerprint((value,)) for name, value in constants.items()}


def archive_other_constants(
    path: Path,
    loop_id: str,
    mine: Dict[str, str],
    strict: bool,
    warn: Callable[[str], None],
) -> List[Path]:
    """Archive the logs of loop ``loop_id`` next to ``path`` (which does not exist yet)
    that were written under other module constants than ``mine``. Returns the archives.

    Only files whose header names the same loop and records constants are looked at; a
    log of another call of the loop (other ``key=`` values, the same constants) is left
    alone, and so is a log in use (its lock is held). In strict mode a stale log raises
    :class:`StaleCheckpointError` instead of being archived."""
    archived: List[Path] = []
    for other in _siblings(path):
        theirs = _recorded_constants(other, loop_id)
        if theirs is None or theirs == mine:
            continue
        changed = sorted(n for n in set(mine) | set(theirs) if mine.get(n) != theirs.get(n))
        reason = "module constant%s %s changed since %s was written" % (
            "s" if len(changed) > 1 else "",
            ", ".join(changed),
            _shown(other),
        )
        if strict:
            raise StaleCheckpointError(
                "checkpoint of loop %r: %s, by a run of another version of the program; delete it (or run "
                "`checkpointify checkpoints clear %s`) to start over"
                % (loop_id, reason, other.name[: -len(".ckpt")]),
                reason,
            )
        target = _archive(other)
        if target is not None:
            archived.append(target)
            warn(
                "loop %s: %s; archived it as %s and starting from zero (its units were computed with the old "
                "values)" % (loop_id, reason, target.name)
            )
    return archived


def _siblings(path: Path) -> List[Path]:
    """The logs in ``path``'s folder whose name has ``path``'s slug (same loop id, another key)."""
    slug = path.name[: -len("-xxxxxxxx.ckpt")]
    try:
        names = os.listdir(str(path.parent))
    except OSError:
        return []
    return sorted(
        path.parent / name
        for name in names
        if name != path.name
        and name.endswith(".ckpt")
        and name[: -len("-xxxxxxxx.ckpt")] == slug
        and len(name) == len(path.name)
    )


def _recorded_constants(log: Path, loop_id: str) -> Optional[Dict[str, str]]:
    """The constants fingerprints in ``log``'s header when it is a log of ``loop_id`` that
    records them (``None`` otherwise: unreadable, not trusted, another loop, no constants)."""
    from .frames import _header, _scan
    from .trust import _check_trusted

    try:
        _check_trusted(log)
        with open(str(log), "rb") as handle:
            data = handle.read(1 << 16)  # the header is the first frame, a few hundred bytes
    except (OSError, UntrustedCheckpointError):
        return None
    try:
        header = _header(data, _scan(data))
    except Exception:  # a torn or foreign file: not ours to judge
        return None
    recorded = header.get("constants")
    if header.get("loop_id") != loop_id or not isinstance(recorded, dict):
        return None
    return {str(k): str(v) for k, v in recorded.items()}


def _archive(log: Path) -> Optional[Path]:
    """Rename ``log`` to ``<name>.stale`` under its lock (``None``: its writer is running, or
    the rename failed; the log then stays as it is)."""
    from .lock import _Lock, _lock_path

    lock = _Lock(_lock_path(log))
    try:
        lock.acquire("", log)
    except (CheckpointLockedError, OSError):
        return None
    try:
        target = log.with_name(log.name + ".stale")
        try:
            os.replace(str(log), str(target))
        except OSError:
            return None
        return target
    finally:
        lock.release()
