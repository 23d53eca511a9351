"""The runtime as a package: vendoring it is copying its folder, and importing it is cheap.

Both checks run in fresh interpreters. Nothing here measures time: which modules an import
loads is deterministic, wall-clock time is not (``benchmarks/runtime_overhead.py`` times it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

RUNTIME = Path(__file__).resolve().parents[2] / "src" / "checkpointify" / "runtime"

# A job that imports the vendored runtime. ``python -I -S``: no PYTHONPATH, no site-packages
# (where an editable install of checkpointify lives), no script directory on sys.path; the
# job adds only the folder that holds the vendored copy.
VENDORED_JOB = """\
import importlib.util, json, os, sys
sys.path.insert(0, sys.argv[1])
assert importlib.util.find_spec("checkpointify") is None, "checkpointify is importable here"
from myjob_vendor.ckpt import checkpoint, read_info

squares, seen = [], {}
ckpt = checkpoint("job::main::squares,seen", range(8), lambda: (squares, seen), directory="logs")
[squares, seen] = ckpt.restore()
ran = []
for n in ckpt:
    if n == int(os.environ.get("DIE_AT", "-1")):
        os._exit(137)  # like kill -9: units 0..n-1 are recorded
    ran.append(n)
    squares.append(n * n)
    seen[n] = str(n)
ckpt.complete()
modules = sorted(m for m in sys.modules if m == "checkpointify" or m.startswith("checkpointify."))
print(json.dumps({"ran": ran, "squares": squares, "seen": seen, "restored": ckpt.restored_units,
                  "modules": modules, "left": os.listdir("logs") if os.path.isdir("logs") else []}))
"""


def _vendor(where: Path) -> Path:
    package = where / "vendored" / "myjob_vendor"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copytree(RUNTIME, package / "ckpt", ignore=shutil.ignore_patterns("__pycache__"))
    return where / "vendored"


def _run(where: Path, vendored: Path, **env: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    (where / "job.py").write_text(VENDORED_JOB)
    return subprocess.run(
        [sys.executable, "-I", "-S", "job.py", str(vendored)],
        cwd=where,
        env={"PATH": "/usr/bin:/bin", "CHECKPOINTIFY_QUIET": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_vendored_copy_runs_and_resumes_without_checkpointify(tmp_path: Path) -> None:
    vendored = _vendor(tmp_path)
    killed = _run(tmp_path, vendored, DIE_AT="5", CHECKPOINTIFY_BATCH="off")
    assert killed.returncode == 137, killed.stderr
    resumed = _run(tmp_path, vendored)
    assert resumed.returncode == 0, resumed.stderr
    result: Dict[str, Any] = json.loads(resumed.stdout)
    assert result["restored"] == 5
    assert result["ran"] == [5, 6, 7]
    assert result["squares"] == [n * n for n in range(8)]
    assert result["seen"] == {str(n): str(n) for n in range(8)}
    assert result["modules"] == []  # nothing of checkpointify was imported
    assert result["left"] == []  # complete() removed the log (and its lock)


def test_the_runtime_imports_only_relative_and_standard_modules() -> None:
    """No ``checkpointify`` import anywhere in the package (not even ``__version__``)."""
    offenders: List[str] = []
    for module in sorted(RUNTIME.glob("*.py")):
        for number, line in enumerate(module.read_text().splitlines(), 1):
            words = line.split()
            if words[:1] in (["import"], ["from"]) and "checkpointify" in line:
                offenders.append("%s:%d: %s" % (module.name, number, line.strip()))
    assert offenders == []


# What a rewritten job does not need to import just to define its loop: the database code
# (transaction= only), the log file's thread and lock and the pickle of records (from
# restore() on), inspection (dataclasses), and typing, pathlib and re, which cost more than
# the whole runtime (see runtime/lite.py).
DEFERRED = [
    "base64",
    "checkpointify.runtime.database",
    "checkpointify.runtime.filelog",
    "checkpointify.runtime.identity",
    "checkpointify.runtime.inspection",
    "checkpointify.runtime.pickling",
    "collections",
    "dataclasses",
    "hashlib",
    "inspect",
    "json",
    "pathlib",
    "pickle",
    "re",
    "socket",
    "sqlite3",
    "threading",
    "typing",
]


def test_importing_the_runtime_leaves_the_heavy_modules_alone() -> None:
    code = (
        "import sys; before = set(sys.modules); import checkpointify.runtime; "
        "print(sorted(m for m in %r if m in sys.modules and m not in before))" % (DEFERRED,)
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(RUNTIME.parents[1]), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
