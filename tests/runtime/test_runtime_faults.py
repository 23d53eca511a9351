"""The fault-injection matrix: real processes, real files, real SIGKILL.

Every cell crashes or damages a run of ``crash_child.py`` (a loop shaped like a rewritten
one), runs it again, and asserts the invariants of ``crash_harness``: no completed unit is
lost, none is applied twice or skipped (the output is byte-identical to an uninterrupted
run's over the input the last run sees), and nothing is left behind. Timing is never
asserted. ``benchmarks/sigkill_stress.py`` runs the random-kill cells hundreds of times.

**On object storage too.** Every cell whose fault means something for a remote store takes
the ``store`` fixture (tests/runtime/conftest.py) and runs with the local folder, with
``CHECKPOINTIFY_DIR=s3://...`` on a real S3 API server (moto's, started once a session on
127.0.0.1) reached through s3fs, and, with ``-m slow``, with ``az://...`` on Azurite through
adlfs and ``gs://...`` on the GCS emulator through gcsfs. The random kills on S3 run one
trial of three cells by default, the rest with ``-m slow``. Cells that stay local, and why:

* the damaged-log cells flip and cut bytes of the log *file*'s frames; on a bucket the log is
  a set of immutable checksummed objects, and their damage cells (a torn last segment, a
  flipped bit in the last or a middle segment) are ``test_damaged_segment_on_s3`` below;
* fsync (``CHECKPOINTIFY_FSYNC=always``, a failing ``fdatasync``, the simulated power loss,
  the exit handler's fsync): nothing is fsynced on a remote store: an upload is durable
  once its PUT returns and is retried until then (``test_objectstore.py`` fails them);
* a full or read-only file system: local disk faults (an unreachable or failing store is in
  ``test_objectstore.py``); Python 3.9: s3fs is not installed for it here.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from random import Random
from typing import Any, Dict, List, Optional, Tuple

import pytest

from checkpointify.runtime import read_info
from tests.support.crash_harness import (
    KILL_CELLS,
    Job,
    Remote,
    check_final,
    kill_and_resume,
    make_job,
    random_kill_trial,
)

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")
pytestmark = POSIX

STRICT = {"CHECKPOINTIFY_BATCH": "off"}  # every unit written before the next starts


def _items(job: Job) -> List[Any]:
    return list(job.config["items"])


def _ran(job: Job) -> List[Any]:
    return [item for item, _ in job.starts()]


def _crash_at(job: Job, env: Dict[str, str]) -> None:
    """Run until a CHECKPOINTIFY_FAULT point ends the process like kill -9 would."""
    done = job.run(env=env)
    assert done.returncode == 137, done.stderr


def _damage(job: Job) -> List[str]:
    """What ``checkpointify checkpoints`` reports of each log the job left ("": intact)."""
    if job.remote is None:
        return [read_info(log).damage for log in job.log_files()]
    from checkpointify.runtime.remotelogs import list_remote

    return [info.damage if info else str(error) for _name, info, error in list_remote(job.remote.url)]


def _resume(job: Job, env: Dict[str, str] = STRICT) -> "subprocess.CompletedProcess[str]":
    job.reset_worklog()
    done = job.run(env=env)
    assert done.returncode == 0, done.stderr
    return done


# ------------------------------------------------------------------------ random SIGKILL

# Each cell runs a few trials by default and twice as many with -m slow (the default ones
# among them); benchmarks/sigkill_stress.py runs hundreds.
TRIALS = {
    "small-records": 10,
    "default-policy": 4,
    "large-records": 12,
    "cheap-units-batched": 6,
    "identity-reordered": 6,
    "identity-large": 4,
}


# On S3 each run costs a second or more (s3fs' import, the lease, the exit upload): one
# trial of these cells runs by default, three of every cell with -m slow.
S3_BY_DEFAULT = ("small-records", "default-policy")


#: the object stores whose cells all run with -m slow only (the end-to-end cases run on them
#: by default in test_objectstore.py)
SLOW_STORES = ("azure", "gcs")


def stores(slow_s3: bool = False) -> List[Any]:
    """The ``store`` fixture's params for one test (``indirect``); ``slow_s3``: the S3 one
    only with ``-m slow`` (Azure's and GCS's always)."""
    return ["local", pytest.param("s3", marks=[pytest.mark.slow] if slow_s3 else [])] + [
        pytest.param(kind, marks=pytest.mark.slow) for kind in SLOW_STORES
    ]


def _kill_cells() -> List[Any]:
    cells = [
        pytest.param("local", cell, seed, marks=[pytest.mark.slow] if seed >= TRIALS[cell] // 2 else [])
        for cell in KILL_CELLS
        for seed in range(TRIALS[cell])
    ]
    for cell in KILL_CELLS:
        for seed in range(3):
            slow = seed > 0 or cell not in S3_BY_DEFAULT
            cells.append(pytest.param("s3", cell, seed, marks=[pytest.mark.slow] if slow else []))
    # one trial of each cell on the other stores
    cells += [
        pytest.param(kind, cell, 0, marks=pytest.mark.slow) for kind in SLOW_STORES for cell in KILL_CELLS
    ]
    return cells


@pytest.mark.parametrize("store,cell,seed", _kill_cells(), indirect=["store"], ids=lambda value: str(value))
def test_sigkill_at_a_random_moment(cell: str, seed: int, store: Optional[Remote], tmp_path: Path) -> None:
    trial = random_kill_trial(cell, Random("%s-%d" % (cell, seed)), tmp_path / "job", remote=store)
    assert trial.problems == [], trial


# --------------------------------------------------------------- deterministic crash points


def _job(tmp_path: Path, n: int = 10, store: Optional[Remote] = None, **config: Any) -> Job:
    return make_job(tmp_path / "job", list(range(n)), work=config.pop("work", 0.001), **config).use(store)


@pytest.mark.parametrize(
    "store,fsync,unit",
    [("local", fsync, unit) for fsync in ("batched", "always") for unit in (0, 4, 9)]
    # nothing is fsynced on S3: an upload is durable once its PUT returns
    + [
        pytest.param("s3", "batched", unit, marks=[pytest.mark.slow] if unit != 4 else [])
        for unit in (0, 4, 9)
    ]
    + [pytest.param(kind, "batched", 4, marks=pytest.mark.slow) for kind in SLOW_STORES],
    indirect=["store"],
)
@pytest.mark.parametrize(
    "point,resumes_at",
    [("before-write", 0), ("mid-record", 0), ("after-write", 1)],
    ids=["before-write", "mid-record", "after-write-before-fsync"],
)
def test_crash_point_inside_the_runtime(
    point: str, resumes_at: int, unit: int, fsync: str, store: Optional[Remote], tmp_path: Path
) -> None:
    """On S3, ``mid-record`` leaves half a segment object at its key (what a backend
    without atomic PUTs may keep of an upload cut by the crash): it fails its checksum."""
    job = _job(tmp_path, store=store)
    env = dict(STRICT, CHECKPOINTIFY_FSYNC=fsync)
    _crash_at(job, dict(env, CHECKPOINTIFY_FAULT="%s:%d" % (point, unit)))
    assert _ran(job) == _items(job)[: unit + 1]
    if point == "before-write" and unit == 0 and store is None:
        assert job.log_files() == []  # the log is created with its first record
    else:  # (on S3 the lease's holder writes the header segment when it opens the log)
        [damage] = _damage(job)
        assert (damage != "") == (point == "mid-record")  # half a frame or object: a torn tail
    _resume(job, dict(env, CHECKPOINTIFY_QUIET=""))
    assert _ran(job) == _items(job)[unit + resumes_at :]
    assert check_final(job) == []


def test_crash_during_complete_reruns_only_the_save(store: Optional[Remote], tmp_path: Path) -> None:
    job = _job(tmp_path, store=store)
    _crash_at(job, dict(STRICT, CHECKPOINTIFY_FAULT="during-complete"))
    assert job.leftovers() and (job.where / "out.pkl").exists()
    (job.where / "out.pkl").unlink()
    _resume(job)
    assert _ran(job) == []  # every unit restored; the save ran again
    assert check_final(job) == []


@pytest.mark.parametrize("store", stores(slow_s3=True), indirect=True)
def test_crash_point_with_batched_cheap_units(store: Optional[Remote], tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", list(range(3000)), work=0.00002).use(store)
    _crash_at(job, {"CHECKPOINTIFY_FAULT": "before-write:2000"})
    killed = _ran(job)
    _resume(job, {})
    ran = _ran(job)
    assert ran and ran == _items(job)[_items(job).index(ran[0]) :]
    assert ran[0] <= 2000 and len(killed) - ran[0] <= 4096  # at most one batch ran again
    assert check_final(job) == []


# ---------------------------------------------------------------------------- damaged logs


def _frames(log: Path) -> List[Tuple[int, int]]:
    """(start, end) of each frame, read with the documented format: magic|kind|len|crc|payload."""
    data = log.read_bytes()
    frames, pos = [], 0
    while pos + 10 <= len(data):
        magic, _kind, length, _crc = struct.unpack_from("<BBII", data, pos)
        assert magic == 0xC7
        frames.append((pos, pos + 10 + length))
        pos += 10 + length
    assert pos == len(data)
    return frames


def _six_units(tmp_path: Path) -> Tuple[Job, Path]:
    """A log with a header and the records of units 0-5, left by a run that died."""
    job = _job(tmp_path, n=10, size=3000)
    _crash_at(job, dict(STRICT, CHECKPOINTIFY_FAULT="before-write:6"))
    [log] = job.log_files()
    assert len(_frames(log)) == 7
    return job, log


def _flip(log: Path, offset: int) -> None:
    data = bytearray(log.read_bytes())
    data[offset] ^= 0x04
    log.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage,resumes_at",
    [
        ("torn-last-record", 5),
        ("zero-filled-tail", 6),
        ("zeroed-last-record", 5),
        ("garbage-tail", 6),
        ("flipped-bit-in-last-record", 5),
        ("cut-inside-header", 0),
    ],
)
def test_damaged_tail_is_cut_off_and_the_run_carries_on(damage: str, resumes_at: int, tmp_path: Path) -> None:
    job, log = _six_units(tmp_path)
    frames = _frames(log)
    data = log.read_bytes()
    last_start, last_end = frames[-1]
    if damage == "torn-last-record":
        log.write_bytes(data[: (last_start + last_end) // 2])
    elif damage == "zero-filled-tail":
        log.write_bytes(data + b"\0" * 8192)
    elif damage == "zeroed-last-record":  # the size reached the disk, the data did not
        log.write_bytes(data[:last_start] + b"\0" * (last_end - last_start))
    elif damage == "garbage-tail":
        log.write_bytes(data + Random(7).randbytes(5000))
    elif damage == "flipped-bit-in-last-record":
        _flip(log, (last_start + last_end) // 2)
    elif damage == "cut-inside-header":
        log.write_bytes(data[: frames[0][1] - 3])
    info = read_info(log)
    assert info.damage.startswith("torn tail") and info.units == resumes_at
    done = _resume(job, dict(STRICT, CHECKPOINTIFY_QUIET=""))
    assert "dropped" in done.stderr
    assert _ran(job) == _items(job)[resumes_at:]
    assert check_final(job) == []


@pytest.mark.parametrize("where", ["middle-record", "header", "frame-length"])
def test_corruption_in_the_middle_moves_the_log_aside_and_raises(
    strict: None, where: str, tmp_path: Path
) -> None:
    job, log = _six_units(tmp_path)
    frames = _frames(log)
    if where == "middle-record":
        _flip(log, (frames[3][0] + frames[3][1]) // 2)
    elif where == "header":
        _flip(log, frames[0][1] - 5)
    else:  # the length field: the reader cannot even find where the damaged frame ends
        _flip(log, frames[2][0] + 3)
    assert read_info(log).damage.startswith("corrupt")
    job.reset_worklog()
    done = job.run(env=STRICT)
    assert done.returncode == 1 and "CorruptCheckpointError" in done.stderr
    [archived] = job.checkpoints.glob("*.ckpt.corrupt-*")
    assert str(log.relative_to(job.where)) in done.stderr and archived.name in done.stderr
    assert not log.exists() and _ran(job) == []
    _resume(job)
    assert _ran(job) == _items(job)  # started over from zero: no unit of the damaged log is trusted
    assert job.output() == job.expected()


@pytest.mark.parametrize(
    "damage,resumes_at,mode",
    [
        ("torn-last-segment", 5, "default"),
        pytest.param("flipped-bit-in-last-segment", 5, "default", marks=pytest.mark.slow),
        pytest.param("torn-last-segment", 5, "strict", marks=pytest.mark.slow),
        ("flipped-bit-in-a-middle-segment", 0, "default"),
        ("flipped-bit-in-a-middle-segment", 0, "strict"),
    ],
)
def test_damaged_segment_on_s3(
    damage: str, resumes_at: int, mode: str, s3_server: Any, tmp_path: Path
) -> None:
    """The object store's twin of the damaged-log cells: a segment cut short or changed
    fails its checksum. The last one is a torn upload (dropped; its units run again); one
    followed by valid segments is damage: the log is archived as one object and the loop
    starts from zero (strict mode: :class:`CorruptCheckpointError`, nothing run)."""
    import boto3

    store = Remote(s3_server.endpoint, s3_server.bucket() + "/job", tuple(sorted(s3_server.env().items())))
    job = _job(tmp_path, store=store, size=3000)
    _crash_at(job, dict(STRICT, CHECKPOINTIFY_FAULT="before-write:6"))
    segments = [k for k in store.keys() if k.rpartition("/")[2].startswith("seg-")]
    assert len(segments) == 7  # the header's, then one a unit (CHECKPOINTIFY_BATCH=off)
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, **_credentials(s3_server))
    bucket = store.url[len("s3://") :].partition("/")[0]
    key = segments[3] if "middle" in damage else segments[-1]
    data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    if damage == "torn-last-segment":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x04
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))
    [found] = _damage(job)
    assert found == (
        "corrupt segment " + key.rpartition("/")[2] if "middle" in damage else "torn last segment"
    )
    env = dict(STRICT, CHECKPOINTIFY_QUIET="")
    job.reset_worklog()
    if mode == "strict":
        env["CHECKPOINTIFY_STRICT"] = "1"
    done = met = job.run(env=env)  # the run that meets the damage
    if mode == "strict" and "middle" in damage:
        assert done.returncode == 1 and "CorruptCheckpointError" in done.stderr and _ran(job) == []
        job.reset_worklog()
        done = job.run(env=STRICT)  # the log was archived: the next run starts from zero
    assert done.returncode == 0, done.stderr
    assert "fail their checksum" in met.stderr if resumes_at else ".ckpt.corrupt-" in met.stderr
    assert _ran(job) == _items(job)[resumes_at:]
    assert job.output() == job.expected()
    left = [k.rpartition("/")[2] for k in store.keys()]
    assert left == [] if resumes_at else len(left) == 1 and ".ckpt.corrupt-" in left[0]


def _credentials(server: Any) -> Dict[str, str]:
    env = server.env()
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


# ------------------------------------------------------------------------------ I/O errors


# On S3 the three faults are one: an upload that failed after its retries (eio stands for them).
@pytest.mark.parametrize(
    "store,fault,message,resumes_at",
    [
        ("local", "enospc:3", "no space left on the device", 3),
        ("local", "eio:3", "I/O error", 3),
        ("local", "eio-fsync:3", "cannot sync checkpoint", 4),  # written, then the fsync failed
        ("s3", "eio:3", "", 3),
    ]
    + [pytest.param(kind, "eio:3", "", 3, marks=pytest.mark.slow) for kind in SLOW_STORES],
    indirect=["store"],
)
def test_write_and_fsync_errors_raise_at_once(
    strict: None, fault: str, message: str, resumes_at: int, store: Optional[Remote], tmp_path: Path
) -> None:
    job = _job(tmp_path, store=store)
    done = job.run(env=dict(STRICT, CHECKPOINTIFY_FAULT=fault))
    assert done.returncode == 1
    assert "CheckpointWriteError" in done.stderr
    if store is None:
        assert message in done.stderr and ".checkpointify/" in done.stderr  # the path
    else:  # each is an upload that failed after its retries: nothing of it was stored
        assert "simulated network failure" in done.stderr and store.url in done.stderr
        resumes_at = 3
    assert _ran(job) == _items(job)[:4]  # the loop stopped at the failed unit's commit
    _resume(job)
    assert _ran(job) == _items(job)[resumes_at:]
    assert check_final(job) == []


def test_failed_fsync_is_never_retried(strict: None, tmp_path: Path) -> None:
    """The OS's fsync fails (EIO, injected at the os.fdatasync boundary): the run stops at
    once, and neither the loop nor the exit handler calls fsync on that log again."""
    job = _job(tmp_path, fail_fsync_at=3, synclog=str(tmp_path / "syncs.txt"))
    done = job.run(env=dict(STRICT, CHECKPOINTIFY_FSYNC="always"))
    assert done.returncode == 1 and "cannot sync checkpoint" in done.stderr and "I/O error" in done.stderr
    calls = (tmp_path / "syncs.txt").read_text().splitlines()
    assert len(calls) == 3, calls  # units 0 and 1, then unit 2's fails; nothing after
    job.config.pop("fail_fsync_at")
    _resume(job)
    assert check_final(job) == []


def test_a_failed_background_fsync_stops_the_loop_at_its_next_step(strict: None, tmp_path: Path) -> None:
    """With the default policy the sync thread fsyncs; when that fails (EIO at the OS
    boundary), the loop raises at the next unit boundary, and nothing syncs that log again."""
    synclog = tmp_path / "syncs.txt"
    job = make_job(tmp_path / "job", list(range(300)), work=0.01, fail_fsync_at=1, synclog=str(synclog))
    done = job.run(env=STRICT)
    assert done.returncode == 1 and "CheckpointWriteError" in done.stderr
    assert "cannot sync checkpoint" in done.stderr and "I/O error" in done.stderr
    [failed] = synclog.read_text().splitlines()  # never retried, not even at exit
    failed_at = float(failed.split()[2])
    assert len([t for _, t in job.starts() if t > failed_at]) <= 5  # 10 ms units: ~at once
    job.config.pop("fail_fsync_at")
    _resume(job)
    assert check_final(job) == []


def _in_mount_namespace(shell: str) -> bool:
    probe = subprocess.run(["unshare", "-m", "sh", "-c", shell], capture_output=True)
    return probe.returncode == 0


CAN_MOUNT = shutil.which("unshare") is not None and _in_mount_namespace("mount -t tmpfs none /mnt")


@pytest.mark.skipif(not CAN_MOUNT, reason="needs unshare -m and mount (root in a VM or container)")
def test_real_enospc_on_a_full_file_system(strict: None, tmp_path: Path) -> None:
    """A 256 KiB tmpfs fills up for real; the log is copied out and resumed elsewhere."""
    job = _job(tmp_path, n=40, size=30_000)
    disk = tmp_path / "disk"
    disk.mkdir()
    shell = 'mount -t tmpfs -o size=256k none "$DISK" && cd "$DISK" && "$@"; s=$?; cp -a .checkpointify "$SAVED"; exit $s'
    env = dict(job.environment(STRICT), DISK=str(disk), SAVED=str(tmp_path / "saved"))
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", shell, "sh"] + job.command(), env=env, capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr
    assert "CheckpointWriteError" in done.stderr and "no space left on the device" in done.stderr
    ran_before = _ran(job)
    shutil.copytree(str(tmp_path / "saved"), str(job.checkpoints))
    _resume(job)
    assert _ran(job) == _items(job)[len(ran_before) - 1 :]
    assert check_final(job) == []


def test_read_only_checkpoint_directory(strict: None, tmp_path: Path) -> None:
    job = _job(tmp_path)
    _crash_at(job, dict(STRICT, CHECKPOINTIFY_FAULT="before-write:5"))  # a log to resume from
    job.reset_worklog()
    directory = str(job.checkpoints)
    if os.geteuid() != 0:
        os.chmod(directory, 0o500)
        try:
            done = job.run(env=STRICT)
        finally:
            os.chmod(directory, 0o700)
        expected = "not writable"
    elif CAN_MOUNT:  # root ignores permissions: make it a read-only mount for real
        shell = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", shell, directory] + job.command(),
            cwd=job.where,
            env=job.environment(STRICT),
            capture_output=True,
            text=True,
        )
        expected = "read-only"
    else:  # pragma: no cover
        pytest.skip("root without mount namespaces cannot make a directory read-only")
    assert done.returncode == 1, done.stderr
    assert "CheckpointWriteError" in done.stderr and expected in done.stderr
    assert "CHECKPOINTIFY_DIR" in done.stderr and ".checkpointify" in done.stderr
    assert _ran(job) == []
    _resume(job)
    assert _ran(job) == _items(job)[5:]
    assert check_final(job) == []


# ---------------------------------------------------------------------------- one writer


def test_second_writer_is_refused_and_named(strict: None, store: Optional[Remote], tmp_path: Path) -> None:
    # on S3 the second job takes longer to get to the lease (s3fs' import): the first runs longer
    job = make_job(tmp_path / "job", list(range(30 if store is None else 100)), work=0.05).use(store)
    first = job.start(env=STRICT)
    deadline = time.monotonic() + 30
    while len(job.starts()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    second = Job(job.where, dict(job.config, worklog=str(tmp_path / "other.txt"))).use(store)
    done = second.run(env=STRICT)
    assert first.wait(timeout=60) == 0
    assert done.returncode == 1 and "CheckpointLockedError" in done.stderr
    assert "in use by process %d" % first.pid in done.stderr
    assert check_final(job) == []


def test_lock_of_a_killed_process_never_blocks_a_rerun(store: Optional[Remote], tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", list(range(200)), work=0.003).use(store)
    # every unit written before the next starts: whether 3 ms units get batched depends on
    # the write cost measured on a loaded machine, and this test is about the lock
    job.env.update(STRICT)
    trial = kill_and_resume(job, Random(3), (0.1, 0.2))  # kill_and_resume re-runs at once
    assert trial.problems == [] and not trial.finished_before_kill


FORKING_JOB = """
import os, sys, time
from checkpointify.runtime import checkpoint
acc = []
ckpt = checkpoint("fork::main::acc", range(60), lambda: (acc,))
[acc] = ckpt.restore()
for i in ckpt:
    acc.append(i)
    if i == 3 and len(sys.argv) > 1:  # a worker forked mid-loop (multiprocessing's default on Linux)
        child = os.fork()
        if child == 0:
            time.sleep(60)
            os._exit(0)
        print(child, flush=True)
    time.sleep(0.02)
