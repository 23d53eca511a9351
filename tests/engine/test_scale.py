"""Monorepo scale: isolation, order, cache, resumable fix, shards, file selection, progress.

Worker crashes are real (LibCST segfaults on 2 000 nested brackets), and so is the SIGKILL
of an interrupted ``fix``. No test asserts a wall time; benchmarks/scale.py measures.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import checkpointify.detect.matcher
import checkpointify.rewrite.verify
from checkpointify.cli import main
from checkpointify.engine import cache as cache_module
from checkpointify.engine import pipeline, progress
from checkpointify.engine.discovery import Candidate, Selection, Shard, discover
from checkpointify.engine.journal import Journal
from tests.support.programs import CLEAN, JOB

#: 2,000 nested brackets: LibCST's native parser overflows its stack on them (SIGSEGV), but
#: CPython rejects them first, so they are a syntax error; the loop and the save get the file
#: past the prefilter's text stage
DEEP = (
    b"import json\nacc = []\nfor x in xs:\n    acc.append(fetch(x))\njson.dump(acc, f)\ny = "
    + (b"[" * 2000 + b"]" * 2000)
    + b"\n"
)


def segfault_on(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real SIGSEGV of the worker that analyses ``name`` (workers are forked, so they run
    this): what LibCST's native parser does on input it cannot handle."""
    real = checkpointify.detect.matcher.find_plans

    def find_plans(wrapper: Any, path: str, options: Any, *args: Any) -> List[Any]:
        if path.endswith(name):
            os.kill(os.getpid(), signal.SIGSEGV)
        return real(wrapper, path, options, *args)

    monkeypatch.setattr(checkpointify.rewrite.verify, "find_plans", find_plans)


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def subprocess_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run(
        [sys.executable, "-m", "checkpointify", *args], cwd=cwd, capture_output=True, text=True
    )


def tree(root: Path, count: int, content: bytes = JOB, every: int = 1) -> List[Path]:
    """``count`` files in a few folders; every ``every``-th one is ``content``, the others clean."""
    paths = []
    for i in range(count):
        path = root / ("pkg%d" % (i % 7)) / ("job_%03d.py" % i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if i % every == 0 else CLEAN)
        paths.append(path)
    return paths


# ------------------------------------------------------------------------- isolation


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_segfault_in_libcst_costs_one_file_not_the_run(
    project: Path, jobs: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    segfault_on("a_crash.py", monkeypatch)
    (project / "a_crash.py").write_bytes(JOB)
    (project / "b_job.py").write_bytes(JOB)
    code, out, err = cli(capsys, "scan", "-j", jobs, "--no-cache", "--format", "json", ".")
    assert code == 3, err  # an internal error, and the run went on
    document = json.loads(out)
    assert [f["path"] for f in document["findings"]] == ["b_job.py"]
    [error] = document["errors"]
    assert error["path"] == "a_crash.py" and "crashed" in error["message"] and "SIGSEGV" in error["message"]


def test_a_segfault_on_stdin_is_reported_too(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    segfault_on("crash.py", monkeypatch)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(JOB)))
    code, _, err = cli(capsys, "scan", "-", "--stdin-filename", "crash.py")
    assert code == 3 and "crash.py: error: internal error: the analysis crashed" in err


def test_brackets_libcst_would_crash_on_are_a_syntax_error(project: Path) -> None:
    (project / "a_deep.py").write_bytes(DEEP)
    (project / "b_job.py").write_bytes(JOB)
    done = subprocess_cli(project, "scan", "-j", "2", "--format", "json", ".")
    assert done.returncode == 1, done.stderr  # not an internal error: the file is wrong
    document = json.loads(done.stdout)
    assert [f["path"] for f in document["findings"]] == ["b_job.py"]
    [error] = document["errors"]
    assert error["path"] == "a_deep.py" and "too many nested parentheses" in error["message"]


