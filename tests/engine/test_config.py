"""[tool.checkpointify] configuration, --exclude, and inline suppression comments."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import pytest

from checkpointify.api import process_source
from checkpointify.cli import main
from checkpointify.types import Options

JOB = """import json

results = []
for item in items:{loop_comment}
    results.append(compute(item))
json.dump(results, open("out.json", "w")){sink_comment}
"""


def findings(source: str, **options: object) -> int:
    result = process_source(source.encode(), "job.py", Options(**options), rewrite=False)  # type: ignore[arg-type]
    assert result.error is None
    return len(result.findings)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "loop_comment, sink_comment, expected",
    [
        ("", "", 1),
        ("  # checkpointify: ignore", "", 0),
        ("", "  # checkpointify: ignore", 0),
        ("  # noqa", "", 0),
        ("", "  # noqa: CKP001", 0),
        ("", "  # NOQA: E501, CKP001", 0),
        ("", "  # noqa: E501", 1),
        ("  # checkpointify: ignore[CKP001]", "", 0),
        ("  # checkpointify: ignore[CKP002]", "", 1),
        ("  # see the noqa: CKP001 docs", "", 1),  # like Ruff: the directive must start the comment
    ],
)
def test_suppression_comments(loop_comment: str, sink_comment: str, expected: int) -> None:
    assert findings(JOB.format(loop_comment=loop_comment, sink_comment=sink_comment)) == expected


def test_suppression_comment_must_be_a_comment() -> None:
    source = JOB.format(loop_comment="", sink_comment="").replace(
        'open("out.json", "w")', 'open("out # noqa: CKP001.json", "w")'
    )
    assert findings(source) == 1


def test_extra_sinks_and_checkpoint_calls() -> None:
    custom = JOB.format(loop_comment="", sink_comment="").replace(
        'json.dump(results, open("out.json", "w"))', "push_to_warehouse(results)"
    )
    assert findings(custom) == 0
    assert findings(custom, extra_sinks=("push_to_warehouse",)) == 1
    marked = JOB.format(loop_comment="", sink_comment="").replace(
        "results.append(compute(item))", "results.append(compute(item))\n    progress.mark(item)"
    )
    assert findings(marked) == 1
    assert findings(marked, extra_checkpoint_calls=("progress.mark",)) == 0


def test_checkpoint_dir_is_written_into_the_rewrite() -> None:
    source = JOB.format(loop_comment="", sink_comment="").encode()
    result = process_source(source, "job.py", Options(checkpoint_dir="/var/lib/job/ckpt"), rewrite=True)
    assert result.new_source is not None
    assert b'directory="/var/lib/job/ckpt"' in result.new_source


def test_runtime_module_is_configurable() -> None:
    source = JOB.format(loop_comment="", sink_comment="").encode()
    result = process_source(source, "job.py", Options(runtime_module="vendored.ckpt_runtime"), rewrite=True)
    assert result.new_source is not None
    assert b"from vendored.ckpt_runtime import checkpoint\n" in result.new_source


def test_pyproject_configuration_and_exclude(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    job = JOB.format(loop_comment="", sink_comment="")
    for rel in ["app/job.py", "legacy/old.py", "app/gen_pb2.py", "tests/test_job.py"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(job)
    (tmp_path / "pyproject.toml").write_text('[tool.checkpointify]\nexclude = ["legacy", "*_pb2.py"]\n')
    code, out, _ = run(capsys, "scan")
    assert code == 1
    assert sorted(line.split(":")[0] for line in out.splitlines() if "CKP001" in line) == [
        "app/job.py",
        "tests/test_job.py",
    ]
    code, out, _ = run(capsys, "scan", "--exclude", "tests/*")
    assert [line.split(":")[0] for line in out.splitlines() if "CKP001" in line] == ["app/job.py"]
    code, out, _ = run(capsys, "scan", "legacy/old.py")
    assert (code, out) == (0, "")


@pytest.mark.parametrize(
    "table, message",
    [
        ("exclude = 'legacy'", "exclude must be a list of strings"),
        ("unsafe-fixes = 'yes'", "unsafe-fixes must be bool"),
        ("runtime-module = 'not a module'", "runtime-module must be a dotted module name"),
        ("colour = true", "unknown key 'colour'"),
        ("checkpoint-dir = 3", "checkpoint-dir must be str"),
    ],
)
def test_invalid_configuration_is_a_usage_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    table: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.checkpointify]\n%s\n" % table)
    code, _, err = run(capsys, "scan")
    assert code == 2 and message in err and "pyproject.toml" in err
