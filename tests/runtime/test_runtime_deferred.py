"""Deferred checkpoints (helper-return): the helper's loop keeps its log, the caller completes it.

Every test runs a real program in a subprocess; crashes are real SIGKILLs (``os.kill`` of
the program's own pid at a chosen point) or real uncaught exceptions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

SRC = str(Path(__file__).resolve().parents[2] / "src")

PROGRAM = r"""
import json, os, signal, sys
from checkpointify.runtime import checkpoint, complete_deferred

SUFFIX = "a"

def work(x):
    with open("worklog", "a") as f:
        f.write("%s\n" % x)
    if os.environ.get("KILL_AT") in (str(x), "%s-%s" % (x, SUFFIX)):
        os.kill(os.getpid(), signal.SIGKILL)
    return "%s-%s" % (x, SUFFIX)

def run_model(samples):
    out = []
    ckpt = checkpoint("prog.py::run_model::out", samples, lambda: (out,), key=(samples,), deferred=True)
    [out] = ckpt.restore()
    for s in ckpt:
        out.append(work(s))
    return out

def main():
    global SUFFIX
    items = json.loads(os.environ.get("ITEMS", '["x1", "x2", "x3", "x4"]'))
    first = run_model(items)
    results = [first]
    if os.environ.get("TWICE"):
        SUFFIX = "b"  # hidden state the key cannot see: the second call must not reuse the first's log
        results.append(run_model(items))
    if os.environ.get("KILL_AT") == "between":
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("RAISE") == "between":
        raise RuntimeError("after the helper, before the save")
    with open("out.json", "w") as f:
        json.dump(results, f)
    if not os.environ.get("NO_COMPLETE"):
        complete_deferred("prog.py::run_model::out")

main()
"""


def _run(where: Path, **env: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    full: Dict[str, str] = dict(os.environ)
    full.pop("CHECKPOINTIFY_DIR", None)
    full.update(env)
    full["PYTHONPATH"] = SRC
    full["CHECKPOINTIFY_BATCH"] = "off"
    return subprocess.run([sys.executable, "prog.py"], cwd=where, env=full, capture_output=True, timeout=120)


def _setup(tmp_path: Path) -> Path:
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "pyproject.toml").write_text("")
    return tmp_path


def _worklog(where: Path) -> List[str]:
    path = where / "worklog"
    lines = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def _logs(where: Path) -> List[str]:
    folder = where / ".checkpointify"
    return sorted(p.name for p in folder.glob("*.ckpt")) if folder.exists() else []


def test_crash_in_the_helper_resumes_and_success_removes_the_log(tmp_path: Path) -> None:
    where = _setup(tmp_path)
    assert _run(where, KILL_AT="x3").returncode == -9
    assert _worklog(where) == ["x1", "x2", "x3"]
    assert len(_logs(where)) == 1
    done = _run(where)
    assert done.returncode == 0, done.stderr
    assert _worklog(where) == ["x3", "x4"]
    assert json.loads((where / "out.json").read_text()) == [["x1-a", "x2-a", "x3-a", "x4-a"]]
    assert not (where / ".checkpointify").exists()


def test_kill_between_the_return_and_the_save_redoes_nothing(tmp_path: Path) -> None:
    where = _setup(tmp_path)
    assert _run(where, KILL_AT="between").returncode == -9
    assert _worklog(where) == ["x1", "x2", "x3", "x4"]
    done = _run(where)
    assert done.returncode == 0, done.stderr
    assert _worklog(where) == []  # restored from the complete log
    assert json.loads((where / "out.json").read_text()) == [["x1-a", "x2-a", "x3-a", "x4-a"]]
    assert not (where / ".checkpointify").exists()


def test_an_uncaught_exception_keeps_the_log_and_a_normal_exit_removes_it(tmp_path: Path) -> None:
    where = _setup(tmp_path)
    failed = _run(where, RAISE="between")
    assert failed.returncode == 1 and b"RuntimeError" in failed.stderr
    assert len(_logs(where)) == 1  # kept for the re-run
    _worklog(where)
    # the caller never calls complete_deferred (say it lives in another file): the normal
    # exit completes the log
    done = _run(where, NO_COMPLETE="1")
    assert done.returncode == 0, done.stderr
    assert _worklog(where) == []
    assert not (where / ".checkpointify").exists()


def test_a_second_call_with_the_same_key_gets_its_own_log(tmp_path: Path) -> None:
    where = _setup(tmp_path)
    done = _run(where, TWICE="1")
    assert done.returncode == 0, done.stderr
    expected = [["x1-a", "x2-a", "x3-a", "x4-a"], ["x1-b", "x2-b", "x3-b", "x4-b"]]
    assert json.loads((where / "out.json").read_text()) == expected
    assert _worklog(where) == ["x1", "x2", "x3", "x4"] * 2
    # killed in the second call: the re-run restores the first from its own log and resumes
    # the second from its own, never one from the other's
    (where / "out.json").unlink()
    assert _run(where, TWICE="1", KILL_AT="x2-b").returncode == -9
    assert _worklog(where) == ["x1", "x2", "x3", "x4", "x1", "x2"]
    assert len(_logs(where)) == 2
    assert _run(where, TWICE="1").returncode == 0
    assert _worklog(where) == ["x2", "x3", "x4"]
    assert json.loads((where / "out.json").read_text()) == expected
    assert not (where / ".checkpointify").exists()


def test_complete_deferred_removes_a_log_no_call_of_this_run_opened(tmp_path: Path) -> None:
    where = _setup(tmp_path)
    # a run over other items is killed: its log is complete but never saved
    assert _run(where, ITEMS='["y1", "y2"]', KILL_AT="between").returncode == -9
    assert len(_logs(where)) == 1
    _worklog(where)
    done = _run(where)  # this run calls the helper with other items only
    assert done.returncode == 0, done.stderr
    assert _worklog(where) == ["x1", "x2", "x3", "x4"]
    assert not (where / ".checkpointify").exists(), "the other run's log was left behind"
