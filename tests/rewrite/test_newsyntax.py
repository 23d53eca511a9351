"""Files whose syntax is newer than this Python (PEP 701 f-strings), through scan, diff and fix.

The rewrite of such a file is run for real, killed with SIGKILL and resumed, by the
fixture harness (``collect-loop/newer-syntax-fstring``, under a Python 3.12 interpreter
when the machine has one). Here: what the CLI says and does, on ``.py`` files and
notebooks, and that a file with a real error besides its new f-strings is still a
syntax error and left byte-identical.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Tuple

import libcst as cst
import nbformat
import pytest

from checkpointify.cli import main
from checkpointify.rewrite import newsyntax, verify
from tests.support.fixture_cases import FIXTURES, Case

CASE = Case(FIXTURES / "collect-loop" / "newer-syntax-fstring")
NOTE = (
    "checked with LibCST's parser only: this Python (%d.%d) rejects the file's syntax" % sys.version_info[:2]
)

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="this Python parses PEP 701 f-strings")


def run_cli(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> Tuple[int, str, str]:
    code = main(list(args))
    out, err = capsysbinary.readouterr()
    return code, out.decode(), err.decode()


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_fixture_is_a_file_this_python_rejects() -> None:
    with pytest.raises(SyntaxError, match="f-string"):
        compile(CASE.source, "input.py", "exec")
    cst.parse_module(CASE.source)  # and LibCST's parser accepts


def test_scan_reports_the_loop_with_the_note(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    (project / "job.py").write_bytes(CASE.source)
    code, out, err = run_cli(capsysbinary, "scan", "--no-cache", "--format", "json", "job.py")
    assert code == 1, err
    document = json.loads(out)
    [finding] = document["findings"]
    assert (finding["line"], finding["end_line"], finding["accumulators"]) == (7, 9, ["labels"])
    assert finding["message"].endswith("(%s)" % NOTE)
    assert not document.get("errors")


def test_diff_and_fix_write_the_reviewed_rewrite(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    (project / "input.py").write_bytes(CASE.source)
    code, out, err = run_cli(capsysbinary, "diff", "--no-cache", "input.py")
    assert code == 1, err
    assert "+ckpt = checkpoint(" in out and '+    labels.append(work(f"{row["text"]}"))' not in out
    assert (project / "input.py").read_bytes() == CASE.source  # diff writes nothing
    code, out, err = run_cli(capsysbinary, "fix", "--no-cache", "input.py")
    assert code == 0, err
    fixed = (project / "input.py").read_bytes()
    assert fixed == CASE.expected
    assert newsyntax.check(fixed) is not None  # what this Python can check of it
    code, out, err = run_cli(capsysbinary, "scan", "--no-cache", "input.py")
    assert code == 0 and "error" not in err  # converged: nothing left to fix, no error


def _with_real_error(source: bytes) -> bytes:
    # LibCST's grammar accepts a repeated keyword argument; CPython's parser does not
    return source.replace(b"json.dump(labels, f)", b"json.dump(labels, f, indent=1, indent=2)")


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(_with_real_error(CASE.source), id="another-error-libcst-accepts"),
        pytest.param(CASE.source.replace(b'{row["text"]}', b'{row["text"}'), id="error-in-the-fstring"),
        pytest.param(CASE.source.replace(b'{row["text"]}', b'{row["text"] = = 1}'), id="error-in-a-field"),
        pytest.param(CASE.source + b"return labels\n", id="compile-time-error"),
    ],
)
def test_a_really_broken_file_is_still_a_syntax_error_and_untouched(
    broken: bytes, project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert newsyntax.check(broken) is None
    (project / "job.py").write_bytes(broken)
    for command in ("scan", "fix"):
        code, out, err = run_cli(capsysbinary, command, "--no-cache", "job.py")
        assert code == 1, err  # a file that cannot be processed
        assert "job.py: error: syntax error at line " in err + out
        assert (project / "job.py").read_bytes() == broken


def test_a_broken_file_reports_cpythons_own_message(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    broken = _with_real_error(CASE.source)
    (project / "job.py").write_bytes(broken)
    code, out, err = run_cli(capsysbinary, "scan", "--no-cache", "job.py")
    assert "job.py: error: syntax error at line 9, column " in err + out
    assert "f-string" in err + out  # the first thing CPython objects to, as it says it


def test_a_rewrite_that_adds_an_error_is_discarded() -> None:
    """The verification of a rewrite of such a file: LibCST-parsable is not enough."""
    good = CASE.expected
    assert verify._verify(good, "input.py", CASE.options(), newer=True) is None
    bad = _with_real_error(good)
    problem = verify._verify(bad, "input.py", CASE.options(), newer=True)
    assert problem is not None and "does not compile" in problem
    # and a file this Python parses is never verified with LibCST alone
    assert verify._verify(good, "input.py", CASE.options(), newer=False) is not None


def _notebook(path: Path) -> bytes:
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    book.cells = [
        nbformat.v4.new_markdown_cell("# labels"),
        nbformat.v4.new_code_cell(
            'import json\n\nfrom ckfixture import work\n\nrows = [{"text": str(i)} for i in range(5)]'
        ),
        nbformat.v4.new_code_cell('labels = []\nfor row in rows:\n    labels.append(work(f"{row["text"]}"))'),
        nbformat.v4.new_code_cell('with open("labels.json", "w") as f:\n    json.dump(labels, f)'),
    ]
    data = nbformat.writes(book).encode("utf-8") + b"\n"
    path.write_bytes(data)
    return data


def test_a_notebook_cell_with_newer_syntax(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    original = _notebook(project / "labels.ipynb")
    code, out, err = run_cli(capsysbinary, "scan", "--no-cache", "--format", "json", "labels.ipynb")
    assert code == 1, err
    [finding] = json.loads(out)["findings"]
    assert (finding["cell"], finding["line"]) == (2, 2) and finding["message"].endswith("(%s)" % NOTE)
    code, out, err = run_cli(capsysbinary, "fix", "--no-cache", "labels.ipynb")
    assert code == 0, err
    cells = json.loads((project / "labels.ipynb").read_text())["cells"]
    assert "ckpt = checkpoint(" in "".join(cells[2]["source"])
    assert 'labels.append(work(f"{row["text"]}"))' in "".join(cells[2]["source"])
    # a genuinely broken notebook stays a syntax error naming its cell, and untouched
    (project / "labels.ipynb").write_bytes(original.replace(b'{row[\\"text\\"]}', b'{row[\\"text\\"}'))
    broken = (project / "labels.ipynb").read_bytes()
    assert broken != original
    code, out, err = run_cli(capsysbinary, "fix", "--no-cache", "labels.ipynb")
    assert code == 1 and "labels.ipynb: error: syntax error at cell 3, line 3" in err + out
    assert (project / "labels.ipynb").read_bytes() == broken
