"""Notebooks through the CLI: discovery, every output format's location, diff, fix, stdin, errors."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Tuple

import pytest

from checkpointify.cli import main
from checkpointify.output.diffs import file_diff
from tests.output.test_formats import apply_replacements, validate_sarif
from tests.support.fixture_cases import FIXTURES

CASE = FIXTURES / "notebook" / "cross-cell-magics"
OUTPUTS = FIXTURES / "notebook" / "outputs-widgets"


def run_cli(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> Tuple[int, str, str]:
    code = main(list(args))
    out, err = capsysbinary.readouterr()
    return code, out.decode(), err.decode()


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "labels.ipynb").write_bytes((CASE / "input.ipynb").read_bytes())
    return tmp_path


def test_a_folder_walk_finds_notebooks_and_the_text_names_the_cell(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    hidden = project / "nb" / ".ipynb_checkpoints"
    hidden.mkdir()
    (hidden / "labels-checkpoint.ipynb").write_bytes((CASE / "input.ipynb").read_bytes())
    code, out, _ = run_cli(capsysbinary, "scan", "--no-cache", ".")
    assert code == 1
    [head] = [line for line in out.splitlines() if "CKP001" in line]
    # cell 4 counting from 1 (the markdown cell counts); the loop is line 2 of that cell
    assert head.startswith("nb/labels.ipynb:cell 4:2:1: CKP001 `labels` is collected")
    code, out, _ = run_cli(capsysbinary, "scan", "--no-cache", "--exclude", "*.ipynb", ".")
    assert code == 0 and out == ""


def test_json_carries_the_cell_index_and_cell_relative_lines(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    for _ in range(2):  # the second run comes from the cache: the cell survives it
        code, out, _ = run_cli(capsysbinary, "scan", "--format", "json", ".")
        assert code == 1
        [finding] = json.loads(out)["findings"]
        assert finding["path"] == "nb/labels.ipynb"
        assert (finding["cell"], finding["line"], finding["column"], finding["end_line"]) == (3, 2, 1, 3)
        cells = json.loads((project / "nb" / "labels.ipynb").read_text())["cells"]
        assert "".join(cells[3]["source"]).splitlines()[1] == "for n in range(10):"


def test_sarif_and_github_point_at_the_json_line_of_the_loop(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    text = (project / "nb" / "labels.ipynb").read_text()
    loop_line = text.splitlines().index('    "for n in range(10):\\n",') + 1
    code, out, _ = run_cli(capsysbinary, "scan", "--format", "sarif", ".")
    document = json.loads(out)
    validate_sarif(document)
    [result] = document["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": loop_line}
    assert result["properties"]["cell"] == 3 and result["properties"]["cellLine"] == 2
    assert result["message"]["text"].startswith("cell 4, line 2: ")
    fixed = apply_replacements(text, result["fixes"][0]["artifactChanges"][0]["replacements"])
    assert fixed == (CASE / "expected.ipynb").read_text().replace("input.ipynb::", "nb/labels.ipynb::")

    code, out, _ = run_cli(capsysbinary, "scan", "--format", "github", ".")
    assert out.startswith(
        "::warning file=nb/labels.ipynb,line=%d,title=CKP001 (cell 4%%2C line 2)::" % loop_line
    )


def test_the_terminal_diff_is_per_cell_source_diffs_not_json(project: Path) -> None:
    """What `diff` shows on a terminal, and `fix -i` (tests/cli/test_interactive.py runs
    that one under a real pty): the changed cells' sources."""
    old = (project / "nb" / "labels.ipynb").read_bytes()
    assert main(["fix", "--no-cache", "."]) == 0
    out = file_diff(
        old, (project / "nb" / "labels.ipynb").read_bytes(), "nb/labels.ipynb", readable=True
    ).decode()
    headers = [line for line in out.splitlines() if line.startswith(("--- ", "+++ "))]
    assert headers == [
        "--- a/nb/labels.ipynb:cell 1",
        "+++ b/nb/labels.ipynb:cell 1",
        "--- a/nb/labels.ipynb:cell 4",
        "+++ b/nb/labels.ipynb:cell 4",
        "--- a/nb/labels.ipynb:cell 7",
        "+++ b/nb/labels.ipynb:cell 7",
    ]
    assert "-for n in range(10):\n+ckpt = checkpoint(" in out
    assert '"source"' not in out and '\\n"' not in out  # no JSON noise
    assert " %time warm = work(0)\n" in out  # the magic is context, untouched


