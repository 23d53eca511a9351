"""What the distribution ships: a wheel built from this checkout, and the LibCST command
found through an installed package rather than the checkout's ``codemods/`` folder."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.fixture_cases import FIXTURES
from tests.support.programs import SCRIPT

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_CASE = FIXTURES / "notebook" / "cross-cell-magics"


def test_the_wheel_ships_py_typed_the_license_and_the_codemod_command(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("checkpointify-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "checkpointify/py.typed" in names
    assert "checkpointify/codemods/checkpoint_loops.py" in names
    assert "checkpointify/runtime/__init__.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)
    assert not any(n.startswith(("tests/", "codemods/", "benchmarks/")) for n in names)


def test_libcst_tool_runs_the_shipped_command_like_fix(tmp_path: Path) -> None:
    """A project outside this checkout lists ``checkpointify.codemods`` and gets the same
    rewrite as ``checkpointify fix``."""
    by_codemod, by_fix = tmp_path / "codemod", tmp_path / "fix"
    for project in (by_codemod, by_fix):
        project.mkdir()
        (project / "job.py").write_bytes(SCRIPT)
    (by_codemod / ".libcst.codemod.yaml").write_text(
        "generated_code_marker: '@generated'\nformatter: []\nblacklist_patterns: []\n"
        "modules:\n  - 'checkpointify.codemods'\nrepo_root: '.'\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "libcst.tool", "codemod", "checkpoint_loops.CheckpointLoopsCommand"]
        + ["--no-format", "job.py"],
        cwd=by_codemod,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    fixed = subprocess.run(
        [sys.executable, "-m", "checkpointify", "fix", "-q", "--no-cache", "job.py"],
        cwd=by_fix,
        capture_output=True,
    )
    assert fixed.returncode == 0, fixed.stderr
    assert (by_codemod / "job.py").read_bytes() == (by_fix / "job.py").read_bytes() != SCRIPT


def test_libcst_tool_names_the_notebooks_it_does_not_look_at(tmp_path: Path) -> None:
    """LibCST's runner passes over notebooks silently; the command names them instead."""
    (tmp_path / "job.py").write_bytes(SCRIPT)
    (tmp_path / "nb").mkdir()
    notebook = (NOTEBOOK_CASE / "input.ipynb").read_bytes()
    (tmp_path / "nb" / "labels.ipynb").write_bytes(notebook)
    (tmp_path / "nb" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "nb" / ".ipynb_checkpoints" / "labels-checkpoint.ipynb").write_bytes(notebook)
    (tmp_path / ".libcst.codemod.yaml").write_text(
        "generated_code_marker: '@generated'\nformatter: []\nblacklist_patterns: []\n"
        "modules:\n  - 'checkpointify.codemods'\nrepo_root: '.'\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "libcst.tool", "codemod", "checkpoint_loops.CheckpointLoopsCommand"]
        + ["--no-format", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "1 notebook not looked at: ./nb/labels.ipynb" in done.stderr, done.stderr
    assert "run `checkpointify fix` on notebooks" in done.stderr
    assert (tmp_path / "nb" / "labels.ipynb").read_bytes() == notebook
    assert (tmp_path / "job.py").read_bytes() != SCRIPT  # the Python file was rewritten
