"""Whom a log is trusted from: the current user only, as ssh trusts its keys.

A log holds pickles, and unpickling runs code. A log, or the folder it lives in, that
another user owns or that group or others may write could have been planted by someone
else: :func:`_check_trusted` refuses it with :class:`UntrustedCheckpointError` before
anything is read. The folders the runtime creates are 0700, its files 0600. The default folder, ``.checkpointify``,
gets a ``.gitignore`` holding ``*`` when it is created, so that logs are never committed
by accident. On a platform without owners (Windows) nothing is checked.
"""

from __future__ import annotations

import os
import stat

from .errors import UntrustedCheckpointError, _shown
from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

#: what a created checkpoint folder's .gitignore holds
GITIGNORE = b"# written by checkpointify: checkpoint logs are never committed\n*\n"


def _check_trusted(path: Path) -> None:
    """Raise :class:`UntrustedCheckpointError` if ``path`` (a log or a checkpoint folder)
    is owned by another user or writable by group or others; a missing path is fine.
    The message names the path, the reason and the fix."""
    getuid = getattr(os, "geteuid", None)
    if getuid is None:
        return  # no owners to check (Windows)
    try:
        st = os.lstat(str(path))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UntrustedCheckpointError("cannot check checkpoint %s: %s" % (_shown(path), exc)) from exc
    kind = "folder" if stat.S_ISDIR(st.st_mode) else "log"
    if stat.S_ISLNK(st.st_mode):
        reason = "is a symbolic link"
    elif st.st_uid != getuid():
        reason = "is owned by uid %d, not by the current user (uid %d)" % (st.st_uid, getuid())
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        reason = "is writable by %s (mode %04o)" % (
            "group and others"
            if st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IWOTH
            else "group"
            if st.st_mode & stat.S_IWGRP
            else "others",
            stat.S_IMODE(st.st_mode),
        )
    else:
        return
    raise UntrustedCheckpointError(
        "refusing checkpoint %s %s: it %s, so another user could have planted it and reading "
        "it could run their code; use a folder only you can write (chmod 700, or set "
        "CHECKPOINTIFY_DIR)" % (kind, _shown(path), reason)
    )


def _make_folder(folder: Path) -> None:
    """Create ``folder`` (0700) if it does not exist, with a ``.gitignore`` when it is the
    default ``.checkpointify`` (a folder named by ``directory=`` or ``CHECKPOINTIFY_DIR``
    gets nothing of ours but logs), then check that it is trusted. Raises OSError if it
    cannot be created."""
    if not os.path.isdir(str(folder)):
        if folder.parent != folder:
            folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.mkdir(str(folder), 0o700)
        except FileExistsError:
            pass  # another process made it meanwhile
        else:
            if folder.name == ".checkpointify":
                _write_gitignore(folder)
    _check_trusted(folder)


def _write_gitignore(folder: Path) -> None:
    try:
        fd = os.open(str(folder / ".gitignore"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return  # best effort: it only protects against an accidental commit
    try:
        os.write(fd, GITIGNORE)
    finally:
        os.close(fd)


def _remove_folder(folder: Path) -> None:
    """Remove ``folder`` if nothing but the ``.gitignore`` it was created with is left."""
    ignore = folder / ".gitignore"
    try:
        names = os.listdir(str(folder))
        # a prefix: a run killed while writing it left it short
        if names == [".gitignore"] and GITIGNORE.startswith(ignore.read_bytes()):
            os.unlink(str(ignore))
        os.rmdir(str(folder))
    except OSError:
        if folder.name == ".checkpointify" and os.path.isdir(str(folder)) and not os.path.exists(str(ignore)):
            _write_gitignore(folder)  # another loop's file appeared meanwhile: keep it ignored
