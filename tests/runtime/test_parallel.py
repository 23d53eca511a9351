"""``parallel()``: results recorded per input from pool threads, pool processes and an event loop.

Every crash test runs a real program in a subprocess, kills it with SIGKILL once some
results were delivered, re-runs it and checks that (1) the output equals an uninterrupted
run's, (2) no input whose result the killed run had delivered was run again, (3) nothing
is left behind. The fault tests use real unpicklable results and real strict mode.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.runtime_programs import program_env, run_program, worklog, write_program

PROGRAM = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from checkpointify.runtime import parallel

    MODE = sys.argv[1]
    ITEMS = list(range(24))
    LOG = os.environ["WORKLOG"]
    DELAY = float(os.environ.get("WORK_DELAY", "0.05"))

    def note(text):
        with open(LOG, "a") as handle:
            handle.write(text + "\\n")

    def work(x):
        note("start %d" % x)
        time.sleep(DELAY)
        return {"x": x, "square": x * x}

    async def awork(x):
        note("start %d" % x)
        await asyncio.sleep(DELAY)
        return {"x": x, "square": x * x}

    par = parallel("prog.py::<module>::" + MODE)
    results = []
    if MODE == "threads":
        from concurrent.futures import ThreadPoolExecutor, as_completed
        with ThreadPoolExecutor(max_workers=4) as ex:
            futures = {par.submit(ex, work, x): x for x in ITEMS}
            for fut in as_completed(futures):
                results.append(fut.result())
                note("done %d" % futures[fut])
        results.sort(key=lambda r: r["x"])
    elif MODE == "processes":
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(3) as pool:
            for r in par.map(pool, "imap_unordered", work, ITEMS):
                results.append(r)
                note("done %d" % r["x"])
        results.sort(key=lambda r: r["x"])
    elif MODE == "executor-processes":
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=3) as ex:
            for r in par.map(ex, "map", work, ITEMS):
                results.append(r)
                note("done %d" % r["x"])
    elif MODE == "joblib":
        from joblib import Parallel, delayed
        def noted(x):
            r = work(x)
            note("done %d" % x)  # in the worker: the result is recorded in the parent just after
            return r
        results = par.joblib(Parallel(n_jobs=3, batch_size=1), (delayed(noted)(x) for x in ITEMS))
    elif MODE == "asyncio":
        async def main():
            sem = asyncio.Semaphore(4)
            async def bounded(x):
                async with sem:
                    r = await awork(x)
                note("done %d" % x)
                return r
            return await asyncio.gather(*(par.acall(bounded, x) for x in ITEMS))
        results = asyncio.run(main())
    with open("out.json", "w") as out:
        json.dump(results, out)
    par.complete()
    """
)

MODES = ["threads", "processes", "executor-processes", "joblib", "asyncio"]


@pytest.mark.parametrize("mode", MODES)
def test_killed_run_resumes_without_resubmitting_completed_inputs(mode: str, tmp_path: Path) -> None:
    clean = write_program(tmp_path / "clean", PROGRAM)
    done = run_program(clean, mode)
    assert done.returncode == 0, done.stderr
    expected = (clean / "out.json").read_bytes()
    assert not (clean / ".checkpointify").exists()

    crashed = write_program(tmp_path / "crashed", PROGRAM)
    proc = subprocess.Popen(
        [sys.executable, "prog.py", mode], cwd=crashed, env=program_env(crashed), stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while sum(line.startswith("done") for line in worklog(crashed)) < 8:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.005)
    while mode == "joblib" and not list(crashed.glob(".checkpointify/*.ckpt")):
        # "done" is noted in the worker: wait for the parent to receive and record a result
        assert proc.poll() is None and time.monotonic() < deadline, "nothing recorded"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = worklog(crashed)
    delivered = {line.split()[1] for line in before if line.startswith("done")}
    if mode == "joblib":
        delivered = set()  # noted by the worker, not where the result is recorded: counted below
    assert (crashed / ".checkpointify").exists()
    assert not (crashed / "out.json").exists()

    (crashed / "worklog.txt").unlink()
    resumed = run_program(crashed, mode)
    assert resumed.returncode == 0, resumed.stderr
    started_again = {line.split()[1] for line in worklog(crashed) if line.startswith("start")}
    assert not delivered & started_again, "inputs whose results were delivered before the kill ran again"
    # An input neither run again nor delivered is not a lost one: results are recorded as they
    # complete (a future's callback, a pool's callback), so a result that finished before the kill
    # while the loop still waited for an earlier input is restored without having been delivered.
    # What must hold: every input not run again was restored (counted below against the report),
    # and the output, which holds every input's result, equals the uninterrupted run's.
    not_run_again = {str(x) for x in range(24)} - started_again
    assert (crashed / "out.json").read_bytes() == expected
    assert "results restored" in resumed.stderr
    restored = int(resumed.stderr.split(" results restored")[0].rsplit(" ", 1)[1])
    assert restored >= 8 if mode != "joblib" else restored >= 1
    assert len(not_run_again) == restored, "exactly the restored inputs were skipped"
    assert not (crashed / ".checkpointify").exists(), "the log was left after success"

    # a run after success starts from zero
    (crashed / "worklog.txt").unlink()
    again = run_program(crashed, mode)
    assert again.returncode == 0, again.stderr
    assert sum(line.startswith("start") for line in worklog(crashed)) == 24


