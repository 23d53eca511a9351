"""``checkpointify checkpoints``: list, show and clear the checkpoint logs in a directory.

Logs are read only through :func:`checkpointify.runtime.read_info` (read-only, nothing is
unpickled) and removed only through :func:`checkpointify.runtime.remove` (never under a
process that is running the loop). The table and the details are data (stdout); what
was removed or refused is human text (stderr).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Dict, List, Optional, Sequence, Tuple, Union

from checkpointify import runtime
from checkpointify.runtime import CheckpointError, CheckpointInfo

COLUMNS = ("ID", "LOOP", "SOURCE", "UNITS", "SIZE", "AGE", "STATE")


@dataclass(frozen=True)
class Entry:
    """One file that looks like a checkpoint log: a live ``*.ckpt`` or an archive."""

    path: Path
    info: Optional[CheckpointInfo]
    error: Optional[str]  # why it could not be read
    url: Optional[str] = None  # the object-store prefix holding it (path is then its name)

    @property
    def id(self) -> str:
        """The name to pass to ``show`` and ``clear``: the file name without ``.ckpt``."""
        name = self.path.name
        return name[: -len(".ckpt")] if name.endswith(".ckpt") else name


def default_dir() -> Union[Path, str]:
    """``$CHECKPOINTIFY_DIR`` (a folder, or an object-store URL), else ``./.checkpointify``
    (where the runtime writes)."""
    from checkpointify.runtime.settings import remote_url

    return remote_url(None) or runtime.checkpoint_dir()


def _is_log(path: Path) -> bool:
    name = path.name
    return name.endswith(".ckpt") or name.endswith(".ckpt.stale") or ".ckpt.corrupt-" in name


def is_url(location: str) -> bool:
    """Whether ``--dir`` names object storage (``s3://bucket/prefix``, any fsspec URL)."""
    from checkpointify.runtime.settings import remote_url

    return remote_url(location) is not None


def load_remote(url: str) -> List[Entry]:
    """Every log and archive under the object-store prefix ``url`` (needs the extra)."""
    from checkpointify.runtime.remotelogs import list_remote

    return [Entry(Path(name), info, error, url) for name, info, error in list_remote(url)]


def load(directory: Union[Path, str], foreign: Optional[List[Path]] = None) -> List[Entry]:
    """Every checkpoint log in ``directory`` (sorted by name); none if it does not exist.

    Only files whose header proves them checkpointify logs (:func:`runtime.is_log`) are
    entries: another tool's ``*.ckpt`` (PyTorch Lightning's ``last.ckpt``) is never listed,
    shown or removed; such files are appended to ``foreign`` when it is given. A URL
    (``s3://...``) lists the logs on object storage (:func:`load_remote`)."""
    if isinstance(directory, str):
        return load_remote(directory)
    if not directory.is_dir():
        return []
    entries = []
    for path in sorted(directory.iterdir()):
        if path.is_symlink() or not path.is_file() or not _is_log(path):
            continue
        if not runtime.is_log(path):
            if foreign is not None:
                foreign.append(path)
            continue
        try:
            entries.append(Entry(path, runtime.read_info(path), None))
        except CheckpointError as exc:
            entries.append(Entry(path, None, str(exc)))
    return entries


def select(entries: Sequence[Entry], ident: str) -> List[Entry]:
    """The entries ``ident`` names: an ID or file name, the 8-hex hash of a live log, or a
    loop id (which may name several logs: one per ``key``)."""
    ident = ident.strip()
    by_name = [e for e in entries if ident in (e.id, e.path.name)]
    if by_name:
        return by_name
    return [
        e
        for e in entries
        if (e.path.name.endswith(".ckpt") and e.id.endswith("-" + ident) and len(ident) == 8)
        or (e.info is not None and e.info.loop_id == ident)
    ]


# ------------------------------------------------------------------------------ rendering


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024
    raise AssertionError("unreachable")


def human_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm" % (seconds // 60)
    if seconds < 86400:
        return "%dh" % (seconds // 3600)
    return "%dd" % (seconds // 86400)


def writer_text(info: CheckpointInfo) -> str:
    writer = info.writer or {}
    if writer.get("pid"):
        return "pid %s on %s" % (writer["pid"], writer.get("host", "?"))
    return "another process"


def state(entry: Entry) -> str:
    """What a re-run would do with this log, in a few words."""
    info = entry.info
    if info is None:
        return "unreadable"
    if info.archived:
        return "archived (%s)" % info.archived
    if info.writer is not None:
        return "in use by %s" % writer_text(info)
    if info.damage.startswith("corrupt"):
        return "corrupt (a re-run moves it aside)"
    if info.damage:
        return "resumable; torn tail of %s" % human_size(info.size - info.valid_bytes)
    return "resumable"


def rows(entries: Sequence[Entry], now: Optional[float] = None) -> List[Tuple[str, ...]]:
    now = time.time() if now is None else now
    out: List[Tuple[str, ...]] = []
    for entry in entries:
        info = entry.info
        if info is None:
            out.append((entry.id, "?", "?", "?", "?", "?", state(entry)))
            continue
        out.append(
            (
                entry.id,
                (info.loop_id or "?") + (" [shard %s]" % info.shard if info.shard else ""),
                info.source or "?",
                str(info.units),
                human_size(info.size),
                human_age(now - info.modified),
                state(entry),
            )
        )
    return out


def render_table(table: Sequence[Tuple[str, ...]], stream: IO[str], color: bool) -> None:
    """The listing: a rich table on a terminal, aligned plain text otherwise."""
    if color:
        from rich.console import Console
        from rich.table import Table

        grid = Table(box=None, pad_edge=False, header_style="bold")
        for name in COLUMNS:
            grid.add_column(name, justify="right" if name in ("UNITS", "SIZE", "AGE") else "left")
        for row in table:
            grid.add_row(*row, style="yellow" if row[-1].startswith("in use") else None)
        Console(file=stream, highlight=False, soft_wrap=True).print(grid)
        return
    widths = [max(len(r[i]) for r in [COLUMNS, *table]) for i in range(len(COLUMNS))]
    right = {COLUMNS.index(c) for c in ("UNITS", "SIZE", "AGE")}
    for row in [COLUMNS, *table]:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        stream.write("  ".join(cells).rstrip() + "\n")


def shard_summary(entries: Sequence[Entry]) -> List[str]:
    """One line per sharded loop: how many of its N shards have a log, and their units."""
    shards: Dict[Tuple[str, int], List[CheckpointInfo]] = {}
    for entry in entries:
        info = entry.info
        if info is None or not info.shard or info.archived:
            continue
        total = int(info.shard.partition("/")[2])
        shards.setdefault((info.loop_id, total), []).append(info)
    lines = []
    for (loop_id, total), infos in sorted(shards.items()):
        infos.sort(key=lambda i: int(i.shard.partition("/")[0]))
        parts = ", ".join("%s: %d" % (i.shard.partition("/")[0], i.units) for i in infos)
        lines.append(
            "%s: %d of %d shards have a log, %d units done (units by shard: %s)"
            % (loop_id, len(infos), total, sum(i.units for i in infos), parts)
        )
    return lines


def details(entry: Entry, now: Optional[float] = None) -> List[Tuple[str, str]]:
    """``show``: every field of one log, as (label, value) pairs."""
    now = time.time() if now is None else now
    info = entry.info
    where = "%s/%s" % (entry.url, entry.path.name) if entry.url else shown(entry.path)
    fields = [("id", entry.id), ("path", where)]
    if info is None:
        return fields + [("state", "unreadable: %s" % entry.error)]
    created = info.created or "?"
    if info.pid is not None:
        created += " by pid %d on %s" % (info.pid, info.host or "?")
    if info.python:
        created += " (Python %s)" % info.python
    fields += [
        ("loop", info.loop_id or "?"),
        ("source", info.source or "?"),
        ("key", info.key or "-"),
        ("shard", info.shard or "-"),
        ("resume", info.resume),
        ("units", "%d completed, in %d records" % (info.units, info.records)),
        ("size", "%s (%d bytes, %d valid)" % (human_size(info.size), info.size, info.valid_bytes)),
        (
            "modified",
            "%s (%s ago)"
            % (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.modified)),
                human_age(now - info.modified),
            ),
        ),
        ("created", created),
        ("format", info.format or "?"),
        ("damage", info.damage or "none"),
        ("state", state(entry)),
    ]
    if info.writer is not None:
        fields.append(
            (
                "writer",
                "%s (since %s: %s)"
                % (writer_text(info), info.writer.get("since", "?"), info.writer.get("argv", "?")),
            )
        )
    return fields


def render_details(fields: Sequence[Tuple[str, str]], stream: IO[str]) -> None:
    width = max(len(label) for label, _ in fields) + 1
    for label, value in fields:
        stream.write("%s %s\n" % ((label + ":").ljust(width), value))


# -------------------------------------------------------------------------------- clearing


def clear(entries: Sequence[Entry]) -> Tuple[List[Path], List[str]]:
    """Remove ``entries`` (and their lock files). Returns what was removed and, for each log
    a live process is using, why it was left alone."""
    removed: List[Path] = []
    refused: List[str] = []
    for entry in entries:
        try:
            if entry.url is not None:
                from checkpointify.runtime.remotelogs import remove_remote

                remove_remote(entry.url, entry.path.name)
            else:
                runtime.remove(entry.path)
        except CheckpointError as exc:
            refused.append(str(exc))
        except OSError as exc:
            refused.append("cannot remove %s: %s" % (entry.path, exc))
        else:
            removed.append(entry.path)
    return removed, refused


def remove_orphan_locks(directory: Path) -> None:
    """Lock files whose log is gone (left by a process that was killed after complete()
    removed its log, or before it wrote one); a held one is left alone."""
    if not directory.is_dir():
        return
    for lock in directory.glob("*.ckpt.lock"):
        log = lock.with_name(lock.name[: -len(".lock")])
        if not log.exists():
            try:
                runtime.remove(log)
            except (CheckpointError, OSError):
                pass
    remove_folder_if_empty(directory)


def remove_folder_if_empty(directory: Path) -> None:
    """Remove ``directory`` when nothing is left in it but the ``.gitignore`` the runtime
    wrote into it; a folder holding anything else (another tool's files) stays."""
    from checkpointify.runtime.trust import GITIGNORE

    ignore = directory / ".gitignore"
    try:
        names = os.listdir(directory)
        if names == [".gitignore"] and GITIGNORE.startswith(ignore.read_bytes()):  # or torn
            ignore.unlink()
        directory.rmdir()
    except OSError:
        pass


def shown(path: Union[Path, str]) -> str:
    """``path`` relative to the working directory when it is inside it (a URL as it is)."""
    if isinstance(path, str):
        return path
    try:
        relative = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return str(path)
    return str(path) if relative.startswith("..") else relative
