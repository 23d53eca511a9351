"""Running the small programs of the runtime's own crash tests (parallel sites, shared appends).

Each program logs ``start <x>`` / ``done <x>`` lines to ``$WORKLOG``, so a test can see which
units ran in which run; it imports the runtime from this checkout's ``src``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

SRC = str(Path(__file__).resolve().parents[2] / "src")


def program_env(where: Path, **extra: str) -> Dict[str, str]:
    """The environment of a program run in ``where``: this checkout's runtime, no stray settings."""
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC
    env["WORKLOG"] = str(where / "worklog.txt")
    env["CHECKPOINTIFY_FSYNC"] = "never"  # a SIGKILL does not lose what was handed to the OS
    for name in ("CHECKPOINTIFY_DIR", "CHECKPOINTIFY_STRICT", "CHECKPOINTIFY_ON_STALE"):
        env.pop(name, None)
    env.update(extra)
    return env


def worklog(where: Path) -> List[str]:
    path = where / "worklog.txt"
    return path.read_text().splitlines() if path.exists() else []


def run_program(where: Path, *args: str, **extra: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "prog.py", *args],
        cwd=where,
        env=program_env(where, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_program(where: Path, text: str) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "prog.py").write_text(text)
    return where
