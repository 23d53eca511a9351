"""The runtime's resume semantics, in process on real files: any result type, identity
resume, batching, inspection, locking within a process, and logs of the 0.1 format."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pickle
import struct
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd
import pytest

from checkpointify import runtime
from checkpointify.runtime import (
    CheckpointError,
    CheckpointLockedError,
    checkpoint,
    deltas,
    filelog,
    fingerprint,
    read_info,
    remove,
)


@pytest.fixture(autouse=True)
def _in_tmp(runtime_sandbox: Callable[..., None]) -> None:
    runtime_sandbox(CHECKPOINTIFY_FSYNC="never", CHECKPOINTIFY_BATCH="off", CHECKPOINTIFY_QUIET="1")


class Crash(Exception):
    pass


Body = Callable[[Any, Tuple[Any, ...]], None]


def job(
    items: Sequence[Any],
    make: Callable[[], Tuple[Any, ...]],
    body: Body,
    crash_at: Any = None,
    resume: str = "position",
    ran: Any = None,
) -> Tuple[Any, ...]:
    """One run of a rewritten loop whose accumulators ``make()`` creates. A crash at item
    ``crash_at`` ends the 'process': the checkpoint is closed, the exception propagates."""
    accs = make()
    ckpt = checkpoint("t::job::accs", list(items), lambda: accs, resume=resume)
    accs = tuple(ckpt.restore())
    for item in ckpt:
        if item == crash_at:
            ckpt.close()
            raise Crash()
        if ran is not None:
            ran.append(item)
        body(item, accs)
    result = accs
    ckpt.complete()
    return result


def uninterrupted(items: Sequence[Any], make: Callable[[], Tuple[Any, ...]], body: Body) -> Tuple[Any, ...]:
    accs = make()
    for item in items:
        body(item, accs)
    return accs


def resumed(
    items: Sequence[Any],
    make: Callable[[], Tuple[Any, ...]],
    body: Body,
    crash_at: Any,
    resume: str = "position",
    new_items: Any = None,
) -> Tuple[Tuple[Any, ...], List[Any]]:
    with pytest.raises(Crash):
        job(items, make, body, crash_at=crash_at, resume=resume)
    ran: List[Any] = []
    out = job(items if new_items is None else new_items, make, body, resume=resume, ran=ran)
    return out, ran


# ------------------------------------------------------------------------ any result type


@dataclass
class Measurement:
    name: str
    values: Tuple[float, ...]
    tags: List[str]


class Custom:
    """A plain class with state and no __eq__: compared through its pickle."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.label = "item-%d" % n
        self.parts = {"square": n * n, "even": n % 2 == 0}


def _rich_body(i: int, accs: Tuple[Any, ...]) -> None:
    arrays, records, pairs, objects, rows, total = accs
    arrays.append(np.arange(i, i + 5, dtype=np.float64) / 3)
    records[i] = Measurement("m%d" % i, (i / 7, i * 1.5), ["x", "y%d" % (i % 3)])
    pairs.append((i, "pair", frozenset({i, i + 1}), None))
    objects.append(Custom(i))
    frame = pd.DataFrame({"id": [i, i + 1], "score": [i / 2, i / 3], "name": ["a%d" % i, "b%d" % i]})
    rows.append(frame.iloc[1])
    total += np.full(3, float(i))  # an ndarray grown in place: recorded as a snapshot


def _rich() -> Tuple[Any, ...]:
    return [], {}, [], [], [], np.zeros(3)


@pytest.mark.parametrize("batch", ["off", "auto"])
def test_any_result_type_is_restored_equal_to_an_uninterrupted_run(
    batch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", batch)
    items = list(range(12))
    expected = uninterrupted(items, _rich, _rich_body)
    out, ran = resumed(items, _rich, _rich_body, crash_at=7)
    assert ran == items[7:] if batch == "off" else ran[-5:] == items[7:]
    arrays, records, pairs, objects, rows, total = out
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(arrays, expected[0]))
    assert records == expected[1] and pairs == expected[2]
    assert [vars(o) for o in objects] == [vars(o) for o in expected[3]]
    assert all(a.equals(b) and a.name == b.name for a, b in zip(rows, expected[4]))
    assert np.array_equal(total, expected[5])
    # Plain Python values pickle byte for byte alike (strings shared as in the original);
    # numpy and pandas objects are equal, but unpickled ones share no dtype/index objects.
    for index in (1, 2, 3, 5):
        assert pickle.dumps(out[index]) == pickle.dumps(expected[index])


