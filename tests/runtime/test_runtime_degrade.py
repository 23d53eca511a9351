"""Never worse than the original: by default a checkpoint that cannot help steps aside.

Each test runs a loop shaped like a rewritten one against a fault the checkpoint cannot
absorb and asserts what the original program would have produced, that the loop ran on,
and the one warning. The strict twins (``strict`` fixture) live next to the tests of each
error in test_runtime*.py; the same faults in real processes are in test_runtime_faults.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import runpy
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

from checkpointify import runtime
from checkpointify.runtime import Checkpoint, CheckpointError, checkpoint, key_fingerprint


@pytest.fixture(autouse=True)
def _in_tmp(runtime_sandbox: Callable[..., None]) -> None:
    runtime_sandbox(CHECKPOINTIFY_FSYNC="never", CHECKPOINTIFY_BATCH="off")


class Interrupted(Exception):
    pass


def loop(
    items: List[Any],
    body: Callable[[Any], Any],
    stop_at: int = -1,
    loop_id: str = "t::loop::acc",
    key: object = None,
    strict: Any = None,
) -> Tuple[List[Any], List[Any], Checkpoint[Any]]:
    """A rewritten loop with one list accumulator: (results, items run, the checkpoint).
    Raises Interrupted when ``stop_at`` units are done (closing the checkpoint, as the end
    of the process would)."""
    acc: List[Any] = []
    ran: List[Any] = []
    ckpt = checkpoint(loop_id, items, lambda: (acc,), key=key, strict=strict)
    [acc] = ckpt.restore()
    for item in ckpt:
        if len(acc) == stop_at:
            ckpt.close()
            raise Interrupted()
        ran.append(item)
        acc.append(body(item))
    ckpt.complete()
    return acc, ran, ckpt


def _warnings(err: str) -> List[str]:
    return [line for line in err.splitlines() if line.startswith("checkpointify: warning:")]


def _left() -> List[str]:
    folder = Path(".checkpointify")  # (its .gitignore is the folder's, not a loop's)
    return sorted(p.name for p in folder.iterdir() if p.name != ".gitignore") if folder.exists() else []


# --------------------------------------------------------------------- values and records


@pytest.mark.parametrize(
    "make",
    [Future, threading.Lock, lambda: (x for x in "ab"), lambda: open(os.devnull)],
    ids=["future", "lock", "generator", "open-file"],
)
def test_an_unpicklable_value_turns_checkpointing_off_and_the_loop_runs_on(
    make: Callable[[], Any], capfd: pytest.CaptureFixture[str]
) -> None:
    values = {3: make()}
    acc, ran, ckpt = loop(list(range(6)), lambda i: values.get(i, i))
    assert acc == [0, 1, 2, values[3], 4, 5] and ran == list(range(6))
    [warning] = _warnings(capfd.readouterr().err)
    assert (
        "t::loop::acc" in warning and "cannot be pickled" in warning and type(values[3]).__name__ in warning
    )
    assert ckpt.off is not None
    assert _left() == []  # the job succeeded: complete() removed what had been recorded


def test_strict_argument_keeps_raising_on_an_unpicklable_value() -> None:
    with pytest.raises(CheckpointError, match="cannot be pickled"):
        loop([1, 2], lambda i: threading.Lock(), strict=True)


def test_strict_argument_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKPOINTIFY_STRICT", "1")
    acc, _, ckpt = loop([1, 2], lambda i: threading.Lock(), strict=False)
    assert len(acc) == 2 and ckpt.off is not None


def test_records_written_before_the_failure_stay_valid_for_a_rerun_after_a_crash() -> None:
    """Checkpointing stops at the unpicklable unit; a crash after that resumes from the
    valid prefix, and the rest runs again: the result is the original's."""
    items = list(range(8))
    lock = threading.Lock()
    with pytest.raises(Interrupted):
        loop(items, lambda i: lock if i == 4 else i, stop_at=6)
    acc, ran, ckpt = loop(items, lambda i: i * 10)
    assert ckpt.restored_units == 4 and ran == items[4:]
    assert acc == [0, 1, 2, 3, 40, 50, 60, 70]


# ------------------------------------------------------------------------- stale logs


