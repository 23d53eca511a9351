"""Logs written by an older runtime are still read: the format-2 logs committed under
tests/fixtures/runtime-logs/v2/ (see its README: which commit wrote them, and how) are
restored by the current runtime, which skips exactly their completed units."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from checkpointify.runtime import FORMAT, StaleCheckpointError, checkpoint, read_info

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


def test_a_killed_runs_log_resumes_after_its_six_units(tmp_path: Path) -> None:
    log = _copy("v2.py_killed_*.ckpt", tmp_path)
    names: List[str] = []
    lengths: Dict[str, int] = {}
    total = 0
    ran: List[str] = []
    ckpt = checkpoint(
        "v2.py::killed::names,lengths,total", ITEMS, lambda: (names, lengths, total), directory=tmp_path
    )
    [names, lengths, total] = ckpt.restore()
    assert ckpt.restored_units == 6
    for index, item in enumerate(ckpt, start=6):
        ran.append(item)
        names.append(item.upper())
        lengths[item] = index * 10
        total += index
    ckpt.complete()
    assert ran == ITEMS[6:]
    assert names == [x.upper() for x in ITEMS]
    assert lengths == {x: i * 10 for i, x in enumerate(ITEMS)}
    assert total == sum(range(10))
    assert not log.exists()


def test_a_batched_log_resumes_over_a_longer_input(tmp_path: Path) -> None:
    log = _copy("v2.py_batched_*.ckpt", tmp_path)
    squares: List[int] = []
    roots: Dict[int, int] = {}
    ran: List[Any] = []
    ckpt = checkpoint(
        "v2.py::batched::squares,roots", range(400), lambda: (squares, roots), directory=tmp_path
    )
    [squares, roots] = ckpt.restore()
    assert ckpt.restored_units == 300
    for n in ckpt:
        ran.append(n)
        squares.append(n * n)
        roots[n * n] = n
    ckpt.complete()
    assert ran == list(range(300, 400))
    assert squares == [n * n for n in range(400)]
    assert roots == {n * n: n for n in range(400)}
    assert not log.exists()


def test_a_changed_input_is_still_refused(tmp_path: Path) -> None:
    _copy("v2.py_killed_*.ckpt", tmp_path)
    ckpt = checkpoint(
        "v2.py::killed::names,lengths,total", ["a", "x"], lambda: ([], {}, 0), directory=tmp_path
    )
    with pytest.raises(StaleCheckpointError, match="does not match the input"):
        ckpt.restore()