@pytest.mark.parametrize("batch", ["off", "auto"])
def test_an_unpicklable_value_names_the_loop_the_unit_and_the_type(
    strict: None, batch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", batch)

    def body(i: int, accs: Tuple[Any, ...]) -> None:
        accs[0].append(i)
        accs[1].append(i if i != 3 else (lambda: i))

    with pytest.raises(CheckpointError) as info:
        job(range(6), lambda: ([], []), body)
    message = str(info.value)
    assert "'t::job::accs'" in message and "accumulator 2 of 2" in message
    assert "type function" in message and "<lambda>" in message
    assert "unit #3" in message if batch == "off" else "#3" in message or "units #" in message


# ------------------------------------------------------------------------ resume by identity


def _listing(i: str, accs: Tuple[Any, ...]) -> None:
    results, sizes = accs
    results.append(i.upper())
    sizes[i] = len(i)


def test_identity_resume_reuses_units_wherever_their_items_now_are() -> None:
    make = lambda: ([], {})  # noqa: E731
    items = ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]
    new = ["e.txt", "c.txt", "x.txt", "a.txt", "b.txt", "d.txt"]
    out, ran = resumed(items, make, _listing, crash_at="d.txt", resume="identity", new_items=new)
    assert out == uninterrupted(new, make, _listing)
    assert list(out[1]) == new  # dict order too
    assert ran == ["e.txt", "x.txt", "d.txt"]


def test_identity_resume_handles_duplicate_items() -> None:
    make = lambda: ([], set())  # noqa: E731

    def body(i: str, accs: Tuple[Any, ...]) -> None:
        accs[0].append(i)
        accs[1].add(i)

    items = ["a", "b", "a", "c", "a"]
    new = ["a", "a", "c", "a", "b", "a"]
    out, ran = resumed(items, make, body, crash_at="c", resume="identity", new_items=new)
    assert out == uninterrupted(new, make, body)
    assert sorted(ran) == ["a", "a", "c"]  # the two recorded "a" units and "b" were reused


def test_identity_counter_reruns_units_that_depend_on_the_order() -> None:
    """cnt[word[0]] += 1 reads the count: a unit that incremented an existing key is reused
    only while the order is unchanged up to it."""
    make = lambda: (Counter(),)  # noqa: E731

    def body(word: str, accs: Tuple[Any, ...]) -> None:
        accs[0][word[0]] += 1

    items = ["apple", "avocado", "banana", "apricot", "blueberry"]
    new = ["avocado", "cherry", "apple", "banana", "apricot", "blueberry"]
    out, ran = resumed(items, make, body, crash_at="blueberry", resume="identity", new_items=new)
    assert out == uninterrupted(new, make, body)
    assert "banana" not in ran  # created its key: independent of the order
    same_order, ran_same = resumed(items, make, body, crash_at="blueberry", resume="identity")
    assert same_order == uninterrupted(items, make, body) and ran_same == ["blueberry"]


def test_identity_grouping_in_a_defaultdict() -> None:
    make = lambda: (defaultdict(list),)  # noqa: E731

    def body(word: str, accs: Tuple[Any, ...]) -> None:
        accs[0][len(word)].append(word)

    items = ["aa", "bbb", "cc", "ddd", "ee", "f"]
    new = ["f", "ddd", "aa", "ee", "bbb", "cc", "gg"]
    out, _ = resumed(items, make, body, crash_at="ee", resume="identity", new_items=new)
    assert out == uninterrupted(new, make, body)


def test_identity_vanished_item_with_set_effects_cuts_reuse_after_it() -> None:
    """'avocado' adds nothing visible (its first letter is already in the set, from
    'apple'); when 'apple' is gone, reusing 'avocado' would lose the 'a'."""
    make = lambda: ([], set())  # noqa: E731

    def body(word: str, accs: Tuple[Any, ...]) -> None:
        accs[0].append(len(word))
        accs[1].add(word[0])

    items = ["apple", "avocado", "banana", "cherry"]
    new = ["avocado", "banana", "cherry"]
    out, ran = resumed(items, make, body, crash_at="cherry", resume="identity", new_items=new)
    assert out == uninterrupted(new, make, body) and "a" in out[1]
    assert ran == ["avocado", "banana", "cherry"]


def test_identity_list_only_loop_reuses_everything_still_present() -> None:
    make = lambda: ([],)  # noqa: E731

    def body(i: int, accs: Tuple[Any, ...]) -> None:
        accs[0].append(i * 10)

    new = [9, 7, 5, 3, 1, 11]  # 0, 2, 4 gone; 11 new
    out, ran = resumed(list(range(10)), make, body, crash_at=8, resume="identity", new_items=new)
    assert out == uninterrupted(new, make, body) and ran == [9, 11]


