"""frame_writes: the journal replayed onto a freshly built frame equals the frame written directly."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from checkpointify.runtime import frame_writes

pd = pytest.importorskip("pandas")


def _fresh() -> Any:
    return pd.DataFrame({"q": ["a", "b", "c", "d"], "n": [1, 2, 3, 4]}, index=[5, 5, 2, 9])


def _writes(target: object) -> None:
    target.at[2, "answer"] = "two"  # type: ignore[attr-defined]  # a new column, created by .at
    target.loc[9, "n"] = 40  # type: ignore[attr-defined]
    target.iat[0, 1] = 7  # type: ignore[attr-defined]
    target.iloc[3, 0] = "D"  # type: ignore[attr-defined]
    target.loc[11] = ["e", 5, "five"]  # type: ignore[attr-defined]  # a new row


def test_replayed_journal_equals_direct_writes() -> None:
    direct = _fresh()
    _writes(direct)

    journaled = frame_writes(_fresh())
    _writes(journaled)
    assert journaled.frame.equals(direct)

    # a re-run: the frame is built again, the journal (restored from its pickle) replayed
    again = frame_writes(_fresh())
    again.journal = pickle.loads(pickle.dumps(journaled.journal))
    again.replay()
    assert again.frame.equals(direct)
    assert again.frame.dtypes.to_dict() == direct.dtypes.to_dict()
    assert again.frame.index.equals(direct.index) and list(again.frame.columns) == list(direct.columns)
    again.replay()  # replaying twice applies nothing twice
    assert again.frame.equals(direct)


def test_reads_go_to_the_frame() -> None:
    wrapped = frame_writes(_fresh())
    assert wrapped.at[2, "q"] == "c" and wrapped.iloc[3, 1] == 4
    assert wrapped.journal == []


def test_empty_frame_grown_row_by_row() -> None:
    direct = pd.DataFrame(columns=["id", "title"])
    journaled = frame_writes(pd.DataFrame(columns=["id", "title"]))
    for n in range(3):
        direct.loc[len(direct)] = [n, "t%d" % n]
        journaled.loc[len(journaled.frame)] = [n, "t%d" % n]
    again = frame_writes(pd.DataFrame(columns=["id", "title"]))
    again.journal = list(journaled.journal)
    again.replay()
    assert again.frame.equals(direct) and again.frame.dtypes.to_dict() == direct.dtypes.to_dict()
