"""A notebook whose ``.apply`` runs in one cell and whose save is in a later cell: fixed,
run in a real ipykernel kernel, the kernel killed with SIGKILL mid-apply, every cell run
again on a new kernel. The saved CSV must equal the original notebook's, completed rows
must not be classified again, and nothing may be left behind."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, List

import pytest

from checkpointify.api import Options, process_source
from tests.support.kernels import client as _client
from tests.support.kernels import kill_kernel_after

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("pandas")

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")
ROWS = 10


def _notebook() -> Any:
    book = new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    book.cells = [
        new_code_cell(
            "import os\nimport time\nimport pandas as pd\nopen('kernel.pid', 'w').write(str(os.getpid()))"
        ),
        new_code_cell(
            "def classify(text):\n"
            "    with open('work.log', 'a') as log:\n"
            "        log.write(text + '\\n')\n"
            "    time.sleep(0.15)\n"
            "    return len(text) * 0.5\n"
            "\n"
            "df = pd.DataFrame({'text': ['t%%d' %% i * (i %% 3 + 1) for i in range(%d)]}, index=[i // 2 for i in range(%d)])"
            % (ROWS, ROWS)
        ),
        new_code_cell("df['score'] = df['text'].apply(classify)"),
        new_markdown_cell("Save the scores."),
        new_code_cell("df.to_csv('scores.csv')"),
    ]
    return book


def _work_done(where: Path) -> List[str]:
    log = where / "work.log"
    return log.read_text().split() if log.exists() else []


@pytest.fixture(autouse=True)
def _kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("CHECKPOINTIFY_DIR", raising=False)


def test_a_killed_kernel_resumes_the_apply_on_a_new_kernel(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    nbformat.write(_notebook(), str(baseline / "scores.ipynb"))
    _client(baseline / "scores.ipynb").execute()
    expected = (baseline / "scores.csv").read_bytes()
    all_rows = _work_done(baseline)

    where = tmp_path / "fixed"
    where.mkdir()
    original = nbformat.writes(_notebook()).encode("utf-8")
    result = process_source(original, str(where / "scores.ipynb"), Options(root=where), rewrite=True)
    assert result.error is None and result.changed and result.new_source is not None, result
    assert b"checkpoint_rows" in result.new_source
    path = where / "scores.ipynb"
    path.write_bytes(result.new_source)

    kill_kernel_after(path, 4, "the apply")
    assert not (where / "scores.csv").exists()
    before = _work_done(where)

    _client(path).execute()
    assert (where / "scores.csv").read_bytes() == expected
    counts = Counter(_work_done(where))
    assert sorted(counts) == sorted(all_rows)
    redone = [t for t, c in counts.items() if c > 1]
    assert len(redone) <= 1 and set(redone) <= {before[-1]}, "completed rows ran again: %s" % counts
    assert not (where / ".checkpointify").exists(), "a successful run left its checkpoint behind"
