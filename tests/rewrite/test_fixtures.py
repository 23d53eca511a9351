"""One parametrized test over every fixture folder (see fixture_cases.py for the layout).

For every case: the rewrite is byte-exact, compiles, converges (a second pass changes
nothing and flags none of the rewritten loops), and the findings are the reviewed ones.

For every rewrite case that can run, the original and the rewritten program run as real
subprocesses: the rewrite produces the same files; a run killed with SIGKILL in the middle
and re-run produces the same files without recomputing any unit that completed before
the kill; and a run after a successful run starts from zero with nothing left behind: it
does what a second run of the original does (the same, for most programs; one more copy
of the rows for a program that inserts into a database).

A SQLite database is compared by content (its SQL dump), not by bytes: a rewritten
``transaction=`` loop commits once per unit and creates, then drops, its progress table,
which changes the file's change counter and free pages but not a row.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List

import pytest

import checkpointify
from tests.support.fixture_cases import SUPPORT, Case, cases, finding_summary

ALL = cases()
# notebooks run in a real kernel instead: tests/rewrite/test_notebook_kernel.py
RUNNABLE = [c for c in ALL if c.rewrites and not c.notebook and c.meta.get("run", True)]
#: the folder holding the ``checkpointify`` package that runs these tests
PACKAGE_ROOT = Path(checkpointify.__file__).resolve().parent.parent
# seconds of "work" per unit, so that a kill lands mid-run (a unit held by CKPT_HOLD_AT is not)
DELAY = "0.01"
# ... in a concurrent ("unordered") fixture: joblib's automatic batch size grows as tasks
# get shorter and pools hand out work ahead, so with shorter units more of them are in
# flight at the kill than the fixture's ``redo`` allows for (they run again, as they should)
CONCURRENT_DELAY = "0.02"


def _delay(case: Case) -> str:
    return CONCURRENT_DELAY if case.meta.get("unordered") else DELAY


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_rewrite_is_exact_compiles_and_converges(case: Case) -> None:
    result = case.process(case.source)
    assert result.error is None, result.error
    output = result.new_source if result.changed else case.source
    assert output == case.expected, (
        "rewrite differs from expected.py (regenerate with tests/regen_fixtures.py and review)"
    )
    assert [finding_summary(f) for f in result.findings] == case.expected_findings
    if case.newer_syntax:  # compiled by the Python it needs, when the machine has one
        python = case.python()
        if python is not None:
            check = [python, "-c", "import sys; compile(sys.stdin.buffer.read(), 'expected.py', 'exec')"]
            done = subprocess.run(check, input=output, capture_output=True, timeout=60)
            assert done.returncode == 0, done.stderr.decode(errors="replace")
    elif not case.notebook:  # a notebook's module is compiled by the rewrite's own verification
        compile(output, "expected.py", "exec", dont_inherit=True)

    second = case.process(output)
    assert second.error is None, second.error
    assert not second.changed, "a second pass changed the rewritten file"
    assert len(second.findings) == len(result.findings) - len(result.applied), (
        "a rewritten loop was flagged again"
    )


def test_every_variant_has_rewrite_and_noop_cases() -> None:
    variants: Dict[str, List[Case]] = {}
    for case in ALL:
        variants.setdefault(case.path.parent.name, []).append(case)
    for name, members in variants.items():
        assert any(c.rewrites for c in members), "%s has no rewrite fixture" % name
    assert any(not c.rewrites and not c.expected_findings for c in ALL)


# --------------------------------------------------------------------- running programs


def _prepare(case: Case, program: bytes, where: Path) -> Path:
    where.mkdir(parents=True)
    data = case.path / "data"
    if data.exists():
        shutil.copytree(data, where, dirs_exist_ok=True)
    (where / "prog.py").write_bytes(program)
    return where


def _env(
    where: Path, unordered: bool = False, delay: str = DELAY, log: str = "worklog.txt"
) -> Dict[str, str]:
    env = dict(os.environ)
    if unordered:
        env.pop("PYTHONHASHSEED", None)  # every run iterates the set in its own order
    else:
        env["PYTHONHASHSEED"] = "0"  # the work log's order is compared run to run
    # the package's own folder too: a program that needs a newer Python runs under another
    # interpreter, which has not installed checkpointify (the runtime is stdlib-only)
    env["PYTHONPATH"] = os.pathsep.join([str(SUPPORT), str(PACKAGE_ROOT), env.get("PYTHONPATH", "")])
    env["CKPT_WORKLOG"] = str(where / log)
    env["CKPT_DELAY"] = delay
    env.pop("CHECKPOINTIFY_DIR", None)
    env.pop("CHECKPOINTIFY_ON_STALE", None)
    # The harness checks the strict promise: only the unit in flight runs again. On a loaded
    # machine a write can cost so much that the runtime batches even 40 ms units (a few of
    # them may then run again, never a wrong result); the runtime's own tests cover that.
    env["CHECKPOINTIFY_BATCH"] = "off"
    return env


def _start(
    where: Path, unordered: bool = False, python: str = sys.executable, delay: str = DELAY
) -> "subprocess.Popen[bytes]":
    return subprocess.Popen(
        [python, "prog.py"],
        cwd=where,
        env=_env(where, unordered, delay),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(proc: "subprocess.Popen[bytes]") -> None:
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode(errors="replace")


def _run(where: Path, unordered: bool = False, python: str = sys.executable, delay: str = DELAY) -> None:
    _finish(_start(where, unordered, python, delay))


SQLITE_MAGIC = b"SQLite format 3\x00"


def _sqlite_dump(path: Path) -> bytes:
    """A SQLite database's content: its SQL dump (schema and rows, in table and row order)."""
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return "\n".join(conn.iterdump()).encode("utf-8")
    finally:
        conn.close()


