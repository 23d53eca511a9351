"""The safety suite: small real programs, the original against the rewrite with every fix
applied (``checkpointify fix --unsafe-fixes`` on a copy), under injected faults.

For every shape the rewritten program, run in its default mode, exits 0 and writes exactly
what the original writes over the same input, whatever the checkpoint meets: a SIGKILL and a
re-run, a full disk (a tiny tmpfs), a read-only checkpoint folder, a value that cannot be
pickled, a corrupt log, input that changed between runs, another command-line option, a
copy of the script, a second copy of the job, threads and a process pool running the same
checkpointed function. In strict mode (``CHECKPOINTIFY_STRICT=1``) the same faults raise
the documented error instead. Timing is never asserted.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
HELPER = ROOT / "tests" / "fixtures" / "_support" / "ckfixture.py"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")


def _in_mount_namespace(shell: str) -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "sh", "-c", shell], capture_output=True).returncode == 0


CAN_MOUNT = _in_mount_namespace("mount -t tmpfs none /mnt")

BASIC = """
import json

from ckfixture import score

results = []
for n in range(12):
    results.append(score(n))
with open("out.json", "w") as out:
    json.dump(results, out)
"""

UNPICKLABLE = """
import json
import threading

from ckfixture import score

results = []
for n in range(8):
    results.append((score(n), threading.Lock()))  # a value pickle refuses
with open("out.json", "w") as out:
    json.dump([value for value, _ in results], out)
"""

SAMPLED = """
import json
import os
import random

from ckfixture import score

items = random.Random(os.environ["SEED"]).sample(range(1000), 10)  # other input on every run
results = []
for n in items:
    results.append(score(n))
with open("out.json", "w") as out:
    json.dump(results, out)
"""

OPTIONS = """
import argparse
import json

from ckfixture import score

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="small")
args = parser.parse_args()
results = []
for n in range(10):
    results.append(score(n) if args.model == "small" else -score(n))
with open("out.json", "w") as out:
    json.dump(results, out)
"""

THREADS = """
import json
from concurrent.futures import ThreadPoolExecutor

from ckfixture import score


def process(name, items):
    results = []
    for n in items:
        results.append(score(n))
    with open("out-%s.json" % name, "w") as out:
        json.dump(results, out)


with ThreadPoolExecutor(4) as pool:
    list(pool.map(process, ["a", "a", "b", "c"], [range(30)] * 4))
"""

POOL = (
    THREADS.replace("from concurrent.futures import ThreadPoolExecutor", "import multiprocessing")
    .replace(
        "with ThreadPoolExecutor(4) as pool:\n    list(pool.map(process, ",
        'if __name__ == "__main__":\n    with multiprocessing.get_context("fork").Pool(4) as pool:\n'
        "        pool.starmap(process, zip(",
    )
    .replace("[range(30)] * 4))", "[range(30)] * 4))")
)


#: THREADS as `fix` rewrote it before loops in a function a pool runs per task, saving right
#: after, stopped being findings (their loss is bounded: see docs/finding-rules.md). Such
#: rewrites exist (made by hand, or by an earlier version), so the runtime must still run
#: them: two threads or workers running the same loop with the same key.
def _rewritten_per_task(source: str) -> str:
    old = """    results = []
    for n in items:
        results.append(score(n))
    with open("out-%s.json" % name, "w") as out:
        json.dump(results, out)
"""
    assert old in source
    new = """    results = []
    ckpt = checkpoint("job.py::process::results", items, lambda: (results,), key=(name, items))
    [results] = ckpt.restore()
    for n in ckpt:
        results.append(score(n))
    with open("out-%s.json" % name, "w") as out:
        json.dump(results, out)
    ckpt.complete()
