"""The loop shapes beyond ``for``: ``while`` (``advance()``), ``async for`` (``arestore()``),
``directory=``, and ``acknowledge_each`` (CKP003). Real files, real processes for the kills."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, List, Optional, Tuple

import pytest

from checkpointify.runtime import (
    CheckpointError,
    StaleCheckpointError,
    acknowledge_each,
    checkpoint,
)

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(autouse=True)
def _in_tmp(runtime_sandbox: Callable[..., None]) -> None:
    # every unit written before the next starts
    runtime_sandbox(CHECKPOINTIFY_FSYNC="never", CHECKPOINTIFY_BATCH="off")


class Interrupted(Exception):
    pass


# --------------------------------------------------------------------------- while


def paginate(
    stop_at: int = -1, pages: int = 6, break_on_empty: bool = True
) -> Tuple[List[str], int, List[int]]:
    """A rewritten ``while True`` pagination loop; raises Interrupted (after close(), as the
    end of the process would) when it is about to fetch page ``stop_at``."""
    items: List[str] = []
    page = 1
    fetched: List[int] = []
    ckpt = checkpoint("job::<module>::items,page", state=lambda: (items, page))
    [items, page] = ckpt.restore()
    while ckpt.advance():
        if page == stop_at:
            ckpt.close()
            raise Interrupted()
        fetched.append(page)
        data = ["p%d-%d" % (page, i) for i in range(2)] if page < pages else []
        if not data and break_on_empty:
            break
        items.extend(data)
        page += 1
    ckpt.complete()
    return items, page, fetched


def test_while_loop_resumes_with_its_state() -> None:
    expected = [("p%d-%d" % (p, i)) for p in range(1, 6) for i in range(2)]
    with pytest.raises(Interrupted):
        paginate(stop_at=4)
    items, page, fetched = paginate()
    assert items == expected and page == 6
    assert fetched == [4, 5, 6]  # pages 1-3 were restored, not fetched again
    assert not Path(".checkpointify").exists()


def test_while_break_unit_is_not_recorded_and_breaks_again() -> None:
    items: List[int] = []
    n = 0
    ckpt = checkpoint("job::<module>::items,n", state=lambda: (items, n))
    [items, n] = ckpt.restore()
    while ckpt.advance():
        items.append(n)
        n += 1
        if n == 3:
            break  # a quota; its partial effect (items[2], n = 3) is not recorded
    ckpt.close()
    items, n = [], 0
    again = checkpoint("job::<module>::items,n", state=lambda: (items, n))
    [items, n] = again.restore()
    assert (items, n, again.restored_units) == ([0, 1], 2, 2)
    ran = 0
    while again.advance():
        ran += 1
        items.append(n)
        n += 1
        if n == 3:
            break
    assert (items, n, ran) == ([0, 1, 2], 3, 1)  # the resumed run ends where the first one did
    again.complete()


def test_while_continue_counts_as_done() -> None:
    seen: List[int] = []
    n = 0
    ckpt = checkpoint("job::<module>::seen,n", state=lambda: (seen, n))
    [seen, n] = ckpt.restore()
    while ckpt.advance() and n < 6:
        n += 1
        if n % 2:
            continue  # a unit that only moved the counter: recorded
        seen.append(n)
        if n == 4:
            ckpt.close()
            break
    seen, n = [], 0
    again = checkpoint("job::<module>::seen,n", state=lambda: (seen, n))
    [seen, n] = again.restore()
    assert (seen, n) == ([2], 3)  # units 1, 2 and the `continue` of 3; unit 4 broke
    while again.advance() and n < 6:
        n += 1
        if n % 2:
            continue
        seen.append(n)
    assert (seen, n) == ([2, 4, 6], 6)
    again.complete()


def test_while_log_checks_what_it_can(strict: None) -> None:
    with pytest.raises(Interrupted):
        paginate(stop_at=3)
    # the same loop id over an iterable: written by a while loop, refused
    items: List[str] = []
    page = 1
    as_for = checkpoint("job::<module>::items,page", ["a"], lambda: (items, page))
    with pytest.raises(StaleCheckpointError, match="written by a while loop"):
        as_for.restore()
    # fewer state values than recorded
    fewer = checkpoint("job::<module>::items,page", state=lambda: (items,))
    with pytest.raises(StaleCheckpointError, match="records 2 accumulators but the loop has 1"):
        fewer.restore()


def test_while_and_for_apis_do_not_mix() -> None:
    loop = checkpoint("job::<module>::n", state=lambda: (0,))
    assert loop.restore() == [0]
    with pytest.raises(CheckpointError, match="while loop"):
        iter(loop)
    loop.close()
    over = checkpoint("job::<module>::m", [1, 2])
    assert over.restore() == []  # no state: no accumulators
    with pytest.raises(CheckpointError, match="advance\\(\\) is for while loops"):
        over.advance()
    assert list(over) == [1, 2]
    over.complete()
    with pytest.raises(ValueError, match="identity"):
        checkpoint("job::<module>::k", resume="identity")


WHILE_JOB = """\
import json, os, time
from checkpointify.runtime import checkpoint

