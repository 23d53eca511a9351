"""The CLI contract: output of each mode, exit codes, encodings, bad input, interop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import pytest

from checkpointify.cli import main
from tests.support.programs import BROKEN, CLEAN, UNSAFE

REPO = Path(__file__).resolve().parents[2]

SEED = b"""import json

from work import expensive_operation


def save_results(results):
    with open("results.json", "w") as f:
        json.dump(results, f)


results = []
for item in range(10):
    results.append(expensive_operation(item))
save_results(results)
"""


def run_cli(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> Tuple[int, bytes, str]:
    code = main(list(args))
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------- scan


def test_scan_text_reports_path_line_col_code(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    (project / "job.py").write_bytes(SEED)
    code, out, err = run_cli(capsysbinary, "scan", "job.py")
    assert code == 1
    first = out.decode().splitlines()[0]
    assert first.startswith(
        "job.py:12:1: CKP001 `results` is collected in this loop and saved only after it by save_results()"
    )
    assert "fix: safe" in out.decode()
    assert "Found 1 finding in 1 file" in err


def test_scan_clean_tree_exits_zero(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    (project / "lib.py").write_bytes(CLEAN)
    code, out, err = run_cli(capsysbinary, "scan")
    assert (code, out) == (0, b"")
    assert "No collect-then-save loops found in 2 files" not in err  # pyproject.toml is not Python
    assert "No collect-then-save loops found in 1 file" in err


def test_scan_json_contract(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    (project / "job.py").write_bytes(SEED)
    (project / "unsafe.py").write_bytes(UNSAFE)
    (project / "broken.py").write_bytes(BROKEN)
    code, out, _ = run_cli(capsysbinary, "scan", "--format", "json", "-j", "1")
    assert code == 1
    document = json.loads(out)
    assert document["version"] == 1
    assert set(document) == {"version", "findings", "errors"}
    by_path = {f["path"]: f for f in document["findings"]}
    seed = by_path["job.py"]
    assert set(seed) == {
        "path",
        "line",
        "column",
        "end_line",
        "code",
        "message",
        "accumulators",
        "sink",
        "hazards",
        "fix",
    }
    assert (seed["line"], seed["column"], seed["end_line"], seed["code"]) == (
        12,
        1,
        13,
        "CKP001",
    )
    assert seed["accumulators"] == ["results"] and seed["sink"] == "save_results"
    assert seed["hazards"] == [] and seed["fix"] == "safe"
    assert by_path["unsafe.py"]["fix"] == "unsafe"
    assert by_path["unsafe.py"]["hazards"] == ["unordered-iterable"]
    [error] = document["errors"]
    assert error["path"] == "broken.py" and error["message"].startswith("syntax error at line 1, column ")


# --------------------------------------------------------------------------- diff


def test_diff_prints_git_applicable_patch_and_writes_nothing(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    (project / "pkg").mkdir()
    (project / "pkg" / "job.py").write_bytes(SEED)
    (project / "lib.py").write_bytes(CLEAN)
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "add", "-A"], check=True)
    code, out, err = run_cli(capsysbinary, "diff")
    assert code == 1
    assert out.startswith(b"--- a/pkg/job.py\n+++ b/pkg/job.py\n")
    assert (project / "pkg" / "job.py").read_bytes() == SEED
    assert "would rewrite 1 loop in 1 file" in err
    (project / "patch.diff").write_bytes(out)
    subprocess.run(["git", "apply", "--check", "patch.diff"], check=True)
    subprocess.run(["git", "apply", "patch.diff"], check=True)
    code, out, _ = run_cli(capsysbinary, "diff")
    assert (code, out) == (0, b"")


def test_diff_without_changes_exits_zero(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    (project / "lib.py").write_bytes(CLEAN)
    assert run_cli(capsysbinary, "diff")[:2] == (0, b"")


def test_diff_of_file_without_final_newline_applies(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    source = SEED.rstrip(b"\n")
    (project / "job.py").write_bytes(source)
    subprocess.run(["git", "init", "-q"], check=True)
    code, out, _ = run_cli(capsysbinary, "diff", "job.py")
    assert code == 1 and b"\\ No newline at end of file" in out
    (project / "p.diff").write_bytes(out)
    subprocess.run(["git", "apply", "p.diff"], check=True)
    assert run_cli(capsysbinary, "fix", "job.py")[0] == 0
    assert run_cli(capsysbinary, "diff", "job.py")[:2] == (0, b"")


# ---------------------------------------------------------------------------- fix


def test_fix_rewrites_safe_fixes_only_unless_asked(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    (project / "job.py").write_bytes(SEED)
    (project / "unsafe.py").write_bytes(UNSAFE)
    code, out, err = run_cli(capsysbinary, "fix")
    assert (code, out) == (0, b"")
    assert b"ckpt = checkpoint(" in (project / "job.py").read_bytes()
    assert (project / "unsafe.py").read_bytes() == UNSAFE
    assert "rewrote 1 loop in 1 file" in err and "add --unsafe-fixes" in err
    code, _, err = run_cli(capsysbinary, "fix", "--unsafe-fixes")
    assert code == 0 and "rewrote 1 loop in 1 file" in err
    assert b"ckpt = checkpoint(" in (project / "unsafe.py").read_bytes()
    before = {p.name: p.read_bytes() for p in project.glob("*.py")}
    code, _, err = run_cli(capsysbinary, "fix", "--unsafe-fixes")
    assert code == 0 and "rewrote 0 loops in 0 files" in err
    assert {p.name: p.read_bytes() for p in project.glob("*.py")} == before


def test_fix_keeps_file_mode(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    job = project / "job.py"
    job.write_bytes(SEED)
    job.chmod(0o751)
    assert run_cli(capsysbinary, "fix", "job.py")[0] == 0
    assert job.stat().st_mode & 0o777 == 0o751
    assert not [p for p in project.iterdir() if "checkpointify-tmp" in p.name]


def test_crlf_file_round_trips(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    crlf = SEED.replace(b"\n", b"\r\n")
    (project / "job.py").write_bytes(crlf)
    assert run_cli(capsysbinary, "fix", "job.py")[0] == 0
    fixed = (project / "job.py").read_bytes()
    assert b"\n" not in fixed.replace(b"\r\n", b"")
    assert fixed.replace(b"\r\n", b"\n") == (_fixed_lf(project, capsysbinary))
    (project / "clean.py").write_bytes(CLEAN.replace(b"\n", b"\r\n"))
    assert run_cli(capsysbinary, "fix", "clean.py")[0] == 0
    assert (project / "clean.py").read_bytes() == CLEAN.replace(b"\n", b"\r\n")


def _fixed_lf(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> bytes:
    other = project / "lf.py"
    other.write_bytes(SEED)
    main(["fix", "lf.py"])
    capsysbinary.readouterr()
    return other.read_bytes().replace(b"lf.py::", b"job.py::")


def test_latin1_file_round_trips(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    source = b"# -*- coding: latin-1 -*-\n# r\xe9sultats\n" + SEED.replace(
        b"range(10)", b'["caf\xe9", "na\xefve", "s\xfbr", "\xe0", "o\xf9", "l\xe0"]'
    )
    (project / "job.py").write_bytes(source)
    code, out, _ = run_cli(capsysbinary, "diff", "job.py")
    assert code == 1 and b"coding: latin-1" not in out  # only changed lines (and context) appear
    assert run_cli(capsysbinary, "fix", "job.py")[0] == 0
    fixed = (project / "job.py").read_bytes()
    fixed.decode("latin-1")
    assert (
        b'["caf\xe9", "na\xefve", "s\xfbr", "\xe0", "o\xf9", "l\xe0"]' in fixed
        and b"# r\xe9sultats\n" in fixed
    )
    compile(fixed, "job.py", "exec")


def test_bom_is_kept(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    (project / "job.py").write_bytes(b"\xef\xbb\xbf" + SEED)
    assert run_cli(capsysbinary, "fix", "job.py")[0] == 0
    fixed = (project / "job.py").read_bytes()
    assert fixed.startswith(b"\xef\xbb\xbfimport json\n") and fixed.count(b"\xef\xbb\xbf") == 1


# ----------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "content, reason",
    [
        (
            b"def broken(:\n    pass\n",
            "syntax error at line 1, column 12: invalid syntax",
        ),
        (b"x = '\xff\xfe'\n", "not valid utf-8"),
        (b"# -*- coding: klingon -*-\nx = 1\n", "invalid encoding declaration"),
    ],
    ids=["syntax", "undecodable", "unknown-encoding"],
)
def test_bad_file_is_reported_untouched_and_others_still_fixed(
    project: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    content: bytes,
    reason: str,
) -> None:
    (project / "a_bad.py").write_bytes(content + SEED)
    (project / "b_job.py").write_bytes(SEED)
    code, _, err = run_cli(capsysbinary, "fix", "-j", "2")
    assert code == 1
    line = next(row for row in err.splitlines() if row.startswith("a_bad.py"))
    assert line.startswith("a_bad.py: error: ") and reason in line
    assert (project / "a_bad.py").read_bytes() == content + SEED
    assert b"checkpoint(" in (project / "b_job.py").read_bytes()


def test_missing_path_is_an_error(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, _, err = run_cli(capsysbinary, "scan", "nope.py")
    assert code == 1 and "nope.py: error: cannot read" in err


def test_usage_error_exits_two(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, out, err = run_cli(capsysbinary, "scan", "--format", "xml")
    assert code == 2 and out == b"" and "error" in err
    assert run_cli(capsysbinary, "frobnicate")[0] == 2


def test_bad_config_is_a_usage_error(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    (project / "pyproject.toml").write_text("[tool.checkpointify]\nunsafe_fixes = true\n")
    code, _, err = run_cli(capsysbinary, "scan")
    assert code == 2 and "unknown key 'unsafe_fixes'" in err and "pyproject.toml" in err


# ---------------------------------------------------------------------- entry points


def test_module_and_console_script_run(project: Path) -> None:
    (project / "job.py").write_bytes(SEED)
    done = subprocess.run(
        [sys.executable, "-m", "checkpointify", "scan", "--format", "json", "job.py"],
        capture_output=True,
    )
    assert done.returncode == 1 and json.loads(done.stdout)["findings"][0]["path"] == "job.py"
    script = shutil.which("checkpointify", path=os.path.dirname(sys.executable))
    assert script is not None
    version = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "checkpointify" in version.stdout


def test_libcst_tool_command_gives_the_same_rewrite(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    (project / "job.py").write_bytes(SEED)
    (project / "ours.py").write_bytes(SEED)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "libcst.tool",
            "codemod",
            "checkpoint_loops.CheckpointLoopsCommand",
            "--no-format",
            str(project / "job.py"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "Transformed 1 files successfully" in done.stderr
    main(["fix", "ours.py"])
    capsysbinary.readouterr()
    ours = (project / "ours.py").read_bytes().replace(b"ours.py::", b"job.py::")
    assert (project / "job.py").read_bytes() == ours
