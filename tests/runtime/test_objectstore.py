"""Checkpoints on object storage, against real servers on 127.0.0.1.

Each backend's server runs in a child process (tests/support/objectservers.py): moto's S3
server, Azurite (Azure Blob) and the GCS emulator. Every program under test reaches it
through ``s3fs``, ``adlfs`` or ``gcsfs`` as a user's would: ``CHECKPOINTIFY_DIR=s3://...``
(``az://...``, ``gs://...``) and the server's variables in its environment
(``AWS_ENDPOINT_URL``, ``AZURE_STORAGE_CONNECTION_STRING``, ``STORAGE_EMULATOR_HOST``).
Crashes are real SIGKILLs (or the runtime's own fault points, which end the process like
kill -9); "another machine" is another process in another working directory with an empty
local disk. Timing is never asserted. Long stress runs are marked ``slow``.

A test takes the ``server`` fixture: S3 unless it is parametrised with :func:`backends`.
By default a killed job resumed on an empty disk, an uninterrupted run and a thread pool's
parallel site run on all three, two writers racing and a fenced writer on S3 and Azure; the
rest run on Azure and GCS with ``-m slow``. The GCS emulator ignores ``ifGenerationMatch``,
so the cases where the server must refuse a conditional write (two writers racing, a stale
writer fenced off) skip it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest

from checkpointify.runtime import CheckpointError, CheckpointLockedError, checkpoint
from tests.runtime.conftest import object_server
from tests.safety.test_safety import BASIC, Program
from tests.support.crash_harness import Job, check_final, make_job
from tests.support.objectservers import NO_CONDITIONAL_WRITES

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

FAST = {"CHECKPOINTIFY_UPLOAD_INTERVAL": "0.05"}  # kills land after a few uploads


@pytest.fixture(params=["s3"])
def server(request: pytest.FixtureRequest) -> Any:
    """The object-storage server of this test: S3 unless parametrised (:func:`backends`);
    one server of each kind for the session (tests/runtime/conftest.py)."""
    return object_server(request, request.param)


def backends(
    default: Sequence[str], slow: Sequence[str] = (), gcs_fencing: bool = True
) -> pytest.MarkDecorator:
    """Run a test on the ``default`` backends, and on ``slow`` ones with ``-m slow``;
    ``gcs_fencing=False``: the test needs the server to refuse a conditional write, which
    the GCS emulator cannot (skipped there, saying so)."""
    params = [pytest.param(kind) for kind in default]
    params += [pytest.param(kind, marks=pytest.mark.slow) for kind in slow]
    if not gcs_fencing:
        params.append(pytest.param("gcs", marks=pytest.mark.skip(reason=NO_CONDITIONAL_WRITES)))
    return pytest.mark.parametrize("server", params, indirect=True)


ALL = backends(["s3", "azure", "gcs"])
S3_BY_DEFAULT = backends(["s3"], slow=["azure", "gcs"])


@pytest.fixture()
def url(server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket and prefix; the in-process runtime sees only the servers' variables."""
    for name in list(os.environ):
        if name.startswith("CHECKPOINTIFY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CHECKPOINTIFY_QUIET", "1")
    return server.bucket() + "/jobs/run-1"


def _machine(where: Path) -> Path:
    """A fresh "machine": a project folder (its root marker makes the loop id the script's
    path inside the project, as in a container image) with nothing else on its disk."""
    where.mkdir(parents=True)
    (where / "pyproject.toml").write_text("[project]\nname = 'job'\n")
    return where


def _env(server: Any, url: str, **extra: str) -> Dict[str, str]:
    return dict(server.env(), CHECKPOINTIFY_DIR=url, **extra)


def _no_local_checkpoints(*folders: Path) -> None:
    for folder in folders:
        assert not (folder / ".checkpointify").exists(), "a checkpoint was written to local disk"


# ------------------------------------------------------------------- a rescheduled pod


