"""Input that used to be ignored silently, hang the run or crash it: each is now a clear
one-line error (or a documented skip) and nothing in the tree changes.

Permission cases run as a real second user (root reads everything); FIFOs and symbolic
link loops are real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

import pytest

from checkpointify.cli import main
from tests.support.programs import SCRIPT
from tests.support.users import other_user, run_cli_as

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions, FIFOs and symlinks")


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run(args: List[str], capsys: pytest.CaptureFixture[str]) -> "tuple[int, str, str]":
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------- configuration


def test_a_malformed_pyproject_is_an_error_naming_file_and_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.checkpointify\nexclude = ["job.py"]\n'
    )
    (project / "job.py").write_bytes(SCRIPT)
    code, _, err = run(["fix", "job.py"], capsys)
    assert code == 2
    assert "pyproject.toml:3:20: invalid TOML: Expected ']' at the end of a table declaration" in err
    assert (project / "job.py").read_bytes() == SCRIPT


def test_configuration_comes_from_the_files_project_not_the_working_directory(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proj = project / "proj"
    (proj / "legacy").mkdir(parents=True)
    (proj / "pyproject.toml").write_text('[tool.checkpointify]\nexclude = ["legacy/*", "vendored.py"]\n')
    for name in ("legacy/old.py", "vendored.py", "new.py"):
        (proj / name).write_bytes(SCRIPT)
    code, _, err = run(["fix", "--no-cache", "proj"], capsys)
    assert code == 0 and "rewrote 1 loop in 1 file" in err
    assert (proj / "legacy" / "old.py").read_bytes() == SCRIPT and (
        proj / "vendored.py"
    ).read_bytes() == SCRIPT
    assert b"checkpoint(" in (proj / "new.py").read_bytes()
    # the same from inside the project
    os.chdir(proj)
    assert run(["scan", "--no-cache", "."], capsys)[0] == 0


# -------------------------------------------------------------- what a walk reports


@POSIX
def test_an_unreadable_folder_in_the_tree_is_an_error_not_a_clean_run() -> None:
    user = other_user()
    top = Path(tempfile.mkdtemp(prefix="checkpointify-inputs-"))
    try:
        os.chmod(top, 0o777)
        (top / "ok.py").write_bytes(b"x = 1\n")
        secret = top / "secret"
        secret.mkdir(mode=0o700)  # root's: the second user cannot list it
        (secret / "job.py").write_bytes(SCRIPT)
        done = run_cli_as(user, ["scan", "--no-cache", "."], str(top))
        assert done.returncode == 1, done.stderr
        assert (
            "secret: error: cannot read folder: Permission denied; its files were not checked" in done.stderr
        )
        assert "1 file could not be processed" in done.stderr
    finally:
        shutil.rmtree(top)


@POSIX
def test_an_unreadable_file_named_is_a_per_file_error_and_the_others_are_processed() -> None:
    user = other_user()
    top = Path(tempfile.mkdtemp(prefix="checkpointify-inputs-"))
    try:
        os.chmod(top, 0o777)
        (top / "a.py").write_bytes(SCRIPT)
        (top / "c.py").write_bytes(SCRIPT)
        os.chmod(top / "a.py", 0o644)
        os.chmod(top / "c.py", 0o600)  # root's
        done = run_cli_as(user, ["scan", "--no-cache", "a.py", "c.py"], str(top))
        assert done.returncode == 1, done.stderr
        assert "c.py: error: cannot read: Permission denied" in done.stderr
        assert "a.py:" in done.stdout and "CKP001" in done.stdout
    finally:
        shutil.rmtree(top)


def test_a_folder_without_python_files_says_so(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "docs").mkdir()
    (project / "docs" / "index.md").write_text("# hi\n")
    code, _, err = run(["scan", "docs"], capsys)
    assert code == 0 and "checkpointify: warning: no Python files found in docs" in err
    assert "No collect-then-save loops" not in err


def test_a_named_notebook_is_read_not_skipped(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "analysis.ipynb").write_text(
        '{"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}'
    )
    code, _, err = run(["fix", "analysis.ipynb"], capsys)
    assert code == 0 and "error" not in err


# ------------------------------------------------------------------ hangs and crashes


@POSIX
def test_a_named_fifo_is_refused_instead_of_read_forever(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(project / "job.py")
    (project / "other.py").write_bytes(SCRIPT)
    opened: List[bool] = []

    def unblock() -> None:  # if the run ever opens the FIFO, this writer lets it go on
        try:
            fd = os.open(project / "job.py", os.O_WRONLY | os.O_NONBLOCK)
            opened.append(True)
            os.close(fd)
        except OSError:
            pass

    code, _, err = run(["scan", "--no-cache", "job.py", "other.py"], capsys)
    unblock()
    assert code == 1 and "job.py: error: not a regular file (a FIFO); not read" in err
    assert opened == []  # nobody had it open for reading: the run never did


@POSIX
def test_a_named_symlink_loop_is_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.symlink("b.py", project / "a.py")
    os.symlink("a.py", project / "b.py")
    code, _, err = run(["scan", "a.py"], capsys)
    assert code == 1 and "a.py: error: cannot read: Too many levels of symbolic links" in err
    assert "Traceback" not in err and len([line for line in err.splitlines() if "error" in line]) == 1


def test_many_loops_over_the_same_name_get_names_without_limit(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    block = 'results = []\nfor item in range(10):\n    results.append(work(item))\njson.dump(results, open("o%d", "w"))\n\n'
    (project / "many.py").write_text("import json\n\n" + "".join(block % i for i in range(130)))
    code, _, err = run(["fix", "--no-cache", "--timeout", "900", "many.py"], capsys)
    assert code == 0 and "rewrote 130 loops in 1 file" in err
    text = (project / "many.py").read_text()
    assert "results_ckpt129 = checkpoint(" in text
    compile(text, "many.py", "exec")


def test_brackets_cpython_rejects_are_a_syntax_error_not_an_internal_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = "[" * 2000 + "]" * 2000
    (project / "deep.py").write_text(
        "import json\nr = []\nfor x in y:\n    r.append(%s)\njson.dump(r, f)\n" % deep
    )
    code, _, err = run(["scan", "--no-cache", "deep.py"], capsys)
    assert code == 1 and "deep.py: error: syntax error at line 4, column " in err
    assert "too many nested parentheses" in err and "internal error" not in err


def test_a_nul_byte_is_reported_at_its_real_position(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "nul.py").write_bytes(
        b"import json\nr = []\nfor x in y:\n    r.append(x)  # a\0b\njson.dump(r, f)\n"
    )
    code, _, err = run(["scan", "--no-cache", "nul.py"], capsys)
    assert (
        code == 1
        and "nul.py: error: syntax error at line 4, column 21: source code cannot contain null bytes" in err
    )


# -------------------------------------------------------------------------- memory


def test_a_file_over_the_size_limit_is_reported_and_skipped(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "job.py").write_bytes(SCRIPT + b"#" * 20000 + b"\n")
    before = snapshot(project)
    code, _, err = run(["fix", "--no-cache", "--max-file-size", "16K", "job.py"], capsys)
    assert code == 1
    assert "job.py: error: not analysed: 19.7 KB is larger than the limit of 16.0 KB" in err
    assert snapshot(project) == before
    (project / "pyproject.toml").write_text('[tool.checkpointify]\nmax-file-size = "1MB"\n')
    assert run(["fix", "--no-cache", "job.py"], capsys)[0] == 0


def test_a_worker_over_its_memory_limit_fails_alone(project: Path) -> None:
    pytest.importorskip("resource")
    block = b'results = []\nfor item in range(10):\n    results.append(work(item))\njson.dump(results, open("o", "w"))\n\n'
    (project / "big.py").write_bytes(
        b"import json\n" + block * 10000
    )  # ~1 MB: far more than 300 MB to analyse
    (project / "job.py").write_bytes(SCRIPT)
    # a fresh process, as a user runs it: RLIMIT_AS counts what a forked worker inherits
    done = subprocess.run(
        [sys.executable, "-m", "checkpointify", "scan", "--no-cache", "-j", "1", "--timeout", "900"]
        + ["--max-memory", "300MB", "big.py", "job.py"],
        cwd=project,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src")),
        capture_output=True,
        text=True,
    )
    assert done.returncode in (1, 3), done.stderr
    assert "big.py: error:" in done.stderr and "--max-memory" in done.stderr
    assert "job.py: error" not in done.stderr and "job.py:" in done.stdout  # the next file still analysed


def test_the_size_limit_counts_a_notebooks_code_not_its_outputs(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A notebook weighs its images and tables; LibCST parses only its code cells."""
    import json

    cell = {
        "cell_type": "code",
        "execution_count": 1,
        "id": "c1",
        "metadata": {},
        "outputs": [{"output_type": "stream", "name": "stdout", "text": ["x" * 100 + "\n"] * 400}],
        "source": ["total = sum(range(10))\n", "print(total)"],
    }
    book = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (project / "report.ipynb").write_text(json.dumps(book))
    assert (project / "report.ipynb").stat().st_size > 32 * 1024
    code, _, err = run(["scan", "--no-cache", "--max-file-size", "16K", "report.ipynb"], capsys)
    assert code == 0 and "larger than the limit" not in err
    (project / "big.py").write_text("x = 1\n" * 4000)
    code, _, err = run(["scan", "--no-cache", "--max-file-size", "16K", "big.py"], capsys)
    assert code == 1 and "larger than the limit" in err
