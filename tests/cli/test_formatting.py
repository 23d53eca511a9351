"""``fix --format`` runs the project's real formatter (ruff, black) on the changed files only;
a formatter failure is one line per file and never loses the rewrite. And ``libcst.tool
codemod`` with LibCST's default configuration (formatter: black) succeeds, exit 0."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# a finding, and code neither formatter leaves alone (the spacing of the list)
JOB = """import json

from scoring import score

weights = [1,2]
results = []
for item in json.load(open("items.json")):
    results.append(score(item, weights))
json.dump(results, open("out.json", "w"))
"""
OTHER = "values = [1,2]\n"  # no finding: fix --format must leave it as it is


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.skip("%s is not installed (the test extra has it)" % name)
    return found


def _project(tmp_path: Path, config: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(config)
    (project / "job.py").write_text(JOB)
    (project / "other.py").write_text(OTHER)
    return project


def _checkpointify(project: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PATH=str(BIN) + os.pathsep + os.environ["PATH"])
    return subprocess.run(
        [sys.executable, "-m", "checkpointify", *args],
        cwd=project,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
    )


def _clean(project: Path, command: List[str], name: str) -> bool:
    return subprocess.run([*command, name], cwd=project, capture_output=True).returncode == 0


@pytest.mark.parametrize(
    "config, check",
    [
        ("[tool.ruff]\nline-length = 100\n", ["format", "--check"]),
        ("[tool.black]\nline-length = 100\n", ["--check"]),
    ],
    ids=["ruff", "black"],
)
def test_fix_format_formats_the_changed_files_only(tmp_path: Path, config: str, check: List[str]) -> None:
    formatter = "ruff" if "ruff" in config else "black"
    command = [_tool(formatter), *check]
    project = _project(tmp_path, config)
    done = _checkpointify(project, "fix", "--no-cache", "--format", ".")
    assert done.returncode == 0, done.stderr
    job = (project / "job.py").read_text()
    assert "ckpt = checkpoint(" in job and "weights = [1, 2]" in job
    assert _clean(project, command, "job.py")
    assert (project / "other.py").read_text() == OTHER


def test_the_configured_formatter_runs_without_the_flag_and_no_format_wins(tmp_path: Path) -> None:
    _tool("ruff")
    project = _project(tmp_path, '[tool.checkpointify]\nformat = "ruff"\n')
    assert _checkpointify(project, "fix", "--no-cache", "--no-format", "job.py").returncode == 0
    assert "weights = [1,2]" in (project / "job.py").read_text()
    (project / "job.py").write_text(JOB)
    assert _checkpointify(project, "fix", "--no-cache", "job.py").returncode == 0
    assert "weights = [1, 2]" in (project / "job.py").read_text()


def test_a_formatter_failure_is_one_line_per_file_and_keeps_the_rewrite(tmp_path: Path) -> None:
    _tool("ruff")
    # valid TOML that ruff refuses: it fails on every file
    project = _project(tmp_path, '[tool.checkpointify]\nformat = "ruff"\n[tool.ruff]\nline-length = "long"\n')
    done = _checkpointify(project, "fix", "--no-cache", ".")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "not formatted" in line]
    assert len(errors) == 1 and "job.py" in errors[0] and "ruff failed" in errors[0], done.stderr
    job = (project / "job.py").read_text()
    assert "ckpt = checkpoint(" in job and "weights = [1,2]" in job  # rewritten, not formatted
    assert (project / "other.py").read_text() == OTHER


def test_format_without_a_formatter_is_a_usage_error(tmp_path: Path) -> None:
    project = _project(tmp_path, "[project]\nname = 'job'\n")
    done = _checkpointify(project, "fix", "--no-cache", "--format", "job.py")
    assert done.returncode == 2 and "no formatter found" in done.stderr
    assert (project / "job.py").read_text() == JOB  # nothing written


def test_fix_from_stdin_formats_what_it_prints(tmp_path: Path) -> None:
    _tool("ruff")
    project = _project(tmp_path, "[tool.ruff]\n")
    done = _checkpointify(project, "fix", "--format", "-", "--stdin-filename", "job.py", stdin=JOB)
    assert done.returncode == 0, done.stderr
    assert "ckpt = checkpoint(" in done.stdout and "weights = [1, 2]" in done.stdout


def test_libcst_codemod_with_its_default_formatter_succeeds(tmp_path: Path) -> None:
    """``python -m libcst.tool initialize`` writes ``formatter: ['black', '-']``: the command
    rewrites, black formats, and LibCST reports no failure (exit 0)."""
    _tool("black")
    project = _project(tmp_path, "[project]\nname = 'job'\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PATH=str(BIN) + os.pathsep + os.environ["PATH"])
    python = [sys.executable, "-m", "libcst.tool"]
    subprocess.run([*python, "initialize", "."], cwd=project, env=env, check=True, capture_output=True)
    config = (project / ".libcst.codemod.yaml").read_text()
    assert "formatter: ['black', '-']" in config  # LibCST's default
    (project / ".libcst.codemod.yaml").write_text(
        config.replace("modules:\n", "modules:\n- 'checkpointify.codemods'\n")
    )
    done = subprocess.run(
        [*python, "codemod", "checkpoint_loops.CheckpointLoopsCommand", "job.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "Failed to codemod 0 files" in done.stderr and "Transformed 1 files" in done.stderr
    job = (project / "job.py").read_text()
    assert "ckpt = checkpoint(" in job and "weights = [1, 2]" in job
    assert _clean(project, [_tool("black"), "--check"], "job.py")
