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


def run_cli_as(user: User, args: List[str], cwd: str) -> "subprocess.CompletedProcess[str]":
    """``python -m checkpointify ARGS`` as ``user``, with this checkout's code and the
    test environment's packages (readable by everyone, unlike an interpreter under /root)."""
    import site
    import sys

    src = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
    packages = [p for p in site.getsitepackages() if os.path.isdir(p)]
    python = user_python() if sys.executable.startswith("/root/") else sys.executable
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([src, *packages]), "HOME": "/"}
    return subprocess.run(
        as_user(user) + [python, "-m", "checkpointify", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
