"""``checkpointify diff`` is coloured like ``git diff`` on a terminal and plain when piped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from checkpointify.output.diffs import colorize, unified_diff
from tests.support.programs import JOB
from tests.support.terminal import ANSI, Terminal


def test_diff_on_a_terminal_is_coloured_like_git_and_says_the_same(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_bytes(JOB)
    piped = subprocess.run(
        [sys.executable, "-m", "checkpointify", "diff", "-q", "--no-cache", "job.py"],
        cwd=tmp_path,
        capture_output=True,
    )
    assert piped.returncode == 1 and b"\x1b[" not in piped.stdout  # plain when piped
    term = Terminal(["diff", "-q", "--no-cache", "job.py"], tmp_path)
    assert term.finish() == 1
    raw = term.raw.replace("\r\n", "\n")
    assert "\x1b[1m--- a/job.py\x1b[m\n" in raw and "\x1b[1m+++ b/job.py\x1b[m\n" in raw
    assert "\x1b[36m@@ " in raw
    added = [line for line in piped.stdout.decode().splitlines() if line.startswith("+") and line[1:2] != "+"]
    assert added and all("\x1b[32m%s\x1b[m" % line in raw for line in added)
    assert ANSI.sub("", raw) == piped.stdout.decode()  # the same patch under the colours


def test_colorize_keeps_every_byte_of_the_patch_between_its_escapes() -> None:
    old = b"a = 1\r\nb = 2\r\n"
    new = b"a = 1\r\nb = 3\r\nc = 4"  # CRLF endings and no final newline survive
    patch = unified_diff(old, new, "x.py")
    coloured = colorize(patch)
    assert ANSI.sub("", coloured.decode()).encode() == patch
    assert b"\x1b[31m-b = 2\x1b[m\r\n" in coloured and b"\x1b[32m+c = 4\x1b[m\n" in coloured
