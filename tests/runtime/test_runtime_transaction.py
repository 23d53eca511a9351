"""``checkpoint(..., transaction=conn)``: the records live in the connection's own database.

Real processes, a real SQLite file, real crashes (``CHECKPOINTIFY_FAULT`` points that exit
like ``kill -9``, and real SIGKILLs). The oracle is the database itself: every row exactly
once, the rows of an uninterrupted run, and no ``checkpointify_log`` table left behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from checkpointify import runtime
from checkpointify.runtime import (
    CheckpointError,
    CheckpointLockedError,
    StaleCheckpointError,
    checkpoint,
)

SRC = Path(__file__).resolve().parents[2] / "src"

# A rewritten CKP002 loop (the shape the transformer emits), with knobs for the tests.
JOB = """\
import json, os, sqlite3, sys, time
from checkpointify.runtime import checkpoint

cfg = json.loads(os.environ["JOB"])
conn = sqlite3.connect("data.db", **cfg.get("connect", {}))
conn.execute("CREATE TABLE IF NOT EXISTS rows (n INTEGER, v TEXT)")
for statement in cfg.get("before", []):
    conn.execute(statement)
total = 0
ckpt = checkpoint("job.py::<module>::conn", list(range(cfg["n"])), lambda: (total,), transaction=conn)
[total] = ckpt.restore()
for n in ckpt:
    with open("worklog.txt", "a") as log:
        log.write("%d\\n" % n)
    conn.execute("INSERT INTO rows VALUES (?, ?)", (n, "first-%d" % n))
    if n == cfg.get("hold_at"):  # a handshake: the unit's transaction is open (see the test)
        open("holding", "w").close()
        while not os.path.exists("release"):
            time.sleep(0.005)
    time.sleep(cfg.get("delay", 0))
    if n == cfg.get("break_at"):
        break
    conn.execute("INSERT INTO rows VALUES (?, ?)", (n, "second-%d" % n))
    total += n
conn.commit()
if cfg.get("hold_before_complete"):  # committed, not completed yet: its rows are all there
    open("holding", "w").close()
    while not os.path.exists("release"):
        time.sleep(0.005)
if cfg.get("crash_before_complete"):
    os._exit(137)
