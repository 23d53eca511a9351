"""``checkpointify checkpoints`` on the logs real rewritten programs leave: after a SIGKILL,
while running, after corruption and stale input; exit codes 0 / 1 / 2."""

from __future__ import annotations

import io
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

from checkpointify.cli import inventory as checkpoints
from checkpointify.cli import main
from tests.support.fixture_cases import FIXTURES, SUPPORT

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
CASE = FIXTURES / "collect-loop" / "function-param-key"  # two calls of one loop, keyed by split


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture's input.py as a project, rewritten by the real `checkpointify fix`."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'job'\n")
    shutil.copy(CASE / "input.py", tmp_path / "job.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHECKPOINTIFY_DIR", raising=False)
    assert main(["fix", "job.py"]) == 0
    assert b"ckpt = checkpoint(" in (tmp_path / "job.py").read_bytes()
    return tmp_path


def _env(where: Path, delay: str = "0.05") -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINTIFY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), str(Path(__file__).resolve().parents[2] / "src")])
    env["CKPT_WORKLOG"] = str(where / "worklog.txt")
    env["CKPT_DELAY"] = delay
    return env


def _worklog(where: Path) -> List[str]:
    log = where / "worklog.txt"
    return log.read_text().splitlines() if log.exists() else []


def _start(where: Path, delay: str = "0.05") -> "subprocess.Popen[bytes]":
    return subprocess.Popen(
        [sys.executable, "job.py"], cwd=where, env=_env(where, delay), stderr=subprocess.PIPE
    )


def _wait_for_units(where: Path, proc: "subprocess.Popen[bytes]", units: int) -> None:
    deadline = time.monotonic() + 60
    while len(_worklog(where)) < units:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)


