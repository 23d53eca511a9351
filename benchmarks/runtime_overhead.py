"""What checkpointing costs: the checkpointed loop against the unmodified loop, same run.

    python benchmarks/runtime_overhead.py [--quick] [--repeat R] [--dir DIR]

1. Units of 1, 10 and 100 ms of work (busy-waiting, so that the work itself is exact and
   only the checkpoint's cost varies), each accumulating a realistic result (a dict with an
   id, a score, a label and a 16-float vector), with the default policy
   (CHECKPOINTIFY_FSYNC=batched, CHECKPOINTIFY_BATCH=auto): the plain loop and the
   checkpointed loop run alternately R times in fresh directories. "per unit" is the
   loop's own overhead (the ``for`` statement, end-of-input fsync included), as a median
   of paired ratios; "open+complete" is the one-time cost of ``restore()`` on an empty
   directory plus ``complete()`` (a directory fsync), and "whole run" adds it to the loop.
   One more row: 10 ms units with a dict accumulator that already holds 200 000 entries,
   where working out a unit's effect costs a few ms (a pass over the dict), to show that
   batching keeps it bounded.
2. Restore of 100 000 completed units: one record each (CHECKPOINTIFY_BATCH=off, the worst
   case), and as the default policy writes them.
3. Cheap units (1, 10, 50 us): overhead with batching (the default) and without, and how
   often a batch is written (the most a ``kill -9`` can lose).
4. Import cost (``--imports`` runs only this): fresh interpreters, alternating, median of
   ``--import-runs`` each: ``python -c pass``, ``import checkpointify`` (the parent package,
   which only holds ``__version__``, paid by every ``import checkpointify.runtime``),
   ``import checkpointify.runtime``, and a first tiny checkpointed loop (what deferred imports
   cost once a loop runs); then the modules ``-X importtime`` charges the most to the import.
   ``--src DIR`` times another checkout's ``src`` (e.g. a ``git worktree`` of an older
   commit) the same way, for a before/after.

5. Item fingerprints (``--fingerprints`` runs only this): what fingerprinting one unit's
   item costs for large arrays and buffers (a 64x3x224x224 float32 batch, a 40 MB uint8
   array, 40 MB of bytes; NumPy needed for the arrays), sampled as the runtime does now,
   against hashing all of it as it did before (the array's pickle, or every byte), in the
   same run: median of ``--repeat`` x 20 calls.

6. Object storage (``--s3`` runs only this; the full run adds it when ``moto[server]`` and
   ``s3fs`` are installed): a local S3 API server (moto's standalone server on 127.0.0.1,
   reached through s3fs with ``CHECKPOINTIFY_DIR=s3://...``), so every upload is a real
   HTTP round trip. 10 ms units with the default policy (at most one upload a second),
   plain against checkpointed, alternating, median of paired ratios; then restore of
   100 000 completed units from the server, written as 1 000 segments of 100 units (what
   a loop of 10 ms units uploads in 17 minutes), with the compaction the store does.
   ``--azure`` and ``--gcs`` run the same against Azurite (through adlfs; installed with
   npm on first use, as the tests do) and the GCS emulator (through gcsfs) instead: those
   are emulators, so their numbers say what the client side costs, not what the service
   would take.

Timings are wall-clock on whatever machine runs it; a shared machine adds noise, which the
alternation and the medians are there to absorb. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support (section 6)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from checkpointify.runtime import checkpoint, read_info  # noqa: E402


def busy(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def result(i: int) -> Dict[str, Any]:
    return {"id": i, "score": i * 0.5, "label": "ok", "vector": [i / 16.0 + k for k in range(16)]}


def plain_loop(n: int, work: float, preload: int) -> float:
    results: Any = {k: k for k in range(preload)} if preload else []
    started = time.perf_counter()
    for i in range(n):
        busy(work)
        if preload:
            results[preload + i] = result(i)
        else:
            results.append(result(i))
    return time.perf_counter() - started


def checkpointed_loop(n: int, work: float, preload: int, where: Path) -> Tuple[float, float, int]:
    """The rewritten shape of plain_loop: (seconds in the loop, seconds in restore() and
    complete(), records written)."""
    os.environ["CHECKPOINTIFY_DIR"] = str(where)
    results: Any = {k: k for k in range(preload)} if preload else []
    started = time.perf_counter()
    ckpt = checkpoint("bench::loop::results", range(n), lambda: (results,))
    [results] = ckpt.restore()
    opened = time.perf_counter()
    for i in ckpt:
        busy(work)
        if preload:
            results[preload + i] = result(i)
        else:
            results.append(result(i))
    looped = time.perf_counter()
    records = read_info(ckpt.path).records
    finishing = time.perf_counter()
    ckpt.complete()
    done = time.perf_counter()
    shutil.rmtree(where, ignore_errors=True)
    return looped - opened, (opened - started) + (done - finishing), records


def compare(n: int, work: float, repeat: int, base: Path, preload: int = 0) -> Dict[str, float]:
    plain: List[float] = []
    loop: List[float] = []
    fixed: List[float] = []
    ratios: List[float] = []
    whole: List[float] = []
    records = 0
    for rep in range(repeat):
        for step in ("plain", "ckpt") if rep % 2 == 0 else ("ckpt", "plain"):  # alternate: drift cancels
            gc.collect()
            if step == "plain":
                plain.append(plain_loop(n, work, preload))
            else:
                seconds, once, records = checkpointed_loop(n, work, preload, base / ("r%d" % rep))
                loop.append(seconds)
                fixed.append(once)
        ratios.append(loop[-1] / plain[-1])
        whole.append((loop[-1] + fixed[-1]) / plain[-1])
    overhead = statistics.median(ratios) - 1
    return {
        "n": n,
        "plain": statistics.median(plain),
        "loop": statistics.median(loop),
        "fixed": statistics.median(fixed),
        "overhead": overhead,
        "whole": statistics.median(whole) - 1,
        "per_unit_us": overhead * statistics.median(plain) / n * 1e6,
        "records": records,
    }


def restore_time(units: int, base: Path, batch: str, repeat: int) -> Tuple[float, int, int]:
    """Seconds to restore ``units`` completed units (median), the records and bytes read."""
    where = base / ("restore-" + batch)
    os.environ["CHECKPOINTIFY_DIR"] = str(where)
    os.environ["CHECKPOINTIFY_BATCH"] = batch
    os.environ["CHECKPOINTIFY_FSYNC"] = "never"
    results: List[Any] = []
    writer = checkpoint("bench::restore::results", range(units), lambda: (results,))
    [results] = writer.restore()
    for i in writer:
        results.append(result(i))
    writer.close()
    info = read_info(writer.path)
    assert info.units == units, info
    os.environ.pop("CHECKPOINTIFY_BATCH")
    os.environ.pop("CHECKPOINTIFY_FSYNC")
    times = []
    for _ in range(repeat):
        gc.collect()
        restored: List[Any] = []
        started = time.perf_counter()
        reader = checkpoint("bench::restore::results", range(units), lambda acc=restored: (acc,))
        [restored] = reader.restore()
        times.append(time.perf_counter() - started)
        assert len(restored) == units and reader.restored_units == units
        reader.close()
    shutil.rmtree(where, ignore_errors=True)
    return statistics.median(times), info.records, info.size


def cheap(n: int, work: float, batch: str, repeat: int, base: Path) -> Dict[str, float]:
    os.environ["CHECKPOINTIFY_BATCH"] = batch
    try:
        return compare(n, work, repeat, base)
    finally:
        os.environ.pop("CHECKPOINTIFY_BATCH")


IMPORT_COMMANDS = [
    ("python -c pass", "pass"),
    ("import checkpointify", "import checkpointify"),
    ("import checkpointify.runtime", "import checkpointify.runtime"),
    (
        "... and a first loop",
        "import os, tempfile; from checkpointify.runtime import checkpoint; "
        "c = checkpoint('bench::first::acc', range(3), lambda: ([],), directory=tempfile.mkdtemp()); "
        "c.restore(); [None for _ in c]; c.complete()",
    ),
]


def import_cost(src: Path, runs: int) -> List[float]:
    """Median wall seconds of each of IMPORT_COMMANDS in a fresh interpreter (same flags and
    environment for all, ``src`` first on ``sys.path``), the commands alternating."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINTIFY_")}
    env.update(PYTHONPATH=str(src), CHECKPOINTIFY_QUIET="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its .pyc files: so here
    for _label, code in IMPORT_COMMANDS:  # warm the page cache and write the .pyc files
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
    times: List[List[float]] = [[] for _ in IMPORT_COMMANDS]
    for run in range(runs):
        order = list(range(len(IMPORT_COMMANDS)))
        if run % 2:
            order.reverse()
        for index in order:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", IMPORT_COMMANDS[index][1]], env=env, check=True)
            times[index].append(time.perf_counter() - started)
    return [statistics.median(t) for t in times]


def import_offenders(src: Path, top: int) -> List[Tuple[str, int]]:
    """The modules ``import checkpointify.runtime`` loads that bare Python does not, by
    the microseconds ``-X importtime`` charges to each itself (one run: indicative only)."""
    env = dict(os.environ, PYTHONPATH=str(src))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import checkpointify.runtime"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    bare = subprocess.run(
        [sys.executable, "-c", "import sys; print(' '.join(sys.modules))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    rows = []
    for line in done.stderr.splitlines():
        fields = line.split("|")
        if (
            len(fields) == 3
            and fields[0].startswith("import time:")
            and fields[0].split(":")[1].strip().isdigit()
        ):
            name = fields[2].strip()
            if name not in bare:
                rows.append((name, int(fields[0].split(":")[1])))
    return sorted(rows, key=lambda row: -row[1])[:top]


def report_imports(src: Path, runs: int) -> None:
    print("import cost (%s, fresh interpreters, %d runs each, alternating, medians)" % (src, runs))
    medians = import_cost(src, runs)
    bare = medians[0]
    for (label, _code), seconds in zip(IMPORT_COMMANDS, medians):
        extra = "" if seconds is bare else "  %+6.1f ms  x%.2f" % ((seconds - bare) * 1000, seconds / bare)
        print("  %-32s %7.1f ms%s" % (label, seconds * 1000, extra))
    print(
        "  (the parent package costs %.1f ms of that: it only holds __version__)"
        % ((medians[1] - bare) * 1000)
    )
    print("  most of the runtime's own import (-X importtime, self, one run):")
    for name, micros in import_offenders(src, 8):
        print("    %-36s %6.2f ms" % (name, micros / 1000))
    print()


def full_hash(item: Any) -> bytes:
    """The item fingerprint before sampling: the whole pickle (an array) or every byte."""
    import pickle

    from checkpointify.runtime.fingerprint import _blake2b

    h = _blake2b(digest_size=8)
    h.update(item if isinstance(item, bytes) else pickle.dumps(item, 4))
    return h.digest()


def report_fingerprints(repeat: int) -> None:
    from checkpointify.runtime import fingerprint

    items: List[Tuple[str, Any]] = []
    try:
        import numpy

        rng = numpy.random.default_rng(0)
        items.append(("float32 64x3x224x224", rng.random((64, 3, 224, 224), dtype=numpy.float32)))
        items.append(("uint8 40 MB", rng.integers(0, 255, 40_000_000, dtype=numpy.uint8)))
        items.append(
            ("uint8 40 MB, strided", rng.integers(0, 255, (10_000, 8_000), dtype=numpy.uint8)[:, ::2])
        )
    except ImportError:
        print("(NumPy is not installed: arrays skipped)")
    items.append(("bytes 40 MB", os.urandom(40_000_000)))
    print("item fingerprints: sampled (now) against hashing everything (before), per unit")
    print("item                         size    sampled     full hash    ratio")
    for label, item in items:
        size = getattr(item, "nbytes", None) or len(item)
        now: List[float] = []
        before: List[float] = []
        for _ in range(repeat):
            for function, times in ((fingerprint, now), (full_hash, before)):
                started = time.perf_counter()
                for _ in range(20):
                    function(item)
                times.append((time.perf_counter() - started) / 20)
        sampled, full = statistics.median(now), statistics.median(before)
        print(
            "%-24s %6.1f MB %8.3f ms %10.1f ms %7.0fx"
            % (label, size / 1e6, sampled * 1000, full * 1000, full / sampled)
        )
    print()
    report_strided(repeat)


def flat_slices(item: Any) -> bytes:
    """The strided path before: one ``flat[start:stop]`` copy per sampled block."""
    from checkpointify.runtime.fingerprint import _blake2b, _sample_ranges

    h = _blake2b(digest_size=8)
    size = int(item.size)
    itemsize = item.dtype.itemsize
    for start, stop in _sample_ranges(size, itemsize):
        h.update(item.flat[start:stop].tobytes())
    return h.digest()


def report_strided(repeat: int) -> None:
    """A strided 40 MB array against its contiguous copy (the same elements, so the same
    fingerprint) and against the flat-slice reading it had before, same run."""
    try:
        import numpy
    except ImportError:
        return
    from checkpointify.runtime import fingerprint

    strided = numpy.random.default_rng(0).integers(0, 255, (10_000, 8_000), dtype=numpy.uint8)[:, ::2]
    contiguous = numpy.ascontiguousarray(strided)
    assert fingerprint(strided) == fingerprint(contiguous)
    rows: Dict[str, List[float]] = {
        "strided (now)": [],
        "contiguous copy": [],
        "strided, flat slices (before)": [],
    }
    functions = {"strided (now)": (fingerprint, strided), "contiguous copy": (fingerprint, contiguous)}
    functions["strided, flat slices (before)"] = (flat_slices, strided)
    for _ in range(repeat * 3):  # alternated, so a load spike hits every row alike
        for label, (function, item) in functions.items():
            started = time.perf_counter()
            for _ in range(20):
                function(item)
            rows[label].append((time.perf_counter() - started) / 20)
    base = statistics.median(rows["contiguous copy"])
    print("strided 40 MB uint8 array ([:, ::2] of 10000x8000), per unit, medians of %d" % (repeat * 3))
    for label, times in rows.items():
        median = statistics.median(times)
        print("  %-32s %8.3f ms  x%.2f of the contiguous copy" % (label, median * 1000, median / base))
    print()


_IN_FLUSH = [0.0]  # seconds the loop spent writing records (s3_loop instruments Checkpoint._flush)


def s3_loop(n: int, work: float, url: str) -> Tuple[float, float, float]:
    """plain_loop checkpointed on object storage: (seconds in the loop, in restore()+complete(),
    in writing records: the part of the loop's time that is the checkpoint's own, measured
    directly, which a loaded machine's noise does not swamp)."""
    from checkpointify.runtime import Checkpoint

    real = Checkpoint._flush

    def timed(self: Any) -> None:
        started = time.perf_counter()
        try:
            real(self)
        finally:
            _IN_FLUSH[0] += time.perf_counter() - started

    _IN_FLUSH[0] = 0.0
    Checkpoint._flush = timed  # type: ignore[method-assign]
    try:
        results: List[Any] = []
        started = time.perf_counter()
        ckpt = checkpoint("bench::s3::results", range(n), lambda: (results,), directory=url)
        [results] = ckpt.restore()
        opened = time.perf_counter()
        for i in ckpt:
            busy(work)
            results.append(result(i))
        looped = time.perf_counter()
        ckpt.complete()
    finally:
        Checkpoint._flush = real  # type: ignore[method-assign]
    return looped - opened, (opened - started) + (time.perf_counter() - looped), _IN_FLUSH[0]


def s3_restore(units: int, url: str, per_segment: int, repeat: int) -> Tuple[float, int, float, float]:
    """Write ``units`` units as segments of ``per_segment`` units, then restore them: the
    median seconds, the objects a restore reads, and the write amplification (bytes
    uploaded as segments and snapshots / bytes of the log), measured, and that of the
    runtime before tiered compaction (a snapshot of the whole log every 64 segments),
    computed from the same segment sizes. (``url`` may be a local folder: the same records
    in one log file, for the ratio; then only the seconds mean something.)"""
    module = sys.modules["checkpointify.runtime.checkpoint"]
    from checkpointify.runtime.objectstore import ObjectStore, load
    from checkpointify.runtime.remote import Bucket

    saved = module._BATCH_MAX_UNITS
    module._BATCH_MAX_UNITS = per_segment  # a record (so a segment) every per_segment units
    try:
        results: List[Any] = []
        writer = checkpoint("bench::s3restore::results", range(units), lambda: (results,), directory=url)
        [results] = writer.restore()
        sizes: List[int] = []
        store = writer._store
        if isinstance(store, ObjectStore):  # the body of each segment, as the writer uploads it
            real = store._put_segment

            def counted(seq: int, body: bytes) -> None:
                sizes.append(len(body))
                real(seq, body)

            store._put_segment = counted  # type: ignore[method-assign]
        for i in writer:
            results.append(result(i))
        writer.close()
    finally:
        module._BATCH_MAX_UNITS = saved
    objects, amplification, before = 1, 0.0, 0.0
    if isinstance(store, ObjectStore):
        bucket = Bucket(url)
        [name] = [n for n in bucket.children() if n.endswith(".ckpt")]
        objects = len(load(bucket, name).runs)
        amplification = store.uploaded / sum(sizes)
        old = sum(sizes) + sum(sum(sizes[: k + 1]) for k in range(63, len(sizes), 64))
        before = old / sum(sizes)
    times = []
    for _ in range(repeat):
        gc.collect()
        restored: List[Any] = []
        started = time.perf_counter()
        reader = checkpoint(
            "bench::s3restore::results", range(units), lambda acc=restored: (acc,), directory=url
        )
        [restored] = reader.restore()
        times.append(time.perf_counter() - started)
        assert len(restored) == units and reader.restored_units == units, reader.restored_units
        reader.close()
    checkpoint("bench::s3restore::results", range(units), lambda: ([],), directory=url).complete()
    return statistics.median(times), objects, amplification, before


#: the server and client of each backend section 6 can run against
_SERVERS = {
    "s3": (("moto.server", "s3fs"), "a local S3 API server (moto on 127.0.0.1) through s3fs"),
    "azure": (("adlfs",), "Azurite (the Azure Blob emulator) on 127.0.0.1 through adlfs"),
    "gcs": (("gcsfs", "gcp_storage_emulator.server"), "gcp-storage-emulator on 127.0.0.1 through gcsfs"),
}


def report_s3(repeat: int, scale: float, base: Path, kind: str = "s3") -> Dict[str, float]:
    """Section 6 (against the ``kind`` server); empty when its packages are not installed."""
    import importlib.util

    modules, label = _SERVERS[kind]
    # looked up, not imported: gcsfs reads its environment (the server's env()) on import
    if any(importlib.util.find_spec(module.split(".")[0]) is None for module in modules):
        print("object storage (%s): skipped (pip install %s)" % (kind, " ".join(modules)))
        return {}
    from tests.support import objectservers

    # the server's environment is set in this process while it runs, then restored
    with contextmanager(objectservers.started)(objectservers.start(kind)) as server:
        url = server.bucket() + "/bench"
        n, work = max(50, int(300 * scale)), 0.010
        s3_loop(5, 0.0, url)  # the first use imports the client and opens its connection pool
        plain: List[float] = []
        loop: List[float] = []
        fixed: List[float] = []
        ratios: List[float] = []
        shares: List[float] = []
        for rep in range(repeat):
            for step in ("plain", "ckpt") if rep % 2 == 0 else ("ckpt", "plain"):
                gc.collect()
                if step == "plain":
                    plain.append(plain_loop(n, work, 0))
                else:
                    seconds, once, writing = s3_loop(n, work, url)
                    loop.append(seconds)
                    fixed.append(once)
                    shares.append(writing / seconds)
            ratios.append(loop[-1] / plain[-1])
        overhead = statistics.median(ratios) - 1
        units = 100_000
        restore, objects, amplification, before = s3_restore(units, url, 100, repeat)
        local = s3_restore(units, str(base / "local-restore"), 100, repeat)[0]
        print("object storage: " + label)
        print(
            "  10 ms units x %d: plain %.3f s, checkpointed %.3f s: overhead %.2f %%; time the loop spent "
            "writing records: %.2f %% of it (restore()+complete(): %.0f ms, once)"
            % (
                n,
                statistics.median(plain),
                statistics.median(loop),
                overhead * 100,
                statistics.median(shares) * 100,
                statistics.median(fixed) * 1000,
            )
        )
        print(
            "  restore of %d units written as %d segments of 100: %.3f s (reads %d objects after compaction);"
            " the same records from a local log file: %.3f s (%s / local: %.2fx)"
            % (units, units // 100, restore, objects, local, kind, restore / local)
        )
        print(
            "  bytes uploaded / bytes of the log: %.2f (tiered compaction, measured); a snapshot of the"
            " whole log every 64 segments would upload %.2f (computed from the same segments)"
            % (amplification, before)
        )
        return {"overhead": overhead, "restore": restore, "writing": statistics.median(shares)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer units and repeats (a smoke run)")
    parser.add_argument("--repeat", type=int, default=0, help="repetitions per row (default 5; --quick 2)")
    parser.add_argument("--dir", default=None, help="where to write the logs (default: a temporary folder)")
    parser.add_argument("--imports", action="store_true", help="only the import cost (section 4)")
    parser.add_argument(
        "--import-runs", type=int, default=15, help="fresh interpreters per command (default 15)"
    )
    parser.add_argument("--src", default=None, help="time the import of this src folder instead of ours")
    parser.add_argument("--fingerprints", action="store_true", help="only the item fingerprints (section 5)")
    parser.add_argument("--s3", action="store_true", help="only object storage (section 6)")
    parser.add_argument("--azure", action="store_true", help="section 6 against Azurite instead")
    parser.add_argument("--gcs", action="store_true", help="section 6 against the GCS emulator instead")
    args = parser.parse_args()
    if args.s3 or args.azure or args.gcs:
        kind = "azure" if args.azure else "gcs" if args.gcs else "s3"
        for name in [n for n in os.environ if n.startswith("CHECKPOINTIFY_")]:
            del os.environ[name]
        os.environ["CHECKPOINTIFY_QUIET"] = "1"
        base = Path(tempfile.mkdtemp(prefix="ckpt-bench-", dir=args.dir))
        try:
            numbers = report_s3(
                args.repeat or (2 if args.quick else 5), 0.2 if args.quick else 1.0, base, kind
            )
        finally:
            shutil.rmtree(base, ignore_errors=True)
        _s3_targets(numbers, {"s3": "S3", "azure": "Azurite", "gcs": "GCS emulator"}[kind])
        return 0
    if args.fingerprints:
        report_fingerprints(args.repeat or (2 if args.quick else 5))
        return 0
    src = Path(args.src).resolve() if args.src else Path(__file__).resolve().parents[1] / "src"
    report_imports(src, max(3, args.import_runs // 3) if args.quick else args.import_runs)
    if args.imports:
        return 0
    repeat = args.repeat or (2 if args.quick else 5)
    report_fingerprints(repeat)
    scale = 0.2 if args.quick else 1.0
    for name in [n for n in os.environ if n.startswith("CHECKPOINTIFY_")]:
        del os.environ[name]
    os.environ["CHECKPOINTIFY_QUIET"] = "1"
    base = Path(tempfile.mkdtemp(prefix="ckpt-bench-", dir=args.dir))
    try:
        print(
            "checkpointify runtime overhead (Python %s, %d repetitions, medians)"
            % (sys.version.split()[0], repeat)
        )
        print()
        print(
            "unit of work  units  plain loop  checkpointed loop  per unit: overhead    cost"
            "  records  open+complete  whole run"
        )
        rows: Dict[str, Dict[str, float]] = {}
        for label, n, work, preload in [
            ("1 ms", 2000, 0.001, 0),
            ("10 ms", 300, 0.010, 0),
            ("100 ms", 40, 0.100, 0),
            ("10 ms, dict*", 300, 0.010, 200_000),
        ]:
            row = compare(max(5, int(n * scale)), work, repeat, base, preload)
            rows[label] = row
            print(
                "%-12s %6d %9.3f s %15.3f s %16.2f %% %6.1f us %8d %11.1f ms %8.2f %%"
                % (
                    label,
                    row["n"],
                    row["plain"],
                    row["loop"],
                    row["overhead"] * 100,
                    row["per_unit_us"],
                    row["records"],
                    row["fixed"] * 1000,
                    row["whole"] * 100,
                )
            )
        print(
            "* a dict accumulator that already holds 200 000 entries: each unit's effect costs a pass over it"
        )
        print()
        units = 100_000
        print("restore of %d completed units" % units)
        per_unit = restore_time(units, base, "off", repeat)
        batched = restore_time(units, base, "auto", repeat)
        print(
            "  one record a unit (CHECKPOINTIFY_BATCH=off): %.3f s  (%d records, %.1f MB)"
            % (per_unit[0], per_unit[1], per_unit[2] / 1e6)
        )
        print(
            "  as the default policy writes them:           %.3f s  (%d records, %.1f MB)"
            % (batched[0], batched[1], batched[2] / 1e6)
        )
        print()
        print("cheap units: batching (default) against one record a unit (CHECKPOINTIFY_BATCH=off)")
        print("(a kill -9 loses at most the units of one batch: 'a record every' is that window)")
        print(
            "unit of work    units   batched: overhead    cost  records  a record every"
            "      off: overhead    cost  records"
        )
        for label, n, work in [("1 us", 200_000, 1e-6), ("10 us", 50_000, 1e-5), ("50 us", 20_000, 5e-5)]:
            count = max(1000, int(n * scale))
            on = cheap(count, work, "auto", repeat, base)
            off = cheap(count, work, "off", repeat, base)
            print(
                "%-12s %8d   %15.1f %% %5.2f us %8d %11.2f ms   %14.1f %% %5.2f us %8d"
                % (
                    label,
                    count,
                    on["overhead"] * 100,
                    on["per_unit_us"],
                    on["records"],
                    on["loop"] / on["records"] * 1000,
                    off["overhead"] * 100,
                    off["per_unit_us"],
                    off["records"],
                )
            )
        print()
        targets = [
            ("per-unit overhead at 10 ms", rows["10 ms"]["overhead"], 0.05, "%.2f %%", 100),
            ("per-unit overhead at 100 ms", rows["100 ms"]["overhead"], 0.01, "%.2f %%", 100),
            ("restore of 100 000 units (one record each)", per_unit[0], 1.0, "%.3f s", 1),
        ]
        for name, value, limit, fmt, factor in targets:
            verdict = "meets" if value <= limit else "MISSES"
            print(
                "%-44s %s  (target <= %s: %s)"
                % (name, fmt % (value * factor), fmt % (limit * factor), verdict)
            )
        print("%-44s %.2f %%  (no target)" % ("per-unit overhead at 1 ms", rows["1 ms"]["overhead"] * 100))
        print()
        _s3_targets(report_s3(repeat, scale, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def _s3_targets(numbers: Dict[str, float], label: str = "S3") -> None:
    if not numbers:
        return
    for name, value, limit, fmt, factor in [
        (label + ": per-unit overhead at 10 ms", numbers["overhead"], 0.05, "%.2f %%", 100),
        (label + ": loop time spent writing records, 10 ms", numbers["writing"], 0.05, "%.2f %%", 100),
        (label + ": restore of 100 000 units", numbers["restore"], 5.0, "%.3f s", 1),
    ]:
        verdict = "meets" if value <= limit else "MISSES"
        print(
            "%-44s %s  (target <= %s: %s)" % (name, fmt % (value * factor), fmt % (limit * factor), verdict)
        )


if __name__ == "__main__":
    sys.exit(main())