def test_changed_input_archives_the_log_and_starts_from_zero(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Interrupted):
        loop(["a", "b", "c", "d"], str.upper, stop_at=2)
    acc, ran, _ = loop(["a", "X", "c"], str.upper)
    assert acc == ["A", "X", "C"] and ran == ["a", "X", "c"]
    assert "archived it as" in capfd.readouterr().err
    assert [name.endswith(".stale") for name in _left()] == [True]


def test_an_inner_loop_reentered_with_other_input_starts_from_zero() -> None:
    """An outer loop that restarted from its first item meets the inner log of another."""
    with pytest.raises(Interrupted):
        loop([(2, n) for n in range(5)], lambda x: x[0] * x[1], stop_at=3)  # outer item 2, killed
    results = [loop([(outer, n) for n in range(5)], lambda x: x[0] * x[1])[0] for outer in range(3)]
    assert results == [[o * n for n in range(5)] for o in range(3)]


def test_a_log_with_another_number_of_accumulators_is_stale_not_fatal() -> None:
    with pytest.raises(Interrupted):
        loop([1, 2, 3], lambda i: i, stop_at=2)
    a: List[int] = []
    b: List[int] = []
    ckpt = checkpoint("t::loop::acc", [1, 2, 3], lambda: (a, b))
    [a, b] = ckpt.restore()
    for i in ckpt:
        a.append(i)
        b.append(-i)
    ckpt.complete()
    assert (a, b, ckpt.restored_units) == ([1, 2, 3], [-1, -2, -3], 0)


def test_explicit_on_stale_error_still_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Interrupted):
        loop([1, 2, 3], lambda i: i, stop_at=2)
    monkeypatch.setenv("CHECKPOINTIFY_ON_STALE", "error")
    with pytest.raises(runtime.StaleCheckpointError):
        loop([9, 2, 3], lambda i: i)


# --------------------------------------------------------------------- other instances


def test_threads_running_the_same_call_never_kill_each_other(capfd: pytest.CaptureFixture[str]) -> None:
    """An executor runs the same checkpointed function twice with the same arguments: the
    later call runs unchecked with a warning; both return the original's result."""
    started = threading.Barrier(2)

    def job(n: int) -> List[int]:
        def body(i: int) -> int:
            if i == 1:
                started.wait(timeout=30)  # both calls are inside their loops now
            return i * n

        return loop(list(range(4)), body, key=(n,))[0]

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(job, [3, 3]))
    assert results == [[0, 3, 6, 9]] * 2
    [warning] = _warnings(capfd.readouterr().err)
    # named as a thread when the first one registered its log already, else by the file lock
    assert "another thread of this process" in warning or "in use by process %d" % os.getpid() in warning
    assert _left() == []


def test_threads_with_different_arguments_each_get_their_own_checkpoint() -> None:
    def job(n: int) -> Tuple[List[int], int]:
        acc, _, ckpt = loop(list(range(50)), lambda i: i * n, key=(n,))
        return acc, ckpt.off is None

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(job, range(8)))
    assert results == [([i * n for i in range(50)], True) for n in range(8)]


def test_a_retried_call_in_the_same_thread_takes_over_and_the_old_one_steps_aside() -> None:
    acc: List[int] = []
    old = checkpoint("t::retry::acc", [1, 2, 3], lambda: (acc,))
    [acc] = old.restore()
    first = next(iter(old))
    acc.append(first)
    done, _, new = loop([1, 2, 3], lambda i: i, loop_id="t::retry::acc")
    assert done == [1, 2, 3] and new.off is None
    assert list(old) == [2, 3]  # the abandoned one runs on unchecked
    assert old.off is not None and "took over" in old.off
    values: List[int] = []
    again = checkpoint("t::retry::acc", [1, 2, 3], lambda: (values,))
    [values] = again.restore()
    items = iter(again)
    values.append(next(items))
    values.append(next(items))  # unit 1 is recorded: the log exists
    assert again.path.exists()
    old.complete()  # hands off: the log is the newest call's now
    assert again.path.exists() and again.off is None
    values.extend(items)
    assert values == [1, 2, 3] and again.off is None


