"""Hundreds of random SIGKILLs against real checkpointed processes.

    python benchmarks/sigkill_stress.py [--trials N] [--seed S] [--jobs J] [--cell NAME ...] [--s3]

Cycles through the kill cells of ``tests/support/crash_harness.py`` (the suite runs a few trials
of each): small records, the default policy, records of 250 KB (kills land mid-write),
cheap batched units, identity resume over a shuffled input with small and 150 KB records.
Each trial starts ``tests/support/crash_child.py``, kills it with SIGKILL at a random moment,
reads what the log looks like (``read_info``: a torn tail?), resumes it over the same or
a shuffled input and checks the invariants: no completed unit lost (beyond the batch
window a cell allows), none applied twice or skipped (the output is byte-identical to an
uninterrupted run's), nothing left behind. Prints one line per cell and every violation;
exits 1 if there was any. ``--s3`` runs every trial with its checkpoints on a local S3
API server (moto's standalone server on 127.0.0.1, through s3fs), each trial under its own
prefix, and also checks that nothing is left there after the successful run.
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
from typing import Dict, List, Optional, Tuple

# a script run from anywhere: the repository root (for tests.support) and src/ come first
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tests.support.crash_harness import KILL_CELLS, Remote, Trial, random_kill_trial  # noqa: E402


def one(args: Tuple[str, int, int, str, Optional[Dict[str, str]]]) -> Tuple[str, Trial]:
    cell, seed, number, base, s3 = args
    remote = None
    if s3 is not None:  # check_final() then also finds any object left under the trial's prefix
        server_env = {k: v for k, v in s3.items() if k != "bucket"}
        url = "%s/trial-%d" % (s3["bucket"], number)
        remote = Remote(s3["AWS_ENDPOINT_URL"], url, tuple(sorted(server_env.items())))
    rng = Random("%d-%s-%d" % (seed, cell, number))
    return cell, random_kill_trial(cell, rng, Path(base) / str(number), remote=remote)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300, help="total trials (default 300)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="trials run at once (default 2)")
    parser.add_argument("--cell", action="append", choices=sorted(KILL_CELLS), help="only these cells")
    parser.add_argument("--s3", action="store_true", help="checkpoints on a local S3 API server")
    args = parser.parse_args()
    server = None
    s3: Optional[Dict[str, str]] = None
    if args.s3:
        from tests.support.s3server import S3Server

        server = S3Server()
        s3 = dict(server.env(), bucket=server.bucket())
    try:
        return run(args, s3)
    finally:
        if server is not None:
            server.stop()


def run(args: argparse.Namespace, s3: Optional[Dict[str, str]]) -> int:
    cells = args.cell or list(KILL_CELLS)
    started = time.monotonic()
    results: Dict[str, List[Trial]] = {cell: [] for cell in cells}
    with tempfile.TemporaryDirectory(prefix="ckpt-stress-") as base:
        work = [(cells[i % len(cells)], args.seed, i, base, s3) for i in range(args.trials)]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for cell, trial in pool.map(one, work):
                results[cell].append(trial)
    print(
        "SIGKILL stress: %d trials, seed %d, %.0f s%s"
        % (args.trials, args.seed, time.monotonic() - started, " (on S3)" if s3 else "")
    )
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
