"""How fast checkpointify goes over a large tree, against a LibCST baseline measured in the same run.

    python benchmarks/scale.py [--set core] [--dest DIR | --corpus PATH] [-j N] [--skip-reference]

Fetches the pinned corpus (``../shared/corpus/fetch.sh DEST SET``), copies it to a
temporary folder, and times, each as a separate process with the same number of jobs:

* the baseline: ``python -m libcst.tool codemod`` with a command that changes nothing
  (``benchmarks/noop_codemod.py``), ``--no-format``: the least any LibCST-based tool pays;
* ``ruff check --select PERF401 --no-cache`` (the closest Ruff rule), if ruff is installed;
* ``checkpointify scan`` cold (empty cache), warm (cache filled), and ``fix`` on a fresh
  copy with no cache;
* ``checkpointify scan --no-prefilter``: LibCST on every file with a loop, the reference
  the staged path must agree with (slow; ``--skip-reference`` leaves it out).

Each line gives the wall time, the speed-up against the LibCST baseline, and the peak
resident memory of the largest process of that command (``getrusage(RUSAGE_CHILDREN)``
of a wrapper process: the biggest of the command's processes, workers included). Cold
and warm scans are the median of ``--repeat`` runs (3). The machine may be shared and
noisy: compare the ratios, which come from one run, rather than the seconds. It also
checks, with ``python -X importtime``, that a warm scan never imports LibCST.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
FETCH = HERE.parent.parent / "shared" / "corpus" / "fetch.sh"
TARGETS = {"scan (cold)": 25.0, "scan (warm)": 200.0}
MEMORY_LIMIT_MB = 300.0

#: runs a command and prints the peak RSS (kB) of the largest process among its descendants
_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code, file=sys.stderr)\n"
)


@dataclass
class Measure:
    name: str
    seconds: float
    peak_mb: float
    exit_code: int


def measure(name: str, command: Sequence[str], cwd: Path, env: Optional[dict] = None) -> Measure:  # type: ignore[type-arg]
    """Wall time and peak memory of ``command`` (its stdout is discarded)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *command],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seconds = time.perf_counter() - start
    rss_kb, code = done.stderr.strip().splitlines()[-1].split()
    return Measure(name, seconds, int(rss_kb) / 1024.0, int(code))


