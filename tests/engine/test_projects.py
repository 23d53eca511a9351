"""Per-file configuration: a nested ``sub/pyproject.toml`` governs the files under ``sub/``
(nearest project per file, as ruff does), through the walk, the cache and the journal.
Real trees, the real CLI."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pytest

from checkpointify.cli import main
from tests.support.programs import SCRIPT

# a loop whose fix is unsafe (carried state): applied only with unsafe-fixes
UNSAFE = b"""import json

from ckfixture import score

deltas = []
previous = 0
for n in range(10):
    current = score(n)
    deltas.append(current - previous)
    previous = current
with open("deltas.json", "w") as out:
    json.dump(deltas, out)
"""

# a loop saved by a project's own function: a finding only where extra-sinks names it
CUSTOM_SINK = b"""from ckfixture import score
from store import blorp

results = []
for n in range(10):
    results.append(score(n))
blorp(results)
"""


@pytest.fixture()
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.checkpointify]\nexclude = ["skip.py"]\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pyproject.toml").write_text(
        '[project]\nname = "sub"\n[tool.checkpointify]\nunsafe-fixes = true\ncheckpoint-dir = "ckpts"\n'
        'exclude = ["legacy/*"]\n'
    )
    for name in ("job.py", "sub/job.py", "sub/legacy/old.py", "skip.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(SCRIPT)
    (tmp_path / "unsafe.py").write_bytes(UNSAFE)
    (tmp_path / "sub" / "unsafe.py").write_bytes(UNSAFE)
    return tmp_path


def run(args: List[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_nested_configuration_governs_the_files_under_it(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["fix", "."], capsys)
    assert code == 0, err
    top, sub = (tree / "job.py").read_text(), (tree / "sub" / "job.py").read_text()
    assert "checkpoint(" in top and "directory=" not in top  # the root's configuration
    assert 'directory="ckpts"' in sub  # sub/pyproject.toml's checkpoint-dir
    assert (tree / "unsafe.py").read_bytes() == UNSAFE  # unsafe fix: not at the root...
    assert b"checkpoint(" in (tree / "sub" / "unsafe.py").read_bytes()  # ...but in sub
    assert (tree / "sub" / "legacy" / "old.py").read_bytes() == SCRIPT  # sub's own exclude
    assert (tree / "skip.py").read_bytes() == SCRIPT  # the root's exclude


def test_the_command_line_wins_over_every_configuration(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tree / "sub" / "pyproject.toml").write_text("[tool.checkpointify]\nunsafe-fixes = false\n")
    code, _, err = run(["fix", "--unsafe-fixes", "--exclude", "job.py", "."], capsys)
    assert code == 0, err
    assert b"checkpoint(" in (tree / "sub" / "unsafe.py").read_bytes()
    assert (tree / "sub" / "job.py").read_bytes() == SCRIPT and (tree / "job.py").read_bytes() == SCRIPT


def test_paths_in_two_projects_each_get_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "pyproject.toml").write_text(
            "[tool.checkpointify]\nunsafe-fixes = %s\n" % str(name == "a").lower()
        )
        (tmp_path / name / "job.py").write_bytes(UNSAFE)
    code, _, err = run(["fix", "a", "b"], capsys)
    assert code == 0, err
    assert b"checkpoint(" in (tmp_path / "a" / "job.py").read_bytes()
    assert (tmp_path / "b" / "job.py").read_bytes() == UNSAFE


def test_the_cache_keeps_each_configuration_apart(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "sub" / "pyproject.toml").write_text('[tool.checkpointify]\nextra-sinks = ["store.blorp"]\n')
    (tree / "custom.py").write_bytes(CUSTOM_SINK)
    (tree / "sub" / "custom.py").write_bytes(CUSTOM_SINK)
    for _ in range(2):  # cold, then from the cache
        _, out, _ = run(["scan", "--format", "json", "."], capsys)
        assert "sub/custom.py" in out and '"custom.py"' not in out
    (tree / "sub" / "pyproject.toml").write_text("[tool.checkpointify]\n")  # the sink is gone
    _, out, _ = run(["scan", "--format", "json", "."], capsys)
    assert "custom.py" not in out  # not an old cached result


def test_a_broken_nested_configuration_is_an_error_of_its_files_only(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tree / "sub" / "pyproject.toml").write_text("[tool.checkpointify]\nunknown-key = 1\n")
    code, _, err = run(["fix", "."], capsys)
    assert code == 1
    assert "sub/job.py: error: " in err and "unknown key 'unknown-key'" in err and "pyproject.toml" in err
    assert (tree / "sub" / "job.py").read_bytes() == SCRIPT
    assert b"checkpoint(" in (tree / "job.py").read_bytes()  # the rest of the run went on