def _outputs(where: Path) -> Dict[str, bytes]:
    """Every file the program wrote (its inputs, work log and checkpoints excluded); a
    SQLite database by its content."""
    skip = {"prog.py", "worklog.txt", KILLED_LOG}
    out = {}
    for path in sorted(where.rglob("*")):
        rel = path.relative_to(where).as_posix()
        if (
            path.is_file()
            and rel not in skip
            and not rel.startswith(".checkpointify")
            and "__pycache__" not in rel
        ):
            data = path.read_bytes()
            out[rel] = b"sqlite dump:\n" + _sqlite_dump(path) if data.startswith(SQLITE_MAGIC) else data
    return out


def _progress_tables(where: Path) -> List[str]:
    """SQLite outputs holding rows of a ``transaction=`` loop's progress table."""
    found = []
    for path in sorted(where.glob("*")):
        if path.is_file() and path.read_bytes()[:16] == SQLITE_MAGIC:
            conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
            try:
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if (
                    "checkpointify_log" in tables
                    and conn.execute("SELECT COUNT(*) FROM checkpointify_log").fetchone()[0]
                ):
                    found.append(path.name)
            finally:
                conn.close()
    return found


def _worklog(where: Path, name: str = "worklog.txt") -> List[str]:
    log = where / name
    return log.read_text().splitlines() if log.exists() else []


#: the killed run's work log. A pool's worker processes outlive a SIGKILL of the program
#: and finish the unit they hold: they write it here, not into the resumed run's log.
KILLED_LOG = "killed-worklog.txt"


def _kill_midway(
    where: Path,
    after_units: int,
    unordered: bool = False,
    python: str = sys.executable,
    hold: bool = False,
    delay: str = DELAY,
) -> List[str]:
    """Start the program, SIGKILL it once ``after_units`` units have started; return its work log.

    With ``hold``, that unit lasts a minute instead of DELAY: for a kill after the last
    unit, which on a loaded machine could otherwise land after the program's end.
    """
    env = _env(where, unordered, delay, KILLED_LOG)
    if hold:
        env["CKPT_HOLD_AT"] = str(after_units)
    proc = subprocess.Popen(
        [python, "prog.py"],
        cwd=where,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(_worklog(where, KILLED_LOG)) < after_units:
        assert proc.poll() is None, (
            "the program ended before it could be killed: %s"
            % (proc.stderr.read() if proc.stderr else b"").decode()
        )
        assert time.monotonic() < deadline, "the program made no progress"
        time.sleep(0.002)
    time.sleep(random.uniform(0, float(delay)))  # land anywhere in the unit, or in the commit after it
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return _worklog(where, KILLED_LOG)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=[pytest.mark.slow] if c.meta.get("kill_test") == "slow" else [])
        for c in RUNNABLE
    ],
    ids=lambda c: c.id,
)
def test_rewritten_program_resumes_after_sigkill(case: Case, tmp_path: Path) -> None:
    unordered = bool(case.meta.get("unordered"))  # each run iterates a set in its own order
    # The programs of one case run in separate folders, so independent runs overlap (the
    # units mostly sleep): the original beside the uninterrupted rewrite, then the
    # second runs of both beside the kill-and-resume. Every check is the same as in a
    # sequential run.
    python = case.python()
    if python is None:
        pytest.skip(
            "no Python %s on this machine to run the program" % ".".join(map(str, case.meta["python"]))
        )
    original = _prepare(case, case.source, tmp_path / "original")
    clean = _prepare(case, case.expected, tmp_path / "clean")
    delay = _delay(case)
    first, uninterrupted = _start(original, unordered, python, delay), _start(clean, unordered, python, delay)
    _finish(first)
    _finish(uninterrupted)
    expected_outputs = _outputs(original)
    all_units = _worklog(original)
    assert expected_outputs, "the fixture program must write at least one file"

    # uninterrupted rewritten run: same outputs, same work, nothing left behind
    assert _outputs(clean) == expected_outputs
    assert sorted(_worklog(clean)) == sorted(all_units)
    assert not (clean / ".checkpointify").exists()

    # A run after a successful run starts from zero: it does what the original does when it
    # runs again over its own outputs. Both second runs go while the rewrite is killed and
    # resumed below. The rewrite's runs after the uninterrupted one: the resumed run must
    # leave the very same files (compared below, every file but the work logs), and no
    # checkpoint or progress table, so what follows it is what follows this one.
    (original / "worklog.txt").unlink(missing_ok=True)
    (clean / "worklog.txt").unlink(missing_ok=True)
    second = _start(original, unordered, python, delay)
    rewritten_second = _start(clean, unordered, python, delay)
    try:
        _kill_and_resume(case, tmp_path, unordered, python, all_units, expected_outputs)
        _finish(second)
        _finish(rewritten_second)
        assert sorted(_worklog(clean)) == sorted(_worklog(original))
        assert _outputs(clean) == _outputs(original)
        assert not (clean / ".checkpointify").exists()
    finally:
        for proc in (second, rewritten_second):
            if proc.poll() is None:  # a check failed first: do not leave it running
                proc.kill()
                proc.wait()


