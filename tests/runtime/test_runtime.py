"""The runtime's contract, on real files: restore, skip, torn tails, stale input, failures."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pytest

from checkpointify import runtime
from checkpointify.runtime import CheckpointWriteError, StaleCheckpointError, checkpoint

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(autouse=True)
def _in_tmp(runtime_sandbox: Callable[..., None]) -> None:
    # every unit is written before the next starts; batching has tests of its own
    runtime_sandbox(CHECKPOINTIFY_FSYNC="never", CHECKPOINTIFY_BATCH="off")


class Interrupted(Exception):
    pass


def run_loop(
    items: List[Any],
    body: Callable[[Any, List[Any]], None],
    stop_at: int = -1,
    loop_id: str = "t::loop::acc",
) -> Tuple[List[Any], List[Any]]:
    """A rewritten loop over ``items`` with one list accumulator; raises Interrupted at ``stop_at``
    (and closes the checkpoint, as the end of the process would)."""
    acc: List[Any] = []
    ran: List[Any] = []
    ckpt = checkpoint(loop_id, items, lambda: (acc,))
    [acc] = ckpt.restore()
    for index, item in enumerate(ckpt):
        if index + ckpt.restored_units == stop_at:
            ckpt.close()
            raise Interrupted()
        ran.append(item)
        body(item, acc)
    return acc, ran


def test_resume_skips_completed_units_and_restores_the_accumulator() -> None:
    items = list(range(10))
    with pytest.raises(Interrupted):
        run_loop(items, lambda i, acc: acc.append(i * i), stop_at=6)
    acc, ran = run_loop(items, lambda i, acc: acc.append(i * i))
    assert acc == [i * i for i in items]
    assert ran == [6, 7, 8, 9]


def test_torn_tail_is_ignored_and_truncated(tmp_path: Path) -> None:
    items = list(range(8))
    with pytest.raises(Interrupted):
        run_loop(items, lambda i, acc: acc.append(str(i) * 100), stop_at=5)
    [log] = (tmp_path / ".checkpointify").glob("*.ckpt")
    data = log.read_bytes()
    log.write_bytes(data[:-7])  # the last record lost its tail: the process died mid-write
    acc, ran = run_loop(items, lambda i, acc: acc.append(str(i) * 100))
    assert acc == [str(i) * 100 for i in items]
    assert ran == [4, 5, 6, 7]


def test_zero_filled_tail_is_ignored(tmp_path: Path) -> None:
    items = list(range(6))
    with pytest.raises(Interrupted):
        run_loop(items, lambda i, acc: acc.append(i), stop_at=3)
    [log] = (tmp_path / ".checkpointify").glob("*.ckpt")
    with open(log, "ab") as handle:
        handle.write(b"\0" * 4096)
    acc, ran = run_loop(items, lambda i, acc: acc.append(i))
    assert acc == items and ran == [3, 4, 5]


def test_changed_input_raises_stale_error_naming_the_file(strict: None, tmp_path: Path) -> None:
    with pytest.raises(Interrupted):
        run_loop(["a", "b", "c", "d"], lambda i, acc: acc.append(i), stop_at=2)
    with pytest.raises(StaleCheckpointError) as info:
        run_loop(["a", "X", "c", "d"], lambda i, acc: acc.append(i))
    message = str(info.value)
    assert ".checkpointify" in message and ".ckpt" in message
    assert "item #1 ('X')" in message and "CHECKPOINTIFY_ON_STALE=restart" in message
    with pytest.raises(StaleCheckpointError, match="the input now has 1 items but 2 were completed"):
        run_loop(["a"], lambda i, acc: acc.append(i))


def test_stale_restart_archives_the_log_and_starts_from_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Interrupted):
        run_loop(["a", "b", "c", "d"], lambda i, acc: acc.append(i), stop_at=2)
    monkeypatch.setenv("CHECKPOINTIFY_ON_STALE", "restart")
    acc, ran = run_loop(["x", "b", "c"], lambda i, acc: acc.append(i.upper()))
    assert acc == ["X", "B", "C"] and ran == ["x", "b", "c"]
    assert "archived it as" in capsys.readouterr().err
    names = sorted(p.name for p in (tmp_path / ".checkpointify").iterdir() if p.suffix not in (".lock", ""))
    assert len(names) == 2 and names[1] == names[0] + ".stale"


def test_complete_removes_log_and_default_directory(tmp_path: Path) -> None:
    acc: List[int] = []
    ckpt = checkpoint("t::done::acc", range(3), lambda: (acc,))
    [acc] = ckpt.restore()
    for i in ckpt:
        acc.append(i)
    assert ckpt.path.exists()
    ckpt.complete()
    assert not (tmp_path / ".checkpointify").exists()


def test_checkpoint_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "elsewhere"
    monkeypatch.setenv("CHECKPOINTIFY_DIR", str(target))
    with pytest.raises(Interrupted):
        run_loop([1, 2, 3], lambda i, acc: acc.append(i), stop_at=1)
    assert len(list(target.iterdir())) == 1 and not (tmp_path / ".checkpointify").exists()


def test_unreadable_checkpoint_raises_and_names_the_file(strict: None, tmp_path: Path) -> None:
    (tmp_path / ".checkpointify").write_text("not a directory")
    with pytest.raises(runtime.CheckpointError) as info:
        run_loop([1, 2, 3], lambda i, acc: acc.append(i))
    assert ".checkpointify" in str(info.value)


WRITE_FAILURE = """
import resource, signal, sys
from checkpointify.runtime import checkpoint, CheckpointWriteError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))   # the disk is 'full' after 20 kB
acc = []
ckpt = checkpoint("t::full::acc", range(100), lambda: (acc,))
[acc] = ckpt.restore()
try:
    for i in ckpt:
        acc.append("x" * 1000)
