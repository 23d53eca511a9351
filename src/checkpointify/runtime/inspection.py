"""Reading and removing logs from outside the loop (``checkpointify checkpoints``).

Imported on first use of :func:`read_info`, :func:`remove` or :class:`CheckpointInfo`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from .errors import CheckpointError, CheckpointWriteError, _describe, _shown
from .frames import _FORMAT_V1, _FRAME, _KIND_HEADER, _MAGIC, FORMAT, _count_units, _frame_end, _header, _scan
from .lock import _Lock, _lock_holder, _lock_path


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
    shard: str = ""  # "K/N" for shard K of N of a job (CHECKPOINTIFY_SHARD), else ""


#: a header frame longer than this is not one of ours (ours are a few hundred bytes)
_HEADER_LIMIT = 1 << 20


def is_log(path: Path) -> bool:
    """Whether the file at ``path`` proves to be a checkpointify log (live or archived):
    its first frame is a valid header of a known format, the torn start of one (a
    writer killed while creating it), or a damaged one that still names our format. Reads the header only, whatever the file's size, so
    a PyTorch Lightning ``last.ckpt`` of gigabytes costs a few bytes. False if it cannot
    be read."""
    try:
        with open(str(path), "rb") as handle:
            head = handle.read(_FRAME.size)
            if len(head) < 2 or head[0] != _MAGIC or head[1] != _KIND_HEADER:
                return False
            if len(head) < _FRAME.size:
                return True  # the torn start of a header
            length = _FRAME.unpack(head)[2]
            if length > _HEADER_LIMIT:
                return False
            data = head + handle.read(length)
    except OSError:
        return False
    if len(data) < _FRAME.size + length:
        return True  # torn while the header was written
    if _frame_end(memoryview(data), 0, len(data), (_KIND_HEADER,)) < 0:
        return b'"checkpointify/' in data  # a damaged header that still names our format
    scan = _scan(data)
    return _header(data, scan).get("format") in (FORMAT, _FORMAT_V1)


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
    if not is_log(path):
        raise CheckpointError("%s is not a checkpointify log (its header is not one)" % _shown(path))
    return describe(
        path,
        data,
        "",
        stat.st_mtime,
        lambda archived: None if archived else _lock_holder(_lock_path(path)),
        len(data),
    )


def describe(
    path: Path,
    data: bytes,
    damage: str,
    modified: float,
    writer: Callable[[str], Optional[Dict[str, Any]]],
    size: int,
) -> CheckpointInfo:
    """A :class:`CheckpointInfo` of the log bytes ``data`` named ``path`` (a local file, or the
    log of an object-store prefix, :mod:`.remotelogs`). ``damage`` is what the caller already
    knows is wrong (else the scan's corrupt frame or torn tail); ``writer(archived)`` gives
    the process holding the log, if any."""
    scan = _scan(data)
    header = _header(data, scan)
    units, replaced = _count_units(data, scan, v1=header.get("format") == _FORMAT_V1)
    if not damage and scan.corrupt_at >= 0:
        damage = "corrupt at byte %d" % scan.corrupt_at
    elif not damage and scan.valid_end < scan.size:
        damage = "torn tail of %d bytes" % (scan.size - scan.valid_end)
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
        size=size,
        valid_bytes=scan.valid_end,
        damage=damage,
        modified=modified,
        writer=writer(archived),
        archived=archived,
        shard=str(header.get("shard", "")),
    )


def remove(path: Path) -> None:
    """Delete the checkpoint log at ``path`` and its lock file, so that its loop starts from
    zero. Raises :class:`CheckpointLockedError` if a process is running the loop (its log is
    never removed under it). Archives (``.stale``, ``.corrupt-*``) are simply deleted. A
    file that does not prove to be a checkpointify log (:func:`is_log`: a PyTorch Lightning
    ``*.ckpt``, say) is never removed: :class:`CheckpointError`. A missing log is fine
    (its lock file, if any, is removed)."""
    path = Path(path)
    if os.path.lexists(str(path)) and (os.path.islink(str(path)) or not is_log(path)):
        raise CheckpointError("%s is not a checkpointify log; left alone" % _shown(path))
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