def median(runs: List[Measure]) -> Measure:
    ordered = sorted(runs, key=lambda m: m.seconds)
    middle = ordered[len(ordered) // 2]
    return Measure(middle.name, middle.seconds, max(m.peak_mb for m in runs), middle.exit_code)


def findings_of(command: Sequence[str], cwd: Path) -> List[dict]:  # type: ignore[type-arg]
    done = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit("%s failed (%d):\n%s" % (" ".join(command), done.returncode, done.stderr))
    return json.loads(done.stdout)["findings"]  # type: ignore[no-any-return]


def corpus_folder(args: argparse.Namespace) -> Path:
    if args.corpus:
        return Path(args.corpus).resolve()
    done = subprocess.run(["bash", str(FETCH), args.dest, args.set], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit("fetching the corpus failed:\n%s" % done.stderr)
    return Path(done.stdout.strip().splitlines()[-1])


def count(root: Path) -> tuple:  # type: ignore[type-arg]
    files = lines = 0
    for path in root.rglob("*.py"):
        files += 1
        with open(path, "rb") as handle:
            lines += sum(1 for _ in handle)
    return files, lines


def stage_counts(root: Path) -> Tuple[int, int, int]:
    """(Python files, kept by the text stage, kept by the ``ast`` stage): what reaches LibCST
    in a cold scan (notebooks left out). Run in this process, after the timings."""
    from checkpointify import prefilter
    from checkpointify.fileio import SourceError, check_encoding

    files = text_kept = tree_kept = 0
    for path in sorted(root.rglob("*.py")):
        files += 1
        source = path.read_bytes()
        try:
            encoding = check_encoding(source)
        except SourceError:
            continue
        if prefilter.text_stage(source, encoding, ()):
            text_kept += 1
            if prefilter.candidate_lines(source, encoding, (), text_kept=True) != frozenset():
                tree_kept += 1
    return files, text_kept, tree_kept


def ruff_command() -> Optional[str]:
    found = shutil.which("ruff")
    if found:
        return found
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.exists() else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="core", help="corpus set for fetch.sh (small, core, full)")
    parser.add_argument("--dest", default=str(Path.home() / ".cache" / "checkpointify-corpus"))
    parser.add_argument("--corpus", help="use this folder instead of fetching")
    parser.add_argument("-j", "--jobs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--skip-reference", action="store_true", help="skip the slow unstaged reference scan")
    parser.add_argument(
        "--repeat", type=int, default=3, help="cold and warm scans: report the median of this many"
    )
    args = parser.parse_args(argv)

    source = corpus_folder(args)
    files, lines = count(source)
    jobs = str(args.jobs)
    checkpointify = [sys.executable, "-m", "checkpointify"]
    work = Path(tempfile.mkdtemp(prefix="checkpointify-bench-"))
    try:
        tree = work / "tree"
        shutil.copytree(source, tree)
        cache = work / "cache"
        print(
            "corpus: %s (%s set): %d files, %d lines; -j %s" % (source, args.set, files, lines, jobs),
            flush=True,
        )

        results: List[Measure] = []
        baseline = measure(
            "LibCST no-op codemod",
            [sys.executable, "-m", "libcst.tool", "codemod", "-x", "noop_codemod.NoopCommand", "--no-format"]
            + ["--hide-progress", "-j", jobs, str(tree)],
            cwd=work,  # no .libcst.codemod.yaml here: LibCST's defaults
            env={"PYTHONPATH": str(HERE)},
        )
        results.append(baseline)
        ruff = ruff_command()
        if ruff:
            results.append(
                measure(
                    "ruff check --select PERF401",
                    [ruff, "check", "--select", "PERF401", "--no-cache", "--exit-zero", "."],
                    tree,
                )
            )
        scan = checkpointify + ["scan", "-q", "-j", jobs, "--format", "json", "--cache-dir", str(cache), "."]
        colds, warms = [], []
        for _ in range(args.repeat):  # the median of a few runs: the machine may be noisy
            shutil.rmtree(cache, ignore_errors=True)
            colds.append(measure("scan (cold)", scan, tree))
            warms.append(measure("scan (warm)", scan, tree))
        results.append(median(colds))
        results.append(median(warms))
        probe = subprocess.run(
            [sys.executable, "-X", "importtime", *checkpointify[1:], *scan[3:]],
            cwd=tree,
            capture_output=True,
            text=True,
        )
        warm_imports_libcst = " libcst" in probe.stderr
        fix_tree = work / "fix"
        shutil.copytree(source, fix_tree)
        results.append(
            measure(
                "fix (cold, on a copy)",
                checkpointify + ["fix", "-q", "-j", jobs, "--no-cache", "."],
                fix_tree,
            )
        )
        staged = findings_of(
            checkpointify + ["scan", "-q", "-j", jobs, "--format", "json", "--no-cache", "."], tree
        )
        reference: Optional[List[dict]] = None  # type: ignore[type-arg]
        if not args.skip_reference:
            reference_command = checkpointify + [
                "scan",
                "-q",
                "-j",
                jobs,
                "--format",
                "json",
                "--no-cache",
                "--no-prefilter",
                ".",
            ]
            start = time.perf_counter()
            reference = findings_of(reference_command, tree)
            results.append(
                Measure("scan --no-prefilter (reference)", time.perf_counter() - start, float("nan"), 0)
            )

        files_, text_kept, tree_kept = stage_counts(tree)
        print("findings: %d" % len(staged))
        print(
            "prefilter: %d .py files, %d kept by the text stage, %d by the ast stage (parsed by LibCST)"
            % (files_, text_kept, tree_kept)
        )
        print("a warm scan imports LibCST: %s" % ("yes" if warm_imports_libcst else "no"))
        print()
        print("%-34s %9s %12s %10s" % ("", "seconds", "vs LibCST", "peak MB"))
        for m in results:
            ratio = baseline.seconds / m.seconds
            print("%-34s %9.2f %11.1fx %10.0f" % (m.name, m.seconds, ratio, m.peak_mb))
        print()
        ok = True
        for name, target in TARGETS.items():
            m = next(r for r in results if r.name == name)
            ratio = baseline.seconds / m.seconds
            met = ratio >= target
            ok &= met
            print("target %-26s >= %5.0fx: %6.1fx  %s" % (name, target, ratio, "met" if met else "MISSED"))
        ruff_row = next((r for r in results if r.name.startswith("ruff")), None)
        if ruff_row is not None:
            for name in ("scan (cold)", "scan (warm)"):
                m = next(r for r in results if r.name == name)
                print(
                    "%-40s %6.1fx ruff's time"
                    % (name + " against ruff PERF401:", m.seconds / ruff_row.seconds)
                )
        ours = [r for r in results if r.name.startswith(("scan (", "fix"))]
        peak = max(r.peak_mb for r in ours)
        print(
            "target peak memory          < %4.0f MB: %6.0f MB  %s"
            % (MEMORY_LIMIT_MB, peak, "met" if peak < MEMORY_LIMIT_MB else "MISSED")
        )
        ok &= peak < MEMORY_LIMIT_MB
        if reference is None:
            print("same findings as the unstaged path: not checked (--skip-reference)")
        else:
            same = reference == staged
            ok &= same
            print(
                "same findings as the unstaged path: %s (%d and %d)"
                % ("yes" if same else "NO", len(staged), len(reference))
            )
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
