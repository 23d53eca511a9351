"""``checkpointify checkpoints --dir s3://...``: list, describe and remove logs on object storage.

Read-only except :func:`remove_remote`; nothing is unpickled. A log is the folder
``<name>.ckpt/`` of segments (see :mod:`.objectstore`); archives (``<name>.ckpt.stale``,
``<name>.ckpt.corrupt-<time>``) are single objects in the log-file format.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .errors import CheckpointError, CheckpointLockedError
from .inspection import CheckpointInfo, describe
from .lease import read_holder
from .objectstore import load
from .remote import Bucket


def _info(
    name: str, data: bytes, damage: str, modified: float, writer: Optional[Dict[str, Any]], size: int
) -> CheckpointInfo:
    return describe(Path(name), data, damage, modified, lambda archived: writer, size)


def _live_holder(bucket: Bucket, name: str) -> Optional[Dict[str, Any]]:
    """The lease holder, when it renewed the lease within two of its times to live (by
    the wall clock: informational, the runtime never trusts it)."""
    holder = read_holder(bucket, name)
    if holder is None:
        return None
    from .lease import holder_is_dead

    if holder_is_dead(holder):
        return None
    try:
        fresh = time.time() - float(holder.get("renewed", 0)) < 2 * float(holder.get("ttl", 30))
    except (TypeError, ValueError):
        fresh = False
    return holder if fresh else None


def list_remote(url: str) -> List[Tuple[str, Optional[CheckpointInfo], Optional[str]]]:
    """(name, info, error) for every log and archive under ``url``, sorted by name."""
    bucket = Bucket(url)
    out: List[Tuple[str, Optional[CheckpointInfo], Optional[str]]] = []
    for name in bucket.children():
        try:
            if name.endswith(".ckpt"):
                out.append((name, describe_log(bucket, name), None))
            elif name.endswith(".ckpt.stale") or ".ckpt.corrupt-" in name:
                got = bucket.get(name)
                data = got[0] if got is not None else b""
                out.append((name, _info(name, data, "", bucket.modified(name), None, len(data)), None))
        except CheckpointError as exc:
            out.append((name, None, str(exc)))
    return out


def describe_log(bucket: Bucket, name: str) -> CheckpointInfo:
    loaded = load(bucket, name)
    damage = ""
    if loaded.corrupt:
        damage = "corrupt segment %s" % loaded.corrupt.rpartition("/")[2]
    elif loaded.torn:
        damage = "torn last segment"
    keys = loaded.keys
    modified = max((bucket.modified(k) for k in keys[-1:]), default=0.0)
    return _info(name, loaded.body, damage, modified, _live_holder(bucket, name), len(loaded.body))


def remove_remote(url: str, name: str) -> None:
    """Delete the log (or archive) ``name`` under ``url``; refused while a process holds
    its lease (:class:`CheckpointLockedError`)."""
    bucket = Bucket(url)
    if not name.endswith(".ckpt"):
        bucket.delete([name])
        return
    holder = _live_holder(bucket, name)
    if holder is not None:
        from .lease import describe

        raise CheckpointLockedError(
            "checkpoint %s/%s is in use by %s; left alone" % (bucket.url, name, describe(holder)), holder
        )
    bucket.delete(bucket.list(name))


def remove_stale_logs(url: str, loop_id: str, prefix: str) -> None:
    """Remove every log under ``url`` whose name starts with ``prefix`` and whose header
    names ``loop_id`` (``complete_deferred()``: logs no call of this run opened), except
    one whose lease a live process holds; an unreadable one is left alone."""
    bucket = Bucket(url)
    for name in bucket.children():
        if not (name.startswith(prefix) and name.endswith(".ckpt")):
            continue
        try:
            if describe_log(bucket, name).loop_id == loop_id:
                remove_remote(url, name)
        except CheckpointError:
            pass  # in use by a running loop, or unreadable: not ours to judge
