"""item_writes: writes into the items of a loaded list, journaled and replayed onto the list
loaded again; the list as loaded is part of the loop's identity."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any, Callable, List, Optional

import pytest

from checkpointify.runtime import StaleCheckpointError, checkpoint, item_writes

QUESTIONS = [{"id": n, "question": "q%d" % n} for n in range(6)]


@pytest.fixture(autouse=True)
def _one_record_per_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "off")  # units this cheap would be batched


def _answer(n: Any, item: Any) -> None:
    """The unit of work, written through ``item`` (an item, or the journal's view of it)."""
    item["answer"] = "a%d" % n
    item.update({"score": n * 2, "tags": ["t%d" % n]}, checked=True)
    item["score"] += 1


def test_replayed_journal_equals_direct_writes() -> None:
    direct = copy.deepcopy(QUESTIONS)
    for n, item in enumerate(direct):
        _answer(n, item)

    by_index = item_writes(copy.deepcopy(QUESTIONS))
    by_alias = item_writes(copy.deepcopy(QUESTIONS))
    for n in range(len(QUESTIONS)):
        _answer(n, by_index[n])
        _answer(n, by_alias.of(by_alias.items[n]))
    assert by_index.items == direct and by_alias.items == direct
    assert by_index.journal == by_alias.journal

    # a re-run: the list is loaded again, the journal (restored from its pickle) replayed
    again = item_writes(copy.deepcopy(QUESTIONS))
    again.journal = pickle.loads(pickle.dumps(by_index.journal))
    again.replay()
    assert again.items == direct
    assert json.dumps(again.items) == json.dumps(direct)  # key order too
    again.replay()  # replaying twice applies nothing twice
    assert again.items == direct


def test_each_unit_journals_only_its_own_writes() -> None:
    writes = item_writes(copy.deepcopy(QUESTIONS))
    _answer(4, writes.of(writes.items[4]))
    assert {entry[0] for entry in writes.journal} == {4}
    assert len(writes.journal) == 5  # answer, score, tags, checked, score again


def test_reads_go_to_the_item_and_loaded_is_taken_before_any_write() -> None:
    data = copy.deepcopy(QUESTIONS)
    writes = item_writes(data)
    loaded = writes.loaded
    assert writes[2]["question"] == "q2" and writes.journal == []
    writes[2]["answer"] = "x"
    assert data[2]["answer"] == "x" and writes.loaded == loaded
    assert item_writes(copy.deepcopy(QUESTIONS)).loaded == loaded  # the same input: the same identity
    other = copy.deepcopy(QUESTIONS)
    other[5]["question"] = "changed"  # a change in the last item still counts
    assert item_writes(other).loaded != loaded


def test_a_dict_of_records_is_journaled_by_key() -> None:
    data = {"a": {"q": 1}, "b": {"q": 2}}
    writes = item_writes(data)
    writes.of(data["b"])["answer"] = 3
    again = item_writes({"a": {"q": 1}, "b": {"q": 2}})
    again.journal = list(writes.journal)
    again.replay()
    assert again.items == data == {"a": {"q": 1}, "b": {"q": 2, "answer": 3}}


# ----------------------------------------------------------------- with a real checkpoint


def _run(
    folder: Path,
    data: List[Any],
    stop_after: Optional[int] = None,
    strict: bool = False,
    write: Optional[Callable[[Any, Any], None]] = None,
) -> List[int]:
    """The rewritten loop over ``data``; returns the units that ran. ``stop_after``: leave
    the log behind in the middle of that unit, as a crash would (its writes are done in
    memory but not recorded: a re-run does it again)."""
    ran: List[int] = []
    data_writes = item_writes(data)
    ckpt = checkpoint(
        "job.py::<module>::data",
        data,
        lambda: (data_writes.journal,),
        constants={"data (as loaded)": data_writes.loaded},
        directory=folder,
        strict=strict,
    )
    [data_writes.journal] = ckpt.restore()
    data_writes.replay()
    for item in ckpt:
        ran.append(item["id"])
        (write or (lambda w, i: _answer(i["id"], w.of(i))))(data_writes, item)
        if stop_after is not None and len(ran) == stop_after:
            break
    if stop_after is not None:
        ckpt.close()
    else:
        ckpt.complete()
    return ran


def _uninterrupted() -> List[Any]:
    data = copy.deepcopy(QUESTIONS)
    for item in data:
        _answer(item["id"], item)
    return data


def test_a_resumed_run_holds_what_an_uninterrupted_run_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path, copy.deepcopy(QUESTIONS), stop_after=3) == [0, 1, 2]
    data = copy.deepcopy(QUESTIONS)
    assert _run(tmp_path, data) == [2, 3, 4, 5]  # unit 2 was in flight
    assert "2 completed units restored" in capsys.readouterr().err
    assert json.dumps(data) == json.dumps(_uninterrupted())
    assert list(tmp_path.iterdir()) == []


def test_another_input_starts_from_zero_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(tmp_path, copy.deepcopy(QUESTIONS), stop_after=3)
    changed = copy.deepcopy(QUESTIONS)
    changed[4]["question"] = "edited"  # not one of the completed items: only the whole list tells
    assert _run(tmp_path, changed) == [0, 1, 2, 3, 4, 5]
    err = capsys.readouterr().err
    assert "warning" in err and "data (as loaded)" in err and "resuming" not in err
    assert changed[0]["answer"] == "a0" and changed[4]["question"] == "edited"
    assert len(list(tmp_path.glob("*.ckpt.stale"))) == 1 and not list(tmp_path.glob("*.ckpt"))


def test_the_output_of_a_finished_run_as_input_starts_from_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A program that saves back into the file it read, killed after the save but before the
    log was removed: the re-run loads the answered list, which is another input."""
    _run(tmp_path, copy.deepcopy(QUESTIONS), stop_after=6)
    answered = _uninterrupted()
    assert _run(tmp_path, answered) == [0, 1, 2, 3, 4, 5]  # what the original's re-run does
    assert "resuming" not in capsys.readouterr().err


def test_strict_mode_raises_on_another_input(tmp_path: Path) -> None:
    _run(tmp_path, copy.deepcopy(QUESTIONS), stop_after=2)
    changed = copy.deepcopy(QUESTIONS)
    changed[0]["question"] = "edited"
    with pytest.raises(StaleCheckpointError, match="as loaded"):
        _run(tmp_path, changed, strict=True)


def test_a_write_into_a_copy_steps_aside_and_stays_correct(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """If the loop writes through an object that is not an item of the list, the write is
    done, the checkpoint stops (one warning) and a re-run resumes from the units before."""

    def write(writes: Any, item: Any) -> None:
        if item["id"] == 2:
            writes.of(dict(item))["answer"] = "lost"  # a copy: not an item of the list
        _answer(item["id"], writes.of(item))

    data = copy.deepcopy(QUESTIONS)
    assert _run(tmp_path, data, stop_after=4, write=write) == [0, 1, 2, 3]
    err = capsys.readouterr().err
    assert "warning" in err and "cannot be journaled" in err and "is off for the rest of this run" in err
    again = copy.deepcopy(QUESTIONS)
    assert _run(tmp_path, again, write=write) == [2, 3, 4, 5]
    assert json.dumps(again) == json.dumps(_uninterrupted())
