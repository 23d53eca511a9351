"""Bytes in, bytes out: decoding checks and atomic writes.

Files are handled as bytes end to end, so encodings, BOMs and line endings survive byte
for byte; LibCST parses and prints the bytes with the encoding it detects.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tempfile
import tokenize
from pathlib import Path
from typing import List, Optional, Tuple

_COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)", re.MULTILINE)


class SourceError(Exception):
    """A file cannot be processed; the message is one line naming the reason."""


def check_encoding(source: bytes) -> str:
    """The file's declared (or default) encoding; raises SourceError if the bytes do not decode."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    except SyntaxError as exc:
        if _COOKIE.search(b"\n".join(source.splitlines()[:2])):
            raise SourceError("invalid encoding declaration: %s" % exc.msg) from exc
        encoding = "utf-8"  # no declaration: the first lines are simply not UTF-8
    try:
        source.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise SourceError("not valid %s: %s" % (encoding, exc)) from exc
    return encoding


def read_source(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceError("cannot read: %s" % (exc.strerror or exc)) from exc


def write_atomic(
    path: Path, data: bytes, expected: Optional[bytes] = None, allow_read_only: bool = False
) -> None:
    """Replace ``path`` with ``data`` atomically, keeping its permission bits, owner and group.

    The new content goes to a temporary file in the same directory, is flushed to disk and
    renamed over the original, so a reader (or a crash) sees the old file or the new one,
    never a mixture. The owner and group are kept where this process may set them (root
    may; another user keeps the group when it is one of theirs). Other hard links to the
    file keep the old content: the path gets a new inode, as with black and ruff. Raises
    SourceError, with nothing written, when the file is read-only (no write bit; unless
    ``allow_read_only``) or when ``expected`` is given and the file no longer holds it (an
    editor saved it meanwhile).
    """
    try:
        st = path.stat()
        if not allow_read_only and not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            raise SourceError(
                "read-only (mode %04o); left untouched (--allow-read-only to rewrite it anyway)"
                % stat.S_IMODE(st.st_mode)
            )
        if expected is not None and path.read_bytes() != expected:
            raise SourceError("changed on disk while being processed; left untouched")
    except OSError as exc:
        raise SourceError("cannot write: %s" % (exc.strerror or exc)) from exc
    _replace(path, data, stat.S_IMODE(st.st_mode), owner=(st.st_uid, st.st_gid))


def write_output(path: Path, data: bytes) -> None:
    """Write a report (``--output``); raises SourceError with a one-line reason.

    A regular file (or a new one) is replaced atomically, so a reader never sees a
    half-written report; it keeps its permission bits and owner (a new one gets 0666 minus
    the umask). A symbolic link is followed: its target is what is written (the link
    stays a link). A character device (``/dev/null``, a terminal, ``/dev/stdout``), a FIFO
    or a socket is written through, never replaced by a plain file. A folder or a block
    device is refused.
    """
    try:
        st: Optional[os.stat_result] = os.stat(path)  # follows a symbolic link
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise SourceError("cannot write: %s" % (exc.strerror or exc)) from exc
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise SourceError("cannot write: is a directory")
        if stat.S_ISBLK(st.st_mode):
            raise SourceError("cannot write: is a block device; refusing to write a report over it")
        _write_through(path, data)  # through the link as given: /dev/stdout -> /proc/self/fd/1
        return
    target = Path(os.path.realpath(path)) if os.path.islink(path) else path
    if st is None:
        _replace(target, data, 0o666 & ~_umask())
    else:
        _replace(target, data, stat.S_IMODE(st.st_mode), owner=(st.st_uid, st.st_gid))


def output_kind(path: Path) -> str:
    """``"file"`` when ``--output path`` would be (re)placed as a regular file, else what it
    is: ``"directory"``, ``"block device"`` or ``"stream"`` (written through)."""
    try:
        st = os.stat(path)
    except OSError:
        return "file"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if stat.S_ISBLK(st.st_mode):
        return "block device"
    return "stream"


def _write_through(path: Path, data: bytes) -> None:
    """Write to a device, FIFO or socket as it is (no temporary file, no rename)."""
    try:
        fd = os.open(str(path), os.O_WRONLY | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise SourceError("cannot write: %s" % (exc.strerror or exc)) from exc
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as exc:
        raise SourceError("cannot write: %s" % (exc.strerror or exc)) from exc
    finally:
        os.close(fd)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


#: the suffix of the temporary files :func:`_replace` makes: ``.<name>.<pid>.<random>.checkpointify-tmp``
TEMP_SUFFIX = ".checkpointify-tmp"
# ours, now (with the pid of the process that made it) and before (without): nothing else
_TEMP = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>[0-9]+)\.)?[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")


def _replace(path: Path, data: bytes, mode: int, owner: Optional[Tuple[int, int]] = None) -> None:
    """Write ``data`` to a temporary file next to ``path``, flush it, rename it over ``path``.

    The temporary file is removed on every way out, Ctrl-C and SIGTERM included (the CLI
    turns SIGTERM into an exception); only SIGKILL or a power loss can leave one, and
    :func:`remove_stale_temps` removes it on the next run."""
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=".%s.%d." % (path.name, os.getpid()), suffix=TEMP_SUFFIX, dir=str(path.parent)
        )
    except OSError as exc:
        raise SourceError("cannot write: %s" % (exc.strerror or exc)) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if owner is not None:
            _chown(tmp, owner)
        os.chmod(tmp, mode)  # after chown, which clears the set-id bits
        os.replace(tmp, str(path))
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise SourceError("cannot write: %s" % (exc.strerror or exc)) from exc
        raise
    _sync_directory(path.parent)


def _chown(tmp: str, owner: Tuple[int, int]) -> None:
    """Give ``tmp`` the original's owner and group, as far as this process may."""
    chown = getattr(os, "chown", None)
    if chown is None:
        return
    st = os.stat(tmp)
    if (st.st_uid, st.st_gid) == owner:
        return
    try:
        chown(tmp, owner[0], owner[1])
    except PermissionError:
        try:
            chown(tmp, -1, owner[1])  # not root: at least the group, if it is one of ours
        except PermissionError:
            pass


def remove_stale_temps(folder: Path) -> List[str]:
    """Remove the temporary files a killed run of checkpointify left in ``folder`` (SIGKILL
    mid-write): only names :func:`_replace` makes, next to the file they were for, and
    only when the process that made them is gone. Returns the names removed; never raises."""
    removed: List[str] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    present = set(names)
    for name in names:
        match = _TEMP.match(name) if name.endswith(TEMP_SUFFIX) else None
        if match is None or match.group("name") not in present:
            continue
        pid = match.group("pid")
        if pid is not None and _alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            continue
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _sync_directory(directory: Path) -> None:
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return  # not supported here (Windows); the rename itself is atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