def test_a_pool_of_processes_running_the_same_function() -> None:
    """multiprocessing.Pool workers (forked): each call keyed by its arguments gets its own
    log; equal calls at the same moment: one runs unchecked; all results are right."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with context.Pool(3) as pool:
        results = pool.map(_pool_job, [1, 2, 3, 1, 2, 3])
    assert results == [[i * n for i in range(20)] for n in [1, 2, 3, 1, 2, 3]]
    assert _left() == []


def _pool_job(n: int) -> List[int]:
    return loop(list(range(20)), lambda i: i * n, key=(n,))[0]


# --------------------------------------------------------------------- never mix two runs


@dataclasses.dataclass(frozen=True)
class Settings:
    model: str
    temperature: float


@pytest.mark.parametrize(
    "one,other",
    [
        (argparse.Namespace(model="small", n=3), argparse.Namespace(model="large", n=3)),
        (Settings("small", 0.0), Settings("small", 0.7)),
        ({"model": "small", "top": [1, 2]}, {"model": "small", "top": [1, 3]}),
        (Path("data/a.csv"), Path("data/b.csv")),
        ([1, 2, 3], [1, 2, 4]),
    ],
    ids=["namespace", "dataclass", "settings-dict", "path", "list"],
)
def test_keys_count_by_value(one: object, other: object) -> None:
    assert key_fingerprint(one) != key_fingerprint(other)
    assert key_fingerprint(one) == key_fingerprint(
        type(one)(**vars(one)) if isinstance(one, argparse.Namespace) else one
    )


def test_a_run_with_another_option_never_resumes_the_first() -> None:
    """``--model small`` then ``--model large`` over the same input: separate logs."""
    items = list(range(6))
    with pytest.raises(Interrupted):
        loop(items, lambda i: ("small", i), stop_at=3, key=(argparse.Namespace(model="small"),))
    acc, ran, ckpt = loop(items, lambda i: ("large", i), key=(argparse.Namespace(model="large"),))
    assert ckpt.restored_units == 0 and acc == [("large", i) for i in items]
    acc, ran, ckpt = loop(items, lambda i: ("small", i), key=(argparse.Namespace(model="small"),))
    assert ckpt.restored_units == 3 and ran == items[3:]


def test_dict_keys_do_not_depend_on_insertion_order() -> None:
    assert key_fingerprint({"a": 1, "b": 2}) == key_fingerprint({"b": 2, "a": 1})


JOB = """
from checkpointify.runtime import checkpoint

def run(items, body):
    acc = []
    ckpt = checkpoint("run.py::<module>::acc", items, lambda: (acc,))
    [acc] = ckpt.restore()
    for item in ckpt:
        acc.append(body(item))
        if len(acc) == 2 and STOP:
            ckpt.close()
            return None
    ckpt.complete()
    return acc, ckpt
"""


def _script(path: Path, stop: bool) -> Dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(JOB.replace("STOP", repr(stop)))
    return runpy.run_path(str(path))


@pytest.mark.parametrize("copy", ["b/run.py", "a/job_v2.py"], ids=["same-name-other-folder", "renamed-copy"])
def test_copies_of_a_script_never_share_a_log(copy: str, tmp_path: Path) -> None:
    """The literal id ("run.py::...") travels with the copy; the runtime names the file."""
    assert _script(tmp_path / "a" / "run.py", stop=True)["run"]([1, 2, 3, 4], lambda i: i) is None
    acc, ckpt = _script(tmp_path / copy, stop=False)["run"]([1, 2, 3, 4], lambda i: -i)
    assert acc == [-1, -2, -3, -4] and ckpt.restored_units == 0
    assert ckpt.loop_id.endswith(copy + "::<module>::acc")
    acc, ckpt = _script(tmp_path / "a" / "run.py", stop=False)["run"]([1, 2, 3, 4], lambda i: i)
    assert acc == [1, 2, 3, 4] and ckpt.restored_units == 1  # the unit in flight at close() runs again


def test_the_file_part_is_relative_to_the_project_root(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text("")
    _, ckpt = _script(tmp_path / "proj" / "jobs" / "run.py", stop=False)["run"]([1], lambda i: i)
    assert ckpt.loop_id == "jobs/run.py::<module>::acc"


def test_an_id_without_a_file_part_is_kept() -> None:
    assert loop([1], lambda i: i, loop_id="my-loop")[2].loop_id == "my-loop"
