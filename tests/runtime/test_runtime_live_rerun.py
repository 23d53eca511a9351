"""A loop run again in the same live process after an interrupt, as a notebook kernel does.

The user re-runs the loop's cell, not the cell that creates the accumulators: they already
hold the completed units, so the recorded ones must not be applied on top of them. When the
interrupted unit (or a batch not written yet) changed them, the re-run is refused with a
message, and re-running the creating cell first resumes from the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

from checkpointify.runtime import CheckpointError, checkpoint

CREATE = "labels = []\n"
LOOP = """
ckpt = checkpoint("live::<module>::labels", range(40), lambda: (labels,))
[labels] = ckpt.restore()
for n in ckpt:
    done.append(n)
    if n == stop_at:
        stop_at = None
        if half_way:
            labels.append(-1)
        raise KeyboardInterrupt
    labels.append(n * n)
"""
SAVE = "ckpt.complete()\n"


def _cell(code: str, namespace: Dict[str, Any]) -> None:
    exec(compile(code, "<cell>", "exec"), namespace)


@pytest.fixture()
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dict[str, Any]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "off")  # every unit written as it completes
    monkeypatch.setenv("CHECKPOINTIFY_QUIET", "1")
    namespace: Dict[str, Any] = {"checkpoint": checkpoint, "done": [], "stop_at": 25, "half_way": False}
    _cell(CREATE, namespace)
    with pytest.raises(KeyboardInterrupt):
        _cell(LOOP, namespace)
    return namespace


def test_the_loop_cell_run_again_goes_on_over_the_live_accumulators(kernel: Dict[str, Any]) -> None:
    _cell(LOOP, kernel)
    _cell(SAVE, kernel)
    assert kernel["labels"] == [n * n for n in range(40)]
    assert kernel["done"] == list(range(26)) + list(range(25, 40))  # only the interrupted unit again
    assert not Path(".checkpointify").exists()


def test_a_half_done_unit_is_refused_then_resumed_after_the_creating_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "off")
    monkeypatch.setenv("CHECKPOINTIFY_QUIET", "1")
    monkeypatch.setenv("CHECKPOINTIFY_STRICT", "1")  # the refusal; by default the loop steps aside
    namespace: Dict[str, Any] = {"checkpoint": checkpoint, "done": [], "stop_at": 25, "half_way": True}
    _cell(CREATE, namespace)
    with pytest.raises(KeyboardInterrupt):
        _cell(LOOP, namespace)
    with pytest.raises(CheckpointError, match="run the cell or code that creates them again"):
        _cell(LOOP, namespace)
    assert namespace["labels"][-1] == -1  # refused before touching anything
    _cell(CREATE, namespace)
    _cell(LOOP, namespace)
    _cell(SAVE, namespace)
    assert namespace["labels"] == [n * n for n in range(40)]
    assert namespace["done"] == list(range(26)) + list(range(25, 40))


def test_a_completed_loop_run_again_starts_from_zero(kernel: Dict[str, Any]) -> None:
    _cell(LOOP, kernel)
    _cell(SAVE, kernel)
    _cell(CREATE, kernel)
    _cell(LOOP, kernel)
    _cell(SAVE, kernel)
    assert kernel["labels"] == [n * n for n in range(40)]
    assert kernel["done"][-40:] == list(range(40))


COUNTER = """
ckpt = checkpoint("live::<module>::total", range(10), lambda: (total,))
[total] = ckpt.restore()
for n in ckpt:
    if n == stop_at:
        stop_at = None
        raise KeyboardInterrupt
    total += n
"""


@pytest.mark.parametrize("create_again", [False, True], ids=["live", "created-again"])
def test_a_counter_resumes_whether_or_not_it_was_created_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, create_again: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "off")
    monkeypatch.setenv("CHECKPOINTIFY_QUIET", "1")
    namespace: Dict[str, Any] = {"checkpoint": checkpoint, "stop_at": 6, "total": 0}
    with pytest.raises(KeyboardInterrupt):
        _cell(COUNTER, namespace)
    if create_again:
        namespace["total"] = 0
    _cell(COUNTER, namespace)
    _cell(SAVE, namespace)
    assert namespace["total"] == sum(range(10))


HALF_WAY_COUNTER = """
ckpt = checkpoint("live::<module>::total", range(10), lambda: (total,))
[total] = ckpt.restore()
for n in ckpt:
    if n == stop_at:
        stop_at = None
        total += 100  # the interrupted unit changed the counter half-way
        raise KeyboardInterrupt
    total += n
"""


def test_a_counter_changed_half_way_is_restored_never_applied_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cell run again without the creating cell: the counter is neither the recorded
    value nor re-created. It is taken as created again, and the recorded state (a counter's
    value, not an increment) replaces it: the result is an uninterrupted run's, with the
    half-way change dropped and no unit counted twice."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "off")
    monkeypatch.setenv("CHECKPOINTIFY_QUIET", "1")
    namespace: Dict[str, Any] = {"checkpoint": checkpoint, "stop_at": 6, "total": 0}
    with pytest.raises(KeyboardInterrupt):
        _cell(HALF_WAY_COUNTER, namespace)
    assert namespace["total"] == sum(range(6)) + 100
    _cell(HALF_WAY_COUNTER, namespace)
    _cell(SAVE, namespace)
    assert namespace["total"] == sum(range(10))
    assert not Path(".checkpointify").exists()