@pytest.mark.parametrize("where", ["stdout", "output"])
def test_a_written_notebook_diff_is_a_patch_git_applies(
    where: str, project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """`diff > fix.patch` and `diff --output fix.patch`: the .ipynb JSON text's unified diff,
    only the changed `source` lines, applied by real `git apply` in a fresh repository; the
    result is byte for byte what `fix` writes."""
    (project / "nb" / "outputs.ipynb").write_bytes((OUTPUTS / "input.ipynb").read_bytes())
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "add", "-A"], check=True)
    if where == "stdout":
        code, out, _ = run_cli(capsysbinary, "diff", "--no-cache", ".")
        (project / "fix.patch").write_text(out)
    else:
        code, out, _ = run_cli(capsysbinary, "diff", "--no-cache", ".", "--output", "fix.patch")
        assert out == ""
    assert code == 1
    patch = (project / "fix.patch").read_text()
    headers = [line for line in patch.splitlines() if line.startswith(("--- ", "+++ "))]
    assert headers == [
        "--- a/nb/labels.ipynb",
        "+++ b/nb/labels.ipynb",
        "--- a/nb/outputs.ipynb",
        "+++ b/nb/outputs.ipynb",
    ]
    changed = [
        line for line in patch.splitlines() if line[:1] in "+-" and not line.startswith(("---", "+++"))
    ]
    assert changed and all(line[1:].lstrip().startswith('"') for line in changed)  # source strings only
    assert not any(key in "".join(changed) for key in ('"outputs"', '"execution_count"', '"metadata"'))
    subprocess.run(["git", "apply", "--check", "fix.patch"], check=True)
    subprocess.run(["git", "apply", "fix.patch"], check=True)
    applied = {n: (project / "nb" / n).read_bytes() for n in ("labels.ipynb", "outputs.ipynb")}
    subprocess.run(["git", "checkout", "-q", "--", "nb"], check=True)
    assert main(["fix", "--no-cache", "."]) == 0
    capsysbinary.readouterr()
    assert applied == {n: (project / "nb" / n).read_bytes() for n in ("labels.ipynb", "outputs.ipynb")}


def test_fix_changes_only_the_sources_of_the_changed_cells(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    (project / "nb" / "outputs.ipynb").write_bytes((OUTPUTS / "input.ipynb").read_bytes())
    code, _, err = run_cli(capsysbinary, "fix", ".")
    assert code == 0, err
    before = json.loads((OUTPUTS / "input.ipynb").read_text())
    after = json.loads((project / "nb" / "outputs.ipynb").read_text())
    changed = [i for i, (a, b) in enumerate(zip(before["cells"], after["cells"])) if a != b]
    assert changed == [0, 1, 2]
    for a, b in zip(before["cells"], after["cells"]):
        assert {k: v for k, v in a.items() if k != "source"} == {k: v for k, v in b.items() if k != "source"}
    assert before["metadata"] == after["metadata"]  # widget state included
    expected = (OUTPUTS / "expected.ipynb").read_text().replace("input.ipynb::", "nb/outputs.ipynb::")
    assert (project / "nb" / "outputs.ipynb").read_text() == expected
    code, out, _ = run_cli(capsysbinary, "scan", ".")
    assert code == 0 and out == ""  # converged: nothing left to flag


def test_stdin_with_a_notebook_filename(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    class FakeStdin:
        buffer = io.BytesIO((CASE / "input.ipynb").read_bytes())

        def isatty(self) -> bool:
            return False

    monkeypatch.setattr("sys.stdin", FakeStdin())
    code = main(["fix", "-", "--stdin-filename", "input.ipynb"])
    out, _ = capsysbinary.readouterr()
    assert code == 0
    assert out == (CASE / "expected.ipynb").read_bytes()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"{not json", "not a notebook: not valid JSON (Expecting property name"),
        (b'{"nbformat": 3, "cells": []}', "not a notebook in nbformat 4 (it says nbformat 3)"),
        (
            b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code", "source": '
            b'"for x in y:\\n    out.append(f(x))\\njson.dump(out, fh)"}]}',
            "not a valid nbformat 4 notebook: ",
        ),
        (
            b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code", "id": "a", '
            b'"metadata": {}, "outputs": [], "execution_count": null, "source": "out = []\\nfor x in y:\\n'
            b'    out.append(f(x)\\njson.dump(out, fh)"}]}',
            "syntax error at cell 1, line 3",
        ),
    ],
    ids=["not-json", "nbformat-3", "schema", "syntax"],
)
def test_a_bad_notebook_is_a_one_line_error_and_left_untouched(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes], data: bytes, message: str
) -> None:
    (project / "nb" / "labels.ipynb").unlink()
    (project / "bad.ipynb").write_bytes(data)
    code, _, err = run_cli(capsysbinary, "fix", "bad.ipynb")
    assert code == 1
    [line] = [x for x in err.splitlines() if x.startswith("bad.ipynb: error:")]
    assert message in line, line
    assert (project / "bad.ipynb").read_bytes() == data