def _kill_and_resume(
    case: Case,
    tmp_path: Path,
    unordered: bool,
    python: str,
    all_units: List[str],
    expected_outputs: Dict[str, bytes],
) -> None:
    # killed in the middle, then re-run (for "unordered" fixtures, in another order: the
    # resumed run must find its completed items by identity)
    crashed = _prepare(case, case.expected, tmp_path / "crashed")
    kill_after = int(case.meta.get("kill_after", max(2, len(all_units) // 2)))
    delay = _delay(case)
    before_kill = _kill_midway(
        crashed, kill_after, unordered, python, hold=kill_after >= len(all_units), delay=delay
    )
    if b"acknowledge_each(" not in case.expected:
        # a log file, or rows in the database (transaction=); acknowledge_each stores
        # nothing (the broker is the progress marker: the checks below show it held)
        assert (crashed / ".checkpointify").exists() or _progress_tables(crashed), (
            "no checkpoint was left by the killed run"
        )
    _run(crashed, unordered, python, delay)
    after_resume = _worklog(crashed)
    assert _outputs(crashed) == expected_outputs, "resumed run produced different output"
    assert not (crashed / ".checkpointify").exists(), "a checkpoint was left after a successful run"
    assert not _progress_tables(crashed), "a progress table was left in the database"
    if unordered:
        repeated = Counter(before_kill) & Counter(after_resume)
        assert sum(repeated.values()) <= int(case.meta.get("redo", 1)), (
            "units completed before the kill ran again"
        )
        assert Counter(before_kill) + Counter(after_resume) - repeated == Counter(all_units), "work was lost"
    else:
        _check_resumed_in_order(case, all_units, before_kill, after_resume)


def _check_resumed_in_order(
    case: Case, all_units: List[str], before_kill: List[str], after_resume: List[str]
) -> None:
    """The killed run did a prefix of the work and the resumed run the rest, in order."""
    # The killed run did a prefix of the work; the resumed run must do the rest, starting
    # at most `redo` work-log entries (the unit in flight) before the kill point. Loops that
    # completed (and removed their log) before the kill run again from zero, by design:
    # fixture.json names how many work-log entries they account for.
    assert before_kill == all_units[: len(before_kill)], (
        "the rewritten program does its work in another order"
    )
    settled = int(case.meta.get("completed_loop_units", 0))
    assert after_resume[:settled] == all_units[:settled]
    resumed_at = len(all_units) - (len(after_resume) - settled)
    assert after_resume[settled:] == all_units[resumed_at:], "the resumed run skipped or repeated work"
    redone = len(before_kill) - resumed_at
    assert redone >= 0, "a unit that never ran before the kill was skipped"
    assert redone <= int(case.meta.get("redo", 1)), (
        "units completed before the kill ran again: %s" % before_kill[resumed_at:]
    )
