"""A checkpointed job for the crash tests, run as a real subprocess: ``python crash_child.py CONFIG``.

CONFIG is a JSON file: ``items`` (the input), ``work`` (seconds of work a unit), ``size`` (bytes
of pseudo-random payload in each result, to make records large), ``resume`` ("position"
or "identity"), ``worklog`` (where every unit's start is logged), and optionally
``raise_at`` (an item whose unit raises), ``fail_fsync_at`` (the n-th fsync of the log
fails with EIO, at the OS boundary) and ``synclog`` (record the log's size at each fsync).

The loop is shaped exactly like a rewritten one. Its output, ``out.pkl``, is written
atomically and must be byte-identical to :func:`expected_output` of the same items.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import sys
import time
from typing import Any, Dict, List, Tuple

LOOP_ID = "crash_child.py::main::results"


def result(item: Any, size: int) -> Dict[str, Any]:
    """The deterministic result of one unit."""
    payload = random.Random(repr(item)).getrandbits(size * 8).to_bytes(size, "little") if size else b""
    return {"item": item, "label": "unit %s" % (item,), "status": "ok", "payload": payload}


def expected_output(items: List[Any], size: int) -> bytes:
    """What an uninterrupted run over ``items`` writes to out.pkl."""
    results: List[Dict[str, Any]] = []
    index: Dict[Any, int] = {}
    for item in items:
        one = result(item, size)
        results.append(one)
        index[item] = len(one["label"])
    return pickle.dumps((results, index))


def _work(seconds: float) -> None:
    if seconds >= 0.001:
        time.sleep(seconds)
        return
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


def _watch_fsync(config: Dict[str, Any]) -> None:
    """Wrap os.fsync/os.fdatasync: log the checkpoint's synced size, or fail the n-th sync."""
    fail_at = int(config.get("fail_fsync_at", 0))
    synclog = config.get("synclog")
    calls = [0]

    def wrap(real: Any) -> Any:
        def sync(fd: int) -> None:
            try:
                target = os.readlink("/proc/self/fd/%d" % fd)
            except OSError:
                target = ""
            if target.endswith(".ckpt"):
                calls[0] += 1
                if synclog:
                    with open(synclog, "a") as handle:
                        handle.write("%d %d %f\n" % (calls[0], os.fstat(fd).st_size, time.monotonic()))
                if calls[0] == fail_at:
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
            real(fd)

        return sync

    os.fsync = wrap(os.fsync)
    if hasattr(os, "fdatasync"):
        os.fdatasync = wrap(os.fdatasync)


def main(config: Dict[str, Any]) -> Tuple[Any, ...]:
    from checkpointify.runtime import checkpoint

    if config.get("fail_fsync_at") or config.get("synclog"):
        _watch_fsync(config)
    items = config["items"]
    size = int(config.get("size", 0))
    work = float(config.get("work", 0.0))
    raise_at = config.get("raise_at")
    log = os.open(config["worklog"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    results: List[Dict[str, Any]] = []
    index: Dict[Any, int] = {}
    ckpt = checkpoint(LOOP_ID, items, lambda: (results, index), resume=config.get("resume", "position"))
    [results, index] = ckpt.restore()
    for item in ckpt:
        os.write(log, ("start %r %.6f\n" % (item, time.monotonic())).encode())
        _work(work)
        if item == raise_at:
            raise RuntimeError("unit %r failed" % (item,))
        one = result(item, size)
        results.append(one)
        index[item] = len(one["label"])  # a body never reads the accumulators (the codemod checks)
    with open("out.pkl.tmp", "wb") as handle:
        pickle.dump((results, index), handle)
    os.replace("out.pkl.tmp", "out.pkl")
    ckpt.complete()
    os.write(log, b"done\n")
    return results, index


if __name__ == "__main__":
    with open(sys.argv[1]) as config_file:
        main(json.load(config_file))