ckpt.complete()
print("done", len(acc), flush=True)
"""


def test_a_forked_child_that_outlives_a_killed_parent_does_not_hold_the_lock(
    store: Optional[Remote], tmp_path: Path
) -> None:
    env = Job(tmp_path, {}).use(store).environment(STRICT)
    parent = subprocess.Popen(
        [sys.executable, "-c", FORKING_JOB, "fork"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        time.sleep(0.2)
        parent.kill()
        parent.wait()
        os.kill(child, 0)  # the child is still alive
        done = subprocess.run(
            [sys.executable, "-c", FORKING_JOB],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "done 60"
        assert store is None or store.keys() == []
    finally:
        os.kill(child, 9)


# ------------------------------------------------------------------ input changed between runs


def test_changed_input_in_position_mode_is_refused_then_restarted(
    strict: None, store: Optional[Remote], tmp_path: Path
) -> None:
    job = _job(tmp_path, store=store)
    _crash_at(job, dict(STRICT, CHECKPOINTIFY_FAULT="before-write:5"))
    job.config["items"] = [0, 1, 99, 3, 4, 5, 6, 7, 8, 9]
    job.reset_worklog()
    done = job.run(env=STRICT)
    assert done.returncode == 1 and "StaleCheckpointError" in done.stderr
    name = job.log_files()[0].name if store is None else store.keys()[0].split("/")[-2]
    assert "checkpointify checkpoints clear %s" % name[:-5] in done.stderr
    assert "CHECKPOINTIFY_ON_STALE=restart" in done.stderr and "item #2 (99)" in done.stderr
    _resume(job, dict(STRICT, CHECKPOINTIFY_ON_STALE="restart"))
    assert _ran(job) == _items(job)
    assert job.output() == job.expected()
    if store is not None:  # the stale log, set aside as one object; nothing else is left
        assert [k.rpartition("/")[2] for k in store.keys()] == [name + ".stale"]


@pytest.mark.parametrize(
    "store,change",
    [("local", change) for change in ("reordered", "inserted", "deleted", "changed", "reversed-and-grown")]
    + [("s3", "reordered"), ("s3", "deleted")]
    + [
        pytest.param("s3", change, marks=pytest.mark.slow)
        for change in ("inserted", "changed", "reversed-and-grown")
    ]
    + [pytest.param(kind, "reordered", marks=pytest.mark.slow) for kind in SLOW_STORES],
    indirect=["store"],
)
def test_identity_resume_follows_the_current_input(
    change: str, store: Optional[Remote], tmp_path: Path
) -> None:
    job = _job(tmp_path, n=12, store=store, resume="identity")
    _crash_at(job, dict(STRICT, CHECKPOINTIFY_FAULT="before-write:6"))
    done_before = set(_items(job)[:6])
    items = _items(job)
    if change == "reordered":
        Random(1).shuffle(items)
    elif change == "inserted":
        items[3:3] = [100, 101]
    elif change == "deleted":
        del items[2]
    elif change == "changed":
        items[4] = 104
    else:
        items = items[::-1] + [200, 201]
    job.config["items"] = items
    _resume(job)
    ran = _ran(job)
    assert set(items) - done_before <= set(ran)  # everything new ran
    if change in ("deleted", "changed"):
        # A completed unit vanished and the loop has a dict accumulator, which cannot show
        # whether a later unit set again a key the vanished one set first: the units
        # completed after it run again; those before it are reused.
        vanished = 2 if change == "deleted" else 4
        assert not set(ran) & set(range(vanished)) and set(range(vanished + 1, 6)) <= set(ran)
    else:
        assert not done_before & set(ran)  # no completed unit that is still in the input ran again
    assert check_final(job) == []  # equal to an uninterrupted run over the current input


# ------------------------------------------------------------------- power loss, exit handler


def _last_synced_size(synclog: Path) -> Tuple[int, float]:
    lines = synclog.read_text().splitlines()
    _, size, stamp = lines[-1].split()
    return int(size), float(stamp)


@pytest.mark.parametrize("tail", ["nothing", "zeros"])
def test_simulated_power_loss_loses_at_most_a_second(tail: str, tmp_path: Path) -> None:
    """LevelDB's fault-injection model: a power loss keeps what was fsynced and drops the
    rest (here: a zero-filled tail in its place). Units completed more than a second before
    the crash must survive it."""
    synclog = tmp_path / "syncs.txt"
    job = make_job(tmp_path / "job", list(range(400)), work=0.01, synclog=str(synclog))
    proc = job.start(env=STRICT)
    time.sleep(2.6)
    proc.kill()
    proc.wait()
    killed = job.starts()
    [log] = job.log_files()
    size, synced_at = _last_synced_size(synclog)
    data = log.read_bytes()
    assert size <= len(data)
    log.write_bytes(data[:size] + (b"\0" * (len(data) - size) if tail == "zeros" else b""))
    _resume(job)
    ran = set(_ran(job))
    last = killed[-1][1]
    assert last - synced_at <= 2.0  # batched: the last fsync is about a second old, at most
    for (item, _), (_, completed) in zip(killed, killed[1:]):
        # completed (its successor started) before the last fsync: its record was synced
        assert not (item in ran and completed < synced_at), (item, last - completed)
    assert check_final(job) == []


def test_exit_handler_syncs_the_log_and_a_batch_in_flight_reruns(tmp_path: Path) -> None:
    """A cheap (batched) loop dies of an exception: at interpreter exit the log is fsynced.
    The batch that was waiting is not written, because the failing unit's partial effect is
    mixed into the accumulators; its units (at most one batch window of work) run again."""
    synclog = tmp_path / "syncs.txt"
    job = make_job(tmp_path / "job", list(range(5000)), work=0.00002, raise_at=3000, synclog=str(synclog))
    done = job.run()
    assert done.returncode == 1 and "unit 3000 failed" in done.stderr
    [log] = job.log_files()
    assert _last_synced_size(synclog)[0] == log.stat().st_size == read_info(log).valid_bytes
    recorded = read_info(log).units
    assert 0 < recorded <= 3000  # what waited in the batch (at most 4096 units) was dropped
    job.config.pop("raise_at")
    _resume(job, {})
    assert _ran(job) == _items(job)[recorded:]
    assert check_final(job) == []


def test_errno_names_are_what_the_messages_claim() -> None:
    from checkpointify.runtime.errors import _describe

    assert "no space left" in _describe(OSError(errno.ENOSPC, "x"))
    assert "read-only" in _describe(OSError(errno.EROFS, "x"))
    assert "not writable" in _describe(OSError(errno.EACCES, "x"))


def _python39() -> str:
    for candidate in sorted(Path.home().glob(".pyenv/versions/3.9*/bin/python3.9")) + [
        Path(shutil.which("python3.9") or "/nonexistent")
    ]:
        if candidate.exists() and subprocess.run([str(candidate), "-c", "pass"]).returncode == 0:
            return str(candidate)
    return ""


@pytest.mark.skipif(not _python39(), reason="no working python3.9 here")
@pytest.mark.parametrize("resume", ["position", "identity"])
def test_crash_and_resume_on_python_39(resume: str, tmp_path: Path) -> None:
    """The oldest supported Python: crash point, torn record, lock, sync thread, resume."""
    job = make_job(tmp_path / "job", list(range(300)), work=0.00002, resume=resume)
    job.python = _python39()
    # one record a unit: identity, so that the reversed input can reuse them (batches of
    # cheap units are reused only whole and in order); position, because how many 20 us units
    # share a record depends on the write cost measured on a loaded machine (one batch of 200
    # torn by the crash left a single unit to reuse), and this test is about Python 3.9
    env = {"CHECKPOINTIFY_BATCH": "off"}
    _crash_at(job, dict(env, CHECKPOINTIFY_FAULT="mid-record:200"))
    killed = _ran(job)
    if resume == "identity":
        job.config["items"] = _items(job)[::-1]
    _resume(job, env)
    assert len(_ran(job)) < len(_items(job)) - 100  # most units were reused
    assert set(_ran(job)) | set(killed) == set(_items(job))
    assert check_final(job) == []


# ---------------------------------------------------- the default: never worse than the original
# Each cell above that asserts an error runs in strict mode (CHECKPOINTIFY_STRICT=1, the
# `strict` fixture). By default the same fault never fails the job: the checkpoint says so
# once on stderr, steps aside, and the job writes exactly an uninterrupted run's output.

LOUD = dict(STRICT, CHECKPOINTIFY_QUIET="")  # warnings are printed even when quiet; info too here


def _succeeds_like_the_original(job: Job, env: Dict[str, str]) -> "subprocess.CompletedProcess[str]":
    job.reset_worklog()
    done = job.run(env=env)
    assert done.returncode == 0, done.stderr
    assert job.output() == job.expected()
    return done


@pytest.mark.parametrize("where", ["middle-record", "header", "frame-length"])
def test_corruption_in_the_middle_is_moved_aside_and_the_loop_starts_from_zero(
    where: str, tmp_path: Path
) -> None:
    job, log = _six_units(tmp_path)
    frames = _frames(log)
    _flip(
        log,
        {"middle-record": (frames[3][0] + frames[3][1]) // 2, "header": frames[0][1] - 5}.get(
            where, frames[2][0] + 3
        ),
    )
    done = _succeeds_like_the_original(job, LOUD)
    [archived] = job.checkpoints.glob("*.ckpt.corrupt-*")
    assert (
        "warning" in done.stderr
        and archived.name in done.stderr
        and "starts the loop from zero" in done.stderr
    )
    assert _ran(job) == _items(job)  # no unit of the damaged log is trusted
    assert not log.exists()


@pytest.mark.parametrize(
    "store,fault",
    [("local", "enospc:3"), ("local", "eio:3"), ("local", "eio-fsync:3"), ("s3", "eio:3")]
    + [pytest.param(kind, "eio:3", marks=pytest.mark.slow) for kind in SLOW_STORES],
    indirect=["store"],
)
def test_write_and_fsync_errors_turn_checkpointing_off_and_the_job_succeeds(
    fault: str, store: Optional[Remote], tmp_path: Path
) -> None:
    job = _job(tmp_path, store=store)
    done = _succeeds_like_the_original(job, dict(STRICT, CHECKPOINTIFY_FAULT=fault))
    [warning] = [line for line in done.stderr.splitlines() if "warning" in line]
    assert "crash_child.py::main::results" in warning and "Checkpointing of this loop is off" in warning
    assert _ran(job) == _items(job)  # every unit ran once, none twice
    assert check_final(job) == []  # complete() still removed the log


def test_a_failed_fsync_at_the_os_boundary_turns_checkpointing_off(tmp_path: Path) -> None:
    job = _job(tmp_path, fail_fsync_at=3, synclog=str(tmp_path / "syncs.txt"))
    done = _succeeds_like_the_original(job, dict(STRICT, CHECKPOINTIFY_FSYNC="always"))
    assert "cannot sync checkpoint" in done.stderr
    assert len((tmp_path / "syncs.txt").read_text().splitlines()) == 3  # never retried
    assert _ran(job) == _items(job)


@pytest.mark.skipif(not CAN_MOUNT, reason="needs unshare -m and mount (root in a VM or container)")
def test_real_enospc_on_a_full_file_system_never_fails_the_job(tmp_path: Path) -> None:
    job = _job(tmp_path, n=40, size=30_000)
    disk = tmp_path / "disk"
    disk.mkdir()
    # the job's output goes to a folder outside the full disk: only the checkpoint fills it
    shell = 'mount -t tmpfs -o size=256k none "$DISK" && exec "$@"'
    env = dict(job.environment(STRICT), DISK=str(disk), CHECKPOINTIFY_DIR=str(disk / "ckpt"))
    job.reset_worklog()
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", shell, "sh"] + job.command(),
        cwd=job.where,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "no space left on the device" in done.stderr and "Checkpointing of this loop is off" in done.stderr
    assert job.output() == job.expected()
    assert _ran(job) == _items(job)


def test_read_only_checkpoint_directory_never_fails_the_job(tmp_path: Path) -> None:
    job = _job(tmp_path)
    _crash_at(job, dict(STRICT, CHECKPOINTIFY_FAULT="before-write:5"))  # a log it cannot write to
    job.reset_worklog()
    directory = str(job.checkpoints)
    if os.geteuid() != 0:
        os.chmod(directory, 0o500)
        try:
            done = job.run(env=STRICT)
        finally:
            os.chmod(directory, 0o700)
    elif CAN_MOUNT:
        shell = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", shell, directory] + job.command(),
            cwd=job.where,
            env=job.environment(STRICT),
            capture_output=True,
            text=True,
        )
    else:  # pragma: no cover
        pytest.skip("root without mount namespaces cannot make a directory read-only")
    assert done.returncode == 0, done.stderr
    assert "Checkpointing of this loop is off" in done.stderr
    assert job.output() == job.expected() and _ran(job) == _items(job)


def test_a_second_copy_of_the_job_runs_unchecked_and_leaves_the_first_alone(
    store: Optional[Remote], tmp_path: Path
) -> None:
    job = make_job(tmp_path / "job", list(range(30 if store is None else 100)), work=0.05).use(store)
    first = job.start(env=STRICT)
    deadline = time.monotonic() + 30
    while len(job.starts()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    second = Job(job.where, dict(job.config, worklog=str(tmp_path / "other.txt"))).use(store)
    done = second.run(env=STRICT)
    assert done.returncode == 0, done.stderr
    assert (
        "in use by process %d" % first.pid in done.stderr
        and "Checkpointing of this loop is off" in done.stderr
    )
    assert first.wait(timeout=60) == 0  # the first was not disturbed
    assert check_final(job) == []