"""
    return "from checkpointify.runtime import checkpoint\n" + source.replace(old, new)


class Program:
    """One program in its own folder: the original and the rewrite, run as real processes."""

    def __init__(self, where: Path, source: str, name: str = "job.py", rewrite: Optional[str] = None) -> None:
        self.where = where
        where.mkdir(parents=True, exist_ok=True)
        shutil.copy(HELPER, where / "ckfixture.py")
        self.original = where / ("original_" + name)
        self.original.write_text(source)
        self.rewritten = where / name
        if rewrite is not None:  # a rewrite `fix` no longer makes, but the runtime must still run
            self.rewritten.write_text(rewrite)
            self.worklog = where / "worklog.txt"
            return
        self.rewritten.write_text(source)
        fixed = subprocess.run(
            [sys.executable, "-m", "checkpointify", "fix", "--unsafe-fixes", str(self.rewritten)],
            cwd=where,
            env=self.env(),
            capture_output=True,
            text=True,
        )
        assert fixed.returncode == 0, fixed.stderr
        assert "from checkpointify.runtime import checkpoint" in self.rewritten.read_text(), fixed.stderr
        self.worklog = where / "worklog.txt"

    def env(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHECKPOINTIFY_", "CKPT_"))}
        env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(self.where)])
        env.update(extra or {})
        return env

    def command(self, script: Path, args: List[str]) -> List[str]:
        return [sys.executable, str(script)] + args

    def run(
        self,
        script: Path,
        args: Sequence[str] = (),
        env: Optional[Dict[str, str]] = None,
        wrap: Sequence[str] = (),
    ) -> "subprocess.CompletedProcess[str]":
        for out in self.where.glob("out*.json"):
            out.unlink()
        return subprocess.run(
            list(wrap) + self.command(script, list(args)),
            cwd=self.where,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def outputs(self) -> Dict[str, str]:
        return {p.name: p.read_text() for p in sorted(self.where.glob("out*.json"))}

    def expected(self, args: Sequence[str] = (), env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        done = self.run(self.original, args, env)
        assert done.returncode == 0, done.stderr
        return self.outputs()

    def units(self) -> List[str]:
        return self.worklog.read_text().split() if self.worklog.exists() else []

    def kill_after(self, units: int, args: Sequence[str] = (), env: Optional[Dict[str, str]] = None) -> None:
        """Start the rewrite with slow units and SIGKILL it once ``units`` units have started."""
        if self.worklog.exists():
            self.worklog.unlink()
        extra = dict(env or {}, CKPT_DELAY="0.05", CKPT_WORKLOG=str(self.worklog))
        child = subprocess.Popen(
            self.command(self.rewritten, list(args)), cwd=self.where, env=self.env(extra)
        )
        deadline = time.monotonic() + 60
        while len(self.units()) < units and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL

    def logs(self) -> List[Path]:
        folder = self.where / ".checkpointify"
        return sorted(folder.glob("*.ckpt")) if folder.exists() else []


def _warned(done: "subprocess.CompletedProcess[str]") -> List[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("checkpointify: warning:")]


STRICT = {"CHECKPOINTIFY_STRICT": "1"}


# --------------------------------------------------------------------------- the shapes


def test_sigkill_and_rerun_skips_completed_units_and_writes_the_original_output(tmp_path: Path) -> None:
    program = Program(tmp_path, BASIC)
    expected = program.expected()
    program.kill_after(5)
    done_before = len(program.units())
    program.worklog.unlink()
    done = program.run(program.rewritten, env={"CKPT_WORKLOG": str(program.worklog)})
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected
    assert len(program.units()) < 12 and done_before + len(program.units()) >= 12
    assert program.logs() == []


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_an_unpicklable_value(strict: bool, tmp_path: Path) -> None:
    program = Program(tmp_path, UNPICKLABLE)
    expected = program.expected()
    done = program.run(program.rewritten, env=STRICT if strict else None)
    if strict:
        assert (
            done.returncode == 1 and "CheckpointError" in done.stderr and "cannot be pickled" in done.stderr
        )
        return
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected
    [warning] = _warned(done)
    assert "job.py::<module>::results" in warning and "_thread.lock" in warning


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_input_that_changed_since_the_crash(strict: bool, tmp_path: Path) -> None:
    program = Program(tmp_path, SAMPLED)
    program.kill_after(4, env={"SEED": "1"})
    expected = program.expected(env={"SEED": "2"})
    done = program.run(program.rewritten, env=dict(STRICT, SEED="2") if strict else {"SEED": "2"})
    if strict:
        assert done.returncode == 1 and "StaleCheckpointError" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected  # nothing of the SEED=1 run mixed in
    assert "archived it as" in done.stderr and program.logs() == []


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_a_corrupt_log(strict: bool, tmp_path: Path) -> None:
    program = Program(tmp_path, BASIC)
    expected = program.expected()
    program.kill_after(6, env={"CHECKPOINTIFY_BATCH": "off"})
    [log] = program.logs()
    data = bytearray(log.read_bytes())
    data[len(data) // 2] ^= 0xFF  # damage in the middle: valid records follow
    log.write_bytes(bytes(data))
    done = program.run(program.rewritten, env=STRICT if strict else None)
    if strict:
        assert done.returncode == 1 and "CorruptCheckpointError" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected
    assert list((tmp_path / ".checkpointify").glob("*.corrupt-*")) and "warning" in done.stderr


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
@pytest.mark.parametrize("fault", ["enospc:3", "eio:3", "eio-fsync:3"])
def test_a_record_that_cannot_be_written(fault: str, strict: bool, tmp_path: Path) -> None:
    program = Program(tmp_path, BASIC)
    expected = program.expected()
    env = {"CHECKPOINTIFY_FAULT": fault, "CHECKPOINTIFY_BATCH": "off"}
    done = program.run(program.rewritten, env=dict(env, **STRICT) if strict else env)
    if strict:
        assert done.returncode == 1 and "CheckpointWriteError" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected and len(_warned(done)) == 1


@pytest.mark.skipif(not CAN_MOUNT, reason="needs unshare -m and mount (root in a VM or container)")
@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_a_full_disk_for_real(strict: bool, tmp_path: Path) -> None:
    """The checkpoint folder is a 64 KiB tmpfs; the results are large enough to fill it."""
    program = Program(tmp_path / "job", BASIC.replace("score(n)", "str(score(n)) * 4000"))
    expected = program.expected()
    disk = tmp_path / "disk"
    disk.mkdir()
    env = dict(STRICT if strict else {}, CHECKPOINTIFY_DIR=str(disk), CHECKPOINTIFY_BATCH="off")
    # mode=0700: a tmpfs root is world-writable by default, which the trust check refuses
    wrap = [
        "unshare",
        "-m",
        "sh",
        "-c",
        'mount -t tmpfs -o size=64k,mode=0700 none "$0" && exec "$@"',
        str(disk),
    ]
    done = program.run(program.rewritten, env=env, wrap=wrap)
    if strict:
        assert done.returncode == 1 and "no space left on the device" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected
    assert "no space left on the device" in done.stderr and len(_warned(done)) == 1


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_a_read_only_checkpoint_folder(strict: bool, tmp_path: Path) -> None:
    program = Program(tmp_path, BASIC)
    expected = program.expected()
    program.kill_after(4)  # a log to resume from, in a folder that then becomes read-only
    folder = tmp_path / ".checkpointify"
    env = STRICT if strict else {}
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            done = program.run(program.rewritten, env=env)
        finally:
            folder.chmod(0o700)
    elif CAN_MOUNT:
        shell = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
        done = program.run(program.rewritten, env=env, wrap=["unshare", "-m", "sh", "-c", shell, str(folder)])
    else:  # pragma: no cover
        pytest.skip("root without mount namespaces cannot make a folder read-only")
    if strict:
        assert done.returncode == 1 and "CheckpointWriteError" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected and len(_warned(done)) == 1


def test_another_command_line_option_never_resumes_the_first(tmp_path: Path) -> None:
    program = Program(tmp_path, OPTIONS)
    program.kill_after(4, args=["--model", "small"])
    expected = program.expected(args=["--model", "large"])
    done = program.run(program.rewritten, args=["--model", "large"])
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected  # no "small" result mixed in
    done = program.run(program.rewritten, args=["--model", "small"])  # the first still resumes
    assert done.returncode == 0 and "resuming" in done.stderr
    assert program.outputs() == program.expected(args=["--model", "small"])


@pytest.mark.parametrize("copy", ["b/run.py", "a/job_v2.py"], ids=["same-name-other-folder", "renamed-copy"])
def test_a_copy_of_the_script_never_resumes_the_original(copy: str, tmp_path: Path) -> None:
    """a/run.py is killed; its copy (other work) runs from the same folder: no mixing."""
    first = Program(tmp_path / "a", BASIC, "run.py")
    first.kill_after(5)
    target = tmp_path / copy
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(first.rewritten.read_text().replace("score(n)", "-score(n)"))  # changed work
    env = first.env({"CHECKPOINTIFY_DIR": str(tmp_path / "ckpt")})
    shutil.copytree(tmp_path / "a" / ".checkpointify", tmp_path / "ckpt")  # one folder for both
    done = subprocess.run(
        [sys.executable, str(target)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    negated = [-(len(str(n)) * 7 + n) for n in range(12)]  # ckfixture.score, negated
    assert (tmp_path / "out.json").read_text() == "[%s]" % ", ".join(map(str, negated))


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_two_copies_of_the_job_at_once(strict: bool, tmp_path: Path) -> None:
    program = Program(tmp_path, BASIC)
    expected = program.expected()
    slow = dict(STRICT if strict else {}, CKPT_DELAY="0.05", CKPT_WORKLOG=str(program.worklog))
    first = subprocess.Popen(
        program.command(program.rewritten, []), cwd=tmp_path, env=program.env(slow), stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while len(program.units()) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    second = subprocess.run(
        program.command(program.rewritten, []),
        cwd=tmp_path,
        env=program.env(STRICT if strict else {}),
        capture_output=True,
        text=True,
    )
    assert first.wait(timeout=120) == 0
    if strict:
        assert second.returncode == 1 and "CheckpointLockedError" in second.stderr
    else:
        assert second.returncode == 0, second.stderr
        assert "in use by process %d" % first.pid in second.stderr
    assert program.outputs() == expected and program.logs() == []


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_threads_running_the_same_checkpointed_function(strict: bool, tmp_path: Path) -> None:
    program = Program(tmp_path, THREADS, rewrite=_rewritten_per_task(THREADS))
    assert "key=(name, items)" in program.rewritten.read_text()
    expected = program.expected()
    slow = {"CKPT_DELAY": "0.01"}
    done = program.run(program.rewritten, env=dict(slow, **STRICT) if strict else slow)
    if strict:
        assert done.returncode == 1 and "CheckpointLockedError" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected and program.logs() == []
    assert len(_warned(done)) == 1  # the second call "a": "b" and "c" have their own checkpoints


def test_a_process_pool_running_the_same_checkpointed_function(tmp_path: Path) -> None:
    program = Program(tmp_path, POOL, rewrite=_rewritten_per_task(POOL))
    expected = program.expected()
    done = program.run(program.rewritten, env={"CKPT_DELAY": "0.01"})
    assert done.returncode == 0, done.stderr
    assert program.outputs() == expected and program.logs() == []
