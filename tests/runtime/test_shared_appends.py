"""``shared_appends()``: coroutines that append to a shared list, each call's appends
recorded when it completes.

The crash test runs a real asyncio program in a subprocess with many coroutines in flight
whose appends interleave, kills it with SIGKILL once some calls completed, re-runs it and
checks that (1) the output equals an uninterrupted run's after the program's own sorting,
(2) no call that completed before the kill ran again, but the one the kill may catch between
its last line and its record (calls are counted in a file), (3)
nothing is left behind. The fault tests use real unpicklable values, a real leftover task
and real strict mode.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.support.runtime_programs import program_env, run_program, worklog, write_program

ITEMS = 40

PROGRAM = textwrap.dedent(
    """
    import asyncio, json, os, random
    from checkpointify.runtime import shared_appends

    LOG = os.environ["WORKLOG"]

    def note(text):
        with open(LOG, "a") as handle:
            handle.write(text + "\\n")

    par = shared_appends("prog.py::<module>::results")
    results = []

    async def process(item, sem, shared):
        async with sem:
            note("start " + str(item))
            # two appends with an await between them: the calls' appends interleave
            par.append(shared, {"id": item, "part": 0})
            await asyncio.sleep(random.uniform(0.01, 0.08))
            par.append(shared, {"id": item, "part": 1, "square": item * item})
            note("done " + str(item))

    async def main(items, shared):
        sem = asyncio.Semaphore(8)
        tasks = [asyncio.create_task(par.appends(shared, process, x, sem, shared)) for x in items]
        await asyncio.gather(*tasks)

    asyncio.run(main(list(range(ITEMS)), results))
    results.sort(key=lambda r: (r["id"], r["part"]))
    with open("out.json", "w") as out:
        json.dump(results, out)
    par.complete()
    """
).replace("ITEMS", str(ITEMS))


def test_killed_event_loop_resumes_without_rerunning_completed_calls(tmp_path: Path) -> None:
    clean = write_program(tmp_path / "clean", PROGRAM)
    done = run_program(clean)
    assert done.returncode == 0, done.stderr
    expected = (clean / "out.json").read_bytes()
    assert not (clean / ".checkpointify").exists()

    crashed = write_program(tmp_path / "crashed", PROGRAM)
    proc = subprocess.Popen(
        [sys.executable, "prog.py"], cwd=crashed, env=program_env(crashed), stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while sum(line.startswith("done") for line in worklog(crashed)) < 12:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = worklog(crashed)
    completed = {line.split()[1] for line in before if line.startswith("done")}
    in_flight = {line.split()[1] for line in before if line.startswith("start")} - completed
    assert in_flight, "the kill should land with calls in flight (8 run at once)"
    assert (crashed / ".checkpointify").exists()
    assert not (crashed / "out.json").exists()

    (crashed / "worklog.txt").unlink()
    resumed = run_program(crashed)
    assert resumed.returncode == 0, resumed.stderr
    started_again = [line.split()[1] for line in worklog(crashed) if line.startswith("start")]
    # A call notes "done" as its last line and is recorded as it returns, in the same step of
    # the event loop; a SIGKILL that lands between the two makes that one call run again.
    # One task runs at a time, so no more than one can be caught there.
    redone = completed & set(started_again)
    assert len(redone) <= 1, "calls that completed before the kill ran again: %s" % sorted(redone)
    assert len(started_again) == len(set(started_again)), "a call ran twice in the resumed run"
    assert set(started_again) | completed == {str(x) for x in range(ITEMS)}, "a call was never made"
    # the partial appends of the calls in flight were not replayed: each value is there once
    assert (crashed / "out.json").read_bytes() == expected
    restored = int(resumed.stderr.split(" results restored")[0].rsplit(" ", 1)[1])
    assert restored == ITEMS - len(started_again), "exactly the restored calls were skipped"
    assert not (crashed / ".checkpointify").exists(), "the log was left after success"

    (crashed / "worklog.txt").unlink()
    again = run_program(crashed)
    assert again.returncode == 0, again.stderr
    assert sum(line.startswith("start") for line in worklog(crashed)) == ITEMS


LEFTOVER = textwrap.dedent(
    """
    import asyncio, json
    from checkpointify.runtime import shared_appends

    par = shared_appends("prog.py::<module>::results")
    results = []
    late = []

    async def process(item):
        par.append(results, item)
        if item == 2:
            async def after():
                await asyncio.sleep(0.05)
                par.append(results, "late")   # the call it runs under has completed
            late.append(asyncio.ensure_future(after()))

    async def main():
        await asyncio.gather(*(par.appends(results, process, x) for x in range(5)))
        await asyncio.gather(*late)

    asyncio.run(main())
    with open("out.json", "w") as out:
        json.dump(sorted(results, key=str), out)
    par.complete()
    """
)


def test_an_append_after_its_call_completed_warns_once_and_the_program_runs_on(tmp_path: Path) -> None:
    where = write_program(tmp_path / "p", LEFTOVER)
    done = run_program(where)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning") == 1
    assert "cannot be attributed" in done.stderr
    assert (where / "out.json").read_text() == '[0, 1, 2, 3, 4, "late"]'
    assert not (where / ".checkpointify").exists()


def test_an_append_after_its_call_completed_raises_in_strict_mode(tmp_path: Path) -> None:
    where = write_program(tmp_path / "p", LEFTOVER)
    done = run_program(where, CHECKPOINTIFY_STRICT="1")
    assert done.returncode != 0
    assert "CheckpointError" in done.stderr and "cannot be attributed" in done.stderr


UNPICKLABLE = textwrap.dedent(
    """
    import asyncio, json, threading
    from checkpointify.runtime import shared_appends

    par = shared_appends("prog.py::<module>::results")
    results = []

    async def process(item):
        # a lock in the value: the list takes it, pickle refuses it
        par.append(results, {"x": item, "lock": threading.Lock()} if item == 3 else {"x": item})

    async def main():
        await asyncio.gather(*(par.appends(results, process, x) for x in range(6)))

    asyncio.run(main())
    with open("out.json", "w") as out:
        json.dump(sorted(r["x"] for r in results), out)
    par.complete()
    """
)


def test_an_unpicklable_value_warns_once_and_the_work_runs_on(tmp_path: Path) -> None:
    where = write_program(tmp_path / "p", UNPICKLABLE)
    done = run_program(where)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning") == 1
    assert "cannot be pickled" in done.stderr
    assert (where / "out.json").read_text() == "[0, 1, 2, 3, 4, 5]"
    assert not (where / ".checkpointify").exists()


def test_plumbing_arguments_do_not_change_a_call_key(tmp_path: Path) -> None:
    """A semaphore whose state differs, and the shared list itself, count by type only."""
    program = textwrap.dedent(
        """
        import asyncio, sys
        from checkpointify.runtime import shared_appends

        async def work(x, sem, shared):
            pass

        async def main():
            results = []
            par = shared_appends("prog.py::<module>::results", directory=sys.argv[1])
            first = par.key(work, (1, asyncio.Semaphore(3), results))
            results.append("grown")
            sem = asyncio.Semaphore(3)
            await sem.acquire()
            from checkpointify.runtime.shared import _inputs
            a = par.key(work, _inputs((1, asyncio.Semaphore(3), results), results))
            b = par.key(work, _inputs((1, sem, results), results))
            c = par.key(work, _inputs((2, sem, results), results))
            print(a[0] == b[0], a[0] == c[0], first[0] == a[0])

        asyncio.run(main())
        """
    )
    where = write_program(tmp_path / "p", program)
    done = subprocess.run(
        [sys.executable, "prog.py", str(tmp_path / "logs")],
        cwd=where,
        env=program_env(where),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "False"]
