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
from typing import Optional

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


def write_atomic(path: Path, data: bytes, expected: Optional[bytes] = None) -> None:
    """Replace ``path`` with ``data`` atomically, keeping its permission bits.

    The new content goes to a temporary file in the same directory, is flushed to disk and
    renamed over the original, so a reader (or a crash) sees the old file or the new one,
    never a mixture. When ``expected`` is given and the file no longer holds it (an editor
    saved it meanwhile), nothing is written and SourceError is raised.
    """
    try:
        st = path.stat()
        if expected is not None and path.read_bytes() != expected:
            raise SourceError("changed on disk while being processed; left untouched")
    except OSError as exc:
        raise SourceError("cannot write: %s" % (exc.strerror or exc)) from exc
    _replace(path, data, stat.S_IMODE(st.st_mode))


def write_output(path: Path, data: bytes) -> None:
    """Create or replace a report file (``--output``) atomically; raises SourceError.

    A reader never sees a half-written report. An existing file keeps its permission
    bits; a new one gets the usual 0666 minus the umask.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    except OSError as exc:
        raise SourceError("cannot write: %s" % (exc.strerror or exc)) from exc
    if path.is_dir():
        raise SourceError("cannot write: is a directory")
    _replace(path, data, mode)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a temporary file next to ``path``, flush it, rename it over ``path``."""
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=".%s." % path.name, suffix=".checkpointify-tmp", dir=str(path.parent)
        )
    except OSError as exc:
        raise SourceError("cannot write: %s" % (exc.strerror or exc)) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, str(path))
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise SourceError("cannot write: %s" % (exc.strerror or exc)) from exc
    _sync_directory(path.parent)


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
