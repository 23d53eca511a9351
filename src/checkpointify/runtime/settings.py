"""Where logs live, and the environment variables read when a checkpoint is created."""

from __future__ import annotations

import os

from .errors import CheckpointError
from .fingerprint import _blake2b
from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path
    from typing import NoReturn, Optional, Tuple


def checkpoint_dir() -> Path:
    """Where logs live: ``$CHECKPOINTIFY_DIR``, else ``.checkpointify`` in the working directory.
    (An object-store URL there is read by :func:`remote_url`.)"""
    from pathlib import Path  # here, not with the module: see lite.py

    configured = os.environ.get("CHECKPOINTIFY_DIR")
    return Path(configured) if configured else Path.cwd() / ".checkpointify"


def log_name(loop_id: str, key_fp: str = "", shard: str = "") -> str:
    """The file name of a loop's log: readable slug plus a hash that keeps names unique
    (``shard``: ``"K/N"`` from ``$CHECKPOINTIFY_SHARD``, named in the slug and hashed)."""
    import re  # here, not with the module: see lite.py

    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", loop_id).strip("_")[:80]
    identity = loop_id + "\0" + key_fp
    if shard:
        slug += ".shard-%s-of-%s" % tuple(shard.split("/"))
        identity += "\0shard " + shard
    digest = _blake2b(identity.encode("utf-8"), digest_size=4).hexdigest()
    return "%s-%s.ckpt" % (slug, digest)


def remote_url(location: object) -> Optional[str]:
    """``location`` (``directory=``, else ``$CHECKPOINTIFY_DIR``) when it is an object-store
    URL (``s3://bucket/prefix``, ``gs://``, ``az://``, any fsspec protocol but ``file://``),
    else None: a local folder."""
    if location is None:
        location = os.environ.get("CHECKPOINTIFY_DIR")
    if location is None or not isinstance(location, str):
        return None
    scheme, sep, rest = location.partition("://")
    if not sep or not rest or not scheme[:1].isalpha() or scheme.lower() == "file":
        return None
    if not all(c.isalnum() or c in "+.-" for c in scheme):
        return None
    return location.rstrip("/")


def shard() -> str:
    """``$CHECKPOINTIFY_SHARD`` as ``"K/N"`` (0 <= K < N), or ``""``: this process runs
    shard K of N of its loops, each shard with its own log (see docs/cluster.md)."""
    text = os.environ.get("CHECKPOINTIFY_SHARD", "").strip()
    if not text:
        return ""
    k, sep, n = text.partition("/")
    if sep and k.strip().isdigit() and n.strip().isdigit() and int(k) < int(n):
        return "%d/%d" % (int(k), int(n))
    raise CheckpointError("CHECKPOINTIFY_SHARD must be K/N with 0 <= K < N (shard K of N), not %r" % text)


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
    "mid-compaction",  # object storage: a snapshot stored, the objects it merged not deleted yet
)


class _Settings:
    """The environment variables, read once when a checkpoint is created (a plain class:
    ``dataclasses`` and ``typing.NamedTuple`` cost more to import than the whole runtime)."""

    __slots__ = ("fsync", "on_stale", "quiet", "batch", "fault", "strict")

    def __init__(
        self,
        fsync: str,
        on_stale: str,
        quiet: bool,
        batch: bool,
        fault: Optional[Tuple[str, int]],
        strict: bool = False,
    ) -> None:
        self.fsync = fsync  # always | batched | never
        self.on_stale = on_stale  # error | restart | "" (not set: restart, or error when strict)
        self.quiet = quiet
        self.batch = batch  # cheap units may wait to be written together (CHECKPOINTIFY_BATCH=auto)
        self.fault = fault  # test-only fault injection (CHECKPOINTIFY_FAULT)
        self.strict = strict  # CHECKPOINTIFY_STRICT: raise instead of stepping aside

    @staticmethod
    def from_env() -> "_Settings":
        env = os.environ
        fsync = env.get("CHECKPOINTIFY_FSYNC", "").strip().lower() or "batched"
        if fsync not in ("always", "batched", "never"):
            raise CheckpointError("CHECKPOINTIFY_FSYNC must be always, batched or never, not %r" % fsync)
        on_stale = env.get("CHECKPOINTIFY_ON_STALE", "").strip().lower()
        if on_stale not in ("", "error", "restart"):
            raise CheckpointError("CHECKPOINTIFY_ON_STALE must be error or restart, not %r" % on_stale)
        batch = env.get("CHECKPOINTIFY_BATCH", "").strip().lower() or "auto"
        if batch not in ("auto", "off"):
            raise CheckpointError("CHECKPOINTIFY_BATCH must be auto or off, not %r" % batch)
        quiet = _flag(env.get("CHECKPOINTIFY_QUIET", ""))
        return _Settings(
            fsync,
            on_stale,
            quiet,
            batch == "auto" and fsync != "always",
            _parse_fault(env.get("CHECKPOINTIFY_FAULT", "")),
            _flag(env.get("CHECKPOINTIFY_STRICT", "")),
        )


def _flag(text: str) -> bool:
    """An environment switch: anything but empty, ``0``, ``false`` or ``no`` turns it on."""
    return text.strip().lower() not in ("", "0", "false", "no")


def _parse_fault(text: str) -> Optional[Tuple[str, int]]:
    """``CHECKPOINTIFY_FAULT=<point>:<unit>`` (test-only; see docs/runtime.md, "Fault injection")."""
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


def _hostname() -> str:
    """``socket.gethostname()`` without importing ``socket`` (most of the runtime's import
    time): on POSIX both return the ``uname`` node name."""
    uname = getattr(os, "uname", None)
    if uname is not None:
        return str(uname().nodename)
    import socket  # pragma: no cover - Windows

    return socket.gethostname()  # pragma: no cover


def _crash() -> NoReturn:
    """A fault point: die like ``kill -9`` would (no atexit, no flushing)."""
    os._exit(137)
