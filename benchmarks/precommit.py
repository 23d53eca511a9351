"""What the pre-commit hook costs on a 10-file commit in a large repository, against a scan
of the whole tree measured in the same run.

    python benchmarks/precommit.py [--corpus /work/corpus/core] [--files 10] [--repeat 3]

pre-commit runs the hook's entry (``checkpointify scan -j 1``, see .pre-commit-hooks.yaml)
with the staged files as arguments. This runs that entry, as a separate process, on
``--files`` Python files picked from the corpus with a fixed seed (a commit touching files
across the tree), with a cold cache (a new cache folder each time: the first commit after
a clone) and a warm one (the same files again: a commit after a previous run), and scans
the whole tree cold and warm with the same entry (one job, as the hook runs), and the entry on one empty file (the
cost of starting the process at all). The corpus is
only read; the cache lives in a temporary folder.

Each line gives the median wall time of ``--repeat`` runs and its ratio to the whole-tree
cold scan of this run. The machine may be shared and noisy: compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Sequence

HOOK = ["-m", "checkpointify", "scan", "-j", "1", "-q", "--exit-zero"]


def _python_files(root: Path) -> List[Path]:
    return sorted(
        p for p in root.rglob("*.py") if p.is_file() and not any(part.startswith(".") for part in p.parts)
    )


def _run(arguments: Sequence[str], cache: Path, cwd: Path) -> float:
    env = dict(os.environ)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *HOOK, "--cache-dir", str(cache), *arguments],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit("the hook failed (%d): %s" % (done.returncode, done.stderr.strip()[-400:]))
    return elapsed


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="/work/corpus/core", type=Path)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    options = parser.parse_args(argv)
    root = options.corpus.resolve()
    files = _python_files(root)
    if len(files) < options.files:
        raise SystemExit("%s: fewer than %d Python files" % (root, options.files))
    picked = [str(p.relative_to(root)) for p in random.Random(options.seed).sample(files, options.files)]
    print(
        "corpus: %s: %d Python files; a commit of %d of them (seed %d)"
        % (root, len(files), len(picked), options.seed)
    )
    with tempfile.TemporaryDirectory(prefix="ckp-precommit-") as temp:
        scratch = Path(temp)
        times = {}

        def cold(name: str, arguments: Sequence[str], repeat: int) -> None:
            runs = []
            for n in range(repeat):
                runs.append(_run(arguments, scratch / ("%s-%d" % (name.replace(" ", "-"), n)), root))
            times[name] = statistics.median(runs)

        def warm(name: str, arguments: Sequence[str], cache: str, repeat: int) -> None:
            _run(arguments, scratch / cache, root)  # fill it
            times[name] = statistics.median(_run(arguments, scratch / cache, root) for _ in range(repeat))

        cold("tree (cold)", ["."], 1)
        warm("tree (warm)", ["."], "tree-warm", options.repeat)
        cold("commit (cold)", picked, options.repeat)
        warm("commit (warm)", picked, "commit-warm", options.repeat)
        empty = scratch / "empty.py"
        empty.write_text("")
        cold("one empty file", [str(empty)], options.repeat)  # the process's own start-up
    base = times["tree (cold)"]
    print("%-22s %10s %16s" % ("hook entry on", "seconds", "of a cold tree"))
    for name, seconds in times.items():
        print("%-22s %10.2f %15.1f%%" % (name, seconds, 100.0 * seconds / base))
    print(
        "a %d-file commit: %.0fx faster than scanning the tree cold, %.0fx faster warm"
        % (len(picked), base / times["commit (cold)"], base / times["commit (warm)"])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
