"""``-o/--output`` never replaces what is not a regular file, and never one of the inputs.

Real devices, FIFOs and symbolic links; run as root (as in a CI container), where a rename
over /dev/null would succeed and turn the device into a plain file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import pytest

from checkpointify.cli import main
from tests.support.programs import JOB

SRC = Path(__file__).resolve().parents[2] / "src"
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX devices, FIFOs and symlinks")


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "job.py").write_bytes(JOB)
    return tmp_path


def cli(*args: str, cwd: Path) -> "subprocess.CompletedProcess[bytes]":
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run(
        [sys.executable, "-m", "checkpointify", *args], cwd=cwd, env=env, capture_output=True
    )


def no_temps(folder: Path) -> List[str]:
    return [p.name for p in folder.iterdir() if "checkpointify-tmp" in p.name]


@POSIX
def test_dev_null_stays_a_character_device(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = os.stat("/dev/null")
    assert main(["scan", "--format", "json", "-o", "/dev/null"]) == 1
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino and after.st_rdev == before.st_rdev
    assert not [p for p in Path("/dev").glob(".null.*checkpointify-tmp")]


@POSIX
def test_dev_stdout_a_symlink_is_written_through(project: Path) -> None:
    done = cli("scan", "--format", "json", "-o", "/dev/stdout", "job.py", cwd=project)
    assert done.returncode == 1 and b'"path": "job.py"' in done.stdout
    done = cli("diff", "-o", "-", "job.py", cwd=project)
    assert done.returncode == 1 and done.stdout.startswith(b"--- a/job.py")


@POSIX
def test_a_symlink_to_a_report_keeps_the_link_and_replaces_the_target(project: Path) -> None:
    real = project / "reports" / "latest.json"
    real.parent.mkdir()
    real.write_text("old")
    (project / "report.json").symlink_to(real)
    assert main(["scan", "--format", "json", "-o", "report.json"]) == 1
    assert (project / "report.json").is_symlink() and b'"job.py"' in real.read_bytes()
    assert no_temps(project) == [] and no_temps(real.parent) == []


@POSIX
def test_a_fifo_is_written_through_and_stays_a_fifo(project: Path) -> None:
    fifo = project / "report.pipe"
    os.mkfifo(fifo)
    got: List[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    assert main(["scan", "--format", "json", "-o", str(fifo)]) == 1
    reader.join(60)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and b'"path": "job.py"' in got[0]


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "job.py", "-o", "job.py"],
        ["scan", ".", "-o", "job.py"],
        ["diff", "job.py", "--output", "./job.py"],
        ["scan", "-o", "job.py"],  # no path: the working directory is walked
    ],
)
def test_an_input_is_never_the_output(
    project: Path, capsys: pytest.CaptureFixture[str], args: List[str]
) -> None:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and "is one of the files this run reads; refusing to overwrite it" in err
    assert (project / "job.py").read_bytes() == JOB


@POSIX
def test_a_symlink_to_an_input_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "out.txt").symlink_to(project / "job.py")
    assert main(["scan", "job.py", "-o", "out.txt"]) == 2
    assert (project / "job.py").read_bytes() == JOB


def test_a_report_next_to_the_inputs_is_fine(project: Path) -> None:
    assert main(["scan", ".", "--format", "json", "-o", "report.json"]) == 1
    assert b"job.py" in (project / "report.json").read_bytes()