rows = []
cursor = "start"
page = 0
ckpt = checkpoint("job.py::<module>::rows,page", state=lambda: (rows, page, cursor))
[rows, page, cursor] = ckpt.restore()
while ckpt.advance() and cursor is not None:
    with open("worklog.txt", "a") as log:
        log.write("%d\\n" % page)
    time.sleep(0.03)
    rows.append({"page": page, "items": ["%d-%d" % (page, i) for i in range(3)]})
    cursor = "c%d" % (page + 1) if page < 9 else None
    page += 1
with open("out.json", "w") as out:
    json.dump(rows, out)
ckpt.complete()
"""


def test_while_loop_killed_with_sigkill_resumes(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(WHILE_JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINTIFY_")}
    env["PYTHONPATH"] = str(SRC)
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "job.py").write_text(WHILE_JOB)
    subprocess.run([sys.executable, "job.py"], cwd=reference, env=env, check=True)
    proc = subprocess.Popen([sys.executable, "job.py"], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    log = tmp_path / "worklog.txt"
    deadline = time.monotonic() + 30
    while (not log.exists() or len(log.read_text().split()) < 5) and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(0.015)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = [int(x) for x in log.read_text().split()]
    log.unlink()
    done = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    after = [int(x) for x in log.read_text().split()]
    assert after == list(range(after[0], 10))
    assert len(before) - after[0] <= 1  # at most the page in flight runs again
    assert (tmp_path / "out.json").read_bytes() == (reference / "out.json").read_bytes()
    assert not (tmp_path / ".checkpointify").exists()


# --------------------------------------------------------------------------- async for


async def stream(items: List[Any]) -> AsyncIterator[Any]:
    for item in items:
        await asyncio.sleep(0)
        yield item


async def async_job(items: List[Any], stop_at: int = -1) -> Tuple[List[str], List[Any]]:
    results: List[str] = []
    ran: List[Any] = []
    ckpt = checkpoint("job::main::results", stream(items), lambda: (results,))
    [results] = await ckpt.arestore()
    async for item in ckpt:
        if item == stop_at:
            ckpt.close()
            raise Interrupted()
        ran.append(item)
        results.append("%s-done" % item)
    ckpt.complete()
    return results, ran


def test_async_for_resumes_and_skips_completed_items() -> None:
    items = list(range(8))
    with pytest.raises(Interrupted):
        asyncio.run(async_job(items, stop_at=5))
    results, ran = asyncio.run(async_job(items))
    assert results == ["%d-done" % i for i in items]
    assert ran == [5, 6, 7]
    assert not Path(".checkpointify").exists()


def test_async_changed_input_is_stale_through_arestore(strict: None) -> None:
    with pytest.raises(Interrupted):
        asyncio.run(async_job(["a", "b", "c", "d"], stop_at="c"))  # type: ignore[arg-type]
    with pytest.raises(StaleCheckpointError, match=r"item #1 \('x'\) is not the item recorded"):
        asyncio.run(async_job(["a", "x", "c", "d"]))
    with pytest.raises(StaleCheckpointError, match="the input now has 1 items but 2 were completed"):
        asyncio.run(async_job(["a"]))


def test_sync_and_async_apis_do_not_mix() -> None:
    over_async = checkpoint("job::main::a", stream([1]))
    with pytest.raises(CheckpointError, match="arestore"):
        over_async.restore()
    over_sync = checkpoint("job::main::b", [1, 2])
    with pytest.raises(CheckpointError, match="arestore\\(\\) is for `async for`"):
        asyncio.run(over_sync.arestore())
    over_sync.restore()
    with pytest.raises(CheckpointError, match="iterate it with `for`, not `async for`"):
        over_sync.__aiter__()
    over_sync.close()
    identity = checkpoint("job::main::c", stream([1]), resume="identity")
    with pytest.raises(CheckpointError, match="position"):
        asyncio.run(identity.arestore())

    async def restored_then_plain_for() -> None:
        ckpt = checkpoint("job::main::d", stream([1]))
        await ckpt.arestore()
        with pytest.raises(CheckpointError, match="`async for`, not `for`"):
            iter(ckpt)
        ckpt.close()

    asyncio.run(restored_then_plain_for())


# --------------------------------------------------------------------------- directory=


def test_explicit_directory_wins_over_the_environment_and_is_kept(
    strict: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHECKPOINTIFY_DIR", str(tmp_path / "from-env"))
    target = tmp_path / "mine"
    acc: List[int] = []
    ckpt = checkpoint("job::f::acc", ["a", "b", "c"], lambda: (acc,), directory=str(target))
    [acc] = ckpt.restore()
    for item in ckpt:
        acc.append(len(item))
        if item == "b":
            ckpt.close()
            break
    assert [p.name for p in target.iterdir() if p.suffix == ".ckpt"] == [ckpt.path.name]
    assert not (tmp_path / "from-env").exists()
    changed = checkpoint("job::f::acc", ["x"], lambda: (acc,), directory=target)
    monkeypatch.delenv("CHECKPOINTIFY_DIR")
    with pytest.raises(StaleCheckpointError, match="--dir mine"):
        changed.restore()
    acc = []
    again = checkpoint("job::f::acc", ["a", "b", "c"], lambda: (acc,), directory=target)
    [acc] = again.restore()
    assert acc == [1]
    for item in again:
        acc.append(len(item))
    again.complete()
    assert acc == [1, 1, 1]
    assert target.is_dir() and not list(target.iterdir())  # a folder you named is not removed


# --------------------------------------------------------------------- acknowledge_each


def test_grown_acks_what_each_unit_appended_and_only_then() -> None:
    acked: List[List[str]] = []
    done = ["from-before"]  # already there before the loop: not the loop's to acknowledge
    messages = ["a", "skip", "b", "c"]
    for message in acknowledge_each(messages, lambda new: acked.append(new), grown=lambda: done):
        if message == "skip":
            continue  # appended nothing: nothing to ack
        done.append(message)
        if message == "b":
            done.append("b2")
        if message == "b":
            assert acked == [["a"]]  # "skip" appended nothing; "b" itself is in progress
    assert acked == [["a"], ["b", "b2"], ["c"]]


def test_latest_acks_a_new_tag_once_and_never_none() -> None:
    acked: List[int] = []
    last: Optional[int] = None
    deliveries = [(None, "heartbeat"), (1, "x"), (2, "y"), (None, "timeout"), (3, "z")]
    acks = acknowledge_each(deliveries, lambda tag: acked.append(tag), latest=lambda: last)
    for tag, _body in acks:
        if tag is None:
            continue  # the tag stays what it was: no second ack of it
        last = tag
    assert acked == [1, 2, 3]
    assert acks.acknowledged == 3


def test_no_argument_ack_after_each_unit() -> None:
    calls: List[str] = []
    seen: List[str] = []
    for message in acknowledge_each(["a", "b"], lambda: calls.append("ack")):
        seen.append(message)
        assert len(calls) == len(seen) - 1  # the unit in progress is not acknowledged yet
    assert calls == ["ack", "ack"]


def test_a_unit_that_raises_or_breaks_is_not_acknowledged() -> None:
    acked: List[List[int]] = []
    done: List[int] = []
    with pytest.raises(ZeroDivisionError):
        for n in acknowledge_each([1, 2, 0, 4], lambda new: acked.append(new), grown=lambda: done):
            done.append(n)
            1 / n
    assert acked == [[1], [2]]  # 0 appended itself, then raised: not acked
    acked.clear()
    done.clear()
    for n in acknowledge_each([1, 2, 3, 4], lambda new: acked.append(new), grown=lambda: done):
        done.append(n)
        if n == 3:
            break
    assert acked == [[1], [2]]


def test_async_messages_and_an_async_ack() -> None:
    acked: List[List[str]] = []

    async def ack(new: List[str]) -> None:
        await asyncio.sleep(0)
        acked.append(new)

    async def consume() -> None:
        done: List[str] = []
        async for message in acknowledge_each(stream(["a", "b", "c"]), ack, grown=lambda: done):
            done.append(message)

    asyncio.run(consume())
    assert acked == [["a"], ["b"], ["c"]]


def test_an_awaitable_ack_in_a_plain_for_is_refused() -> None:
    async def ack() -> None:
        pass

    acks = acknowledge_each([1, 2], ack)
    assert next(acks) == 1
    with pytest.raises(CheckpointError, match="async for"):
        next(acks)
    with pytest.raises(CheckpointError, match="async for"):
        iter(acknowledge_each(stream([1]), ack))
    with pytest.raises(ValueError, match="not both"):
        acknowledge_each([1], ack, grown=list, latest=lambda: 1)


QUEUE_JOB = """\
import json, os, sys, time
sys.path.insert(0, os.environ["SUPPORT"])
from ckfixture import FileQueue
from checkpointify.runtime import acknowledge_each

