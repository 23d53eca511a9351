"""frame_concat: replaying the journaled ``pd.concat`` calls, with parts restored from the
records' pickle, rebuilds the frame an uninterrupted run holds: the same csv, json and
pickle bytes (parquet too, where pyarrow is installed), dtypes and index (including the object dtype an empty ``DataFrame(columns=...)``
gives every column, and a frame grown from an empty ``DataFrame()``)."""

from __future__ import annotations

import importlib.util
import io
import pickle
import warnings
from typing import Any, Callable, Dict, List

import pytest

from checkpointify.runtime import frame_concat
from checkpointify.runtime.pickling import _dumps, _loads

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")

UNITS = 7
PYARROW = importlib.util.find_spec("pyarrow") is not None


def _part(n: int) -> Any:
    return pd.DataFrame(
        [
            {
                "id": n,
                "label": "label %d" % (n % 3),
                "score": n / 7,
                "even": n % 2 == 0,
                "when": pd.Timestamp("2024-01-01") + pd.Timedelta(hours=n),
            }
        ]
    )


INITS: Dict[str, Callable[[], Any]] = {
    "columns": lambda: pd.DataFrame(columns=["id", "label", "score", "even", "when"]),
    "empty": lambda: pd.DataFrame(),
    "loaded": lambda: pd.concat([_part(100), _part(101)], ignore_index=True),
    "none": lambda: None,
}

GROWTHS: Dict[str, Callable[[Any, Any, Any], Any]] = {
    # (concat, frame, part) -> the grown frame, as the loop body writes it
    "append-ignore-index": lambda concat, df, part: concat([df, part], ignore_index=True),
    "append": lambda concat, df, part: concat([df, part]),
    "tuple-axis0": lambda concat, df, part: concat((df, part), axis=0),
    "prepend": lambda concat, df, part: concat([part, df], ignore_index=True),
    # without the datetime column: see test_datetime_blocks_kept_whole
    "axis1": lambda concat, df, part: concat([df, _columns(part.drop(columns="when"))], axis=1),
}


def _columns(part: Any) -> Any:
    return part.add_suffix("_%d" % part["id"].iloc[0])


def _outputs(df: Any) -> Dict[str, Any]:
    csv = io.StringIO()
    df.to_csv(csv)
    pickled = io.BytesIO()
    df.to_pickle(pickled)
    out = {
        "csv": csv.getvalue(),
        "json": df.to_json(orient="split", date_format="iso"),
        "pickle": pickled.getvalue(),
        "dtypes": {str(k): str(v) for k, v in df.dtypes.items()},
        "index": repr(df.index),
    }
    if PYARROW:  # not a test dependency: compared where it is installed
        parquet = io.BytesIO()
        df.set_axis([str(c) for c in df.columns], axis=1).to_parquet(parquet)
        out["parquet"] = parquet.getvalue()
    return out


def _run(init: Callable[[], Any], grow: Callable[[Any, Any, Any], Any], restored: List[Any]) -> Any:
    """A (re-)run: the frame built by the code before the loop, the journal restored and
    replayed, then the units not recorded yet run live through the journal."""
    df = init()
    parts = frame_concat(df, pd.concat)
    parts.journal = restored
    df = parts.replay()
    for n in range(len(restored), UNITS):
        df = grow(parts.concat, df, _part(n))
    return df, parts


@pytest.mark.parametrize("growth", sorted(GROWTHS))
@pytest.mark.parametrize("init", sorted(INITS))
def test_replay_of_restored_parts_equals_an_uninterrupted_run(init: str, growth: str) -> None:
    if init == "none" and growth == "axis1":
        pytest.skip("pd.concat([None, part], axis=1) is the part alone: nothing new to check")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pandas on concat with empty frames
        direct = INITS[init]()
        for n in range(UNITS):
            direct = GROWTHS[growth](pd.concat, direct, _part(n))
        expected = _outputs(direct)

        whole, parts = _run(INITS[init], GROWTHS[growth], [])
        assert _outputs(whole) == expected  # journaling changes nothing in the live run
        assert len(parts.journal) == UNITS
        for done in (1, 3, UNITS):
            # each unit's entry as the checkpoint records it: its own pickle, one record a unit
            restored = [_loads(_dumps(entry)) for entry in parts.journal[:done]]
            resumed, _ = _run(INITS[init], GROWTHS[growth], restored)
            assert _outputs(resumed) == expected, (init, growth, done)


def test_an_entry_holds_the_parts_not_the_frame() -> None:
    df = pd.DataFrame(columns=["id"])
    parts = frame_concat(df, pd.concat)
    for n in range(3):
        df = parts.concat([df, pd.DataFrame([{"id": n}])], ignore_index=True)
    sizes = [len(_dumps(entry)) for entry in parts.journal]
    assert max(sizes) - min(sizes) < 16  # constant per unit: O(n) in all, not O(n^2)
    places, operands, as_tuple, args, kwargs = parts.journal[2]
    assert places == (0,) and operands[0] is None and len(operands[1]) == 1
    assert not as_tuple and args == () and kwargs == {"ignore_index": True}


