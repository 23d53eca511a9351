"""Hundreds of random SIGKILLs against real checkpointed processes.

    python benchmarks/sigkill_stress.py [--trials N] [--seed S] [--jobs J] [--cell NAME ...]

Cycles through the kill cells of ``tests/support/crash_harness.py`` (the suite runs a few trials
of each): small records, the default policy, records of 250 KB (kills land mid-write),
cheap batched units, identity resume over a shuffled input with small and 150 KB records.
Each trial starts ``tests/support/crash_child.py``, kills it with SIGKILL at a random moment,
reads what the log looks like (``read_info``: a torn tail?), resumes it over the same or
a shuffled input and checks the invariants: no completed unit lost (beyond the batch
window a cell allows), none applied twice or skipped (the output is byte-identical to an
uninterrupted run's), nothing left behind. Prints one line per cell and every violation;
exits 1 if there was any.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from random import Random
from typing import Dict, List, Tuple

# a script run from anywhere: the repository root (for tests.support) and src/ come first
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tests.support.crash_harness import KILL_CELLS, Trial, random_kill_trial  # noqa: E402


def one(args: Tuple[str, int, int, str]) -> Tuple[str, Trial]:
    cell, seed, number, base = args
    return cell, random_kill_trial(cell, Random("%d-%s-%d" % (seed, cell, number)), Path(base) / str(number))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300, help="total trials (default 300)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="trials run at once (default 2)")
    parser.add_argument("--cell", action="append", choices=sorted(KILL_CELLS), help="only these cells")
    args = parser.parse_args()
    cells = args.cell or list(KILL_CELLS)
    started = time.monotonic()
    results: Dict[str, List[Trial]] = {cell: [] for cell in cells}
    with tempfile.TemporaryDirectory(prefix="ckpt-stress-") as base:
        work = [(cells[i % len(cells)], args.seed, i, base) for i in range(args.trials)]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for cell, trial in pool.map(one, work):
                results[cell].append(trial)
    print("SIGKILL stress: %d trials, seed %d, %.0f s" % (args.trials, args.seed, time.monotonic() - started))
    print()
    print(
        "cell                   trials  killed mid-run  torn tail  median units before kill"
        "  median rerun  max rerun  violations"
    )
    failures = 0
    for cell, trials in results.items():
        if not trials:
            continue
        midrun = [t for t in trials if not t.finished_before_kill]
        bad = [t for t in trials if t.problems]
        failures += len(bad)
        reruns = [t.rerun for t in midrun] or [0]
        print(
            "%-22s %6d %15d %10d %25d %13d %10d %11d"
            % (
                cell,
                len(trials),
                len(midrun),
                sum(1 for t in trials if t.damage),
                statistics.median([t.units_before_kill for t in trials]),
                statistics.median(reruns),
                max(reruns),
                len(bad),
            )
        )
    for cell, trials in results.items():
        for trial in trials:
            for problem in trial.problems:
                print("VIOLATION %s: %s" % (cell, problem))
    print()
    print("no invariant violated" if not failures else "%d trials violated an invariant" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
