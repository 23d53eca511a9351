"""Rewrites pass the project's own CI: real ruff (import sorting, line length, format) on real rewrites.

Every rewrite fixture and example is rewritten with the default style (ruff's and black's
defaults) and checked with ``ruff check --select I,E501`` and ``ruff format --check``: the
rewrite adds no violation the input did not have. Projects with their own settings
(line length, known-first-party, force-single-line, isort's profile, a source folder
holding the runtime) are built in a temporary folder and rewritten by the real CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List

import pytest

from checkpointify.api import process_source
from checkpointify.config import read_style
from checkpointify.types import Options
from tests.support.fixture_cases import Case, cases

ROOT = Path(__file__).resolve().parents[2]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")

pytestmark = pytest.mark.skipif(RUFF is None, reason="ruff is not installed (the test extra pins it)")

REWRITES = [c for c in cases() if c.rewrites and not c.notebook]


def _violations(folder: Path, name: str, *settings: str) -> Counter:
    """ruff's I and E501 findings, and whether ``ruff format`` would change the file."""
    assert RUFF is not None
    found = subprocess.run(
        [RUFF, "check", *settings, "--select", "I,E501", "--output-format", "json", "--no-cache", name],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert found.returncode in (0, 1), found.stderr
    codes = Counter(item["code"] for item in json.loads(found.stdout))
    formatted = subprocess.run(
        [RUFF, "format", *settings, "--check", "--no-cache", name], cwd=folder, capture_output=True, text=True
    )
    assert formatted.returncode in (0, 1), formatted.stderr
    if formatted.returncode:
        codes["format"] += 1
    return codes


def _worse(before: Counter, after: Counter) -> Dict[str, int]:
    return {code: after[code] - before[code] for code in after if after[code] > before[code]}


@pytest.mark.parametrize("case", REWRITES, ids=[c.id for c in REWRITES])
def test_fixture_rewrite_adds_no_lint_or_format_violation(case: Case, tmp_path: Path) -> None:
    (tmp_path / "before.py").write_bytes(case.source)
    (tmp_path / "after.py").write_bytes(case.expected)
    before = _violations(tmp_path, "before.py", "--isolated")
    after = _violations(tmp_path, "after.py", "--isolated")
    assert not _worse(before, after), (before, after)


def test_the_examples_rewrite_clean(tmp_path: Path) -> None:
    for example in sorted((ROOT / "examples").glob("*.py")):
        source = example.read_bytes()
        result = process_source(source, example.name, Options(root=tmp_path), rewrite=True)
        assert result.error is None
        # each bundled example is there to show a rewrite (the README's first command)
        assert result.new_source is not None and result.new_source != source, example.name
        (tmp_path / "before.py").write_bytes(source)
        (tmp_path / "after.py").write_bytes(result.new_source or source)
        before = _violations(tmp_path, "before.py", "--isolated")
        after = _violations(tmp_path, "after.py", "--isolated")
        assert not _worse(before, after), (example.name, before, after)


_JOB = '''\
"""Score the documents, save the scores."""

from __future__ import annotations

import json
import os

import numpy as np

from scoring.models import score

DOCUMENTS = "documents_to_score_with_the_large_model"


def main() -> None:
    scores = []
    for name in sorted(os.listdir(DOCUMENTS)):
        scores.append(score(np.load(name)))
    with open("scores.json", "w") as out:
        json.dump(scores, out)


if __name__ == "__main__":
    main()
'''


def _project(tmp_path: Path, config: str, packages: List[str] = ()) -> Path:  # type: ignore[assignment]
    project = tmp_path / "project"
    (project / "src" / "scoring").mkdir(parents=True)
    (project / "src" / "scoring" / "__init__.py").write_text("")
    (project / "src" / "scoring" / "models.py").write_text("def score(x): ...\n")
    for package in packages:
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(config)
    (project / "job.py").write_text(_JOB)
    return project


def _fix(project: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(
        [sys.executable, "-m", "checkpointify", "fix", "--no-cache", "-q", "job.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return (project / "job.py").read_text()


PROJECTS = {
    "defaults": "[project]\nname = 'job'\n",
    "ruff-line-length-100": "[tool.ruff]\nline-length = 100\n",
    "ruff-line-length-60-single-line": (
        "[tool.ruff]\nline-length = 60\n[tool.ruff.lint.isort]\nforce-single-line = true\n"
    ),
    "black-line-length-79": "[tool.black]\nline-length = 79\n",
    "ruff-known-first-party": "[tool.ruff.lint.isort]\nknown-first-party = ['checkpointify']\n",
    "ruff-force-sort-within-sections": "[tool.ruff.lint.isort]\nforce-sort-within-sections = true\n",
}


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_a_project_rewrite_passes_ruff_with_its_settings(name: str, tmp_path: Path) -> None:
    project = _project(tmp_path, PROJECTS[name])
    before = _violations(project, "job.py")
    assert not before, before  # the input passes the project's own CI
    text = _fix(project)
    assert "checkpoint(" in text
    assert not _violations(project, "job.py"), text


def test_black_line_length_is_honoured(tmp_path: Path) -> None:
    project = _project(tmp_path, "[tool.black]\nline-length = 79\n")
    text = _fix(project)
    assert max(len(line) for line in text.splitlines()) <= 79
    assert not _violations(project, "job.py", "--line-length", "79")


def test_a_runtime_in_the_project_sorts_as_first_party(tmp_path: Path) -> None:
    """A vendored runtime (``runtime-module``) lives in the project: ruff calls it first-party."""
    project = _project(
        tmp_path, "[tool.checkpointify]\nruntime-module = 'vendored.ckpt'\n", packages=["vendored/ckpt"]
    )
    text = _fix(project)
    assert "from scoring.models import score\nfrom vendored.ckpt import" in text
    assert not _violations(project, "job.py"), text


def test_isort_profile_black_settings_are_read(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        "[tool.isort]\nprofile = 'black'\nknown_first_party = ['checkpointify']\nline_length = 100\n",
    )
    style = read_style(project)
    assert style.known_first_party == ("checkpointify",) and style.line_length == 100
    text = _fix(project)
    # first-party: below the third-party section, with the project's own imports
    assert "import numpy as np\n\nfrom checkpointify.runtime import checkpoint\nfrom scoring" in text


def test_the_layout_converges(tmp_path: Path) -> None:
    """A wrapped, moved import is what a second pass finds: fix twice changes nothing."""
    project = _project(tmp_path, "[tool.ruff]\nline-length = 60\n")
    first = _fix(project)
    assert _fix(project) == first
