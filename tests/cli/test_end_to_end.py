"""Every fixture through the real CLI: found by `scan`, shown by `diff`, rewritten by `fix`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from checkpointify.cli import main
from tests.support.fixture_cases import cases, finding_summary

# notebooks: tests/cli/test_notebooks.py applies their written diff with git apply
CASES = [c for c in cases() if not c.meta.get("unsafe_fixes") and not c.notebook]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All fixture inputs, each in a folder of its own that is its own project root."""
    root = tmp_path_factory.mktemp("e2e")
    for case in CASES:
        folder = root / case.path.parent.name / case.path.name
        folder.mkdir(parents=True)
        (folder / "pyproject.toml").write_text("[project]\nname = 'case'\n")
        shutil.copy(case.path / "input.py", folder / "input.py")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    return root


def test_scan_diff_fix_agree_with_the_fixtures(
    tree: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    monkeypatch.chdir(tree)
    assert main(["scan", "--format", "json", "-j", "2"]) == 1
    document = json.loads(capsysbinary.readouterr().out)
    assert document["errors"] == []
    for case in CASES:
        path = "%s/%s/input.py" % (case.path.parent.name, case.path.name)
        found = [f for f in document["findings"] if f["path"] == path]
        expected = case.expected_findings
        assert [(f["line"], f["column"], f["fix"], f["hazards"]) for f in found] == [
            (e["line"], e["column"], e["fix"], e["hazards"]) for e in expected
        ], case.id

    assert main(["diff", "-j", "2"]) == 1
    patch = capsysbinary.readouterr().out
    (tree / "all.patch").write_bytes(patch)
    subprocess.run(["git", "apply", "--check", "all.patch"], cwd=tree, check=True)

    assert main(["fix", "-j", "2"]) == 0
    capsysbinary.readouterr()
    for case in CASES:
        fixed = (tree / case.path.parent.name / case.path.name / "input.py").read_bytes()
        assert fixed == case.expected, case.id

    assert main(["diff"]) == 0
    assert capsysbinary.readouterr().out == b""


def test_finding_summary_covers_the_json_fields() -> None:
    case = next(c for c in CASES if c.expected_findings)
    finding = case.process(case.source).findings[0]
    assert set(finding_summary(finding)) >= {
        "line",
        "column",
        "end_line",
        "code",
        "accumulators",
        "sink",
        "hazards",
        "fix",
    }
