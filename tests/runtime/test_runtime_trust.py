"""Trust: a log or folder another user could have written is refused before it is read.

A log holds pickles, and unpickling runs code: a real second user plants one whose pickle
would run a command, and the job run by root refuses it (the command never runs)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from checkpointify.runtime import UntrustedCheckpointError, checkpoint
from tests.support.users import as_user, other_user, user_python, user_src

#: a job whose accumulator holds an object that runs a command when it is unpickled;
#: killed after two units, it leaves a resumable log
PLANT = textwrap.dedent(
    """
    import os, sys
    from checkpointify.runtime import checkpoint

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + sys.argv[1],))

    acc = []
    ckpt = checkpoint("trust::loop::acc", list(range(5)), lambda: (acc,))
    [acc] = ckpt.restore()
    for i in ckpt:
        acc.append(Evil())
        if i == 2:
            os._exit(9)
    """
)


@pytest.fixture(autouse=True)
def _in_tmp(runtime_sandbox: Callable[..., None]) -> None:
    # strict: these tests assert the refusal itself; by default an untrusted log makes the
    # checkpoint step aside (test_by_default_an_untrusted_log_is_never_read_and_the_loop_runs)
    runtime_sandbox(CHECKPOINTIFY_FSYNC="never", CHECKPOINTIFY_BATCH="off", CHECKPOINTIFY_STRICT="1")


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder every user can reach (pytest's tmp_path is under a 0700 folder)."""
    top = Path(tempfile.mkdtemp(prefix="checkpointify-trust-"))
    os.chmod(top, 0o755)
    yield top
    shutil.rmtree(top, ignore_errors=True)


def run_loop(items: List[int]) -> List[int]:
    acc: List[int] = []
    ckpt = checkpoint("trust::loop::acc", items, lambda: (acc,))
    [acc] = ckpt.restore()
    for item in ckpt:
        acc.append(item)
    ckpt.complete()
    return acc


def plant(shared: Path, folder: Path) -> Path:
    """The second user runs PLANT in a folder of its own and moves the log it leaves into
    ``folder``; returns the marker path its pickle would touch."""
    user = other_user()
    script = shared / "plant.py"
    script.write_text(PLANT)
    os.chmod(script, 0o644)
    own = shared / "own"
    own.mkdir(mode=0o700)
    os.chown(own, user.uid, user.gid)
    marker = shared / "PWNED"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": user_src(user), "CHECKPOINTIFY_DIR": str(own)}
    done = subprocess.run(
        as_user(user) + [user_python(), str(script), str(marker)], env=env, cwd=shared, capture_output=True
    )
    assert done.returncode == 9, done.stderr.decode()
    [log] = own.glob("*.ckpt")
    moved = subprocess.run(as_user(user) + ["mv", str(log), str(folder)], capture_output=True)
    assert moved.returncode == 0, moved.stderr.decode()
    assert [p.stat().st_uid for p in folder.glob("*.ckpt")] == [user.uid]
    return marker


