"""Robustness on real third-party code (slow: run with `pytest -m slow`).

Fetches the pinned corpus with ../shared/corpus/fetch.sh (or uses $CHECKPOINTIFY_CORPUS),
then: `scan` and `fix --unsafe-fixes` finish with no internal error, every changed file
compiles, a second `fix` changes nothing, and files without findings stay byte-identical.

At scale ($CHECKPOINTIFY_SCALE_SET, default core: 4 039 files, 1.5 M lines): the staged
path finds exactly what LibCST alone finds, two shards make one full run, and a `fix`
killed with SIGKILL and run again ends like an uninterrupted one without processing any
file twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict

import pytest

FETCH = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "fetch.sh"
pytestmark = pytest.mark.slow


def corpus(set_name: str) -> Path:
    configured = os.environ.get("CHECKPOINTIFY_CORPUS")
    if configured:
        return Path(configured)
    if not FETCH.exists():
        pytest.skip("no corpus fetch script at %s" % FETCH)
    done = subprocess.run(
        ["bash", str(FETCH), str(Path.home() / ".cache" / "checkpointify-corpus"), set_name],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip("corpus download failed: %s" % done.stderr.strip())
    return Path(done.stdout.strip().splitlines()[-1])


def digests(root: Path) -> Dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.py"))
    }


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(
        [sys.executable, "-m", "checkpointify", *args], cwd=cwd, capture_output=True, text=True
    )


@pytest.mark.parametrize("set_name", [os.environ.get("CHECKPOINTIFY_CORPUS_SET", "small")])
def test_scan_and_fix_on_real_code(set_name: str, tmp_path: Path) -> None:
    source = corpus(set_name)
    work = tmp_path / "corpus"
    shutil.copytree(source, work)
    before = digests(work)

    scan = cli("scan", "--format", "json", ".", cwd=work)
    document = json.loads(scan.stdout)
    internal = [e for e in document["errors"] if e["message"].startswith("internal error")]
    assert internal == []
    flagged = {f["path"] for f in document["findings"]}

    fix = cli("fix", "--unsafe-fixes", ".", cwd=work)
    assert fix.returncode in (0, 1), fix.stderr
    assert "internal error" not in fix.stderr
    after = digests(work)
    changed = [p for p in after if after[p] != before[p]]
    assert set(changed) <= flagged, "a file without findings was changed"
    for path in changed:
        compile((work / path).read_bytes(), path, "exec", dont_inherit=True)

    again = cli("fix", "--unsafe-fixes", ".", cwd=work)
    assert digests(work) == after, "a second fix changed files again"
    assert "rewrote 0 loops" in again.stderr


# ------------------------------------------------------------------------ monorepo scale

SCALE_SET = os.environ.get("CHECKPOINTIFY_SCALE_SET", "core")


def scan_document(root: Path, *args: str) -> Dict[str, list]:  # type: ignore[type-arg]
    done = cli("scan", "--format", "json", "--no-cache", "-q", *args, ".", cwd=root)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_staged_path_finds_exactly_what_libcst_alone_finds() -> None:
    """The prefilter's proof obligation, on real code: same findings with it and without it."""
    root = corpus(SCALE_SET)
    full = scan_document(root, "--no-prefilter")
    staged = scan_document(root)
    assert staged["findings"] == full["findings"]
    assert full["findings"], "a corpus without findings proves nothing"
    # fewer files are parsed, so fewer syntax errors can be reported, never other ones
    assert all(error in full["errors"] for error in staged["errors"])


def test_two_shards_make_one_full_run() -> None:
    root = corpus(SCALE_SET)
    full = scan_document(root)
    halves = [scan_document(root, "--shard", "%d/2" % k) for k in (1, 2)]
    paths = [{f["path"] for f in half["findings"]} for half in halves]
    assert not paths[0] & paths[1]
    key = lambda f: (f["path"], f["line"], f["column"])  # noqa: E731
    merged = sorted((f for half in halves for f in half["findings"]), key=key)
    assert merged == sorted(full["findings"], key=key)


def journal_entries(root: Path) -> Dict[str, str]:
    entries: Dict[str, str] = {}
    for journal in (root / ".checkpointify_cache").glob("fix-journal-*.log"):
        for line in journal.read_text().splitlines()[1:]:
            try:
                content, path = json.loads(line)
            except ValueError:
                continue
            entries[path] = content
    return entries


def test_fix_killed_with_sigkill_and_resumed_matches_an_uninterrupted_fix(tmp_path: Path) -> None:
    source = corpus(SCALE_SET)
    interrupted, uninterrupted = tmp_path / "interrupted", tmp_path / "uninterrupted"
    shutil.copytree(source, interrupted)
    shutil.copytree(source, uninterrupted)
    assert cli("fix", "--unsafe-fixes", "--no-cache", "-q", ".", cwd=uninterrupted).returncode in (0, 1)

    args = [sys.executable, "-m", "checkpointify", "fix", "--unsafe-fixes", "--no-cache", "-j", "1", "."]
    run = subprocess.Popen(args, cwd=interrupted, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while len(journal_entries(interrupted)) < 500 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    finished = journal_entries(interrupted)
    assert 500 <= len(finished) < len(digests(source)), "the kill should land mid-run"

    again = cli("fix", "--unsafe-fixes", "--no-cache", "-j", "2", ".", cwd=interrupted)
    assert again.returncode in (0, 1), again.stderr
    # every file the killed run finished is skipped (so none is processed twice)
    assert "%d files it had finished were skipped" % len(finished) in again.stderr
    assert digests(interrupted) == digests(uninterrupted)
    assert not journal_entries(interrupted)  # the journal goes once a run completes