ckpt.complete()
conn.close()
print(json.dumps({"total": total}))
"""


@pytest.fixture(autouse=True)
def _in_tmp(runtime_sandbox: Callable[..., None]) -> None:
    # every unit is committed before the next starts (microsecond units would share a
    # transaction otherwise); the random-kill test runs the default policy
    runtime_sandbox(CHECKPOINTIFY_BATCH="off")


def job_env(config: Dict[str, Any], **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINTIFY_")}
    env.update(
        PYTHONPATH=str(SRC), JOB=json.dumps(config), CHECKPOINTIFY_BATCH=os.environ["CHECKPOINTIFY_BATCH"]
    )
    env.update(extra)
    return env


def run_job(
    where: Path, config: Dict[str, Any], fault: str = "", check: bool = True
) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    (where / "job.py").write_text(JOB)
    env = job_env(config, CHECKPOINTIFY_FAULT=fault) if fault else job_env(config)
    done = subprocess.run(
        [sys.executable, "job.py"], cwd=where, env=env, capture_output=True, text=True, timeout=60
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def rows(where: Path) -> List[Tuple[int, str]]:
    conn = sqlite3.connect(str(where / "data.db"))
    try:
        return sorted(conn.execute("SELECT n, v FROM rows").fetchall())
    finally:
        conn.close()


def tables(where: Path) -> List[str]:
    conn = sqlite3.connect(str(where / "data.db"))
    try:
        return sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        conn.close()


def progress_rows(where: Path) -> List[int]:
    conn = sqlite3.connect(str(where / "data.db"))
    try:
        return [r[0] for r in conn.execute("SELECT seq FROM checkpointify_log ORDER BY seq")]
    finally:
        conn.close()


def worklog(where: Path) -> List[int]:
    path = where / "worklog.txt"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def full(n: int) -> List[Tuple[int, str]]:
    return sorted([(i, "first-%d" % i) for i in range(n)] + [(i, "second-%d" % i) for i in range(n)])


def uninterrupted(tmp_path: Path, config: Dict[str, Any]) -> Tuple[List[Tuple[int, str]], str]:
    where = tmp_path / "reference"
    where.mkdir()
    done = run_job(where, config)
    return rows(where), done.stdout


@pytest.mark.parametrize(
    "fault, committed",
    [
        ("before-write:3", 3),  # the unit's writes are in the transaction, its record is not yet
        ("after-write:3", 3),  # writes and record inserted, killed before the commit
        ("after-commit:3", 4),  # killed right after the commit
    ],
)
def test_a_crash_around_the_commit_leaves_exactly_the_committed_units(
    tmp_path: Path, fault: str, committed: int
) -> None:
    config = {"n": 8}
    expected_rows, expected_out = uninterrupted(tmp_path, config)
    assert expected_rows == full(8)
    crashed = run_job(tmp_path, config, fault=fault, check=False)
    assert crashed.returncode == 137, crashed.stderr
    assert rows(tmp_path) == full(committed)  # the unit in flight was rolled back with its record
    assert len([s for s in progress_rows(tmp_path) if s >= 0]) == committed
    (tmp_path / "worklog.txt").unlink()
    done = run_job(tmp_path, config)
    assert worklog(tmp_path) == list(range(committed, 8))  # committed units are skipped...
    assert rows(tmp_path) == expected_rows  # ...and nothing is written twice
    assert done.stdout == expected_out  # the accumulator is restored from the records
    assert "checkpointify_log" not in tables(tmp_path)


def test_random_sigkills_never_lose_or_repeat_a_committed_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "auto")  # the default policy: 20 ms units are not batched
    config = {"n": 12, "delay": 0.02}
    expected_rows, expected_out = uninterrupted(tmp_path, config)
    rng = random.Random(4)
    for trial in range(4):
        where = tmp_path / ("trial%d" % trial)
        where.mkdir()
        (where / "job.py").write_text(JOB)
        env = job_env(config)
        proc = subprocess.Popen([sys.executable, "job.py"], cwd=where, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        wanted = rng.randint(2, 9)
        while len(worklog(where)) < wanted and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.025))  # anywhere in a unit, or in its commit
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = worklog(where)
        (where / "worklog.txt").unlink()
        done = run_job(where, config)
        after = worklog(where)
        assert rows(where) == expected_rows, "trial %d: rows lost or written twice" % trial
        assert done.stdout == expected_out
        assert after == list(range(after[0], 12)) if after else True
        redone = len(before) - (after[0] if after else 12)
        assert 0 <= redone <= 1, "trial %d: completed units ran again: %s" % (trial, before[-redone:])
        assert "checkpointify_log" not in tables(where)


def test_break_then_commit_then_crash_before_complete_writes_nothing_twice(tmp_path: Path) -> None:
    config = {"n": 10, "break_at": 5}
    expected_rows, _ = uninterrupted(tmp_path, config)
    # the unit that breaks wrote its first row; the user's commit after the loop commits it
    assert expected_rows == sorted(full(5) + [(5, "first-5")])
    crashed = run_job(tmp_path, dict(config, crash_before_complete=True), check=False)
    assert crashed.returncode == 137
    assert rows(tmp_path) == expected_rows
    assert -2 in progress_rows(tmp_path)  # the open marker, committed by the user's commit
    (tmp_path / "worklog.txt").unlink()
    done = run_job(tmp_path, config)
    assert worklog(tmp_path) == []  # unit 5 is not run again: its row is already committed
    assert "the loop ends there again" in done.stderr
    assert rows(tmp_path) == expected_rows
    assert "checkpointify_log" not in tables(tmp_path)


def test_a_unit_that_raises_is_rolled_back_and_runs_again(tmp_path: Path) -> None:
    program = JOB.replace(
        '    if n == cfg.get("break_at"):',
        '    if n == cfg.get("raise_at"):\n        raise SystemExit(3)\n    if n == cfg.get("break_at"):',
    )
    (tmp_path / "job.py").write_text(program)
    env = job_env({"n": 6, "raise_at": 2})
    done = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=env, capture_output=True)
    assert done.returncode == 3
    assert rows(tmp_path) == full(2)  # unit 2's first row was rolled back with it
    env["JOB"] = json.dumps({"n": 6})
    (tmp_path / "worklog.txt").unlink()
    subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=env, check=True, capture_output=True)
    assert worklog(tmp_path) == [2, 3, 4, 5]
    assert rows(tmp_path) == full(6)


def test_statements_before_the_loop_share_the_first_units_transaction(tmp_path: Path) -> None:
    config = {"n": 4, "before": ["INSERT INTO rows VALUES (-1, 'before')"]}
    crashed = run_job(tmp_path, config, fault="before-write:0", check=False)
    assert crashed.returncode == 137
    # restore() committed nothing: the statement before the loop was rolled back with unit 0
    assert rows(tmp_path) == []
    run_job(tmp_path, config)
    assert rows(tmp_path) == sorted(full(4) + [(-1, "before")])
    assert "checkpointify_log" not in tables(tmp_path)


def test_complete_drops_the_table_only_when_no_other_loop_has_rows(tmp_path: Path) -> None:
    conn = sqlite3.connect("data.db")
    conn.execute("CREATE TABLE rows (n INTEGER)")
    other = checkpoint("other::loop::conn", range(5), transaction=conn)
    other.restore()
    for n in other:
        conn.execute("INSERT INTO rows VALUES (?)", (n,))
        if n == 2:
            break  # the other loop stops mid-way: its records stay
    conn.rollback()
    mine = checkpoint("mine::loop::conn", range(3), transaction=conn)
    assert mine.restore() == []
    for n in mine:
        conn.execute("INSERT INTO rows VALUES (?)", (n + 100,))
    conn.commit()
    mine.complete()
    assert {r[0] for r in conn.execute("SELECT DISTINCT log_id FROM checkpointify_log")} == {
        runtime.log_name("other::loop::conn")[: -len(".ckpt")]
    }
    again = checkpoint("other::loop::conn", range(5), transaction=conn)
    again.restore()
    assert again.restored_units == 2
    assert list(again) == [2, 3, 4]
    conn.commit()
    again.complete()
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["rows"]
    assert not Path(".checkpointify").exists()  # nothing went to a file


def test_a_second_process_never_records_a_unit_twice(tmp_path: Path) -> None:
    """Two processes run the same loop at once: the first holds unit #1 open (its rows and
    the open marker inserted, not committed) until the second has finished, so the second
    always meets the first's open transaction. A handshake through files, not timing: the
    second starts only once the first says it holds the unit, and the first goes on only
    once the second has exited."""
    (tmp_path / "job.py").write_text(JOB)
    first = subprocess.Popen(
        [sys.executable, "job.py"],
        cwd=tmp_path,
        env=job_env({"n": 10, "hold_at": 1}),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "holding").exists():
        assert first.poll() is None, first.communicate()[1]
        assert time.monotonic() < deadline, "the first process never reached unit #1"
        time.sleep(0.005)
    # the second waits at most 0.2 s for the first's write lock, then gives up
    second = subprocess.run(
        [sys.executable, "job.py"],
        cwd=tmp_path,
        env=job_env({"n": 10, "connect": {"timeout": 0.2}}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    (tmp_path / "release").touch()
    first_error = first.communicate(timeout=60)[1]
    assert first.returncode == 0, first_error
    # the second finds the loop's lock held: it steps aside before reading a row (rows that
    # a running process committed are no run to resume) and runs as the original would; its
    # first insert then meets the first's open transaction, exactly as the original's would
    assert second.returncode == 1, second.stderr
    assert "is in use by process %d" % first.pid in second.stderr, second.stderr
    assert "Checkpointing of this loop is off" in second.stderr
    assert "OperationalError: database is locked" in second.stderr, second.stderr
    assert sorted(worklog(tmp_path)) == sorted(list(range(10)) + [0])  # its unit 0 ran, unchecked
    assert rows(tmp_path) == full(10)
    assert "checkpointify_log" not in tables(tmp_path)


def test_a_second_process_never_resumes_a_running_one(tmp_path: Path) -> None:
    """The first process has committed every unit but not completed yet; a second copy of
    the job starts on the same database. Before, the second read the first's rows and
    "resumed" them: it skipped every unit and wrote nothing, where the original would have
    written all its rows. Now it finds the loop's lock held, steps aside loudly before
    reading a row, and does what the original does: both processes' rows are there."""
    (tmp_path / "job.py").write_text(JOB)
    first = subprocess.Popen(
        [sys.executable, "job.py"],
        cwd=tmp_path,
        env=job_env({"n": 6, "hold_before_complete": True}),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "holding").exists():
        assert first.poll() is None, first.communicate()[1]
        assert time.monotonic() < deadline, "the first process never finished its loop"
        time.sleep(0.005)
    second = run_job(tmp_path, {"n": 6})
    assert "is in use by process %d" % first.pid in second.stderr, second.stderr
    assert "resuming" not in second.stderr
    assert json.loads(second.stdout) == {"total": 15}
    (tmp_path / "release").touch()
    assert first.communicate(timeout=60)[1].count("warning") == 0
    assert first.returncode == 0
    assert rows(tmp_path) == sorted(full(6) * 2)  # what two runs of the original write
    assert worklog(tmp_path) == list(range(6)) * 2
    assert "checkpointify_log" not in tables(tmp_path)
    assert not (tmp_path / ".checkpointify").exists()


