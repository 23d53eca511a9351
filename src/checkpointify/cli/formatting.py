"""``fix --format``: the project's formatter over the files ``fix`` changed, and no others.

As ``libcst.tool codemod`` does with its ``formatter`` setting, but with the project's own
formatter found from its configuration (``ruff`` with a ruff configuration, ``black`` with
``[tool.black]``) or named by ``format`` in ``[tool.checkpointify]``. The formatter runs
on the rewritten files in place, once for all of them; when it fails, it runs again file
by file so that each failure is one line naming its file. A failure never loses the
rewrite: the formatter leaves a file it cannot format as it was, rewritten.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from checkpointify.config import detect_formatter

_ARGUMENTS = {
    "ruff": (["format", "--quiet", "--"], ["format", "--quiet", "--stdin-filename", "{name}", "-"]),
    "black": (["--quiet", "--"], ["--quiet", "--stdin-filename", "{name}", "-"]),
}


@dataclass(frozen=True)
class FormatFailure:
    """A file the formatter could not format (it stays rewritten, unformatted)."""

    path: str
    reason: str


def choose(flag: Optional[bool], configured: Optional[str], start: Path) -> Optional[str]:
    """The formatter a ``fix`` runs: ``--no-format`` none; ``--format`` the configured one,
    else the one the project's configuration shows; without the flag, the configured one.
    Raises ValueError when ``--format`` finds none."""
    if flag is False:
        return None
    if configured in _ARGUMENTS:
        return configured
    if flag is None:
        return None
    detected = detect_formatter(start)
    if detected is None:
        raise ValueError(
            "--format: no formatter found (no [tool.ruff], ruff.toml or [tool.black]); "
            'set format = "ruff" or "black" in [tool.checkpointify]'
        )
    return detected


def _command(formatter: str) -> Optional[List[str]]:
    """The formatter's executable: on PATH, else next to this Python (a venv not activated)."""
    found = shutil.which(formatter)
    if found is None:
        found = shutil.which(formatter, path=str(Path(sys.executable).parent))
    return [found] if found is not None else None


def _reason(formatter: str, done: "subprocess.CompletedProcess[str]") -> str:
    lines = [line.strip() for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()]
    detail = lines[0] if lines else "exit code %d" % done.returncode
    return "not formatted: %s failed: %s (the rewrite is kept)" % (formatter, detail)


def format_files(formatter: str, paths: Sequence[str]) -> List[FormatFailure]:
    """Run ``formatter`` on ``paths`` in place; the files it could not format."""
    if not paths:
        return []
    command = _command(formatter)
    if command is None:
        reason = "not formatted: %s is not installed (the rewrite is kept)" % formatter
        return [FormatFailure(path, reason) for path in paths]
    arguments = _ARGUMENTS[formatter][0]
    done = subprocess.run([*command, *arguments, *paths], capture_output=True, text=True)
    if done.returncode == 0:
        return []
    failures = []
    for path in paths:
        one = subprocess.run([*command, *arguments, path], capture_output=True, text=True)
        if one.returncode != 0:
            failures.append(FormatFailure(path, _reason(formatter, one)))
    return failures


def format_source(formatter: str, source: bytes, name: str) -> Tuple[bytes, Optional[str]]:
    """``source`` formatted as the file ``name`` (stdin mode); on failure ``source`` and why."""
    command = _command(formatter)
    if command is None:
        return source, "not formatted: %s is not installed (the rewrite is kept)" % formatter
    arguments = [a.replace("{name}", name) for a in _ARGUMENTS[formatter][1]]
    done = subprocess.run([*command, *arguments], input=source, capture_output=True)
    if done.returncode != 0:
        text = subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )
        return source, _reason(formatter, text)
    return done.stdout, None