queue = FileQueue("queue.json", messages=["m%d" % i for i in range(8)])
done = []
for message in acknowledge_each(queue.receive(), lambda new: queue.ack(new), grown=lambda: done):
    with open("worklog.txt", "a") as log:
        log.write(message["id"] + "\\n")
    time.sleep(0.03)
    done.append(message["id"])
"""


def test_acknowledge_each_killed_redelivers_only_the_message_in_flight(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(QUEUE_JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINTIFY_")}
    env.update(
        PYTHONPATH=str(SRC), SUPPORT=str(Path(__file__).resolve().parents[1] / "fixtures" / "_support")
    )
    proc = subprocess.Popen([sys.executable, "job.py"], cwd=tmp_path, env=env)
    log = tmp_path / "worklog.txt"
    while not log.exists() or len(log.read_text().split()) < 4:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = log.read_text().split()
    left = [m["id"] for m in json.loads((tmp_path / "queue.json").read_text())]
    assert left == ["m%d" % i for i in range(len(before) - 1, 8)]  # all but the one in flight are acked
    subprocess.run([sys.executable, "job.py"], cwd=tmp_path, env=env, check=True)
    assert log.read_text().split() == before + ["m%d" % i for i in range(len(before) - 1, 8)]
    assert json.loads((tmp_path / "queue.json").read_text()) == []


# --------------------------------------------------------------------------- Python 3.9

PY39_JOB = """\
import asyncio, sqlite3
from checkpointify.runtime import acknowledge_each, checkpoint

