"""Editors and bots: `-` with --stdin-filename, --output files, and the patch `git apply` takes."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Tuple

import pytest

from checkpointify.cli import main
from tests.support.programs import CLEAN, JOB


class FakeStdin:
    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def piped(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes], data: bytes, *args: str
) -> Tuple[int, bytes, str]:
    monkeypatch.setattr("sys.stdin", FakeStdin(data))
    code = main(list(args))
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def fixed_on_disk(project: Path, capsysbinary: pytest.CaptureFixture[bytes], name: str, data: bytes) -> bytes:
    path = project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    main(["fix", "-j", "1", name])
    capsysbinary.readouterr()
    fixed = path.read_bytes()
    path.unlink()
    return fixed


# ------------------------------------------------------------------------------ stdin


@pytest.mark.parametrize(
    "source",
    [
        JOB,
        JOB.replace(b"\n", b"\r\n"),
        b"\xef\xbb\xbf" + JOB,
        b"# -*- coding: latin-1 -*-\n# r\xe9sultats\n" + JOB,
        JOB.rstrip(b"\n"),
    ],
    ids=["lf", "crlf", "bom", "latin-1", "no-final-newline"],
)
def test_fix_stdin_writes_exactly_what_fix_writes_to_the_file(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
    source: bytes,
) -> None:
    expected = fixed_on_disk(project, capsysbinary, "src/job.py", source)
    assert expected != source
    code, out, err = piped(monkeypatch, capsysbinary, source, "fix", "-", "--stdin-filename", "src/job.py")
    assert code == 0 and out == expected
    assert b'"src/job.py::<module>::results"' in out
    assert "rewrote 1 loop in 1 file" in err
    assert not (project / "src" / "job.py").exists()  # nothing was written to disk


@pytest.mark.parametrize(
    "source", [CLEAN, CLEAN.replace(b"\n", b"\r\n"), b"", b"x = 1"], ids=["lf", "crlf", "empty", "no-newline"]
)
def test_fix_stdin_with_nothing_to_fix_echoes_the_input(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes], source: bytes
) -> None:
    code, out, _ = piped(monkeypatch, capsysbinary, source, "fix", "-", "--stdin-filename", "lib.py")
    assert (code, out) == (0, source)


def test_fix_stdin_with_a_syntax_error_echoes_the_input_and_fails(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    source = b"def broken(:\n" + JOB
    code, out, err = piped(monkeypatch, capsysbinary, source, "fix", "-", "--stdin-filename", "bad.py")
    assert (code, out) == (1, source)
    assert "bad.py: error: syntax error at line 1" in err


def test_fix_stdin_exit_non_zero_on_fix(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    args = ("fix", "-", "--stdin-filename", "job.py", "--exit-non-zero-on-fix")
    assert piped(monkeypatch, capsysbinary, JOB, *args)[0] == 1
    assert piped(monkeypatch, capsysbinary, CLEAN, *args)[0] == 0


def test_scan_stdin_names_the_file(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, _ = piped(
        monkeypatch, capsysbinary, JOB, "scan", "--format", "json", "--stdin-filename", "pkg/job.py", "-"
    )
    assert code == 1
    [finding] = json.loads(out)["findings"]
    assert (finding["path"], finding["line"]) == ("pkg/job.py", 6)
    code, out, _ = piped(monkeypatch, capsysbinary, JOB, "scan", "-")
    assert code == 1 and out.startswith(b"<stdin>:6:1: CKP001 ")
    code, out, _ = piped(monkeypatch, capsysbinary, CLEAN, "scan", "-")
    assert (code, out) == (0, b"")


def test_diff_stdin_is_a_patch_for_the_named_file(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    (project / "job.py").write_bytes(JOB)
    subprocess.run(["git", "init", "-q"], check=True)
    code, out, _ = piped(monkeypatch, capsysbinary, JOB, "diff", "--stdin-filename", "job.py")
    assert code == 1 and out.startswith(b"--- a/job.py\n+++ b/job.py\n@@ ")
    (project / "p.diff").write_bytes(out)
    subprocess.run(["git", "apply", "--check", "p.diff"], check=True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["fix", "-"], "needs --stdin-filename"),
        (["diff", "-"], "needs --stdin-filename"),
        (["scan", "-", "other.py"], "must be the only path"),
        (["scan", "--stdin-filename", "a.py", "b.py"], "needs the path `-`"),
        (["fix", "--interactive", "-", "--stdin-filename", "a.py"], "cannot read the file from stdin"),
    ],
)
def test_stdin_usage_errors(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
    args: list,
    message: str,
) -> None:
    code, out, err = piped(monkeypatch, capsysbinary, JOB, *args)
    assert (code, out) == (2, b"") and message in err and err.startswith("checkpointify: error: ")


# ----------------------------------------------------------------------------- output


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github", "junit", "statistics"])
def test_scan_output_file_holds_what_stdout_would(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes], fmt: str
) -> None:
    (project / "job.py").write_bytes(JOB)
    args = ["scan", "-j", "1"] + (["--statistics"] if fmt == "statistics" else ["--format", fmt])
    assert main(args) == 1
    expected = capsysbinary.readouterr().out
    assert main([*args, "--output", "report.out"]) == 1
    out, err = capsysbinary.readouterr()
    assert out == b"" and "Found 1 finding" in err.decode()
    assert (project / "report.out").read_bytes() == expected
    assert not [p for p in project.iterdir() if "checkpointify-tmp" in p.name]


def test_output_replaces_an_existing_report_and_keeps_its_mode(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    (project / "job.py").write_bytes(JOB)
    report = project / "report.json"
    report.write_text("old")
    report.chmod(0o640)
    assert main(["scan", "--format", "json", "-o", "report.json"]) == 1
    assert json.loads(report.read_text())["findings"][0]["path"] == "job.py"
    assert report.stat().st_mode & 0o777 == 0o640


def test_output_into_a_missing_folder_is_a_usage_error_before_the_run(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    (project / "job.py").write_bytes(JOB)
    assert main(["diff", "--output", "missing/autofix.patch"]) == 2
    out, err = capsysbinary.readouterr()
    assert out == b"" and "folder missing does not exist" in err.decode()
    assert "would rewrite" not in err.decode()  # refused before doing any work


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_diff_output_patch_applies_on_a_clean_checkout(
    project: Path, tmp_path_factory: pytest.TempPathFactory, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """The bot's path: commit, `diff --output autofix.patch`, `git apply --check` in a fresh clone."""
    (project / "pkg").mkdir()
    (project / "pkg" / "job.py").write_bytes(JOB)
    (project / "pkg" / "crlf.py").write_bytes(JOB.replace(b"\n", b"\r\n"))
    (project / "pkg" / "latin.py").write_bytes(b"# -*- coding: latin-1 -*-\n# r\xe9sultats\n" + JOB)
    (project / "tail.py").write_bytes(JOB.rstrip(b"\n"))
    (project / "lib.py").write_bytes(CLEAN)
    (project / ".gitattributes").write_text("*.py -text\n")  # keep CRLF bytes as they are
    git("init", "-q", cwd=project)
    git("add", "-A", cwd=project)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "seed", cwd=project)

    assert main(["diff", "--output", "autofix.patch"]) == 1
    out, err = capsysbinary.readouterr()
    assert out == b"" and "would rewrite 4 loops in 4 files" in err.decode()
    patch = (project / "autofix.patch").read_bytes()
    assert patch.count(b"\n--- a/") + patch.startswith(b"--- a/") == 4

    clone = tmp_path_factory.mktemp("clone") / "checkout"
    git("clone", "-q", str(project), str(clone), cwd=project)
    assert git("status", "--porcelain", cwd=clone) == ""
    git("apply", "--check", str(project / "autofix.patch"), cwd=clone)
    git("apply", str(project / "autofix.patch"), cwd=clone)
    assert sorted(git("diff", "--name-only", cwd=clone).split()) == [
        "pkg/crlf.py",
        "pkg/job.py",
        "pkg/latin.py",
        "tail.py",
    ]
    # the patched checkout is exactly what `fix` produces, and has nothing left to fix
    assert main(["fix"]) == 0
    capsysbinary.readouterr()
    for name in ["pkg/job.py", "pkg/crlf.py", "pkg/latin.py", "tail.py"]:
        assert (clone / name).read_bytes() == (project / name).read_bytes(), name
    assert main(["diff", "--output", "again.patch"]) == 0
    assert (project / "again.patch").read_bytes() == b""  # written, and empty: nothing pending
