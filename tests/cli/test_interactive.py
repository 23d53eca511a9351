"""``fix --interactive`` driven through a real pseudo-terminal, and its refusal without one.

The CLI runs as a subprocess whose stdin and stdout are the slave side of a pty (so
``isatty()`` is true and rich colours its output); the test reads the master side and
types answers, like a person would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

from checkpointify.api import process_source, rewrite_selected
from checkpointify.cli.review import PROMPT, Answer, parse_answer
from checkpointify.types import Options
from tests.support.terminal import Terminal

TWO = b"""import json

first = []
for n in range(3):
    first.append(work(n))
json.dump(first, open("first.json", "w"))

second = []
for n in range(3, 6):
    second.append(work(n))
json.dump(second, open("second.json", "w"))
"""
UNSAFE = b"""import json
import os

names = ""  # a string: resume by identity needs containers, so the order hazard stays
for name in os.listdir("."):
    names += describe(name)
json.dump(names, open("names.json", "w"))
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (tmp_path / "a.py").write_bytes(TWO)
    (tmp_path / "b.py").write_bytes(TWO)
    return tmp_path


def only(path: Path, index: int, options: Optional[Options] = None) -> bytes:
    """The file with just its ``index``-th finding fixed (what accepting that change gives)."""
    os.chdir(path.parent)
    source = path.read_bytes() if path.exists() else b""
    findings = process_source(source, path.name, options or Options(), rewrite=False).findings
    result = rewrite_selected(source, path.name, options or Options(), [findings[index]])
    assert result.new_source is not None
    return result.new_source


def fully_fixed(path: Path) -> bytes:
    result = process_source(path.read_bytes(), path.name, Options(), rewrite=True)
    assert result.new_source is not None
    return result.new_source


@pytest.fixture(autouse=True)
def _keep_cwd() -> object:
    cwd = os.getcwd()
    yield
    os.chdir(cwd)


def test_yes_no_then_yes_applies_exactly_the_accepted_changes(project: Path) -> None:
    expected: Dict[str, bytes] = {"a.py": only(project / "a.py", 0), "b.py": fully_fixed(project / "b.py")}
    term = Terminal(["fix", "--interactive", "-j", "1"], project)
    shown = term.expect(PROMPT)
    assert "[1/2] a.py:4:1: CKP001 `first` is collected in this loop" in shown
    assert "fix: safe (applied by `checkpointify fix`)" in shown
    assert '+ckpt = checkpoint("a.py::<module>::first", range(3), lambda: (first,))' in shown
    assert "+from checkpointify.runtime import checkpoint" in shown and "--- a/a.py" in shown
    added = [line for line in shown.splitlines() if line.startswith("+")]
    # the +++ header, the import and the blank line that opens its section, the two prelude
    # lines, the loop header, the completion: this change alone
    assert len(added) == 7 and not [line for line in added if "second" in line]
    assert "\x1b[" in term.raw  # highlighted
    term.type("y")
    assert "[2/2] a.py:9:1: CKP001 `second`" in term.expect(PROMPT)
    term.type("n")
    assert "[1/2] b.py:4:1" in term.expect(PROMPT)
    term.type("y")
    assert "[2/2] b.py:9:1" in term.expect(PROMPT)
    term.type("y")
    assert term.finish() == 0
    assert "rewrote 3 loops in 2 files. 1 finding left as is." in term.stderr
    for name, content in expected.items():
        assert (project / name).read_bytes() == content, name
    compile((project / "a.py").read_bytes(), "a.py", "exec")


def test_all_applies_every_remaining_change_without_asking(project: Path) -> None:
    expected = {"a.py": fully_fixed(project / "a.py"), "b.py": fully_fixed(project / "b.py")}
    term = Terminal(["fix", "--interactive"], project)
    term.expect(PROMPT)
    term.type("a")
    assert term.finish() == 0
    assert term.screen.count(PROMPT) == 1
    assert "rewrote 4 loops in 2 files." in term.stderr
    for name, content in expected.items():
        assert (project / name).read_bytes() == content, name


def test_quit_keeps_what_was_accepted_and_touches_nothing_else(project: Path) -> None:
    expected_a = only(project / "a.py", 0)
    term = Terminal(["fix", "--interactive", "--exit-non-zero-on-fix"], project)
    term.expect(PROMPT)
    os.write(term.master, b"m")  # one key, no Enter: an answer is a single key
    term.expect("Please answer y, n, a or q.")
    term.expect(PROMPT)
    os.write(term.master, b"y")
    term.expect(PROMPT)
    os.write(term.master, b"q")
    assert term.finish() == 1  # a fix was applied and --exit-non-zero-on-fix was given
    assert (project / "a.py").read_bytes() == expected_a
    assert (project / "b.py").read_bytes() == TWO
    assert "rewrote 1 loop in 1 file." in term.stderr