def test_a_frame_rebound_elsewhere_is_recorded_whole() -> None:
    """No operand is the frame of the last call: the whole operand list is recorded, so the
    replay still makes exactly the call the run made."""
    df = pd.DataFrame({"id": [0]})
    parts = frame_concat(df, pd.concat)
    df = parts.concat([df, pd.DataFrame({"id": [1]})], ignore_index=True)
    other = pd.DataFrame({"id": [7, 8]})
    df = parts.concat([other, pd.DataFrame({"id": [2]})], ignore_index=True)
    assert parts.journal[1][0] == () and parts.journal[1][1][0] is other

    again = frame_concat(pd.DataFrame({"id": [0]}), pd.concat)
    again.journal = pickle.loads(pickle.dumps(parts.journal))
    assert again.replay().equals(df)
    assert again.replay().equals(df)  # replaying twice makes no call twice


def test_restored_arrays_share_the_builtin_dtypes() -> None:
    """A record's pickle gives back NumPy's own dtype objects, so a program's final pickle of
    restored arrays is the pickle of the arrays it computed (a dtype pickles as a copy)."""
    arrays = [np.arange(3, dtype=np.int64), np.zeros(2), np.array(["a"], dtype=object)]
    restored = _loads(_dumps(arrays))
    assert all(r.dtype is a.dtype for r, a in zip(restored, arrays))
    assert pickle.dumps(restored) == pickle.dumps(arrays)
    # a dtype that is not a builtin singleton still round-trips (as a copy, as before)
    odd = np.array(["2024-01-01"], dtype="M8[ns]")
    again = _loads(_dumps(odd))
    assert again.dtype == odd.dtype and again.dtype is not odd.dtype and list(again) == list(odd)
    assert pickle.loads(pickle.dumps(np.dtype("int64"))) is not np.dtype("int64")  # why this matters


def test_datetime_blocks_kept_whole() -> None:
    """The known limit of byte-identical pickles: ``concat(axis=1)`` keeps each part's
    datetime64 block as it is, and pandas gives all of them one shared dtype object, which
    no pickle can give back (``M8[us]`` is not one of NumPy's builtin singletons). Values,
    dtypes, index, csv and json are identical, and the pickle loads to an equal frame."""
    init = INITS["loaded"]

    def grow(concat: Any, df: Any, part: Any) -> Any:
        return concat([df, _columns(part)], axis=1)

    direct = init()
    for n in range(UNITS):
        direct = grow(pd.concat, direct, _part(n))
    whole, parts = _run(init, grow, [])
    restored = [_loads(_dumps(entry)) for entry in parts.journal[:3]]
    resumed, _ = _run(init, grow, restored)
    expected, got = _outputs(direct), _outputs(resumed)
    assert {k: v for k, v in got.items() if k != "pickle"} == {
        k: v for k, v in expected.items() if k != "pickle"
    }
    assert pd.read_pickle(io.BytesIO(got["pickle"])).equals(direct)


def test_a_loop_run_again_in_the_same_process_goes_on_over_the_live_frame(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """A notebook's loop cell interrupted, then run again in the same kernel without the cell
    that creates the frame: the frame already holds the recorded units, so they are not
    joined a second time (as a list accumulator goes on over its live value). The cells run
    as a kernel runs them: their names are the globals of one namespace."""
    monkeypatch.setenv("CHECKPOINTIFY_FSYNC", "always")  # one record a unit: none pending at the interrupt
    ran: List[Any] = []

    def work(n: int) -> Dict[str, int]:
        if n == 4 and "stop" not in ran:
            ran.append("stop")
            raise KeyboardInterrupt
        ran.append(n)
        return {"id": n}

    kernel: Dict[str, Any] = {"work": work, "directory": str(tmp_path)}
    exec("import pandas as pd\nfrom checkpointify.runtime import checkpoint, frame_concat", kernel)
    exec('df = pd.DataFrame(columns=["id"])', kernel)  # the cell that creates the frame runs once
    loop_cell = (
        "df_parts = frame_concat(df, pd.concat)\n"
        'ckpt = checkpoint("cell.ipynb::<module>::df", range(8), lambda: (df_parts.journal,), directory=directory)\n'
        "[df_parts.journal] = ckpt.restore()\n"
        "df = df_parts.replay()\n"
        "for n in ckpt:\n"
        "    df = df_parts.concat([df, pd.DataFrame([work(n)])], ignore_index=True)\n"
    )
    with pytest.raises(KeyboardInterrupt):
        exec(loop_cell, kernel)
    assert len(kernel["df"]) == 4
    exec(loop_cell, kernel)
    exec("ckpt.complete()", kernel)
    assert list(kernel["df"]["id"]) == list(range(8)) and list(kernel["df"].index) == list(range(8))
    assert ran == [0, 1, 2, 3, "stop", 4, 5, 6, 7]


def test_a_new_frame_gets_a_new_journal() -> None:
    first = pd.DataFrame(columns=["id"])
    parts = frame_concat(first, pd.concat)
    grown = parts.concat([first, pd.DataFrame([{"id": 1}])], ignore_index=True)
    assert frame_concat(grown, pd.concat) is parts  # the frame it grew: the same journal
    assert frame_concat(first, pd.concat) is not parts  # an older frame: not what it holds now
    assert frame_concat(pd.DataFrame(columns=["id"]), pd.concat) is not parts