def test_a_file_over_the_time_limit_is_reported_and_the_run_goes_on(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = checkpointify.detect.matcher.find_plans

    def find_plans(wrapper: Any, path: str, options: Any, *args: Any) -> List[Any]:
        if path.endswith("hang.py"):
            time.sleep(600)  # the worker is forked, so it runs this
        return real(wrapper, path, options, *args)

    monkeypatch.setattr(checkpointify.rewrite.verify, "find_plans", find_plans)
    (project / "hang.py").write_bytes(JOB)
    for name in ("a.py", "z.py"):
        (project / name).write_bytes(JOB)
    code, out, err = cli(capsys, "scan", "-j", "2", "--timeout", "1", "--no-cache", "--format", "json")
    assert code == 1  # not an internal error: the limit was reached
    document = json.loads(out)
    assert [f["path"] for f in document["findings"]] == ["a.py", "z.py"]
    [error] = document["errors"]
    assert error["path"] == "hang.py" and "longer than 1 s" in error["message"]


def echo_large(task: bytes) -> bytes:
    """A worker function whose answer is larger than any pipe buffer (module level: it pickles)."""
    return task * 3


def test_large_tasks_and_answers_never_deadlock_the_pool() -> None:
    # the parent must never block sending a task to a worker that is itself blocked sending
    # back an answer larger than the pipe's buffer: a big task only goes to an idle worker
    from checkpointify.engine.pool import IsolatedPool

    big = b"x" * 3_000_000
    answers: Dict[int, Any] = {}
    with IsolatedPool(echo_large, 1, timeout=120) as pool:
        for seq in range(4):
            pool.submit(seq, big, len(big))
        while len(answers) < 4:
            answers.update(pool.poll(1.0))
    assert all(answers[seq] == big * 3 for seq in range(4))


@pytest.mark.parametrize("jobs", ["1", "3"])
def test_output_order_does_not_depend_on_the_number_of_workers(
    project: Path, capsys: pytest.CaptureFixture[str], jobs: str
) -> None:
    tree(project, 30, every=3)
    (project / "pkg3" / "broken.py").write_bytes(b"for x in (:\n    save(x)\n")
    _, reference, _ = cli(capsys, "scan", "-j", "2", "--no-cache", "--format", "json")
    _, out, _ = cli(capsys, "scan", "-j", jobs, "--no-cache", "--format", "json")
    assert out == reference
    paths = [f["path"] for f in json.loads(out)["findings"]]
    assert paths == sorted(paths) and len(paths) == 10


def test_results_start_before_discovery_ends(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: List[str] = []
    for i in range(5):
        (project / ("f%d.py" % i)).write_bytes(CLEAN)

    def slow_discovery(paths: Any, selection: Any) -> Any:
        for i in range(5):
            events.append("found %d" % i)
            yield Candidate(project / ("f%d.py" % i), "f%d.py" % i)

    monkeypatch.setattr(pipeline, "discover", slow_discovery)
    from checkpointify.types import Options

    for result in pipeline.run(["."], Options(), False, pipeline.Settings()):
        events.append("result %s" % result.path)
    assert events.index("result f0.py") < events.index("found 1")


# ----------------------------------------------------------------------------- cache


def test_a_warm_scan_parses_nothing_and_never_imports_libcst(project: Path) -> None:
    tree(project, 12, every=4)
    first = subprocess_cli(project, "scan", "-j", "2", "--format", "json", ".")
    probe = (
        "import sys\nfrom checkpointify.cli import main\ncode = main(['scan', '-j', '2', '--format', 'json', '.'])\n"
        "sys.stderr.write('LIBCST=%s\\n' % ('libcst' in sys.modules))\nsys.exit(code)\n"
    )
    second = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True)
    assert second.stdout == first.stdout and second.returncode == first.returncode == 1
    assert "LIBCST=False" in second.stderr
    assert (project / ".checkpointify_cache" / "CACHEDIR.TAG").exists()
    assert (project / ".checkpointify_cache" / ".gitignore").read_text().strip().endswith("*")


def test_the_cache_is_keyed_on_content_and_configuration(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = project / "job.py"
    job.write_bytes(JOB.replace(b"json.dump(results", b"push(results"))
    assert cli(capsys, "scan")[0] == 0  # push() is no sink...
    (project / "pyproject.toml").write_text("[tool.checkpointify]\nextra-sinks = ['push']\n")
    assert cli(capsys, "scan")[0] == 1  # ...until the configuration says so: not from the cache
    job.write_bytes(CLEAN)
    assert cli(capsys, "scan")[0] == 0  # new content, new result


def test_a_corrupt_cache_is_ignored_and_rewritten(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree(project, 6, every=2)
    _, reference, _ = cli(capsys, "scan", "--format", "json")
    segments = list((project / ".checkpointify_cache").rglob("*.seg"))
    assert segments
    for segment in segments:
        data = bytearray(segment.read_bytes())
        data[-5] ^= 0xFF  # a flipped bit: the checksum no longer matches
        segment.write_bytes(bytes(data))
    _, out, _ = cli(capsys, "scan", "--format", "json")
    assert out == reference
    assert not any(s.exists() for s in segments)  # dropped...
    assert list((project / ".checkpointify_cache").rglob("*.seg"))  # ...and written again


def test_a_malformed_entry_is_recomputed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "job.py").write_bytes(JOB)
    _, reference, _ = cli(capsys, "scan", "--format", "json")
    [segment] = list((project / ".checkpointify_cache").rglob("*.seg"))
    header, _, payload = segment.read_bytes().partition(b"\n")
    entries = json.loads(payload)
    entries = {key: ["oops", [["not", "a", "finding"]]] for key in entries}
    payload = json.dumps(entries).encode()
    segment.write_bytes(b"checkpointify-cache 1 " + cache_module.digest(payload).encode() + b"\n" + payload)
    _, out, _ = cli(capsys, "scan", "--format", "json")
    assert out == reference


def test_concurrent_and_killed_runs_leave_a_cache_that_gives_the_right_answer(project: Path) -> None:
    tree(project, 40, every=4)
    reference = subprocess_cli(project, "scan", "--no-cache", "--format", "json", ".").stdout
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "checkpointify", "scan", "-j", "1", "--format", "json", "."],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(3)
    ]
    killed = subprocess.Popen(
        [sys.executable, "-m", "checkpointify", "scan", "-j", "1", "."],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    for run in runs:
        out, _ = run.communicate()
        assert out.decode() == reference
    assert subprocess_cli(project, "scan", "--format", "json", ".").stdout == reference


def test_fix_and_diff_recompute_a_cached_file_with_a_fix(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "job.py").write_bytes(JOB)
    assert cli(capsys, "scan")[0] == 1  # cached: one finding with a safe fix
    code, out, _ = cli(capsys, "diff")
    assert code == 1 and "+ckpt.complete()" in out
    assert cli(capsys, "fix")[0] == 0
    assert b"ckpt.complete()" in (project / "job.py").read_bytes()


def test_no_cache_and_cache_dir(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "job.py").write_bytes(JOB)
    cli(capsys, "scan", "--no-cache")
    assert not (project / ".checkpointify_cache").exists()
    cli(capsys, "scan", "--cache-dir", "elsewhere")
    assert list((project / "elsewhere").rglob("*.seg")) and not (project / ".checkpointify_cache").exists()
    (project / "pyproject.toml").write_text("[tool.checkpointify]\ncache-dir = 'from-config'\n")
    (project / "sub").mkdir()
    os.chdir(project / "sub")
    cli(capsys, "scan", "..")
    assert list((project / "from-config").rglob("*.seg"))  # relative to pyproject.toml


def test_an_unwritable_cache_warns_and_the_run_goes_on(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "job.py").write_bytes(JOB)
    (project / "blocked").write_text("a file, not a folder")
    code, out, err = cli(capsys, "scan", "--cache-dir", "blocked")
    assert code == 1 and "job.py:6:1: CKP001" in out
    assert "warning: cannot write the cache" in err and "continuing without the cache" in err


# ----------------------------------------------------------------- the resumable fix


def journal_lines(folder: Path) -> List[str]:
    lines: List[str] = []
    for journal in folder.glob("fix-journal-*.log"):
        lines += journal.read_text().splitlines()[1:]
    return lines


def test_fix_killed_with_sigkill_resumes_without_redoing_finished_files(tmp_path: Path) -> None:
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "collect-loop" / "csv-writerows" / "input.py"
    interrupted, reference = tmp_path / "interrupted", tmp_path / "reference"
    for root in (interrupted, reference):
        root.mkdir()
        (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
        tree(root, 120, content=fixture.read_bytes(), every=2)
    assert subprocess_cli(reference, "fix", "-j", "2", ".").returncode == 0

    run = subprocess.Popen(
        [sys.executable, "-m", "checkpointify", "fix", "-j", "1", "--no-cache", "."],
        cwd=interrupted,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cache = interrupted / ".checkpointify_cache"
    deadline = time.monotonic() + 120
    while len(journal_lines(cache)) < 20 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    finished = {json.loads(line)[1] for line in journal_lines(cache) if line}
    assert 20 <= len(finished) < 120, "the kill should land mid-run"

    again = subprocess_cli(interrupted, "fix", "-j", "2", "--no-cache", ".")
    assert again.returncode == 0, again.stderr
    assert "resumed an interrupted run: %d files it had finished were skipped" % len(finished) in again.stderr
    rewritten_before = sum(1 for path in finished if int(path.split("_")[-1][:3]) % 2 == 0)
    assert "rewrote %d loops in %d files" % (60 - rewritten_before, 60 - rewritten_before) in again.stderr
    assert not list(cache.glob("fix-journal-*.log"))  # removed once the run completed
    for path in reference.rglob("*.py"):
        assert (interrupted / path.relative_to(reference)).read_bytes() == path.read_bytes(), path


def test_an_unwritable_journal_warns_and_fix_still_completes(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "job.py").write_bytes(JOB)
    (project / "blocked").write_text("a file where the cache folder should be")
    code, _, err = cli(capsys, "fix", "--cache-dir", "blocked")
    assert code == 0 and b"ckpt.complete()" in (project / "job.py").read_bytes()
    assert "cannot write the fix journal" in err and "could not have been resumed" in err


def test_the_journal_skips_only_unchanged_files_and_only_for_the_same_arguments(project: Path) -> None:
    folder = project / ".checkpointify_cache"
    journal = Journal.open(folder, "k1")
    journal.record("a.py", "digest-a")
    journal.record("b.py", "digest-b")
    journal.close()
    with open(journal.path, "a") as handle:
        handle.write('["torn')  # a kill in the middle of a line
    again = Journal.open(folder, "k1")
    assert again.is_done("a.py", "digest-a") and not again.is_done("b.py", "changed since")
    assert again.skipped == 1
    assert not Journal.open(folder, "k2").resuming
    again.complete()
    assert not journal.path.exists()


# ---------------------------------------------------------------------------- shards


def test_shards_split_the_tree_with_no_overlap_and_no_gap(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree(project, 40, every=3)
    _, full, _ = cli(capsys, "scan", "--format", "json", "--no-cache")
    parts = []
    for k in (1, 2, 3):
        _, out, _ = cli(capsys, "scan", "--format", "json", "--no-cache", "--shard", "%d/3" % k)
        parts.append(json.loads(out)["findings"])
    paths = [{f["path"] for f in part} for part in parts]
    assert all(paths) and not (paths[0] & paths[1] or paths[1] & paths[2] or paths[0] & paths[2])
    key = lambda f: (f["path"], f["line"], f["column"])  # noqa: E731
    merged = sorted((f for part in parts for f in part), key=key)
    assert merged == sorted(json.loads(full)["findings"], key=key)


@pytest.mark.parametrize("bad", ["0/2", "3/2", "1/0", "x", "1/2/3"])
def test_a_bad_shard_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str], bad: str) -> None:
    code, _, err = cli(capsys, "scan", "--shard", bad)
    assert code == 2 and "--shard" in err


def test_shard_membership_depends_only_on_the_path() -> None:
    shards = [Shard(k, 4) for k in range(1, 5)]
    for name in ("a.py", "pkg/b.py", "deep/er/c.py"):
        assert sum(s.holds(name) for s in shards) == 1
    assert Shard.parse("2/4") == Shard(2, 4) and str(Shard(2, 4)) == "2/4"


# --------------------------------------------------------------------- file selection


def names(root: Path, selection: Optional[Selection] = None) -> List[str]:
    return [c.display for c in discover(["."], selection or Selection())]


def test_gitignore_files_are_honoured_with_gits_precedence(project: Path) -> None:
    (project / ".git").mkdir()
    (project / ".gitignore").write_text("gen/\n*_pb2.py\n!keep_pb2.py\n/top.py\n")
    for name in (
        "a.py",
        "top.py",
        "x_pb2.py",
        "keep_pb2.py",
        "gen/g.py",
        "sub/top.py",
        "sub/y.py",
        "sub/z.py",
    ):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_bytes(CLEAN)
    (project / "sub" / ".gitignore").write_text("y.py\n")
    assert names(project) == ["a.py", "keep_pb2.py", "sub/top.py", "sub/z.py"]
    assert len(names(project, Selection(gitignore=False))) == 8
    # scanning a sub-folder still obeys the .gitignore files above it, up to the repository's top
    os.chdir(project / "sub")
    assert [c.display for c in discover(["."], Selection())] == ["top.py", "z.py"]


def test_symlinks_stubs_and_generated_files_are_skipped(
    project: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "far.py").write_bytes(JOB)
    (project / "real.py").write_bytes(JOB)
    (project / "link_out").symlink_to(outside, target_is_directory=True)
    (project / "link_file.py").symlink_to(outside / "far.py")
    (project / "link_in.py").symlink_to(project / "real.py")
    (project / "stub.pyi").write_bytes(JOB)
    (project / "gen.py").write_bytes(b"# @generated by a tool\n" + JOB)
    (project / "late.py").write_bytes(JOB + b"#" * 3000 + b"\n# @generated\n")  # not in the header
    assert names(project) == ["gen.py", "late.py", "real.py"]
    code, out, err = cli(capsys, "scan", "--no-cache", "--format", "json")
    assert [f["path"] for f in json.loads(out)["findings"]] == ["late.py", "real.py"]
    assert "skipped 1 file marked @generated" in err
    _, out, _ = cli(capsys, "scan", "--no-cache", "--format", "json", "--include-generated", "stub.pyi", ".")
    assert [f["path"] for f in json.loads(out)["findings"]] == ["gen.py", "late.py", "real.py"]


def test_exclude_globs_still_apply(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree(project, 14)
    code, out, _ = cli(
        capsys, "scan", "--no-cache", "--format", "json", "--exclude", "pkg1", "--exclude", "*_00*"
    )
    paths = {f["path"] for f in json.loads(out)["findings"]}
    assert paths and not any(p.startswith("pkg1/") or "_00" in p for p in paths)


# ------------------------------------------------------------------ progress and quiet


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only_and_never_with_quiet(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tree(project, 10)
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "_INTERVAL", 0.0)
    monkeypatch.delenv("TERM", raising=False)
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    main(["scan", "--no-cache", "-j", "1"])
    drawn = screen.getvalue()
    assert "checkpointify" in drawn and "10/10" in drawn  # the bar: files done of found
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    main(["scan", "--no-cache", "-j", "1", "--quiet"])
    assert quiet.getvalue() == ""  # no bar, no summary
    assert "CKP001" in capsys.readouterr().out  # the findings themselves are data: still printed


def test_no_progress_bar_on_a_pipe(project: Path) -> None:
    tree(project, 10)
    done = subprocess_cli(project, "scan", "--no-cache", ".")
    assert "\x1b[" not in done.stderr and done.stderr.startswith("Found 10 findings")


def test_quiet_keeps_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "broken.py").write_bytes(b"for x in (:\n    save(x)\n")
    code, _, err = cli(capsys, "scan", "-q")
    assert code == 1 and err.startswith("broken.py: error: syntax error") and "Found" not in err


def test_jobs_defaults_to_the_cores_available() -> None:
    from checkpointify.engine.pool import default_jobs

    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_jobs() == expected
