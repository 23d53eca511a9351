"""A fixed notebook in a real ipykernel kernel (through nbclient): killed and resumed.

The notebook is rewritten by checkpointify, then executed cell by cell by a real local
kernel. The kernel process is killed with SIGKILL while the loop runs; a new kernel runs
every cell again. The saved file must equal what the original notebook writes when it
runs uninterrupted, the units completed before the kill must not run again (the work
function appends each item to a side file), the resume note must be in the loop cell's
output, and nothing may be left behind. A KeyboardInterrupt in a live kernel, then
re-running the cells in that same kernel, must resume too.
"""

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

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")
ITEMS = 12


def _notebook() -> Any:
    book = new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    book.cells = [
        new_code_cell(
            "import json\nimport os\nimport time\n%load_ext autoreload\n"
            "open('kernel.pid', 'w').write(str(os.getpid()))"
        ),
        new_code_cell(
            "def label(n):\n"
            "    if n == 5 and os.path.exists('interrupt-once'):\n"
            "        os.remove('interrupt-once')\n"
            "        raise KeyboardInterrupt\n"
            "    with open('work.log', 'a') as log:\n"
            "        log.write('%d\\n' % n)\n"
            "    time.sleep(0.15)\n"
            "    return n * n\n"
            "\n"
            "labels = []"
        ),
        new_code_cell("%%time\nfor n in range(%d):\n    labels.append(label(n))" % ITEMS),
        new_markdown_cell("Save the labels."),
        new_code_cell("with open('labels.json', 'w') as out:\n    json.dump(labels, out)"),
    ]
    return book


def _fixed(where: Path) -> Path:
    where.mkdir()
    original = nbformat.writes(_notebook()).encode("utf-8")
    result = process_source(original, str(where / "labels.ipynb"), Options(root=where), rewrite=True)
    assert result.error is None and result.changed, result
    assert result.new_source is not None
    path = where / "labels.ipynb"
    path.write_bytes(result.new_source)
    return path


def _work_done(where: Path) -> List[int]:
    log = where / "work.log"
    return [int(x) for x in log.read_text().split()] if log.exists() else []


@pytest.fixture(autouse=True)
def _kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("CHECKPOINTIFY_DIR", raising=False)


def test_a_killed_kernel_resumes_on_a_new_kernel(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    original = baseline / "labels.ipynb"
    nbformat.write(_notebook(), str(original))
    _client(original).execute()
    expected = (baseline / "labels.json").read_bytes()

    path = _fixed(tmp_path / "fixed")
    where = path.parent
    kill_kernel_after(path, 4)
    assert not (where / "labels.json").exists()
    before = _work_done(where)

    second = _client(path)
    book = second.execute()
    assert (where / "labels.json").read_bytes() == expected
    counts = Counter(_work_done(where))
    assert sorted(counts) == list(range(ITEMS))
    redone = [n for n, c in counts.items() if c > 1]
    assert len(redone) <= 1 and set(redone) <= {before[-1]}, "completed units ran again: %s" % counts
    loop_output = "".join(
        o.get("text", "") for o in book.cells[2].outputs if o.get("output_type") == "stream"
    )
    assert "checkpointify: resuming labels.ipynb::<module>::labels" in loop_output
    assert not (where / ".checkpointify").exists(), "a successful run left its checkpoint behind"


def test_an_interrupt_resumes_in_the_same_kernel(tmp_path: Path) -> None:
    path = _fixed(tmp_path / "fixed")
    where = path.parent
    (where / "interrupt-once").write_text("")
    client = _client(path)
    with client.setup_kernel():
        for index in (0, 1):
            client.execute_cell(client.nb.cells[index], index)
        with pytest.raises(nbclient.exceptions.CellExecutionError, match="KeyboardInterrupt"):
            client.execute_cell(client.nb.cells[2], 2)
        assert _work_done(where) == [0, 1, 2, 3, 4]
        for index in (2, 4):  # the user re-runs the loop cell, then the save cell
            client.execute_cell(client.nb.cells[index], index)
    assert _work_done(where) == list(range(ITEMS)), "completed units ran again"
    assert (where / "labels.json").read_text() == str([n * n for n in range(ITEMS)])
    assert not (where / ".checkpointify").exists()

    # a completed loop, run again, starts from zero
    again = _client(path)
    again.execute()
    assert _work_done(where) == list(range(ITEMS)) * 2
    assert (where / "labels.json").read_text() == str([n * n for n in range(ITEMS)])
