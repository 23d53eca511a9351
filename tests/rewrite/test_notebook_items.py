"""A notebook whose loop fills in the items of a loaded list (item-writes), fixed, run in a
real ipykernel kernel (through nbclient), killed with SIGKILL mid-loop and run again on a
new kernel: the saved file equals the original notebook's, completed units do not run
again, nothing is left behind."""

from __future__ import annotations

import json
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

from nbformat.v4 import new_code_cell, new_notebook  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")
ITEMS = 12


def _notebook() -> Any:
    book = new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    book.cells = [
        new_code_cell("import json\nimport os\nimport time\nopen('kernel.pid', 'w').write(str(os.getpid()))"),
        new_code_cell(
            "def ask(question):\n"
            "    with open('work.log', 'a') as log:\n"
            "        log.write(question + '\\n')\n"
            "    time.sleep(0.15)\n"
            "    return question.upper()"
        ),
        new_code_cell("with open('questions.json') as f:\n    data = json.load(f)"),
        new_code_cell("for i, item in enumerate(data):\n    item['answer'] = ask(item['question'])"),
        new_code_cell("with open('answers.json', 'w') as out:\n    json.dump(data, out)"),
    ]
    return book


def _prepare(where: Path) -> None:
    where.mkdir()
    questions = [{"id": n, "question": "q%d" % n} for n in range(ITEMS)]
    (where / "questions.json").write_text(json.dumps(questions))


def _work_done(where: Path) -> List[str]:
    log = where / "work.log"
    return log.read_text().split() if log.exists() else []


@pytest.fixture(autouse=True)
def _kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("CHECKPOINTIFY_DIR", raising=False)
    monkeypatch.setenv(
        "CHECKPOINTIFY_BATCH", "off"
    )  # the promise checked: only the unit in flight runs again


def test_a_killed_kernel_resumes_the_item_writes(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline"
    _prepare(baseline)
    nbformat.write(_notebook(), str(baseline / "answers.ipynb"))
    _client(baseline / "answers.ipynb").execute()
    expected = (baseline / "answers.json").read_bytes()

    where = tmp_path / "fixed"
    _prepare(where)
    original = nbformat.writes(_notebook()).encode("utf-8")
    result = process_source(original, str(where / "answers.ipynb"), Options(root=where), rewrite=True)
    assert result.error is None and result.changed and result.new_source is not None, result
    assert [f.variant for f in result.findings] == ["item-writes"]
    assert b"item_writes(data)" in result.new_source
    path = where / "answers.ipynb"
    path.write_bytes(result.new_source)

    kill_kernel_after(path, 4)
    assert not (where / "answers.json").exists()
    before = _work_done(where)

    _client(path).execute()
    assert (where / "answers.json").read_bytes() == expected
    counts = Counter(_work_done(where))
    assert sorted(counts) == sorted("q%d" % n for n in range(ITEMS))
    redone = [q for q, c in counts.items() if c > 1]
    assert len(redone) <= 1 and set(redone) <= {before[-1]}, "completed units ran again: %s" % counts
    assert not (where / ".checkpointify").exists(), "a successful run left its checkpoint behind"
