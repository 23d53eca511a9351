"""The cost of a fix in LibCST, against LibCST's own ``AddImportsVisitor`` in the same run.

    python benchmarks/fix_pipeline.py [--repeat N]

Fixes every fixture's input in this process (``process_source(..., rewrite=True)``: the
detection, the rewrite, its layout and its verification) twice per round: once as
checkpointify does it, and once with the runtime import added by ``AddImportsVisitor`` for
every file, as checkpointify did before (the baseline). Both must give the same bytes;
the script stops if they do not. Prints the median seconds of ``--repeat`` rounds and the
ratio. The machine may be shared and noisy: compare the ratio, which comes from one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from checkpointify.api import process_source  # noqa: E402
from checkpointify.rewrite import imports, transformer  # noqa: E402
from tests.support.fixture_cases import Case, cases  # noqa: E402


def fix_all(all_cases: List[Case], add: Callable[..., object]) -> "tuple[float, Dict[str, bytes]]":
    """Fix every case with ``add`` adding the runtime import; the seconds and each output."""
    transformer.add_from_import = add  # type: ignore[attr-defined,assignment]  # what apply_plans calls
    try:
        out: Dict[str, bytes] = {}
        start = time.perf_counter()
        for case in all_cases:
            result = process_source(case.source, "job.py", case.options(), True, staged=False)
            out[case.id] = result.new_source or b""
        return time.perf_counter() - start, out
    finally:
        transformer.add_from_import = imports.add_from_import  # type: ignore[attr-defined]


def main(argv: "List[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    all_cases = cases()
    ours: List[float] = []
    baseline: List[float] = []
    for _ in range(args.repeat):
        spent, ours_out = fix_all(all_cases, imports.add_from_import)
        ours.append(spent)
        spent, base_out = fix_all(all_cases, imports._add_imports_visitor)
        baseline.append(spent)
        if ours_out != base_out:
            differ = sorted(k for k in ours_out if ours_out[k] != base_out.get(k))
            print("the two imports differ on: %s" % ", ".join(differ), file=sys.stderr)
            return 1
    a, b = statistics.median(ours), statistics.median(baseline)
    print("fix of %d fixture inputs, median of %d rounds" % (len(all_cases), args.repeat))
    print("  AddImportsVisitor for every file (baseline): %6.2f s" % b)
    print("  checkpointify (add_from_import):             %6.2f s   %.2fx faster" % (a, b / a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