def test_identity_overwritten_key_follows_the_current_order() -> None:
    make = lambda: ({},)  # noqa: E731

    def body(word: str, accs: Tuple[Any, ...]) -> None:
        accs[0][word[0]] = word  # the last word with that letter wins

    items = ["apple", "avocado", "banana", "apricot", "cherry"]
    new = ["apricot", "avocado", "apple", "banana", "cherry"]
    out, _ = resumed(items, make, body, crash_at="cherry", resume="identity", new_items=new)
    assert out == uninterrupted(new, make, body) and out[0]["a"] == "apple"


def test_identity_rejects_immutable_accumulators() -> None:
    with pytest.raises(CheckpointError, match="mutable accumulators.*accumulator 2 of 2.*int"):
        checkpoint("t::x::total", [1], lambda: ([], 0), resume="identity").restore()
    with pytest.raises(ValueError, match="resume must be"):
        checkpoint("t::x::total", [1], lambda: ([],), resume="order")


def test_position_log_resumed_by_identity_reruns_batched_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """A log written in position mode with batches (one effect for several units) can be
    resumed with resume='identity': single-unit records are reused, batches run again."""
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "auto")
    make = lambda: ([], {})  # noqa: E731
    items = ["f%05d" % i for i in range(20000)]
    with pytest.raises(Crash):
        job(items, make, _listing, crash_at="f15000")
    info = read_info(next(Path(".checkpointify").glob("*.ckpt")))
    assert info.records < info.units  # batched
    new = items[::-1]
    out = job(new, make, _listing, resume="identity")
    assert out == uninterrupted(new, make, _listing)


# ------------------------------------------------------------------------------- batching


def test_cheap_units_are_batched_and_restored_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "auto")
    make = lambda: ([], {}, set())  # noqa: E731

    def body(i: int, accs: Tuple[Any, ...]) -> None:
        accs[0].append(i)
        accs[1][i % 97] = i
        accs[2].add(i % 13)

    items = list(range(20000))
    with pytest.raises(Crash):
        job(items, make, body, crash_at=15000)
    info = read_info(next(Path(".checkpointify").glob("*.ckpt")))
    assert info.units <= 15000 and info.records < info.units / 10
    ran: List[int] = []
    out = job(items, make, body, ran=ran)
    assert out == uninterrupted(items, make, body)
    assert ran == items[info.units :]


def test_a_batch_is_written_at_exit_when_no_unit_is_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """The input iterator itself fails: every completed unit is between units, so the exit
    handler writes the waiting batch."""
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "auto")

    def flaky() -> Any:
        yield from range(5000)
        raise OSError("the input went away")

    acc: List[int] = []
    ckpt = checkpoint("t::flaky::acc", flaky(), lambda: (acc,))
    [acc] = ckpt.restore()
    with pytest.raises(OSError):
        for i in ckpt:
            acc.append(i)
    filelog._sync_open_logs_at_exit()
    assert read_info(ckpt.path).units == 5000


# ------------------------------------------------------------------- inspection and locks


def test_read_info_describes_a_live_log_without_changing_it() -> None:
    acc: List[int] = []
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    ckpt = checkpoint("t::info::acc", range(10), lambda: (acc,), key=("train",))
    [acc] = ckpt.restore()
    for i in ckpt:
        acc.append(i)
        if i == 5:
            break
    before = ckpt.path.read_bytes()
    info = read_info(ckpt.path)
    assert ckpt.path.read_bytes() == before
    assert info.loop_id == "t::info::acc" and info.units == 5 and info.records == 5
    assert info.source == "%s:%d" % (__file__, line)
    assert info.resume == "position" and info.key and info.damage == "" and info.archived == ""
    assert info.writer is not None and info.writer["pid"] == os.getpid()
    with pytest.raises(CheckpointLockedError, match="in use by process %d" % os.getpid()):
        remove(ckpt.path)
    ckpt.close()
    assert read_info(ckpt.path).writer is None
    remove(ckpt.path)
    assert not ckpt.path.exists() and not Path(str(ckpt.path) + ".lock").exists()