def _checkpoint_line(where: Path) -> int:
    lines = (where / "job.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if "ckpt = checkpoint(" in line)


def _run(args: List[str], capsys: pytest.CaptureFixture[str]) -> "tuple[int, str, str]":
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@POSIX
def test_list_show_clear_after_a_real_sigkill(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc = _start(project)
    _wait_for_units(project, proc, 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    started = len(_worklog(project))

    code, out, err = _run(["checkpoints"], capsys)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "LOOP", "SOURCE", "UNITS", "SIZE", "AGE", "STATE"]
    [log] = sorted((project / ".checkpointify").glob("*.ckpt"))
    ident = log.name[: -len(".ckpt")]
    cells = row.split()
    assert cells[0] == ident and cells[1] == "job.py::process::results"
    assert cells[2] == "job.py:%d" % _checkpoint_line(project)
    assert int(cells[3]) in (started - 1, started)  # the unit in flight may or may not be done
    assert cells[-1] == "resumable" and "1 checkpoint in .checkpointify." in err

    assert _run(["checkpoints", "list", "--dir", ".checkpointify"], capsys)[1] == out
    code, shown, _ = _run(["checkpoints", "show", ident[-8:]], capsys)
    assert code == 0
    fields = dict(line.split(": ", 1) for line in shown.splitlines())
    assert fields["loop"].strip() == "job.py::process::results" and fields["resume"].strip() == "position"
    assert fields["key"].strip() != "-" and fields["damage"].strip() == "none"
    assert fields["created"].strip().endswith("(Python %d.%d.%d)" % sys.version_info[:3])

    code, _, err = _run(["checkpoints", "clear", ident], capsys)
    assert code == 0 and "removed .checkpointify/%s.ckpt" % ident in err
    assert _run(["checkpoints", "show", ident], capsys)[0] == 1
    (project / "worklog.txt").unlink()
    done = subprocess.run(
        [sys.executable, "job.py"], cwd=project, env=_env(project, "0"), capture_output=True
    )
    assert done.returncode == 0
    assert len(_worklog(project)) == 11  # cleared: both loops ran from zero (6 + 5 units)
    assert _run(["checkpoints"], capsys)[2].startswith("No checkpoints in .checkpointify")


@POSIX
def test_a_running_writer_is_shown_and_never_cleared(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc = _start(project, delay="0.2")
    try:
        _wait_for_units(project, proc, 2)
        code, out, _ = _run(["checkpoints"], capsys)
        assert code == 0 and "in use by pid %d on " % proc.pid in out
        code, _, err = _run(["checkpoints", "clear", "--yes"], capsys)
        assert code == 1 and "in use by process %d" % proc.pid in err
        assert list((project / ".checkpointify").glob("*.ckpt"))
    finally:
        proc.kill()
        proc.wait()
    code, out, _ = _run(["checkpoints"], capsys)
    assert "in use" not in out and "resumable" in out  # the kernel dropped the dead writer's lock
    assert _run(["checkpoints", "clear", "--yes"], capsys)[0] == 0
    assert not (project / ".checkpointify").exists()  # orphan lock files and the folder too


def _left_log(where: Path) -> Path:
    """Crash the job after a few units and return its log."""
    proc = _start(where, delay="0.02")
    _wait_for_units(where, proc, 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [log] = (where / ".checkpointify").glob("*.ckpt")
    return log


def _frames(data: bytes) -> List["tuple[int, int]"]:
    """(start, end) of each frame: magic u8 | kind u8 | length u32 | crc32 u32 | payload."""
    frames, pos = [], 0
    while pos < len(data):
        length = struct.unpack_from("<I", data, pos + 2)[0]
        frames.append((pos, pos + 10 + length))
        pos += 10 + length
    return frames


@POSIX
def test_archives_and_damage_are_listed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _left_log(project)
    data = log.read_bytes()
    log.write_bytes(data + b"\0" * 100)
    assert "resumable; torn tail of 100 B" in _run(["checkpoints"], capsys)[1]
    shutil.copy(log, log.with_name(log.name + ".stale"))
    start, end = _frames(data)[1]  # the first record; valid ones follow it
    corrupt = bytearray(data)
    corrupt[(start + end) // 2] ^= 1
    log.write_bytes(bytes(corrupt))
    out = _run(["checkpoints"], capsys)[1]
    states = sorted(line.split("  ")[-1].strip() for line in out.splitlines()[1:])
    assert states == ["archived (stale)", "corrupt (a re-run moves it aside)"]
    assert _run(["checkpoints", "clear", "--yes"], capsys)[0] == 0
    assert not (project / ".checkpointify").exists()


def test_exit_codes_and_directory_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHECKPOINTIFY_DIR", str(tmp_path / "elsewhere"))
    code, out, err = _run(["checkpoints"], capsys)
    assert code == 0 and out == "" and "No checkpoints in elsewhere" in err
    assert _run(["checkpoints", "show", "nothing"], capsys)[0] == 1
    assert _run(["checkpoints", "clear", "nothing"], capsys)[0] == 1
    assert _run(["checkpoints", "frobnicate"], capsys)[0] == 2
    assert _run(["checkpoints", "show"], capsys)[0] == 2  # ID is required
    assert _run(["checkpoints", "--dir", "x", "list", "--bogus"], capsys)[0] == 2


def test_rich_table_on_a_terminal() -> None:
    stream = io.StringIO()
    table = [("job-1234abcd", "job.py::main::r", "job.py:3", "12", "1.0 KiB", "5s", "resumable")]
    checkpoints.render_table(table, stream, color=True)
    text = stream.getvalue()
    assert "LOOP" in text and "job.py::main::r" in text and "resumable" in text


def test_sizes_and_ages_read_well() -> None:
    assert checkpoints.human_size(806) == "806 B"
    assert checkpoints.human_size(2048) == "2.0 KiB"
    assert checkpoints.human_size(5 * 1024**3) == "5.0 GiB"
    assert [checkpoints.human_age(s) for s in (3, 125, 7300, 200000)] == ["3s", "2m", "2h", "2d"]


def _lightning(folder: Path) -> Dict[str, bytes]:
    """What PyTorch Lightning leaves in a checkpoint folder: zip archives named *.ckpt."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name in ("epoch=3-step=1000.ckpt", "last.ckpt"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        (folder / name).write_bytes(buffer.getvalue())
        made[name] = buffer.getvalue()
    (folder / "empty.ckpt").write_bytes(b"")
    made["empty.ckpt"] = b""
    return made


@POSIX
def test_another_tools_ckpt_files_are_never_listed_shown_or_removed(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _left_log(project)
    folder = project / ".checkpointify"
    theirs = _lightning(folder)
    code, out, err = _run(["checkpoints"], capsys)
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == [log.name[:-5]]
    assert (
        "ignored 3 files that are not checkpointify logs (empty.ckpt, epoch=3-step=1000.ckpt, last.ckpt)"
        in err
    )
    code, _, err = _run(["checkpoints", "show", "last"], capsys)
    assert code == 1 and "last: error: .checkpointify/last.ckpt is not a checkpointify log; left alone" in err
    assert _run(["checkpoints", "clear", "last.ckpt"], capsys)[0] == 1
    code, _, err = _run(["checkpoints", "clear", "--yes"], capsys)
    assert (
        code == 0
        and "removed .checkpointify/%s" % log.name in err
        and "last.ckpt" not in err.split("ignored")[0]
    )
    assert {p.name: p.read_bytes() for p in folder.glob("*.ckpt")} == theirs  # byte for byte
    assert not list(folder.glob("*.lock"))  # and no lock file made for them
    with pytest.raises(Exception, match="not a checkpointify log; left alone"):
        from checkpointify import runtime

        runtime.remove(folder / "last.ckpt")
    assert (folder / "last.ckpt").read_bytes() == theirs["last.ckpt"]


def test_a_folder_with_only_another_tools_files_is_left_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    theirs = _lightning(tmp_path / "lightning_logs")
    code, out, err = _run(["checkpoints", "clear", "--yes", "--dir", "lightning_logs"], capsys)
    assert code == 0 and out == "" and "No checkpoints in lightning_logs" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "lightning_logs").iterdir()} == theirs


@POSIX
def test_clearing_everything_needs_yes_without_a_terminal(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _left_log(project)
    code, _, err = _run(["checkpoints", "clear"], capsys)
    assert (
        code == 2
        and "clearing all 1 checkpoint needs --yes when not run from a terminal; nothing removed" in err
    )
    assert log.exists()
    assert _run(["checkpoints", "clear", log.name[:-5]], capsys)[0] == 0  # one by name: no question


def _clear_on_a_terminal(where: Path, answer: bytes) -> "tuple[int, str]":
    import pty

    master, slave = pty.openpty()
    env = _env(where)
    proc = subprocess.Popen(
        [sys.executable, "-m", "checkpointify", "checkpoints", "clear"],
        cwd=where,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in seen:
        assert time.monotonic() < deadline, seen
        seen += os.read(master, 4096)
    os.write(master, answer + b"\r")
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return proc.wait(60), seen.decode(errors="replace")


@POSIX
def test_clearing_everything_asks_on_a_terminal(project: Path) -> None:
    log = _left_log(project)
    code, shown = _clear_on_a_terminal(project, b"n")
    assert (
        code == 1
        and "Remove all 1 checkpoint in .checkpointify? [y/N]" in shown
        and "Nothing removed." in shown
    )
    assert log.exists()
    code, shown = _clear_on_a_terminal(project, b"y")
    assert code == 0 and "removed .checkpointify/%s" % log.name in shown
    assert not (project / ".checkpointify").exists()