out = []
page = 0
ckpt = checkpoint("w::<module>::out,page", state=lambda: (out, page), directory="ck")
[out, page] = ckpt.restore()
while ckpt.advance() and page < 3:
    out.append(page)
    page += 1
ckpt.complete()

async def stream():
    for i in range(3):
        yield i

async def main():
    got = []
    a = checkpoint("a::main::got", stream(), lambda: (got,))
    [got] = await a.arestore()
    async for i in a:
        got.append(i * 10)
    a.complete()
    return got

conn = sqlite3.connect("db.sqlite")
conn.execute("CREATE TABLE t (n INTEGER)")
d = checkpoint("d::<module>::conn", range(3), transaction=conn)
d.restore()
for n in d:
    conn.execute("INSERT INTO t VALUES (?)", (n,))
conn.commit()
d.complete()
acked = []
for m in acknowledge_each(["x", "y"], lambda: acked.append(1)):
    pass
print(out, asyncio.run(main()), [r[0] for r in conn.execute("SELECT n FROM t")], len(acked))
"""


def _python39() -> str:
    for candidate in sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.9*/bin/python3.9")):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return ""


@pytest.mark.skipif(not _python39(), reason="no working python3.9 here")
def test_new_shapes_work_on_python_39(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(PY39_JOB)
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run([_python39(), "job.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 1, 2] [0, 10, 20] [0, 1, 2] 2"