def test_a_newer_checkpoint_of_the_same_loop_takes_over_in_this_process(strict: None) -> None:
    acc: List[int] = []
    first = checkpoint("t::retry::acc", range(10), lambda: (acc,))
    [acc] = first.restore()
    with pytest.raises(Crash):
        for i in first:
            if i == 4:
                raise Crash()
            acc.append(i)
    acc2: List[int] = []
    second = checkpoint("t::retry::acc", range(10), lambda: (acc2,))
    [acc2] = second.restore()
    assert acc2 == [0, 1, 2, 3]
    with pytest.raises(runtime.CheckpointWriteError, match="took over"):
        next(first)
    for i in second:
        acc2.append(i)
    second.complete()
    assert acc2 == list(range(10))


def test_closed_and_completed_checkpoints_refuse_to_go_on(strict: None) -> None:
    acc: List[int] = []
    ckpt = checkpoint("t::closed::acc", range(5), lambda: (acc,))
    [acc] = ckpt.restore()
    next(ckpt)
    ckpt.close()
    with pytest.raises(CheckpointError, match="closed"):
        next(ckpt)
    ckpt.complete()
    with pytest.raises(CheckpointError):
        next(ckpt)
    with pytest.raises(CheckpointError, match="already called"):
        ckpt.restore()


def test_bad_environment_values_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in [
        ("CHECKPOINTIFY_FSYNC", "sometimes"),
        ("CHECKPOINTIFY_BATCH", "2ms"),
        ("CHECKPOINTIFY_ON_STALE", "ignore"),
        ("CHECKPOINTIFY_FAULT", "explode:1"),
    ]:
        with monkeypatch.context() as env:
            env.setenv(name, value)
            with pytest.raises(CheckpointError, match=name):
                checkpoint("t::env::acc", [], lambda: ([],))


# ---------------------------------------------------------------------- format 1 (0.1) logs


def _frame(kind: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(struct.pack("<BI", kind, len(payload))))
    return struct.pack("<BBII", 0xC7, kind, len(payload), crc) + payload


def test_a_log_written_by_the_0_1_runtime_still_resumes() -> None:
    loop_id = "t::v1::acc"
    header = {"format": "checkpointify/1", "loop_id": loop_id, "key": "", "runtime": "1"}
    data = _frame(1, json.dumps(header).encode())
    for seq, item in enumerate(["a", "b", "c"]):
        data += _frame(2, pickle.dumps((seq, fingerprint(item), (("e", [item * 2]),), ()), 4))
    directory = Path(".checkpointify")
    directory.mkdir()
    (directory / runtime.log_name(loop_id)).write_bytes(data)
    acc: List[str] = []
    ckpt = checkpoint(loop_id, ["a", "b", "c", "d"], lambda: (acc,))
    [acc] = ckpt.restore()
    assert acc == ["aa", "bb", "cc"] and read_info(ckpt.path).units == 3
    for item in ckpt:
        acc.append(item * 2)
    ckpt.complete()
    assert acc == ["aa", "bb", "cc", "dd"]


def test_log_names_are_stable() -> None:
    """The file name is part of the on-disk contract: changing it orphans users' logs."""
    assert runtime.log_name("job.py::main::results") == "job.py_main_results-%s.ckpt" % (
        hashlib.blake2b(b"job.py::main::results\0", digest_size=4).hexdigest()
    )


def test_checkpoint_info_is_frozen() -> None:
    acc: List[int] = []
    ckpt = checkpoint("t::frozen::acc", [1], lambda: (acc,))
    [acc] = ckpt.restore()
    for i in ckpt:
        acc.append(i)
    info = read_info(ckpt.path)
    with pytest.raises(AttributeError):
        info.units = 3  # type: ignore[misc]


@pytest.mark.parametrize("seed", range(20))
def test_dict_deltas_replay_every_kind_of_change(seed: int) -> None:
    """Random units over a dict: new keys, overwrites, lists grown in place, containers
    replaced by scalars and back. Replaying the recorded deltas on a copy of the starting
    state, batch by batch, always gives the same dict."""
    import copy
    import random

    rng = random.Random(seed)
    live: Dict[Any, Any] = {k: ([k] if k % 3 == 0 else k) for k in range(50)}
    replay = copy.deepcopy(live)
    tracker = deltas._Tracker(live)
    for _ in range(200):
        for _ in range(rng.randint(1, 4)):  # one unit = a few operations; one delta per batch
            key = rng.randrange(80)
            op = rng.random()
            if op < 0.3:
                live[key] = rng.random()
            elif op < 0.6 and isinstance(live.get(key), list):
                live[key].append(rng.random())
            elif op < 0.8 and isinstance(live.get(key, []), list):
                live.setdefault(key, []).append(key)
            else:
                live[key] = {"n": rng.random()}
        delta = tracker.delta(live)
        replay = deltas._apply(replay, copy.deepcopy(delta))
        assert replay == live
