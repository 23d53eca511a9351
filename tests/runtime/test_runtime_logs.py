"""Logs written by an older runtime are still read: the format-2 logs committed under
tests/fixtures/runtime-logs/v2/ (see its README: which commit wrote them, and how) are
restored by the current runtime, which skips exactly their completed units."""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

from checkpointify.runtime import FORMAT, StaleCheckpointError, read_info

V2 = Path(__file__).resolve().parents[1] / "fixtures" / "runtime-logs" / "v2"
ITEMS = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]


@pytest.fixture(autouse=True)
def _in_tmp(runtime_sandbox: Callable[..., None]) -> None:
    runtime_sandbox(CHECKPOINTIFY_QUIET="1")


def _copy(name: str, where: Path) -> Path:
    [log] = V2.glob(name)
    return Path(shutil.copy(log, where / log.name))


def test_the_committed_logs_are_format_2() -> None:
    assert FORMAT == "checkpointify/2"
    infos = {info.loop_id: info for info in map(read_info, sorted(V2.glob("*.ckpt")))}
    assert {loop: (i.format, i.units, i.records, i.damage) for loop, i in infos.items()} == {
        "v2.py::killed::names,lengths,total": ("checkpointify/2", 6, 6, ""),
        "v2.py::batched::squares,roots": ("checkpointify/2", 300, 2, ""),
    }


# The loops as make_logs.py wrote them: a log of an earlier runtime is resumed only by the
# file whose name its header records (make_logs.py, relative to the working directory).
PROGRAM = """
from checkpointify.runtime import checkpoint


def killed(items, directory):
    names = []
    lengths = {}
    total = 0
    ran = []
    ckpt = checkpoint("v2.py::killed::names,lengths,total", items, lambda: (names, lengths, total), directory=directory)
    [names, lengths, total] = ckpt.restore()
    for index, item in enumerate(ckpt, start=ckpt.restored_units):
        ran.append(item)
        names.append(item.upper())
        lengths[item] = index * 10
        total += index
    ckpt.complete()
    return ckpt, ran, (names, lengths, total)


def batched(items, directory):
    squares = []
    roots = {}
    ran = []
    ckpt = checkpoint("v2.py::batched::squares,roots", items, lambda: (squares, roots), directory=directory)
    [squares, roots] = ckpt.restore()
    for n in ckpt:
        ran.append(n)
        squares.append(n * n)
        roots[n * n] = n
    ckpt.complete()
    return ckpt, ran, (squares, roots)
"""


def _program(where: Path, name: str = "make_logs.py") -> Dict[str, Any]:
    path = where / name
    path.write_text(PROGRAM)
    return runpy.run_path(str(path.relative_to(Path.cwd())))


def test_a_killed_runs_log_resumes_after_its_six_units(tmp_path: Path) -> None:
    log = _copy("v2.py_killed_*.ckpt", tmp_path)
    ckpt, ran, (names, lengths, total) = _program(tmp_path)["killed"](ITEMS, tmp_path)
    assert ckpt.restored_units == 6
    assert ran == ITEMS[6:]
    assert names == [x.upper() for x in ITEMS]
    assert lengths == {x: i * 10 for i, x in enumerate(ITEMS)}
    assert total == sum(range(10))
    assert not log.exists()
    assert list(tmp_path.glob("*.ckpt*")) == []


def test_a_batched_log_resumes_over_a_longer_input(tmp_path: Path) -> None:
    log = _copy("v2.py_batched_*.ckpt", tmp_path)
    ckpt, ran, (squares, roots) = _program(tmp_path)["batched"](range(400), tmp_path)
    assert ckpt.restored_units == 300
    assert ran == list(range(300, 400))
    assert squares == [n * n for n in range(400)]
    assert roots == {n * n: n for n in range(400)}
    assert not log.exists()


def test_a_copy_of_the_program_does_not_resume_it_and_leaves_it_alone(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The literal id travels with a copied script; the log is the original file's."""
    monkeypatch.delenv("CHECKPOINTIFY_QUIET")
    log = _copy("v2.py_killed_*.ckpt", tmp_path)
    before = log.read_bytes()
    ckpt, ran, (names, _, total) = _program(tmp_path, "job_v2.py")["killed"](ITEMS, tmp_path)
    assert ckpt.restored_units == 0
    assert ran == ITEMS
    assert names == [x.upper() for x in ITEMS] and total == sum(range(10))
    assert log.read_bytes() == before
    assert "not by this file" in capfd.readouterr().err


def test_a_changed_input_is_archived_and_the_loop_starts_from_zero(tmp_path: Path) -> None:
    log = _copy("v2.py_killed_*.ckpt", tmp_path)
    ckpt, ran, (names, _, _) = _program(tmp_path)["killed"](["a", "x"], tmp_path)
    assert ckpt.restored_units == 0 and ran == ["a", "x"] and names == ["A", "X"]
    assert not log.exists()
    assert log.with_name(log.name + ".stale").exists()


def test_a_changed_input_is_still_refused(strict: None, tmp_path: Path) -> None:
    _copy("v2.py_killed_*.ckpt", tmp_path)
    with pytest.raises(StaleCheckpointError, match="does not match the input"):
        _program(tmp_path)["killed"](["a", "x"], tmp_path)
