"""A real second user for the tests where root would bypass permissions or ownership.

Tests run as root here and in CI: :func:`other_user` creates ``checkpointify-other`` with
``useradd`` when it is absent and we are root, and skips with the reason otherwise.
:func:`as_user` is the argv prefix that runs a command as that user (``setpriv``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from typing import List, NamedTuple

import pytest

NAME = "checkpointify-other"


class User(NamedTuple):
    name: str
    uid: int
    gid: int


def other_user() -> User:
    """The second user (created if needed), or skip the test with the reason."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root to create and switch to a second user")
    try:
        entry = pwd.getpwnam(NAME)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            pytest.skip("no useradd to create a second user")
        done = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", NAME],
            capture_output=True,
            text=True,
        )
        if done.returncode not in (0, 9):  # 9: created meanwhile by a parallel test
            pytest.skip("useradd failed: %s" % done.stderr.strip())
        entry = pwd.getpwnam(NAME)
    if shutil.which("setpriv") is None:
        pytest.skip("no setpriv to run a command as the second user")
    return User(NAME, entry.pw_uid, entry.pw_gid)


def as_user(user: User) -> List[str]:
    """The argv prefix that runs a command as ``user`` (no supplementary groups)."""
    return ["setpriv", "--reuid=%d" % user.uid, "--regid=%d" % user.gid, "--clear-groups", "--"]


def user_python() -> str:
    """A Python the second user can run (the virtualenv's may live under /root, mode 0700)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(candidate):
            return candidate
    pytest.skip("no system python3 the second user can run")
    raise AssertionError("unreachable")


#: this checkout's ``src`` folder (the ``checkpointify`` package the second user runs)
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
_COPIES: List[str] = []


def readable(user: User, path: str) -> bool:
    """Whether ``user`` can read ``path`` (every folder above it included)."""
    return subprocess.run(as_user(user) + ["test", "-r", path], capture_output=True).returncode == 0


def user_src(user: User) -> str:
    """A ``src`` folder holding this checkout's ``checkpointify`` that ``user`` can read: the
    checkout's own, or, when the checkout is private (cloned under ``mktemp -d``, mode 0700),
    a copy in a world-readable folder made once per test process."""
    if readable(user, os.path.join(SRC, "checkpointify", "__init__.py")):
        return SRC
    if not _COPIES:
        import atexit
        import tempfile

        copy = tempfile.mkdtemp(prefix="checkpointify-src-")
        atexit.register(shutil.rmtree, copy, True)
        shutil.copytree(
            os.path.join(SRC, "checkpointify"),
            os.path.join(copy, "checkpointify"),
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        for root, _folders, files in os.walk(copy):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        _COPIES.append(copy)
    return _COPIES[0]


def run_cli_as(user: User, args: List[str], cwd: str) -> "subprocess.CompletedProcess[str]":
    """``python -m checkpointify ARGS`` as ``user``, with this checkout's code and the
    test environment's packages (readable by everyone, unlike an interpreter under /root).
    Skips, saying why, when those packages are in a folder ``user`` cannot read."""
    import site
    import sys

    packages = [p for p in site.getsitepackages() if os.path.isdir(p)]
    hidden = [p for p in packages if not readable(user, p)]
    if hidden:
        pytest.skip(
            "the second user cannot read this environment's packages (%s): install it in a "
            "folder others can read to run the tests that switch users" % hidden[0]
        )
    python = user_python() if sys.executable.startswith("/root/") else sys.executable
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([user_src(user), *packages]), "HOME": "/"}
    return subprocess.run(
        as_user(user) + [python, "-m", "checkpointify", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
