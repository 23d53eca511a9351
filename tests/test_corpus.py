"""Robustness on real third-party code (slow: run with `pytest -m slow`).

Fetches the pinned corpus with ../shared/corpus/fetch.sh (or uses $CHECKPOINTIFY_CORPUS),
then: `scan` and `fix --unsafe-fixes` finish with no internal error, every changed file
compiles, a second `fix` changes nothing, and files without findings stay byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

FETCH = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "fetch.sh"
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