def test_a_log_planted_by_another_user_in_a_world_writable_folder_is_refused(
    shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = shared / "drop"
    folder.mkdir()
    os.chmod(folder, 0o1777)  # like /tmp
    marker = plant(shared, folder)
    monkeypatch.setenv("CHECKPOINTIFY_DIR", str(folder))
    with pytest.raises(UntrustedCheckpointError, match="writable by group and others") as caught:
        run_loop(list(range(5)))
    assert str(folder) in str(caught.value) and "\n" not in str(caught.value)
    assert not marker.exists()
    # the folder made private to root: the planted log itself is still someone else's
    os.chmod(folder, 0o700)
    with pytest.raises(UntrustedCheckpointError, match="owned by uid %d" % other_user().uid):
        run_loop(list(range(5)))
    assert not marker.exists()
    assert len(list(folder.glob("*.ckpt"))) == 1  # refused, never deleted


def test_by_default_an_untrusted_log_is_never_read_and_the_loop_runs(
    shared: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Never worse than the original: the planted pickle never runs, the loop does, with a
    warning, and the log that is not ours is left where it is."""
    folder = shared / "drop"
    folder.mkdir()
    os.chmod(folder, 0o1777)
    marker = plant(shared, folder)
    monkeypatch.setenv("CHECKPOINTIFY_DIR", str(folder))
    monkeypatch.delenv("CHECKPOINTIFY_STRICT")
    assert run_loop(list(range(5))) == list(range(5))
    assert not marker.exists()
    assert "writable by group and others" in capfd.readouterr().err
    assert len(list(folder.glob("*.ckpt"))) == 1


def test_a_log_of_ours_that_others_may_write_is_refused(tmp_path: Path) -> None:
    acc: List[int] = []
    ckpt = checkpoint("trust::loop::acc", [1, 2, 3], lambda: (acc,))
    ckpt.restore()
    for item in ckpt:
        if item == 2:
            break  # unit 1 is recorded when the loop asks for item 2
        acc.append(item)
    ckpt.close()
    [log] = (tmp_path / ".checkpointify").glob("*.ckpt")
    os.chmod(log, 0o664)
    with pytest.raises(UntrustedCheckpointError, match=r"writable by group \(mode 0664\)"):
        run_loop([1, 2, 3])
    os.chmod(log, 0o600)
    assert run_loop([1, 2, 3]) == [1, 2, 3]


def test_a_new_folder_is_private_and_git_ignored_and_goes_away_on_completion(tmp_path: Path) -> None:
    acc: List[int] = []
    ckpt = checkpoint("trust::loop::acc", [1, 2, 3], lambda: (acc,))
    ckpt.restore()
    for item in ckpt:
        if item == 2:
            break  # unit 1 is recorded when the loop asks for item 2
        acc.append(item)
    ckpt.close()
    folder = tmp_path / ".checkpointify"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    [log] = folder.glob("*.ckpt")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
        ignored = subprocess.run(
            ["git", "-C", str(tmp_path), "check-ignore", "-q", str(log)], capture_output=True
        )
        assert ignored.returncode == 0
    assert run_loop([1, 2, 3]) == [1, 2, 3]
    assert not folder.exists()  # nothing stale after a successful run


def test_a_symlinked_log_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / ".checkpointify"
    run_loop([1])  # creates and removes the folder
    folder.mkdir(mode=0o700)
    from checkpointify.runtime import log_name

    elsewhere = tmp_path / "elsewhere.ckpt"
    elsewhere.write_bytes(b"")
    (folder / log_name("trust::loop::acc")).symlink_to(elsewhere)
    with pytest.raises(UntrustedCheckpointError, match="symbolic link"):
        run_loop([1])


def test_the_message_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "open"
    folder.mkdir()
    os.chmod(folder, 0o777)
    monkeypatch.setenv("CHECKPOINTIFY_DIR", str(folder))
    with pytest.raises(UntrustedCheckpointError, match="chmod 700, or set CHECKPOINTIFY_DIR"):
        run_loop([1])
    assert sys.platform != "win32"


# ------------------------------------------------------------------- parent folders


@pytest.mark.parametrize("mode", [0o777, 0o775], ids=["world-writable", "group-writable"])
def test_a_parent_others_may_write_without_the_sticky_bit_is_refused(
    mode: int, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = shared / "open"
    folder = parent / "ckpts"
    folder.mkdir(parents=True, mode=0o700)
    os.chmod(parent, mode)  # another user could rename ckpts/ away and put a link in its place
    monkeypatch.setenv("CHECKPOINTIFY_DIR", str(folder))
    with pytest.raises(UntrustedCheckpointError, match="parent folder %s is writable by" % parent) as caught:
        run_loop([1, 2, 3])
    assert "without the sticky bit" in str(caught.value) and "chmod g-w,o-w" in str(caught.value)
    assert list(folder.iterdir()) == []  # nothing read or written
    os.chmod(parent, mode | stat.S_ISVTX)  # the sticky bit, as /tmp: only an entry's owner may rename it
    assert run_loop([1, 2, 3]) == [1, 2, 3]


def test_by_default_an_untrusted_parent_makes_the_loop_run_unchecked(
    shared: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    parent = shared / "open"
    parent.mkdir()
    os.chmod(parent, 0o777)
    monkeypatch.setenv("CHECKPOINTIFY_DIR", str(parent / "ckpts"))
    monkeypatch.delenv("CHECKPOINTIFY_STRICT")
    assert run_loop([1, 2, 3]) == [1, 2, 3]
    err = capfd.readouterr().err
    assert err.count("warning") == 1 and "parent folder" in err and "runs on" in err


def test_a_parent_owned_by_another_user_is_refused(shared: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = other_user()
    parent = shared / "theirs"
    folder = parent / "ckpts"
    folder.mkdir(parents=True, mode=0o700)
    os.chmod(parent, 0o755)
    os.chown(parent, user.uid, user.gid)  # they may rename anything in it
    monkeypatch.setenv("CHECKPOINTIFY_DIR", str(folder))
    with pytest.raises(UntrustedCheckpointError, match="is owned by uid %d" % user.uid):
        run_loop([1, 2, 3])
