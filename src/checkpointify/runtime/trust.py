"""Whom a log is trusted from: the current user only, as ssh trusts its keys.

A log holds pickles, and unpickling runs code. A log, or the folder it lives in, that
another user owns or that group or others may write could have been planted by someone
else: :func:`_check_trusted` refuses it with :class:`UntrustedCheckpointError` before
anything is read. So is a folder one of whose parents another user could write (without
the sticky bit) or owns, other than root: :func:`_check_parents`, as ssh's StrictModes. The folders the runtime creates are 0700, its files 0600. The default folder, ``.checkpointify``,
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
    if kind == "folder":
        _check_parents(path, getuid())
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


def _check_parents(folder: Path, uid: int) -> None:
    """Raise :class:`UntrustedCheckpointError` if a folder above ``folder`` lets another
    user replace it, as ssh's ``StrictModes`` checks the path up to a key: every parent, up
    to ``/``, must be owned by root or the current user and not writable by group or others
    unless its sticky bit is set (``/tmp``: there only an entry's owner may rename it).
    Otherwise another user could rename the checkpoint folder away and put a symbolic link
    to a folder of theirs in its place, between the check of a log and its opening."""
    import os.path

    current = os.path.dirname(os.path.abspath(str(folder)))
    while True:
        try:
            st = os.stat(current)
        except OSError:
            return  # cannot be looked at: the folder's own checks decide
        reason = None
        if st.st_uid not in (0, uid):
            reason = "is owned by uid %d (neither root nor the current user, uid %d)" % (st.st_uid, uid)
        elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
            reason = "is writable by %s without the sticky bit (mode %04o)" % (
                "others" if st.st_mode & stat.S_IWOTH else "group",
                stat.S_IMODE(st.st_mode),
            )
        if reason is not None:
            raise UntrustedCheckpointError(
                "refusing checkpoint folder %s: its parent folder %s %s, so another user could replace the "
                "checkpoint folder and make this program read their code; use a checkpoint folder whose parents "
                "only you (or root) can write (chmod g-w,o-w %s, or set CHECKPOINTIFY_DIR)"
                % (_shown(folder), current, reason, current)
            )
        parent = os.path.dirname(current)
        if parent == current:
            return
        current = parent


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
