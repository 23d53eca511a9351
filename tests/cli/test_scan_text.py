"""``scan``'s text output: each finding with its source lines and the accumulator, loop and sink
marked, then the fix line; ``--output-format concise`` keeps one line per finding; checked
piped and under a real pseudo-terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

from checkpointify.output.snippets import snippet
from checkpointify.rules import rule_url
from checkpointify.types import Finding
from tests.support.terminal import ANSI, Terminal

JOB = """import json

from scoring import score

results = []
for item in json.load(open("items.json")):
    results.append(score(item))
json.dump(results, open("out.json", "w"))
"""

FULL = """\
job.py:6:1: CKP001 `results` is collected in this loop and saved only after it by json.dump(); \
a crash before the save loses every completed unit
  |
5 | results = []
  | ^^^^^^^ accumulator
6 | for item in json.load(open("items.json")):
  | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^ loop
7 |     results.append(score(item))
8 | json.dump(results, open("out.json", "w"))
  | ^^^^^^^^^ sink
  |
    fix: safe (applied by `checkpointify fix`)
"""


def _scan(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "checkpointify", "scan", "-q", "--no-cache", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stderr
    return done.stdout


def test_scan_shows_the_source_lines_with_the_parts_marked(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(JOB)
    assert _scan(tmp_path, "job.py") == FULL
    # --output writes the same full format
    _scan(tmp_path, "job.py", "-o", "report.txt")
    assert (tmp_path / "report.txt").read_text() == FULL


def test_concise_keeps_one_line_per_finding_under_both_flag_names(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(JOB)
    concise = _scan(tmp_path, "--output-format", "concise", "job.py")
    first, fix = FULL.splitlines()[0], FULL.splitlines()[-1]
    assert concise == first + "\n" + fix + "\n"
    assert _scan(tmp_path, "--format", "concise", "job.py") == concise
    assert _scan(tmp_path, "--format", "text", "job.py") == _scan(
        tmp_path, "--output-format", "text", "job.py"
    )


def test_on_a_terminal_the_same_text_is_coloured(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text(JOB)
    term = Terminal(["scan", "-q", "--no-cache", "job.py"], tmp_path)
    assert term.finish() == 1
    raw = term.raw.replace("\r\n", "\n")
    assert "\x1b[" in raw
    assert "\x1b[1;31m  | ^^^^^^^ accumulator\x1b[0m" in raw  # the markers stand out
    assert ANSI.sub("", raw) == FULL  # the same text under the colours, path:line:col first


def _finding(line: int, end_line: int, accumulator: str, sink: str) -> Finding:
    return Finding("CKP001", "collect-loop", "job.py", line, 1, end_line, (accumulator,), sink, (), None, "m")


def test_a_long_loop_body_is_elided_and_missing_parts_are_not_marked() -> None:
    lines: List[str] = (
        ["out = []", "for x in xs:"] + ["    step%d(x)" % i for i in range(20)] + ["    out.append(x)"]
    )
    lines.append("save(out)")
    shown = [line.text for line in snippet(_finding(2, 23, "out", "save"), lines)]
    assert " 1 | out = []" in shown and "24 | save(out)" in shown
    assert "   :" in shown and not any("step10" in line for line in shown)
    # a sink it cannot find and an accumulator bound elsewhere: only the loop is marked
    shown = [line.text for line in snippet(_finding(2, 23, "other", "upload"), lines)]
    assert sum("^" in line for line in shown) == 1
    assert snippet(_finding(40, 41, "out", "save"), lines) == []  # not where the finding says


def test_a_failing_scan_or_fix_says_where_to_look(tmp_path: Path) -> None:
    """What a failed pre-commit hook shows: the commands to see and apply the fixes, the rule's page."""
    (tmp_path / "job.py").write_text(JOB)
    scan = subprocess.run(
        [sys.executable, "-m", "checkpointify", "scan", "--no-cache", "job.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert scan.returncode == 1
    assert "checkpointify diff <files>" in scan.stderr and "checkpointify fix <files>" in scan.stderr
    assert rule_url("CKP001") in scan.stderr
    fix = subprocess.run(
        [sys.executable, "-m", "checkpointify", "fix", "--no-cache", "job.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert fix.returncode == 0 and "git diff" in fix.stderr
