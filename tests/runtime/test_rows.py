"""checkpoint_rows: pandas' apply/progress_apply/map checkpointed per call, killed and resumed.

Each case runs a real program in a subprocess three ways: uninterrupted with the plain
pandas call, with the checkpointed call and a real SIGKILL after some calls, then again to
resume. The resumed result must equal the plain one exactly (values, dtypes, index, column
names: compared through ``pickle`` and ``DataFrame.equals``), the calls completed before
the kill must not run again, and nothing may be left behind.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List

import pytest

pd = pytest.importorskip("pandas")

SRC = str(Path(__file__).resolve().parents[2] / "src")

PRELUDE = """\
import os, pickle, signal, sys
import numpy as np
import pandas as pd
from checkpointify.runtime import checkpoint_rows

CALLS = []

def unit(x):
    key = x.name if isinstance(x, pd.Series) else x
    with open("calls.log", "a") as log:
        log.write(repr(key) + "\\n")
    CALLS.append(key)
    if os.environ.get("KILL_AT") and len(CALLS) == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
"""

CASES: Dict[str, Dict[str, Any]] = {
    "series-to-scalars-duplicate-index": dict(
        setup="obj = pd.Series(['a', 'bb', 'ccc', 'd', 'ee', 'f'], index=[2, 2, 0, 7, 7, 1], name='t')",
        call="{obj}.apply(f)",
        func="def f(x):\n    unit(x)\n    return len(x) * 1.5",
    ),
    "series-returning-series-makes-a-frame": dict(
        setup="obj = pd.Series([1, 2, 3, 4, 5], index=list('vwxyz'))",
        call="{obj}.apply(f)",
        func="def f(x):\n    unit(x)\n    return pd.Series({'sq': x * x, 'txt': str(x)})",
    ),
    "frame-axis1-expand": dict(
        setup="obj = pd.DataFrame({'a': [1, 2, 3, 4], 'b': [0.5, 1.5, 2.5, 3.5]}, index=['p', 'q', 'q', 'r'])",
        call="{obj}.apply(f, axis=1, result_type='expand')",
        func="def f(row):\n    unit(row)\n    return [row['a'] + row['b'], int(row['a'])]",
    ),
    "map-na-ignore": dict(
        setup="obj = pd.Series([1.0, None, 3.0, None, 5.0, 6.0])",
        call="{obj}.map(f, na_action='ignore')",
        func="def f(x):\n    unit(x)\n    return int(x) * 10",
    ),
    "categorical-map": dict(
        setup="obj = pd.Series(['x', 'y', 'x', 'z', 'y'], dtype='category')",
        call="{obj}.map(f)",
        func="def f(x):\n    unit(x)\n    return x.upper()",
    ),
    "kwargs-and-args": dict(
        setup="obj = pd.Series(range(6))",
        call="{obj}.apply(f, args=(3,), scale=2)",
        func="def f(x, add, scale=1):\n    unit(x)\n    return (x + add) * scale",
    ),
}


def _program(case: Dict[str, Any], checkpointed: bool) -> str:
    obj = "rows(obj)" if checkpointed else "obj"
    body = [PRELUDE, case["func"], case["setup"]]
    if checkpointed:
        body.append("rows = checkpoint_rows('rows-test::<module>::result')")
    body.append("result = " + case["call"].format(obj=obj))
    body.append("with open('result.pkl', 'wb') as out:\n    pickle.dump(result, out)")
    if checkpointed:
        body.append("rows.complete()")
    return "\n".join(body) + "\n"


def _run(where: Path, program: str, kill_at: int = 0) -> "subprocess.CompletedProcess[str]":
    where.mkdir(parents=True, exist_ok=True)
    (where / "job.py").write_text(program)
    env = dict(os.environ, PYTHONPATH=SRC, CHECKPOINTIFY_BATCH="off")
    env.pop("CHECKPOINTIFY_DIR", None)
    if kill_at:
        env["KILL_AT"] = str(kill_at)
    return subprocess.run(
        [sys.executable, "job.py"], cwd=where, env=env, capture_output=True, text=True, timeout=120
    )


def _calls(where: Path) -> List[str]:
    log = where / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def _same(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    assert a.equals(b)
    assert a.index.equals(b.index) and a.index.dtype == b.index.dtype
    if isinstance(a, pd.DataFrame):
        assert list(a.columns) == list(b.columns)
        assert a.dtypes.to_dict() == b.dtypes.to_dict()
    else:
        assert a.dtype == b.dtype and a.name == b.name


@pytest.mark.parametrize("name", sorted(CASES))
def test_killed_and_resumed_equals_plain_pandas(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    plain = _run(tmp_path / "plain", _program(case, checkpointed=False))
    assert plain.returncode == 0, plain.stderr
    expected = pickle.loads((tmp_path / "plain" / "result.pkl").read_bytes())
    all_calls = _calls(tmp_path / "plain")
    kill_at = max(2, len(all_calls) // 2)

    where = tmp_path / "fixed"
    killed = _run(where, _program(case, checkpointed=True), kill_at=kill_at)
    assert killed.returncode == -9, killed.stderr
    before = _calls(where)
    assert (where / ".checkpointify").is_dir(), "no checkpoint was left by the killed run"

    (where / "calls.log").unlink()
    resumed = _run(where, _program(case, checkpointed=True))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    after = _calls(where)
    # the unit in flight at the kill runs again; every unit completed before it does not
    assert before[:-1] + after == all_calls
    _same(pickle.loads((where / "result.pkl").read_bytes()), expected)
    assert not (where / ".checkpointify").exists(), "a successful run left its checkpoint behind"


def test_empty_input_gives_pandas_result(tmp_path: Path) -> None:
    for setup, call in (
        ("obj = pd.DataFrame({'a': pd.Series([], dtype='int64')})", "{obj}.apply(f, axis=1)"),
        ("obj = pd.Series([], dtype='float64')", "{obj}.apply(f)"),
    ):
        case = dict(setup=setup, call=call, func="def f(x):\n    return 1")
        plain = _run(tmp_path / "plain", _program(case, checkpointed=False))
        fixed = _run(tmp_path / "fixed", _program(case, checkpointed=True))
        assert plain.returncode == 0 and fixed.returncode == 0, plain.stderr + fixed.stderr
        _same(
            pickle.loads((tmp_path / "fixed" / "result.pkl").read_bytes()),
            pickle.loads((tmp_path / "plain" / "result.pkl").read_bytes()),
        )


def test_changed_input_archives_the_log_and_starts_over(tmp_path: Path) -> None:
    case = dict(CASES["series-to-scalars-duplicate-index"])
    where = tmp_path / "fixed"
    killed = _run(where, _program(case, checkpointed=True), kill_at=4)
    assert killed.returncode == -9
    case["setup"] = "obj = pd.Series(['A', 'bb', 'ccc', 'd', 'ee', 'f'], index=[2, 2, 0, 7, 7, 1], name='t')"
    (where / "calls.log").unlink()
    rerun = _run(where, _program(case, checkpointed=True))
    assert rerun.returncode == 0, rerun.stderr
    assert "does not match" in rerun.stderr or "other argument" in rerun.stderr or "stale" in rerun.stderr
    assert _calls(where) == ["'A'", "'bb'", "'ccc'", "'d'", "'ee'", "'f'"]
    result = pickle.loads((where / "result.pkl").read_bytes())
    assert result.tolist() == [1.5, 3.0, 4.5, 1.5, 3.0, 1.5]


def test_strict_mode_raises_on_changed_input(tmp_path: Path) -> None:
    case = dict(CASES["kwargs-and-args"])
    where = tmp_path / "fixed"
    assert _run(where, _program(case, checkpointed=True), kill_at=3).returncode == -9
    case["setup"] = "obj = pd.Series(range(1, 7))"
    program = _program(case, checkpointed=True).replace(
        "checkpoint_rows('rows-test::<module>::result')",
        "checkpoint_rows('rows-test::<module>::result', strict=True)",
    )
    rerun = _run(where, program)
    assert rerun.returncode != 0 and "StaleCheckpointError" in rerun.stderr


def test_not_pandas_runs_unchecked_with_one_warning(tmp_path: Path) -> None:
    program = textwrap.dedent(
        """\
        from checkpointify.runtime import checkpoint_rows

        class Box:
            def __init__(self, xs):
                self.xs = xs
            def apply(self, f):
                return [f(x) for x in self.xs]

        rows = checkpoint_rows("rows-test::<module>::box")
        print(rows(Box([1, 2, 3])).apply(lambda x: x + 1))
        rows.complete()
        """
    )
    done = _run(tmp_path, program)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[2, 3, 4]"
    assert done.stderr.count("warning") == 1 and "not a pandas Series or DataFrame" in done.stderr
    assert not (tmp_path / ".checkpointify").exists()


def test_ufunc_and_dict_run_as_pandas_runs_them(tmp_path: Path) -> None:
    program = PRELUDE + textwrap.dedent(
        """\
        s = pd.Series([1.0, 4.0, 9.0])
        rows = checkpoint_rows("rows-test::<module>::s")
        a = rows(s).apply(np.sqrt)
        b = rows(s).map({1.0: "one", 4.0: "four"})
        print(a.tolist(), a.dtype, b.tolist())
        rows.complete()
        """
    )
    done = _run(tmp_path, program)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1.0, 2.0, 3.0] float64 ['one', 'four', nan]"
    assert done.stderr.count("warning") == 2