except CheckpointWriteError as exc:
    print("raised after", len(acc), "units:", exc)
    sys.exit(3)
print("completed without error")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_failed_write_raises_at_once(strict: None, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WRITE_FAILURE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(SRC)),  # BATCH=off from _in_tmp: one write a unit
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "cannot write checkpoint" in done.stdout and ".checkpointify" in done.stdout
    units = int(done.stdout.split("raised after ")[1].split()[0])
    assert 15 <= units <= 21  # it stopped at the first unit that did not fit, not later


@pytest.mark.skipif(
    os.geteuid() == 0 if hasattr(os, "geteuid") else True,
    reason="root ignores directory permissions",
)
def test_read_only_directory_raises(
    tmp_path: Path,
) -> None:  # pragma: no cover - CI runs as root here
    (tmp_path / ".checkpointify").mkdir(mode=0o500)
    with pytest.raises(CheckpointWriteError, match="not writable"):
        run_loop([1, 2, 3], lambda i, acc: acc.append(i))


def test_unpicklable_value_raises_naming_the_loop(strict: None) -> None:
    with pytest.raises(runtime.CheckpointError, match="cannot be pickled"):
        run_loop([1, 2], lambda i, acc: acc.append(lambda: i))


def test_restore_without_iteration_order_is_refused() -> None:
    ckpt = checkpoint("t::x::acc", [1], lambda: ([],))
    with pytest.raises(runtime.CheckpointError, match="restore"):
        next(iter(ckpt))


def test_every_accumulator_kind_round_trips() -> None:
    def job(stop_at: int) -> Tuple[Any, ...]:
        items = list(range(12))
        lst: List[Any] = [["header"]]
        dct: dict = {}  # type: ignore[type-arg]
        st: set = set()  # type: ignore[type-arg]
        cnt: Counter = Counter()  # type: ignore[type-arg]
        groups: defaultdict = defaultdict(list)  # type: ignore[type-arg]
        total, ratio, text, raw = 0, 0.0, "", b""
        ckpt = checkpoint(
            "t::kinds::all",
            items,
            lambda: (lst, dct, st, cnt, groups, total, ratio, text, raw),
        )
        [lst, dct, st, cnt, groups, total, ratio, text, raw] = ckpt.restore()
        for i in ckpt:
            if i == stop_at:
                raise Interrupted()
            if i == 4:
                continue
            lst.append([i, str(i)])
            dct[i % 5] = i  # overwrites earlier keys
            st.add(i % 4)
            cnt[i % 3] += 1
            groups[i % 2].append(i)
            total += i
            ratio += i / 7
            text += str(i)
            raw += bytes([i])
        return lst, dct, sorted(st), cnt, dict(groups), total, ratio, text, raw

    expected = job(-1)
    runtime_dir = Path(".checkpointify")
    if runtime_dir.exists():
        shutil.rmtree(runtime_dir)
    with pytest.raises(Interrupted):
        job(9)
    assert job(-1) == expected


def test_pickled_output_is_byte_identical_after_resume() -> None:
    def job(stop_at: int) -> bytes:
        rows: List[Any] = []
        ckpt = checkpoint("t::rows::rows", list(range(6)), lambda: (rows,))
        [rows] = ckpt.restore()
        for i in ckpt:
            if i == stop_at:
                raise Interrupted()
            rows.append({"id": i, "status": "ok", "label": "row %d" % i})
        return pickle.dumps(rows)

    expected = job(-1)
    shutil.rmtree(".checkpointify", ignore_errors=True)
    with pytest.raises(Interrupted):
        job(3)
    assert job(-1) == expected


def test_function_arguments_key_separates_logs() -> None:
    def job(split: str, stop_at: int = -1) -> List[str]:
        acc: List[str] = []
        ckpt = checkpoint("t::split::acc", range(4), lambda: (acc,), key=(split,))
        [acc] = ckpt.restore()
        for i in ckpt:
            if i == stop_at:
                raise Interrupted()
            acc.append("%s-%d" % (split, i))
        return acc

    with pytest.raises(Interrupted):
        job("test", stop_at=2)
    assert job("train") == ["train-%d" % i for i in range(4)]
    assert job("test") == ["test-%d" % i for i in range(4)]


def test_runtime_imports_no_heavy_modules() -> None:
    code = "import sys, checkpointify.runtime; print(sorted(m for m in ('libcst', 'click', 'rich') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _python39() -> str:
    candidates = [shutil.which("python3.9") or ""] + sorted(
        str(p) for p in Path.home().glob(".pyenv/versions/3.9*/bin/python3.9")
    )
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return ""


@pytest.mark.skipif(not _python39(), reason="no working python3.9 here")
def test_runtime_works_on_python_39(tmp_path: Path) -> None:
    program = tmp_path / "job.py"
    program.write_text(
        "from checkpointify.runtime import checkpoint\n"
        "acc = []\n"
        "ckpt = checkpoint('job::<module>::acc', range(5), lambda: (acc,))\n"
        "[acc] = ckpt.restore()\n"
        "for i in ckpt:\n"
        "    acc.append(i * 2)\n"
        "print(acc)\n"
        "ckpt.complete()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    done = subprocess.run(
        [_python39(), str(program)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 2, 4, 6, 8]"