UNPICKLABLE = textwrap.dedent(
    """
    import json, threading
    from concurrent.futures import ThreadPoolExecutor
    from checkpointify.runtime import parallel

    def work(x):
        # a lock in the result: a thread pool hands it back, pickle refuses it
        return {"x": x, "lock": threading.Lock()} if x == 3 else {"x": x}

    par = parallel("prog.py::<module>::results")
    with ThreadPoolExecutor(max_workers=2) as ex:
        results = [f.result() for f in [par.submit(ex, work, x) for x in range(8)]]
    with open("out.json", "w") as out:
        json.dump([r["x"] for r in results], out)
    par.complete()
    """
)


def test_unpicklable_result_warns_once_and_steps_aside(tmp_path: Path) -> None:
    where = write_program(tmp_path, UNPICKLABLE)
    done = run_program(where, "-")
    assert done.returncode == 0, done.stderr
    assert (where / "out.json").read_text() == json_list(range(8))
    assert done.stderr.count("warning") == 1, done.stderr
    assert "cannot be pickled" in done.stderr
    assert not (where / ".checkpointify").exists()


def test_unpicklable_result_raises_in_strict_mode(tmp_path: Path) -> None:
    where = write_program(tmp_path, UNPICKLABLE)
    done = run_program(where, "-", CHECKPOINTIFY_STRICT="1")
    assert done.returncode != 0
    assert "CheckpointError" in done.stderr and "cannot be pickled" in done.stderr
    assert not (where / "out.json").exists()


def json_list(values: object) -> str:
    import json

    return json.dumps(list(values))  # type: ignore[call-overload]


def test_equal_inputs_are_separate_units_and_keys_separate_sites(tmp_path: Path) -> None:
    from checkpointify.runtime import parallel

    par = parallel("t.py::f::r", directory=tmp_path)
    a, b = par.key(len, ("x",)), par.key(len, ("x",))
    assert a != b and a[0] == b[0]
    par.record(a, 1)
    assert par.done(a) and not par.done(b)
    # asking what is pending does not count as calling: the next key is still the third call's
    assert par.pending(["x", "x", "y"], len) == ["x", "y"]
    assert par.key(len, ("x",)) == (a[0], 2)
    par.complete()
    assert not list(tmp_path.glob("*.ckpt"))


class _OtherLibraryPool:
    """A pool with map() but neither submit() nor apply_async() (pathos' ProcessingPool)."""

    def map(self, fn, *iterables):  # type: ignore[no-untyped-def]
        return list(map(fn, *iterables))


def test_a_pool_without_per_input_calls_runs_unchecked_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from checkpointify.runtime import CheckpointError, parallel

    par = parallel("t.py::<module>::rows", directory=tmp_path, strict=False)
    assert par.map(_OtherLibraryPool(), "map", abs, [-1, -2, 3]) == [1, 2, 3]
    assert par.map(_OtherLibraryPool(), "map", abs, [-4]) == [4]
    assert capsys.readouterr().err.count("warning") == 1
    par.complete()
    strict = parallel("t.py::<module>::rows", directory=tmp_path, strict=True)
    with pytest.raises(CheckpointError, match="neither submit"):
        strict.map(_OtherLibraryPool(), "map", abs, [-1])


@pytest.mark.parametrize("mode", ["threads", "asyncio"])
def test_disk_full_warns_once_and_the_work_runs_on(mode: str, tmp_path: Path) -> None:
    clean = write_program(tmp_path / "clean", PROGRAM)
    assert run_program(clean, mode).returncode == 0
    full = write_program(tmp_path / "full", PROGRAM)
    done = run_program(full, mode, CHECKPOINTIFY_FAULT="enospc:3")
    assert done.returncode == 0, done.stderr
    assert (full / "out.json").read_bytes() == (clean / "out.json").read_bytes()
    assert done.stderr.count("warning") == 1 and "No space left" in done.stderr
    strict = write_program(tmp_path / "strict", PROGRAM)
    failed = run_program(strict, mode, CHECKPOINTIFY_FAULT="enospc:3", CHECKPOINTIFY_STRICT="1")
    assert failed.returncode != 0 and "CheckpointWriteError" in failed.stderr
    assert not (strict / "out.json").exists()


@pytest.mark.parametrize("point", ["mid-record", "after-write", "before-write"])
def test_a_crash_while_a_result_is_written_resumes_from_the_valid_records(point: str, tmp_path: Path) -> None:
    clean = write_program(tmp_path / "clean", PROGRAM)
    assert run_program(clean, "threads").returncode == 0
    crashed = write_program(tmp_path / "crashed", PROGRAM)
    died = run_program(crashed, "threads", CHECKPOINTIFY_FAULT="%s:6" % point)
    assert died.returncode == 137, died.stderr
    delivered = {line.split()[1] for line in worklog(crashed) if line.startswith("done")}
    (crashed / "worklog.txt").unlink()
    resumed = run_program(crashed, "threads")
    assert resumed.returncode == 0, resumed.stderr
    again = {line.split()[1] for line in worklog(crashed) if line.startswith("start")}
    assert not delivered & again
    recorded = 6 if point == "after-write" else 5  # the 6th write died before, within or after it
    assert len(again) == 24 - recorded, "exactly the recorded results are skipped"
    assert ("dropped" in resumed.stderr) == (point == "mid-record")  # the torn record is cut off
    assert (crashed / "out.json").read_bytes() == (clean / "out.json").read_bytes()
    assert not (crashed / ".checkpointify").exists()
