"""Run ``crash_child.py`` as a real process, crash it, resume it, and check the invariants.

Shared by ``tests/test_runtime_faults.py`` (dozens of trials) and
``benchmarks/sigkill_stress.py`` (hundreds). Every check returns a list of violations
(empty: the trial passed), so that the stress script can count them.

The invariants, for every crash:

* **nothing completed is lost**: a unit whose successor started had been recorded, so the
  resumed run does not run it again (with batching, only units that completed within the
  batch window before the last completed unit may run again);
* **nothing is applied twice, nothing is skipped**: ``out.pkl`` of the resumed run is
  byte-identical to an uninterrupted run's over the input the resumed run sees;
* **nothing is left behind**: after the successful run the checkpoint directory is empty
  (on object storage: no object is left under the job's prefix).

A job whose :attr:`Job.remote` is set keeps its checkpoints on a real object-storage server
(S3, Azure Blob or GCS: ``tests/support/objectservers.py``) instead of ``.checkpointify``:
the same cells run against the object store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tests.support import crash_child

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
CHILD = HERE / "crash_child.py"
BATCH_SLACK = 0.05  # seconds of scheduling noise allowed on top of the batch window


@dataclass
class Job:
    """One crash_child job in its own folder (its checkpoints go to ``.checkpointify``)."""

    where: Path
    config: Dict[str, Any]
    env: Dict[str, str] = field(default_factory=dict)
    python: str = sys.executable
    #: the object store of its checkpoints (None: the local folder ``.checkpointify``)
    remote: Optional[Remote] = None

    def use(self, remote: Optional[Remote]) -> "Job":
        """Keep this job's checkpoints on ``remote`` (None: on local disk)."""
        self.remote = remote
        if remote is not None:
            self.env.update(remote.env())
        return self

    @property
    def worklog(self) -> Path:
        return self.where / "worklog.txt"

    @property
    def checkpoints(self) -> Path:
        return self.where / ".checkpointify"

    def log_files(self) -> List[Path]:
        return sorted(self.checkpoints.glob("*.ckpt")) if self.checkpoints.exists() else []

    def leftovers(self) -> List[str]:
        """What the job's checkpoints left: files in the local folder, objects on the store."""
        local = sorted(p.name for p in self.checkpoints.iterdir()) if self.checkpoints.exists() else []
        return local + (self.remote.keys() if self.remote is not None else [])

    def environment(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINTIFY_")}
        env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(HERE)])
        env["CHECKPOINTIFY_QUIET"] = "1"
        if os.environ.get("CHECKPOINTIFY_STRICT"):  # the `strict` fixture: the child is strict too
            env["CHECKPOINTIFY_STRICT"] = os.environ["CHECKPOINTIFY_STRICT"]
        env.update(self.env)
        env.update(extra or {})
        return env

    def command(self) -> List[str]:
        config = self.where / "config.json"
        config.write_text(json.dumps(dict(self.config, worklog=str(self.worklog))))
        return [self.python, str(CHILD), str(config)]

    def run(
        self, env: Optional[Dict[str, str]] = None, timeout: float = 120
    ) -> "subprocess.CompletedProcess[str]":
        return subprocess.run(
            self.command(),
            cwd=self.where,
            env=self.environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, env: Optional[Dict[str, str]] = None) -> "subprocess.Popen[bytes]":
        return subprocess.Popen(
            self.command(),
            cwd=self.where,
            env=self.environment(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def starts(self) -> List[Tuple[Any, float]]:
        """The units started since the work log was last reset: (item, monotonic time)."""
        if not self.worklog.exists():
            return []
        out = []
        for line in self.worklog.read_text().splitlines():
            if line.startswith("start "):
                item, stamp = line[6:].rsplit(" ", 1)
                out.append((eval(item), float(stamp)))  # repr of an int or str, written by the child
        return out

    def finished(self) -> bool:
        """Whether the run got as far as complete() (the output exists and the log is gone)."""
        if self.remote is not None:
            return (self.where / "out.pkl").exists() and not self.remote.keys()
        return (self.where / "out.pkl").exists() and not self.log_files()

    def reset_worklog(self) -> None:
        if self.worklog.exists():
            self.worklog.unlink()

    def expected(self) -> bytes:
        return crash_child.expected_output(self.config["items"], int(self.config.get("size", 0)))

    def output(self) -> bytes:
        out = self.where / "out.pkl"
        return out.read_bytes() if out.exists() else b""


@dataclass(frozen=True)
class Remote:
    """A prefix on a running object-storage server (S3, Azurite or the GCS emulator:
    tests/support/objectservers.py): ``CHECKPOINTIFY_DIR=<url>`` and what reaches it."""

    endpoint: str
    url: str
    server_env: Tuple[Tuple[str, str], ...]
    #: seconds more that a kill may lose with batching: the upload in flight (docs/runtime.md)
    upload_allowance: float = 1.0

    def env(self) -> Dict[str, str]:
        # a lease of a killed job on this host is taken over at once; a live holder is
        # watched for one time to live before a newcomer gives up: one second, not thirty
        return dict(self.server_env, CHECKPOINTIFY_DIR=self.url, CHECKPOINTIFY_LEASE_SECONDS="1")

    def keys(self) -> List[str]:
        """Every object under :attr:`url`, read with the server's own API (by its scheme)."""
        from tests.support.objectservers import list_keys

        return list_keys(self.url, dict(self.server_env))


def make_job(where: Path, items: Sequence[Any], **config: Any) -> Job:
    where.mkdir(parents=True, exist_ok=True)
    return Job(where, dict(config, items=list(items)))


# ------------------------------------------------------------------------------ checks


def check_final(job: Job) -> List[str]:
    """After a successful run: the output equals an uninterrupted run's, nothing is left."""
    problems = []
    if job.output() != job.expected():
        problems.append("output differs from an uninterrupted run over the same input")
    left = job.leftovers()
    if left:
        problems.append("left in the checkpoint store: %s" % left)
    return problems


def check_resume(
    killed: List[Tuple[Any, float]],
    resumed: List[Tuple[Any, float]],
    old_items: Sequence[Any],
    new_items: Sequence[Any],
    finished_before: bool,
    batch_window: float = 0.0,
) -> List[str]:
    """Which units the crashed and the resumed run did, against the invariants above."""
    problems: List[str] = []
    done_before = [item for item, _ in killed]
    if done_before != list(old_items[: len(done_before)]):
        problems.append("the crashed run did its units out of order")
        return problems
    ran = [item for item, _ in resumed]
    if finished_before:  # complete() had removed the log: the next run starts from zero, by design
        if ran != list(new_items):
            problems.append("a run after a completed run did not start from zero")
        return problems
    # a unit is completed once its successor started (its record was written before that)
    completed = {item: killed[i + 1][1] for i, (item, _) in enumerate(killed[:-1])}
    last_completion = killed[-1][1] if killed else 0.0
    ran_set, started = set(ran), set(done_before)
    if ran != [x for x in new_items if x in ran_set]:
        problems.append("the resumed run did its units out of order")
    for item in ran:
        if item in completed:
            age = last_completion - completed[item]
            if batch_window <= 0 or age > batch_window + BATCH_SLACK:
                problems.append(
                    "unit %r completed %.1f ms before the crash and ran again" % (item, age * 1000)
                )
    missing = [x for x in new_items if x not in started and x not in ran_set]
    if missing:
        problems.append("units that never ran were skipped: %r" % missing[:5])
    return problems


# ------------------------------------------------------------------------------ trials


@dataclass
class Trial:
    """What one kill-and-resume trial saw."""

    killed_after: float
    units_before_kill: int
    finished_before_kill: bool
    damage: str  # what read_info() reported about the log the killed run left
    rerun: int  # units the resumed run did again that had been started before the kill
    problems: List[str]


def kill_and_resume(
    job: Job,
    rng: Random,
    kill_after: Tuple[float, float],
    new_items: Optional[Sequence[Any]] = None,
    batch_window: float = 0.0,
) -> Trial:
    """Start the job, SIGKILL it after a random delay once it runs units, resume it with
    ``new_items`` (default: the same input) and check every invariant."""
    from checkpointify.runtime import CheckpointError, read_info

    job.reset_worklog()
    proc = job.start()
    deadline = time.monotonic() + 60
    # from the first unit's start, not from the work log's creation: the child creates it
    # before restore(), which on object storage imports s3fs and reads the bucket first
    while not _started(job) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    delay = rng.uniform(*kill_after)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate()
    problems = []
    if proc.returncode not in (-signal.SIGKILL, 0):
        problems.append("the job failed before the kill: %s" % stderr.decode(errors="replace")[-500:])
    killed = job.starts()
    finished = job.finished()
    if (job.where / "out.pkl").exists():
        (job.where / "out.pkl").unlink()  # the resumed run must write it again
    damage = ""
    for log in job.log_files():
        try:
            damage = read_info(log).damage
        except CheckpointError as exc:
            damage = "unreadable: %s" % exc
    old_items = list(job.config["items"])
    if new_items is not None:
        job.config["items"] = list(new_items)
    job.reset_worklog()
    done = job.run()
    if done.returncode != 0:
        problems.append("the resumed run failed: %s" % done.stderr[-1000:])
    resumed = job.starts()
    problems += check_resume(killed, resumed, old_items, job.config["items"], finished, batch_window)
    problems += check_final(job)
    before = {item for item, _ in killed}
    return Trial(
        killed_after=delay,
        units_before_kill=len(killed),
        finished_before_kill=finished,
        damage=damage,
        rerun=sum(1 for item, _ in resumed if item in before),
        problems=problems,
    )


def _started(job: Job) -> bool:
    try:
        with open(job.worklog, "rb") as handle:
            return handle.read(6) == b"start "
    except OSError:
        return False


# name: (job config, kill window in seconds after the first unit, loss the invariants allow
# for completed units: 0 = every completed unit is written before the next starts (forced
# with CHECKPOINTIFY_BATCH=off); otherwise the documented bound of the default policy, one
# batch window, which is at most a second)
KILL_CELLS: Dict[str, Tuple[Dict[str, Any], Tuple[float, float], float]] = {
    "small-records": ({"items": list(range(200)), "work": 0.003}, (0.02, 0.6), 0.0),
    "default-policy": ({"items": list(range(200)), "work": 0.003}, (0.02, 0.6), 1.0),
    "large-records": ({"items": list(range(300)), "work": 0.0005, "size": 250_000}, (0.02, 0.6), 0.0),
    "cheap-units-batched": ({"items": list(range(40_000)), "work": 0.00002}, (0.05, 0.6), 1.0),
    "identity-reordered": (
        {"items": list(range(200)), "work": 0.003, "resume": "identity"},
        (0.02, 0.6),
        0.0,
    ),
    "identity-large": (
        {"items": list(range(400)), "work": 0.0005, "size": 150_000, "resume": "identity"},
        (0.02, 0.4),
        0.0,
    ),
}


def random_kill_trial(
    cell: str,
    rng: Random,
    where: Path,
    env: Optional[Dict[str, str]] = None,
    remote: Optional[Remote] = None,
) -> Trial:
    """One trial of ``KILL_CELLS[cell]``: identity cells see their input shuffled on resume;
    cells without a batch allowance write every unit before the next starts. ``env``: more
    environment for the job; ``remote``: its checkpoints on object storage."""
    config, window, allowance = KILL_CELLS[cell]
    job = make_job(where, **config).use(remote)
    job.env.update(env or {})
    if remote is not None and allowance:
        allowance += remote.upload_allowance
    if allowance == 0:
        job.env["CHECKPOINTIFY_BATCH"] = "off"
    new_items = None
    if config.get("resume") == "identity":
        new_items = list(job.config["items"])
        rng.shuffle(new_items)
    return kill_and_resume(job, rng, window, new_items=new_items, batch_window=allowance)
