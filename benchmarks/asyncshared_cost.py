"""What the collect-async-shared detector adds to detection, against the whole matcher measured in the same run.

    python benchmarks/asyncshared_cost.py DIR [--repeat 3]

For every ``.py`` file under DIR that LibCST parses, times (in this process, metadata
resolved once per file, as a worker does): ``find_plans`` (the whole matcher, the hook
included) and ``detect.asyncshared.find`` alone, and prints the detector's share of the
matcher's time, over all files and over the files where its gates pass (an ``async def``
that appends to a name it does not bind: only there does it walk the module). Not a test:
the machine may be shared and noisy, so compare the ratios, which come from one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list) -> int:
    import libcst as cst
    from libcst.metadata import MetadataWrapper

    from checkpointify.detect import asyncshared
    from checkpointify.detect.analysis import FileAnalysis
    from checkpointify.detect.matcher import find_plans
    from checkpointify.types import Options

    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    options = Options()
    total_matcher = total_detector = gated_matcher = gated_detector = 0.0
    files = gated = 0
    for path in sorted(Path(args.root).rglob("*.py")):
        try:
            module = cst.parse_module(path.read_bytes())
            wrapper = MetadataWrapper(module)
            analysis = FileAnalysis(wrapper, str(path), options)
        except Exception:
            continue
        files += 1
        matcher = detector = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            find_plans(wrapper, str(path), options)
            matcher = min(matcher, time.perf_counter() - start)
            start = time.perf_counter()
            asyncshared.find(analysis)
            detector = min(detector, time.perf_counter() - start)
        total_matcher += matcher
        total_detector += detector
        if asyncshared._async_functions(analysis) and asyncshared._coroutines(analysis):
            gated += 1
            gated_matcher += matcher
            gated_detector += detector
    if not files:
        print("no parsable .py file under %s" % args.root)
        return 1
    print("files: %d (gates pass on %d)" % (files, gated))
    print(
        "all files: matcher %.3f s, collect-async-shared %.4f s = %.2f%% of the matcher"
        % (total_matcher, total_detector, 100 * total_detector / total_matcher)
    )
    if gated:
        print(
            "gated files: matcher %.3f s, collect-async-shared %.4f s = %.2f%% of the matcher"
            % (gated_matcher, gated_detector, 100 * gated_detector / gated_matcher)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