def test_changed_input_is_stale_and_restart_deletes_the_rows(
    strict: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sqlite3.connect("data.db")
    ckpt = checkpoint("job::loop::conn", ["a", "b", "c"], transaction=conn)
    ckpt.restore()
    for item in ckpt:
        if item == "c":
            break
    conn.rollback()
    changed = checkpoint("job::loop::conn", ["a", "x", "c"], transaction=conn)
    with pytest.raises(StaleCheckpointError, match="DELETE FROM checkpointify_log WHERE log_id"):
        changed.restore()
    monkeypatch.setenv("CHECKPOINTIFY_ON_STALE", "restart")
    restarted = checkpoint("job::loop::conn", ["a", "x", "c"], transaction=conn)
    restarted.restore()
    assert list(restarted) == ["a", "x", "c"]
    conn.commit()
    restarted.complete()
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_a_while_loop_and_accumulators_in_the_database() -> None:
    conn = sqlite3.connect("data.db")
    conn.execute("CREATE TABLE pages (page INTEGER)")
    pages: List[int] = []
    page = 1
    ckpt = checkpoint("job::loop::pages,page", state=lambda: (pages, page), transaction=conn)
    [pages, page] = ckpt.restore()
    while ckpt.advance() and page <= 5:
        conn.execute("INSERT INTO pages VALUES (?)", (page,))
        pages.append(page)
        page += 1
        if page == 4:
            break
    conn.rollback()  # the process dies: unit 3 is rolled back
    pages, page = [], 1
    again = checkpoint("job::loop::pages,page", state=lambda: (pages, page), transaction=conn)
    [pages, page] = again.restore()
    assert (pages, page) == ([1, 2], 3)
    while again.advance() and page <= 5:
        conn.execute("INSERT INTO pages VALUES (?)", (page,))
        pages.append(page)
        page += 1
    conn.commit()
    again.complete()
    assert [r[0] for r in conn.execute("SELECT page FROM pages")] == [1, 2, 3, 4, 5]
    assert pages == [1, 2, 3, 4, 5]


# --------------------------------------------------------------- other connections


class _AutocommitStore:
    """Not a DB-API connection: a JSON file that commit() rewrites (stands for any client
    with its own commit, e.g. a key-value store)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: List[int] = []

    def add(self, n: int) -> None:
        self.pending.append(n)

    def commit(self) -> None:
        done = json.loads(self.path.read_text()) if self.path.exists() else []
        self.path.write_text(json.dumps(done + self.pending))
        self.pending = []


STORE_JOB = """\
import json, os, sys
sys.path.insert(0, os.environ["REPO"])
from tests.runtime.test_runtime_transaction import _AutocommitStore
from pathlib import Path
from checkpointify.runtime import checkpoint

store = _AutocommitStore(Path("store.json"))
ckpt = checkpoint("store::<module>::store", range(6), transaction=store)
ckpt.restore()
for n in ckpt:
    store.add(n)
store.commit()
ckpt.complete()
"""


def test_an_object_with_only_commit_is_at_least_once_through_the_log_file(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(STORE_JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINTIFY_")}
    env.update(PYTHONPATH=str(SRC), REPO=str(Path(__file__).resolve().parents[2]), CHECKPOINTIFY_BATCH="off")
    # killed after unit 3 was committed but before its record was written to the file
    crash = subprocess.run(
        [sys.executable, "job.py"],
        cwd=tmp_path,
        env=dict(env, CHECKPOINTIFY_FAULT="before-write:3"),
        capture_output=True,
        text=True,
    )
    assert crash.returncode == 137
    assert "at-least-once" in crash.stderr
    assert json.loads((tmp_path / "store.json").read_text()) == [0, 1, 2, 3]
    assert list((tmp_path / ".checkpointify").glob("*.ckpt"))
    subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=env, check=True, capture_output=True)
    # unit 3 was committed, not recorded: it runs again (the documented at-least-once window)
    assert json.loads((tmp_path / "store.json").read_text()) == [0, 1, 2, 3, 3, 4, 5]
    assert not (tmp_path / ".checkpointify").exists()


def test_an_autocommitting_sqlite_connection_falls_back_to_the_log_file(tmp_path: Path) -> None:
    done = run_job(tmp_path, {"n": 3, "connect": {"isolation_level": None}})
    assert "autocommit" in done.stderr and "at-least-once" in done.stderr
    assert rows(tmp_path) == full(3)
    assert tables(tmp_path) == ["rows"]  # nothing was stored in the database


def test_an_object_without_commit_is_refused(strict: None) -> None:
    with pytest.raises(CheckpointError, match="has no commit"):
        checkpoint("x::y::z", [1], transaction=object()).restore()


def _shim_driver(paramstyle: str) -> types.ModuleType:
    """A DB-API module over sqlite3 that speaks another paramstyle (its cursor translates
    the placeholders back): the binding code runs against a real database."""
    module = types.ModuleType("shimdb_%s" % paramstyle)
    module.paramstyle = paramstyle  # type: ignore[attr-defined]
    module.IntegrityError = sqlite3.IntegrityError  # type: ignore[attr-defined]

    class Cursor:
        def __init__(self, inner: sqlite3.Cursor) -> None:
            self.inner = inner

        def execute(self, sql: str, params: Any = ()) -> "Cursor":
            if paramstyle in ("format", "pyformat"):
                sql = sql.replace("%s", "?")
            elif paramstyle == "numeric":
                for index in range(len(params), 0, -1):
                    sql = sql.replace(":%d" % index, "?%d" % index)
            self.inner.execute(sql, params)
            return self

        def fetchall(self) -> List[Any]:
            return self.inner.fetchall()

        def close(self) -> None:
            self.inner.close()

    class Connection:
        def __init__(self, path: str) -> None:
            self.inner = sqlite3.connect(path)

        def cursor(self) -> Cursor:
            return Cursor(self.inner.cursor())

        def commit(self) -> None:
            self.inner.commit()

        def rollback(self) -> None:
            self.inner.rollback()

    Connection.__module__ = module.__name__
    module.Connection = Connection  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    return module


@pytest.mark.parametrize("paramstyle", ["qmark", "numeric", "named", "format", "pyformat"])
def test_every_paramstyle_round_trips(paramstyle: str) -> None:
    module = _shim_driver(paramstyle)
    try:
        conn = module.Connection("data.db")
        totals: List[int] = []
        ckpt = checkpoint("job::loop::totals", range(6), lambda: (totals,), transaction=conn)
        [totals] = ckpt.restore()
        for n in ckpt:
            totals.append(n * n)
            if n == 3:
                break
        conn.rollback()
        totals = []
        again = checkpoint("job::loop::totals", range(6), lambda: (totals,), transaction=conn)
        [totals] = again.restore()
        assert totals == [0, 1, 4]
        for n in again:
            totals.append(n * n)
        conn.commit()
        again.complete()
        assert totals == [n * n for n in range(6)]
        assert conn.inner.execute("SELECT name FROM sqlite_master").fetchall() == []
    finally:
        del sys.modules[module.__name__]


def test_sqlalchemy_session_and_connection_share_the_transaction() -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from sqlalchemy.orm import Session

    engine = sqlalchemy.create_engine("sqlite:///data.db")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE rows (n INTEGER)"))
        connection.commit()
    for make in (lambda: Session(engine), lambda: engine.connect()):
        handle: Optional[Any] = make()
        ckpt = checkpoint("sa::loop::rows", range(5), transaction=handle)
        ckpt.restore()
        for n in ckpt:
            handle.execute(sqlalchemy.text("INSERT INTO rows VALUES (:n)"), {"n": n})  # type: ignore[union-attr]
            if n == 3:
                break
        handle.rollback()  # type: ignore[union-attr]
        handle.close()  # type: ignore[union-attr]
        handle = make()
        again = checkpoint("sa::loop::rows", range(5), transaction=handle)
        again.restore()
        assert again.restored_units == 3
        for n in again:
            handle.execute(sqlalchemy.text("INSERT INTO rows VALUES (:n)"), {"n": n})  # type: ignore[union-attr]
        handle.commit()  # type: ignore[union-attr]
        again.complete()
        handle.close()  # type: ignore[union-attr]
        with engine.connect() as connection:
            found = [r[0] for r in connection.execute(sqlalchemy.text("SELECT n FROM rows"))]
            assert found == list(range(5))
            connection.execute(sqlalchemy.text("DELETE FROM rows"))
            connection.commit()
            assert sqlalchemy.inspect(engine).get_table_names() == ["rows"]


def test_two_writers_of_the_same_unit_the_second_keeps_its_writes(strict: None) -> None:
    """Deterministically, in one process (as two hosts sharing a database would: the lock
    file guards one host only): connections that run the same loop from the same starting
    point; the one that records second hits the primary key, only its insert is undone (a
    savepoint), its open unit keeps its writes for its own commit, and it refuses to go on."""
    conns = [sqlite3.connect("data.db", timeout=0.1) for _ in range(4)]
    conns[0].execute("CREATE TABLE rows (n INTEGER)")
    early = checkpoint("job::loop::conn", range(4), transaction=conns[0])
    other = checkpoint("job::loop::conn", range(4), transaction=conns[1])
    early.restore()
    other.restore()  # reads before the first commit: it also thinks it starts the table
    assert next(iter(early)) == 0
    conns[0].execute("INSERT INTO rows VALUES (0)")
    assert next(early) == 1  # unit 0, its record and the header are committed
    conns[0].rollback()  # unit 1 is abandoned (as if the process died)
    with pytest.raises(CheckpointLockedError, match="started the loop in this table first"):
        next(iter(other))
    conns[1].rollback()  # that program gives up (its open transaction held the write lock)
    b = checkpoint("job::loop::conn", range(4), transaction=conns[2])
    c = checkpoint("job::loop::conn", range(4), transaction=conns[3])
    b.restore()
    c.restore()  # both resume at unit 1
    assert next(iter(b)) == 1
    conns[2].execute("INSERT INTO rows VALUES (1)")
    assert next(b) == 2  # b records unit 1
    conns[2].rollback()
    assert next(iter(c)) == 1
    conns[3].execute("INSERT INTO rows VALUES (100)")
    with pytest.raises(CheckpointLockedError, match="recorded unit #1 first.*keeps its writes"):
        next(c)
    assert [r[0] for r in conns[0].execute("SELECT n FROM rows")] == [0, 1]  # c's row is not committed...
    assert [r[0] for r in conns[3].execute("SELECT n FROM rows")] == [
        0,
        1,
        100,
    ]  # ...but kept, for c's commit
    assert conns[3].execute("SELECT COUNT(*) FROM checkpointify_log WHERE seq = 1").fetchone() == (
        1,
    )  # b's record
    with pytest.raises(CheckpointError, match="failed earlier"):
        next(c)
    conns[3].commit()
    assert [r[0] for r in conns[0].execute("SELECT n FROM rows")] == [0, 1, 100]


def test_complete_after_a_refused_restore_still_removes_the_rows(strict: None) -> None:
    conn = sqlite3.connect("data.db")
    ckpt = checkpoint("job::loop::conn", ["a", "b"], transaction=conn)
    ckpt.restore()
    next(iter(ckpt))
    next(ckpt)  # unit "a" is committed with its record
    conn.rollback()
    changed = checkpoint("job::loop::conn", ["z"], transaction=conn)
    with pytest.raises(StaleCheckpointError):
        changed.restore()
    changed.complete()  # the user decides the old rows are obsolete
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