def test_end_of_input_quits_without_writing(project: Path) -> None:
    term = Terminal(["fix", "--interactive"], project)
    term.expect(PROMPT)
    os.write(term.master, b"\x04")  # Ctrl-D, the moment the prompt shows
    code = term.finish()
    assert code == 0, term.stderr
    assert not term.hung_up, "Ctrl-D was not read: the command ended only when the terminal closed"
    assert (project / "a.py").read_bytes() == TWO and (project / "b.py").read_bytes() == TWO
    assert "rewrote 0 loops in 0 files." in term.stderr


def test_unsafe_fix_shows_its_hazards(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    (tmp_path / "u.py").write_bytes(UNSAFE)
    term = Terminal(["fix", "-i", "--unsafe-fixes"], tmp_path)
    shown = term.expect(PROMPT)
    assert "hazard unordered-iterable: iterates over os.listdir(...), whose order may change" in shown
    assert "fix: unsafe (applied by `checkpointify fix --unsafe-fixes`)" in shown
    term.type("n")
    assert term.finish() == 0
    assert (tmp_path / "u.py").read_bytes() == UNSAFE


def test_refuses_when_stdout_is_not_a_terminal(project: Path) -> None:
    term = Terminal(["fix", "--interactive"], project, stdout_tty=False)
    assert term.finish() == 2
    assert term.stderr.startswith("checkpointify: error: --interactive needs a terminal on stdin and stdout")
    assert len(term.stderr.strip().splitlines()) == 1
    assert (project / "a.py").read_bytes() == TWO


def test_refuses_when_stdin_is_not_a_terminal(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "checkpointify", "fix", "--interactive"],
        cwd=project,
        input=b"y\ny\ny\ny\n",
        capture_output=True,
    )
    assert done.returncode == 2 and done.stdout == b""
    assert b"--interactive needs a terminal" in done.stderr
    assert (project / "a.py").read_bytes() == TWO


def test_statistics_on_a_terminal_is_a_table(project: Path) -> None:
    term = Terminal(["scan", "--statistics"], project)
    assert term.finish() == 1
    screen = term.screen
    assert "checkpointify statistics" in screen and "┃ count ┃" in screen.replace("  ", " ")
    assert re.search(r"│\s+4 │ code\s+│ CKP001", screen)


@pytest.mark.parametrize(
    "text, answer",
    [
        ("y", Answer.YES),
        ("Yes", Answer.YES),
        (" n ", Answer.NO),
        ("ALL", Answer.ALL),
        ("q", Answer.QUIT),
        ("", None),
        ("x", None),
    ],
)
def test_parse_answer(text: str, answer: Optional[Answer]) -> None:
    assert parse_answer(text) is answer


def test_a_file_edited_during_the_review_is_left_alone(project: Path) -> None:
    term = Terminal(["fix", "--interactive"], project)
    term.expect(PROMPT)
    edited = TWO + b"# saved by an editor meanwhile\n"
    (project / "a.py").write_bytes(edited)
    term.type("a")
    assert term.finish() == 1
    assert "a.py: error: changed on disk while being processed; left untouched" in term.stderr
    assert (project / "a.py").read_bytes() == edited
    assert (project / "b.py").read_bytes() == fully_fixed_bytes(TWO, "b.py", project)


def fully_fixed_bytes(source: bytes, name: str, cwd: Path) -> bytes:
    os.chdir(cwd)
    result = process_source(source, name, Options(), rewrite=True)
    assert result.new_source is not None
    return result.new_source


def test_a_notebook_is_reviewed_cell_by_cell(tmp_path: Path) -> None:
    """Two loops in different cells of one notebook: the review shows per-cell diffs and
    applies exactly the accepted one (a selected subset of a notebook's fixes)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    book = new_notebook()
    book.cells = [
        new_code_cell("import json\n!pip install -q tqdm"),
        new_code_cell("first = []\nfor n in range(3):\n    first.append(work(n))"),
        new_markdown_cell("Save"),
        new_code_cell('json.dump(first, open("first.json", "w"))'),
        new_code_cell(
            'second = []\nfor n in range(3, 6):\n    second.append(work(n))\njson.dump(second, open("s.json", "w"))'
        ),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(book, str(path))
    expected = only(path, 1)
    term = Terminal(["fix", "--interactive", "-j", "1"], tmp_path)
    shown = term.expect(PROMPT)
    assert "[1/2] nb.ipynb:cell 2:2:1: CKP001 `first` is collected" in shown
    assert "--- a/nb.ipynb:cell 2" in shown and "--- a/nb.ipynb:cell 4" in shown
    assert '"source"' not in shown
    term.type("n")
    assert "[2/2] nb.ipynb:cell 5:2:1: CKP001 `second`" in term.expect(PROMPT)
    term.type("y")
    assert term.finish() == 0
    assert path.read_bytes() == expected
    nbformat.validate(nbformat.read(str(path), as_version=4))  # raises if the notebook is invalid
