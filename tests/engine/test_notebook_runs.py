"""The resumable ``fix`` and ``--shard`` over a tree of notebooks: a real ``fix`` subprocess
killed with SIGKILL mid-run, then resumed, ends byte for byte like an uninterrupted run and
skips the notebooks it had finished; shards split a notebook tree with no overlap or gap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

from tests.engine.test_scale import journal_lines, subprocess_cli
from tests.support.fixture_cases import FIXTURES

NOTEBOOKS = [
    (FIXTURES / "notebook" / name / "input.ipynb").read_bytes()
    for name in ("cross-cell-magics", "outputs-widgets", "markdown-between", "noop-already-checkpointed")
]


def notebook_tree(root: Path, count: int) -> None:
    """``count`` notebooks in a few folders (three of four with a loop to fix), and a script."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    for i in range(count):
        path = root / ("nb%d" % (i % 5)) / ("analysis_%03d.ipynb" % i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(NOTEBOOKS[i % len(NOTEBOOKS)])
    (root / "job.py").write_bytes(b"x = 1\n")


def contents(root: Path) -> Dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".checkpointify_cache" not in p.parts
    }


def test_fix_over_notebooks_killed_with_sigkill_resumes_and_ends_like_one_run(tmp_path: Path) -> None:
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    for root in (interrupted, reference):
        notebook_tree(root, 40)
    done = subprocess_cli(reference, "fix", "-j", "2", "--no-cache", ".")
    assert done.returncode == 0, done.stderr
    assert "rewrote 30 loops in 30 files" in done.stderr

    run = subprocess.Popen(
        [sys.executable, "-m", "checkpointify", "fix", "-j", "1", "--no-cache", "."],
        cwd=interrupted,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cache = interrupted / ".checkpointify_cache"
    deadline = time.monotonic() + 120
    while len(journal_lines(cache)) < 8 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL
    finished = {json.loads(line)[1] for line in journal_lines(cache) if line}
    assert 8 <= len(finished) < 41, "the kill should land mid-run"
    assert any(path.endswith(".ipynb") for path in finished)

    again = subprocess_cli(interrupted, "fix", "-j", "2", "--no-cache", ".")
    assert again.returncode == 0, again.stderr
    assert "resumed an interrupted run: %d files it had finished were skipped" % len(finished) in again.stderr
    assert not list(cache.glob("fix-journal-*.log"))
    assert contents(interrupted) == contents(reference)  # every notebook byte for byte
    for path in interrupted.rglob("*.ipynb"):
        json.loads(path.read_text())  # and still a notebook


def test_notebook_shards_split_the_tree_and_fix_by_shards_equals_one_fix(tmp_path: Path) -> None:
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    for root in (whole, sharded):
        notebook_tree(root, 16)
    scan = subprocess_cli(whole, "scan", "--format", "json", "--no-cache", ".")
    full = json.loads(scan.stdout)["findings"]
    assert full and all(f["path"].endswith(".ipynb") and "cell" in f for f in full)
    parts: List[List[dict]] = []
    for k in (1, 2, 3):
        out = subprocess_cli(whole, "scan", "--format", "json", "--no-cache", "--shard", "%d/3" % k).stdout
        parts.append(json.loads(out)["findings"])
    paths = [{f["path"] for f in part} for part in parts]
    assert all(paths) and not (paths[0] & paths[1] or paths[1] & paths[2] or paths[0] & paths[2])
    key = lambda f: (f["path"], f["cell"], f["line"])  # noqa: E731
    assert sorted((f for part in parts for f in part), key=key) == sorted(full, key=key)

    assert subprocess_cli(whole, "fix", "--no-cache", ".").returncode == 0
    for k in (1, 2):
        assert subprocess_cli(sharded, "fix", "--no-cache", "--shard", "%d/2" % k).returncode == 0
    assert contents(sharded) == contents(whole)
    assert os.listdir(sharded)  # not vacuous