@ALL
def test_killed_job_resumes_on_another_machine_with_an_empty_disk(
    server: Any, url: str, tmp_path: Path
) -> None:
    first = Program(_machine(tmp_path / "node-a"), BASIC)
    expected = first.expected()
    env = _env(server, url, **FAST)
    first.kill_after(6, env=env)
    assert server.keys(url), "nothing was uploaded before the kill"
    # the pod is rescheduled on another node: same image (the same script), a fresh disk
    second = _machine(tmp_path / "node-b")
    shutil.copy(first.rewritten, second / "job.py")
    shutil.copy(first.where / "ckfixture.py", second / "ckfixture.py")
    worklog = second / "worklog.txt"
    done = subprocess.run(
        [sys.executable, "job.py"],
        cwd=second,
        env=first.env(dict(env, CKPT_WORKLOG=str(worklog))),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "completed units restored from %s" % url.split("://")[0] in done.stderr
    assert {p.name: p.read_text() for p in second.glob("out*.json")} == expected
    ran = worklog.read_text().split()
    assert 0 < len(ran) < 12 and ran == [str(n) for n in range(12 - len(ran), 12)]
    _no_local_checkpoints(first.where, second)
    assert server.keys(url) == []  # complete() removed every object of the log


@ALL
def test_uninterrupted_run_on_object_storage_writes_what_the_original_writes(
    server: Any, url: str, tmp_path: Path
) -> None:
    program = Program(_machine(tmp_path / "job"), BASIC)
    expected = program.expected()
    done = program.run(program.rewritten, env=_env(server, url))
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected
    _no_local_checkpoints(program.where)
    assert server.keys(url) == []


# -------------------------------------------------------------------- crash points


def _job(server: Any, url: str, where: Path, **config: Any) -> Job:
    job = make_job(where, config.pop("items", list(range(12))), work=config.pop("work", 0.01), **config)
    job.env.update(_env(server, url))
    return job


def _ran(job: Job) -> List[Any]:
    return [item for item, _ in job.starts()]


# The crash points (before, during and after an upload) and the random SIGKILLs run in the
# fault matrix (test_runtime_faults.py) with the local folder and with S3 alike.


# ------------------------------------------------------------------- one writer, fencing


@backends(["s3", "azure"], gcs_fencing=False)
def test_two_machines_racing_for_one_loop_exactly_one_writes(server: Any, url: str, tmp_path: Path) -> None:
    programs = [Program(_machine(tmp_path / name), BASIC) for name in ("node-a", "node-b")]
    expected = programs[0].expected()
    env = _env(server, url, CHECKPOINTIFY_LEASE_SECONDS="2", CKPT_DELAY="0.1")
    children = [
        subprocess.Popen(
            [sys.executable, "job.py"],
            cwd=p.where,
            env=p.env(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in programs
    ]
    errors = [child.communicate(timeout=120)[1] for child in children]
    assert [child.returncode for child in children] == [0, 0], errors
    refused = [e for e in errors if "in use by process" in e and "holds its lease" in e]
    assert len(refused) == 1, errors  # the other one wrote the log
    for program in programs:
        assert program.outputs() == expected  # both jobs succeed, as without checkpointify
    assert server.keys(url) == []


@pytest.mark.slow  # about 20 s; test_fenced_in_process is its fast twin
@backends(["s3", "azure"], gcs_fencing=False)
def test_a_stale_writer_back_after_its_lease_expired_is_fenced_off(
    server: Any, url: str, tmp_path: Path
) -> None:
    """A is frozen (SIGSTOP: a paused VM) past its lease; B takes over on another machine and
    is killed; A wakes up: its writes are refused, it runs on unchecked and leaves B's log
    alone; C resumes from B's records and writes the original output."""
    nodes = [Program(_machine(tmp_path / name), BASIC) for name in ("node-a", "node-b", "node-c")]
    expected = nodes[0].expected()
    env = _env(server, url, CHECKPOINTIFY_LEASE_SECONDS="1", CHECKPOINTIFY_QUIET="", **FAST)
    a_log = tmp_path / "a.txt"
    a = subprocess.Popen(
        [sys.executable, "job.py"],
        cwd=nodes[0].where,
        env=nodes[0].env(dict(env, CKPT_DELAY="0.2", CKPT_WORKLOG=str(a_log))),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: a_log.exists() and len(a_log.read_text().split()) >= 3)
    a.send_signal(signal.SIGSTOP)
    try:
        nodes[1].kill_after(4, env=env)  # takes the expired lease over, runs, is killed
    finally:
        a.send_signal(signal.SIGCONT)
    _, a_err = a.communicate(timeout=120)
    assert a.returncode == 0, a_err  # never worse than the original
    assert "lease" in a_err and "warning" in a_err, a_err
    assert nodes[0].outputs() == expected
    assert server.keys(url), "the fenced writer removed the new owner's log"
    done = nodes[2].run(nodes[2].rewritten, env=dict(env, CKPT_WORKLOG=str(nodes[2].worklog)))
    assert done.returncode == 0, done.stderr
    assert nodes[2].outputs() == expected
    assert server.keys(url) == []


@backends(["s3", "azure"], gcs_fencing=False)
def test_fenced_in_process(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same, deterministic: A's lease thread stops (a pause), B takes the lease over after
    one time to live without renewal and writes; A's next upload is refused (strict: raised)."""
    monkeypatch.setenv("CHECKPOINTIFY_LEASE_SECONDS", "0.5")
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "off")
    out_a: List[int] = []
    a = checkpoint(
        "job.py::main::out", range(10), lambda: (out_a,), directory=url, upload_interval=0, strict=True
    )
    [out_a] = a.restore()
    it = iter(a)
    for _ in range(3):
        out_a.append(next(it))
    assert a._store is not None and getattr(a._store, "lease", None) is not None
    a._store.lease.stop()  # type: ignore[attr-defined]
    seen: Dict[str, Any] = {}

    def machine_b() -> None:  # another thread: not a retry of A's call, so no in-process hand-over
        out_b: List[int] = []
        b = checkpoint("job.py::main::out", range(10), lambda: (out_b,), directory=url, upload_interval=0)
        [out_b] = b.restore()
        seen.update(off=b.off, restored=b.restored_units)
        for item in b:
            out_b.append(item)
            if item == 5:
                break
        b.close()

    other = threading.Thread(target=machine_b)
    other.start()
    other.join()
    assert seen == {"off": None, "restored": 2}
    with pytest.raises(CheckpointLockedError, match="lease"):
        next(it)
    out_c: List[int] = []
    c = checkpoint("job.py::main::out", range(10), lambda: (out_c,), directory=url, upload_interval=0)
    [out_c] = c.restore()
    assert c.restored_units == 5  # B's units 2..4; nothing of A's after B took over
    out_c.extend(c)
    assert out_c == list(range(10))
    c.complete()


# --------------------------------------------------------------- failures, compaction


def test_unreachable_store_never_fails_the_job(tmp_path: Path, server: Any) -> None:
    program = Program(_machine(tmp_path / "job"), BASIC)
    expected = program.expected()
    env = dict(
        server.env(),
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # nothing listens there
        CHECKPOINTIFY_DIR="s3://nowhere/prefix",
        CHECKPOINTIFY_RETRIES="1",
    )
    done = program.run(program.rewritten, env=env)
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected
    warnings = [line for line in done.stderr.splitlines() if line.startswith("checkpointify: warning:")]
    assert len(warnings) == 1 and "s3://nowhere/prefix" in warnings[0], done.stderr
    strict = program.run(program.rewritten, env=dict(env, CHECKPOINTIFY_STRICT="1"))
    assert strict.returncode != 0 and "CheckpointWriteError" in strict.stderr


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
@S3_BY_DEFAULT
def test_failed_upload_after_retries(strict: bool, server: Any, url: str, tmp_path: Path) -> None:
    job = _job(server, url, tmp_path / "job")
    env = {"CHECKPOINTIFY_BATCH": "off", "CHECKPOINTIFY_FAULT": "eio:4", "CHECKPOINTIFY_QUIET": ""}
    if strict:
        env["CHECKPOINTIFY_STRICT"] = "1"
    done = job.run(env=env)
    if strict:
        assert done.returncode != 0 and "CheckpointWriteError" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("checkpointify: warning:") == 1
    assert job.output() == job.expected()


@S3_BY_DEFAULT
def test_compaction_is_tiered_and_keeps_restore_to_a_few_objects(
    url: str, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a fan-out of 3, 31 segments (the header's and 30 units') become objects of
    3**k segments: restore reads at most 2 a level, and each record was uploaded once per
    level, not once per compaction (which would grow with the log: quadratic)."""
    from checkpointify.runtime import objectstore

    monkeypatch.setattr(objectstore, "_FANOUT", 3)
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "off")
    out: List[int] = []
    ck = checkpoint("job.py::main::out", range(40), lambda: (out,), directory=url)
    [out] = ck.restore()
    for item in ck:
        out.append(item * 2)
        if item == 30:
            break
    store = ck._store
    assert isinstance(store, objectstore.ObjectStore)
    stored = sum(len(run.body) for run in store._runs)
    spans = [run.hi - run.lo + 1 for run in store._runs]
    ck.close()
    assert sum(spans) == 31 and spans == sorted(spans, reverse=True), spans
    assert all(span in (1, 3, 9, 27) for span in spans) and len(spans) <= 2 * 4, spans
    # a record is in one object per level at most (4 levels: 1, 3, 9, 27 segments)
    assert store.uploaded <= 4 * stored + 64 * 100, (store.uploaded, stored)
    keys = [k.rpartition("/")[2] for k in server.keys(url)]
    assert sorted(k for k in keys if k != "lease") == sorted(
        run.key.rpartition("/")[2] for run in store._runs
    )
    # a merge torn by a crash on a store without atomic PUTs: half a snapshot over the last
    # two objects, which are still there; it fails its checksum and they are read instead
    lo, hi = store._runs[-2].lo, store._runs[-1].hi
    torn_key = objectstore.snap_key(store.name, lo, hi)
    torn = objectstore.encode_segment(1, hi, store._runs[-2].body + store._runs[-1].body)
    store.bucket.put(torn_key, torn[: len(torn) // 2])
    again: List[int] = []
    ck = checkpoint("job.py::main::out", range(40), lambda: (again,), directory=url)
    [again] = ck.restore()
    assert ck.restored_units == 30
    assert not [k for k in server.keys(url) if k.endswith(torn_key)]  # the torn merge was deleted
    again.extend(item * 2 for item in ck)
    assert again == [i * 2 for i in range(40)]
    ck.complete()
    assert server.keys(url) == []


@pytest.mark.parametrize("unit", [6, 62])  # segment 7 ends the first merge; 63 merges two levels
@S3_BY_DEFAULT
def test_sigkill_in_the_middle_of_a_compaction(unit: int, server: Any, url: str, tmp_path: Path) -> None:
    """The snapshot is stored, the objects it merged are not deleted yet: the next run
    reads the snapshot, deletes what it covers, redoes nothing recorded, and every
    compaction after it still restores every unit."""
    job = _job(server, url, tmp_path / "job", items=list(range(80)), work=0.001)
    done = job.run(env={"CHECKPOINTIFY_BATCH": "off", "CHECKPOINTIFY_FAULT": "mid-compaction:%d" % unit})
    assert done.returncode == 137, done.stderr
    assert _ran(job) == list(range(unit + 1))
    names = [k.rpartition("/")[2] for k in server.keys(url)]
    snapshots = [n for n in names if n.startswith("snap-")]
    assert snapshots and sum(n.startswith("seg-") for n in names) >= 8, names  # both are there
    job.reset_worklog()
    done = job.run(env={"CHECKPOINTIFY_BATCH": "off", "CHECKPOINTIFY_FAULT": "before-write:%d" % (unit + 12)})
    assert done.returncode == 137, done.stderr
    assert _ran(job) == list(range(unit + 1, unit + 13))  # the unit whose upload was compacting is kept
    job.reset_worklog()
    done = job.run(env={"CHECKPOINTIFY_BATCH": "off"})
    assert done.returncode == 0, done.stderr
    assert _ran(job) == list(range(unit + 12, 80))
    assert check_final(job) == []
    assert server.keys(url) == []


@S3_BY_DEFAULT
def test_a_log_of_other_input_is_archived_as_one_object(
    url: str, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "off")
    out: List[int] = []
    ck = checkpoint("job.py::main::out", range(10), lambda: (out,), directory=url, upload_interval=0)
    [out] = ck.restore()
    for item in ck:
        out.append(item)
        if item == 6:
            break
    ck.close()
    again: List[int] = []
    ck = checkpoint("job.py::main::out", range(100, 110), lambda: (again,), directory=url)
    [again] = ck.restore()
    assert ck.restored_units == 0
    for item in ck:
        again.append(item)
        if item == 104:
            break
    ck.close()
    third: List[int] = []
    ck = checkpoint("job.py::main::out", range(100, 110), lambda: (third,), directory=url)
    [third] = ck.restore()
    assert ck.restored_units == 4  # the new log holds only the new input's units
    third.extend(ck)
    ck.complete()
    assert third == list(range(100, 110))
    [archive] = server.keys(url)
    assert archive.endswith(".ckpt.stale")
    from checkpointify.cli import inventory

    [entry] = inventory.load(url)
    assert entry.info is not None and entry.info.archived == "stale" and entry.info.units >= 1


@S3_BY_DEFAULT
def test_a_newer_checkpoint_of_the_loop_in_this_process_takes_over(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retried call (a notebook cell run again) need not wait for the lease of the call
    it replaces: the older one uploads its completed units and hands the lease over."""
    monkeypatch.setenv("CHECKPOINTIFY_BATCH", "off")
    out: List[int] = []
    first = checkpoint("job.py::main::out", range(8), lambda: (out,), directory=url)
    [out] = first.restore()
    for item in first:
        if item == 3:
            break  # an exception, say: no close(), no complete()
        out.append(item)
    again: List[int] = []
    second = checkpoint("job.py::main::out", range(8), lambda: (again,), directory=url, strict=True)
    [again] = second.restore()
    assert second.restored_units == 3
    again.extend(second)
    second.complete()
    assert again == list(range(8))


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def without_fsspec(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "fsspec" or name.startswith("fsspec."):
            raise ImportError("No module named 'fsspec'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_fsspec)
    with pytest.raises(CheckpointError, match=r"pip install 'checkpointify\[gcs\]'"):
        checkpoint("x", range(3), directory="gs://bucket/p", strict=True).restore()


# ------------------------------------------------------------------------------ shards


@S3_BY_DEFAULT  # about 10 s a backend; the listing it shows is restore's, run on all three above
def test_shards_on_three_machines_and_the_cli_shows_each(server: Any, url: str, tmp_path: Path) -> None:
    items = list(range(30))
    jobs = []
    for k in range(3):
        job = make_job(tmp_path / ("shard-%d" % k), items[k::3], work=0.01)
        job.env.update(_env(server, url, CHECKPOINTIFY_SHARD="%d/3" % k, CHECKPOINTIFY_BATCH="off"))
        jobs.append(job)
    # shard 1 dies after 4 units, shard 2 after 6; shard 0 finishes
    for job, unit in ((jobs[1], 4), (jobs[2], 6)):
        done = job.run(env={"CHECKPOINTIFY_FAULT": "before-write:%d" % unit})
        assert done.returncode == 137, done.stderr
    cli = [sys.executable, "-m", "checkpointify", "checkpoints"]
    env = dict(jobs[0].environment(), CHECKPOINTIFY_DIR=url)
    listing = subprocess.run(cli + ["list", "--dir", url], env=env, capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    rows = [line for line in listing.stdout.splitlines() if "[shard" in line]
    assert len(rows) == 2 and "[shard 1/3]" in rows[0] and "[shard 2/3]" in rows[1], listing.stdout
    assert "2 of 3 shards have a log, 10 units done (units by shard: 1: 4, 2: 6)" in listing.stderr
    name = rows[0].split()[0]
    # without --dir: CHECKPOINTIFY_DIR names the bucket, as for the jobs
    shown = subprocess.run(cli + ["show", name], env=env, capture_output=True, text=True)
    assert shown.returncode == 0 and "shard:" in shown.stdout and "4 completed" in shown.stdout, shown
    for job in jobs:
        job.reset_worklog()
        done = job.run()
        assert done.returncode == 0, done.stderr
        assert check_final(job) == []
    assert [len(_ran(j)) for j in jobs] == [10, 6, 4]
    # clear: a log left by a killed shard goes
    assert jobs[1].run(env={"CHECKPOINTIFY_FAULT": "before-write:3"}).returncode == 137
    cleared = subprocess.run(cli + ["clear", "--yes", "--dir", url], env=env, capture_output=True, text=True)
    assert cleared.returncode == 0, cleared.stderr
    assert server.keys(url) == []


# --------------------------------------------------------------- parallel sites (issue 10)


@pytest.mark.parametrize(
    "server,mode,policy",
    [
        pytest.param(kind, mode, policy, marks=[] if kind == "s3" or default else [pytest.mark.slow])
        for kind in ("s3", "azure", "gcs")
        for mode in ("threads", "asyncio")
        for policy in ("every-result", "batched")
        for default in [(mode, policy) == ("threads", "every-result")]
    ],
    indirect=["server"],
)
def test_parallel_site_killed_and_resumed_on_another_machine(
    mode: str, policy: str, server: Any, url: str, tmp_path: Path
) -> None:
    """A thread pool (and an event loop) recording its results on object storage is SIGKILLed, then run
    again from another working directory with an empty disk: its output equals an
    uninterrupted run's, and no input whose result was delivered and uploaded is submitted
    again. ``every-result`` (CHECKPOINTIFY_BATCH=off) uploads each result before the program
    sees it, so no delivered input runs again; ``batched`` uploads at most once per interval
    (0.2 s here), so only results of the last interval (and the upload in flight) may."""
    from tests.runtime.test_parallel import PROGRAM
    from tests.support.runtime_programs import program_env, run_program, worklog

    env = _env(server, url, CHECKPOINTIFY_QUIET="")  # "N results restored" is said
    # units long enough that the batched uploads (every 0.2 s) land before the run ends,
    # even on a loaded machine (at 0.05 s an event loop of 4 finished 24 units first)
    env["WORK_DELAY"] = "0.2"
    env.update(
        {"CHECKPOINTIFY_BATCH": "off"}
        if policy == "every-result"
        else {"CHECKPOINTIFY_UPLOAD_INTERVAL": "0.2"}
    )
    clean = _machine(tmp_path / "clean")
    (clean / "prog.py").write_text(PROGRAM)
    done = run_program(clean, mode, **env)
    assert done.returncode == 0, done.stderr
    expected = (clean / "out.json").read_bytes()
    assert server.keys(url) == []

    node_a = _machine(tmp_path / "node-a")
    (node_a / "prog.py").write_text(PROGRAM)
    proc = subprocess.Popen(
        [sys.executable, "prog.py", mode], cwd=node_a, env=program_env(node_a, **env), stderr=subprocess.PIPE
    )
    _wait_for(
        lambda: sum(line.startswith("done") for line in worklog(node_a)) >= 8 or proc.poll() is not None
    )
    if policy == "batched":
        _wait_for(lambda: len(server.keys(url)) >= 3 or proc.poll() is not None)  # header, epoch, results
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else b""
    delivered = {line.split()[1] for line in worklog(node_a) if line.startswith("done")}
    assert server.keys(url), "nothing was uploaded before the kill"

    node_b = _machine(tmp_path / "node-b")  # the rescheduled pod: same program, empty disk
    (node_b / "prog.py").write_text(PROGRAM)
    resumed = run_program(node_b, mode, **env)
    assert resumed.returncode == 0, resumed.stderr
    assert (node_b / "out.json").read_bytes() == expected
    started = [line.split()[1] for line in worklog(node_b) if line.startswith("start")]
    assert len(started) == len(set(started)), "an input ran twice in one run"
    restored = int(resumed.stderr.split(" results restored")[0].rsplit(" ", 1)[1])
    assert restored >= 1 and len(started) == 24 - restored, "exactly the restored inputs were skipped"
    before = {line.split()[1] for line in worklog(node_a) if line.startswith("start")}
    assert set(started) | before == {str(x) for x in range(24)}, "an input was never run"
    if policy == "every-result":
        # threads: "done" is noted once the future resolved, after its upload; asyncio: the
        # coroutine notes it as it returns, and its result is recorded in the same step of
        # the event loop, so at most the one being uploaded at the kill runs again
        again = delivered & set(started)
        assert len(again) <= (0 if mode == "threads" else 1), "delivered inputs ran again: %s" % again
    _no_local_checkpoints(node_a, node_b)
    assert server.keys(url) == []  # complete() removed every object of the log


def test_parallel_site_on_s3_in_strict_mode_raises_where_the_result_is_read(
    server: Any, tmp_path: Path
) -> None:
    """An unreachable store: by default one warning and the work runs on; strict mode
    raises (the site is served, so the failure is the store's, named with its URL)."""
    program = tmp_path / "job.py"
    program.write_text(
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from checkpointify.runtime import parallel\n"
        "par = parallel('job.py::<module>::rows')\n"
        "with ThreadPoolExecutor(2) as ex:\n"
        "    rows = list(par.map(ex, 'map', abs, [-1, -2, -3]))\n"
        "print(rows)\n"
        "par.complete()\n"
    )
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL="http://127.0.0.1:9",  # nothing listens there
        CHECKPOINTIFY_DIR="s3://nowhere/prefix",
        CHECKPOINTIFY_RETRIES="0",
        PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"),
    )
    env.pop("CHECKPOINTIFY_STRICT", None)
    done = subprocess.run(
        [sys.executable, str(program)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[1, 2, 3]\n"
    assert done.stderr.count("checkpointify: warning:") == 1 and "s3://nowhere/prefix" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.py"]  # no local folder named "s3:"
    strict = subprocess.run(
        [sys.executable, str(program)],
        cwd=tmp_path,
        env=dict(env, CHECKPOINTIFY_STRICT="1"),
        capture_output=True,
        text=True,
    )
    assert strict.returncode != 0 and "CheckpointWriteError" in strict.stderr


def test_a_failed_last_upload_of_a_parallel_site_is_reported_at_exit(tmp_path: Path) -> None:
    """The background upload of a parallel site's last batch fails (the store went away after
    the loop) and no later write follows: the run still ends as the original would (here the
    save step fails with exit code 3), and it says, once, that those results were not stored
    and will run again, instead of nothing."""
    from tests.support.runtime_programs import program_env
    from tests.support.s3server import S3Server as Server

    server = Server()  # its own server: this test stops it
    try:
        url = server.bucket() + "/job"
        program = tmp_path / "job.py"
        program.write_text(
            "import sys\n"
            "from concurrent.futures import ThreadPoolExecutor\n"
            "from checkpointify.runtime import parallel\n"
            "par = parallel('job.py::<module>::rows')\n"
            "with ThreadPoolExecutor(2) as ex:\n"
            "    rows = list(par.map(ex, 'map', abs, [-1, -2, -3, -4]))\n"
            "print('loop done', flush=True)\n"
            "sys.stdin.readline()  # the test stops the store here\n"
            "sys.exit(3)  # the save failed: par.complete() is never reached\n"
        )
        env = program_env(
            tmp_path,
            **server.env(),
            CHECKPOINTIFY_DIR=url,
            CHECKPOINTIFY_RETRIES="0",
            CHECKPOINTIFY_UPLOAD_INTERVAL="30",  # the results wait for the exit flush
        )
        for name in ("CHECKPOINTIFY_QUIET", "CHECKPOINTIFY_BATCH"):  # its warning, its batching
            env.pop(name, None)
        proc = subprocess.Popen(
            [sys.executable, str(program)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline() == "loop done\n"
    finally:
        server.stop()
    out, err = proc.communicate("go\n", timeout=120)
    assert proc.returncode == 3, err
    warnings = [line for line in err.splitlines() if line.startswith("checkpointify: warning:")]
    assert len(warnings) == 1, err
    assert url in warnings[0] and "not stored" in warnings[0], err


# ------------------------------------------------------------ helpers completed by their caller


@S3_BY_DEFAULT
def test_complete_deferred_sweeps_the_bucket_for_logs_no_call_of_this_run_opened(
    server: Any, url: str, tmp_path: Path
) -> None:
    """As in a local folder (test_runtime_deferred.py): a run over other items is killed
    after its helper finished; the next run calls the helper with other items only, and
    its ``complete_deferred()`` removes the other run's log from the bucket too. A log of
    another loop under the same prefix is left alone."""
    from tests.runtime.test_runtime_deferred import _run, _setup, _worklog

    (tmp_path / "job").mkdir()
    where = _setup(tmp_path / "job")
    other = checkpoint("other.py::main::out", range(3), lambda: ([],), directory=url)
    other.restore()
    other.close()  # a log of another loop, kept
    kept = {key.split("/")[-2] for key in server.keys(url)}
    env = {"CHECKPOINTIFY_DIR": url}
    assert _run(where, ITEMS='["y1", "y2"]', KILL_AT="between", **env).returncode == -9
    logs = {key.split("/")[-2] for key in server.keys(url)}
    assert len(logs) == 2, logs
    _worklog(where)
    done = _run(where, **env)  # this run calls the helper with other items only
    assert done.returncode == 0, done.stderr
    assert _worklog(where) == ["x1", "x2", "x3", "x4"]
    left = {key.split("/")[-2] for key in server.keys(url)}
    assert left == kept, "the other run's log was left behind (or another loop's removed)"
    assert not (where / ".checkpointify").exists()


# ------------------------------------------------------------------------------ helpers


def _wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
