"""The exit-code policy, mode by mode, and the table in docs/cli.md that documents it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

import checkpointify.detect.matcher
import checkpointify.rewrite.verify
from checkpointify.cli import main
from checkpointify.output.report import Exit
from tests.support.programs import BROKEN, CLEAN, NO_FIX, SCRIPT

REPO = Path(__file__).resolve().parents[2]

#: the injected internal error fires on this file, which must get as far as the matcher
BOOM = b"acc = []\nfor x in xs:\n    acc.append(work(x))\nsave(acc)\n"

FILES = {"seed": SCRIPT, "nofix": NO_FIX, "clean": CLEAN, "broken": BROKEN, "boom": BOOM}


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    monkeypatch.chdir(tmp_path)
    real = checkpointify.detect.matcher.find_plans

    def find_plans(wrapper: Any, path: str, options: Any, *args: Any) -> List[Any]:
        if path.endswith("boom.py"):
            raise RuntimeError("injected bug")
        return real(wrapper, path, options, *args)

    monkeypatch.setattr(checkpointify.rewrite.verify, "find_plans", find_plans)
    return tmp_path


def exit_of(project: Path, files: List[str], *args: str) -> int:
    for name in files:
        (project / ("%s.py" % name)).write_bytes(FILES[name])
    return main([*args, "-j", "1"])


# (files in the tree, command line, exit code)
TABLE = [
    # scan
    (["clean"], ["scan"], Exit.OK),
    (["seed"], ["scan"], Exit.FAILED),
    (["nofix"], ["scan"], Exit.FAILED),
    (["seed"], ["scan", "--exit-zero"], Exit.OK),
    (["clean", "broken"], ["scan"], Exit.FAILED),
    (["clean", "broken"], ["scan", "--exit-zero"], Exit.FAILED),
    (["seed", "boom"], ["scan"], Exit.INTERNAL),
    (["seed", "boom", "broken"], ["scan", "--exit-zero"], Exit.INTERNAL),
    (["seed"], ["scan", "--format", "sarif"], Exit.FAILED),
    (["seed"], ["scan", "--format", "github", "--exit-zero"], Exit.OK),
    (["seed"], ["scan", "--statistics"], Exit.FAILED),
    # diff
    (["clean"], ["diff"], Exit.OK),
    (["nofix"], ["diff"], Exit.OK),  # a finding without a fix changes nothing: gate on scan for that
    (["seed"], ["diff"], Exit.FAILED),
    (["seed"], ["diff", "--exit-zero"], Exit.OK),
    (["clean", "broken"], ["diff", "--exit-zero"], Exit.FAILED),
    (["seed", "boom"], ["diff"], Exit.INTERNAL),
    (["seed", "boom"], ["diff", "--exit-zero"], Exit.INTERNAL),
    # fix
    (["clean"], ["fix"], Exit.OK),
    (["seed"], ["fix"], Exit.OK),
    (["seed"], ["fix", "--exit-non-zero-on-fix"], Exit.FAILED),
    (["clean", "nofix"], ["fix", "--exit-non-zero-on-fix"], Exit.OK),
    (["seed"], ["fix", "--exit-zero"], Exit.OK),
    (["seed", "broken"], ["fix"], Exit.FAILED),
    (["seed", "boom"], ["fix"], Exit.INTERNAL),
    (["seed", "boom"], ["fix", "--exit-zero"], Exit.INTERNAL),
    # usage
    (["seed"], ["scan", "--format", "xml"], Exit.USAGE),
    (["seed"], ["scan", "--statistics", "--format", "json"], Exit.USAGE),
    (["seed"], ["fix", "--exit-zero", "--exit-non-zero-on-fix"], Exit.USAGE),
    (["seed"], ["diff", "--exit-non-zero-on-fix"], Exit.USAGE),
    (["seed"], ["fix", "--interactive"], Exit.USAGE),  # no terminal under pytest
    (["seed"], ["scan", "--output", "no/such/folder/report.sarif"], Exit.USAGE),
    (["seed"], ["fix", "-"], Exit.USAGE),  # stdin needs --stdin-filename for fix
    (["seed"], ["scan", "-", "seed.py"], Exit.USAGE),
    (["seed"], ["scan", "--stdin-filename", "x.py", "seed.py"], Exit.USAGE),
]


@pytest.mark.parametrize(
    "files, argv, expected", TABLE, ids=[" ".join(argv) + " " + "+".join(f) for f, argv, _ in TABLE]
)
def test_exit_code(project: Path, files: List[str], argv: List[str], expected: int) -> None:
    assert exit_of(project, files, *argv) == expected


def test_fix_exit_non_zero_on_fix_counts_only_what_was_written(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_of(project, ["seed"], "fix", "--exit-non-zero-on-fix") == Exit.FAILED
    assert main(["fix", "--exit-non-zero-on-fix"]) == Exit.OK  # the second run has nothing left to do
    assert "rewrote 0 loops in 0 files" in capsys.readouterr().err


def test_internal_error_is_reported_with_traceback_under_verbose(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_of(project, ["boom"], "scan", "-v") == Exit.INTERNAL
    err = capsys.readouterr().err
    assert "boom.py: error: internal error: RuntimeError: injected bug" in err
    assert "Traceback" in err


def _readme_table() -> Dict[int, str]:
    text = (REPO / "docs" / "cli.md").read_text()
    section = text[text.index("## Exit codes") :]
    rows = re.findall(r"^\| (\d) \| (.+) \|$", section, re.M)
    return {int(code): row for code, row in rows}


def test_readme_table_matches_the_exit_class() -> None:
    codes = {value for name, value in vars(Exit).items() if name.isupper()}
    table = _readme_table()
    assert set(table) == codes == {0, 1, 2, 3}
    assert "--exit-zero" in table[0] and "--exit-non-zero-on-fix" in table[1]
    assert "internal" in table[3]
