"""What ``fix`` does to the files it writes: owner, group and mode kept, read-only files
refused, hard links documented, and no temporary file left by Ctrl-C, SIGTERM or SIGKILL
(those of a killed run are removed by the next)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pytest

from checkpointify.cli import main
from tests.support.programs import JOB
from tests.support.users import other_user

SRC = Path(__file__).resolve().parents[2] / "src"
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX owners, signals and links")


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.py").write_bytes(JOB)
    return tmp_path


def temps(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".checkpointify-tmp"))


@POSIX
def test_owner_group_and_mode_are_kept_when_root_fixes_another_users_file(project: Path) -> None:
    user = other_user()
    job = project / "job.py"
    os.chown(job, user.uid, user.gid)
    job.chmod(0o640)
    assert main(["fix", "--no-cache", "job.py"]) == 0
    st = job.stat()
    assert b"checkpoint(" in job.read_bytes()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (user.uid, user.gid, 0o640)


def test_a_read_only_file_is_refused_unless_asked(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = project / "job.py"
    job.chmod(0o444)
    assert main(["fix", "--no-cache", "job.py"]) == 1
    err = capsys.readouterr().err
    assert (
        "job.py: error: read-only (mode 0444); left untouched (--allow-read-only to rewrite it anyway)" in err
    )
    assert job.read_bytes() == JOB and temps(project) == []
    assert main(["fix", "--no-cache", "--allow-read-only", "job.py"]) == 0
    assert b"checkpoint(" in job.read_bytes() and stat.S_IMODE(job.stat().st_mode) == 0o444


@POSIX
def test_a_hard_link_keeps_the_original_content(project: Path) -> None:
    job = project / "job.py"
    os.link(job, project / "linked.txt")
    assert main(["fix", "--no-cache", "job.py"]) == 0
    assert b"checkpoint(" in job.read_bytes()
    assert (project / "linked.txt").read_bytes() == JOB  # documented: the path gets a new inode
    assert job.stat().st_nlink == 1


#: runs the real CLI; the first fsync of the rewritten file sends the signal to the process
#: itself and waits for it, so it lands while the temporary file exists
INTERRUPTED = textwrap.dedent(
    """
    import os, signal, sys, time
    from checkpointify import fileio
    from checkpointify.cli import main

    number = getattr(signal, sys.argv[1])
    real = os.fsync
    # Ctrl-C as in a terminal, even where the test run itself was started with SIGINT
    # ignored (a background job of a shell), which its child processes inherit
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def fsync(fd):
        if os.path.basename(os.readlink("/proc/self/fd/%d" % fd)).endswith(".checkpointify-tmp"):
            os.kill(os.getpid(), number)
            time.sleep(30)
        return real(fd)

    fileio.os.fsync = fsync
    sys.exit(main(["fix", "--no-cache", "-j", "1", "job.py"]))
    """
)


def interrupted(project: Path, name: str) -> "subprocess.CompletedProcess[str]":
    script = project.parent / ("interrupt-%s.py" % project.name)
    script.write_text(INTERRUPTED)
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run(
        [sys.executable, str(script), name], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )


@POSIX
@pytest.mark.parametrize("name, code, said", [("SIGINT", 130, "Aborted."), ("SIGTERM", 143, "Terminated.")])
def test_ctrl_c_and_sigterm_mid_write_leave_no_temporary_file(
    project: Path, name: str, code: int, said: str
) -> None:
    done = interrupted(project, name)
    assert (done.returncode, said) == (code, done.stderr.strip().splitlines()[-1]), done.stderr
    assert temps(project) == [] and (project / "job.py").read_bytes() == JOB


@POSIX
def test_a_killed_runs_temporary_file_is_removed_by_the_next_run(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = interrupted(project, "SIGKILL")
    assert done.returncode == -signal.SIGKILL
    [left] = temps(project)
    assert left.startswith(".job.py.") and (project / "job.py").read_bytes() == JOB
    # not ours, or ours and still being written by a live process: kept
    alive = ".job.py.%d.abcdefgh.checkpointify-tmp" % os.getpid()
    others = [alive, ".other.py.1.abcdefgh.checkpointify-tmp", ".job.py.bak", "job.py.checkpointify-tmp"]
    for other in others:
        (project / other).write_text("keep")
    assert main(["fix", "--no-cache", "job.py"]) == 0
    assert "checkpointify: removed ./%s, left by a run that was killed" % left in capsys.readouterr().err
    assert left not in os.listdir(project) and all((project / o).read_text() == "keep" for o in others)
    assert b"checkpoint(" in (project / "job.py").read_bytes()
