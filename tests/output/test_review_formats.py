"""scan --format rdjson (reviewdog) and --format gitlab (GitLab Code Quality): validated against
their schemas (tests/schemas/, written from the published definitions), and every rdjson
suggestion applied back gives exactly what ``fix`` writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import jsonschema
import pytest

from checkpointify.api import process_source
from checkpointify.output.reviewbots import gitlab_document, rdjson_document
from checkpointify.output.sarif import single_fixes
from checkpointify.rules import rule_url
from tests.support.fixture_cases import Case, cases

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tests" / "schemas"
RDJSON = jsonschema.Draft4Validator(json.loads((SCHEMAS / "reviewdog-rdjson.schema.json").read_text()))
GITLAB = jsonschema.Draft4Validator(json.loads((SCHEMAS / "gitlab-code-quality.schema.json").read_text()))

SINGLE = [c for c in cases() if c.rewrites and not c.notebook and len(c.expected_findings) == 1]

JOB = """import json

from scoring import score

results = []
for item in json.load(open("items.json")):
    results.append(score(item))
json.dump(results, open("out.json", "w"))
"""


def apply_suggestions(source: str, suggestions: List[Dict[str, Any]]) -> str:
    """Apply rdjson suggestions (1-based line/column, end exclusive) the way reviewdog does."""
    lines = source.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(position: Dict[str, int]) -> int:
        line = position["line"]
        if line > len(lines):
            return len(source)
        return starts[line - 1] + position.get("column", 1) - 1

    out = source
    for suggestion in sorted(suggestions, key=lambda s: offset(s["range"]["start"]), reverse=True):
        start, end = offset(suggestion["range"]["start"]), offset(suggestion["range"]["end"])
        assert start <= end
        out = out[:start] + suggestion["text"] + out[end:]
    return out


@pytest.mark.parametrize("case", SINGLE, ids=[c.id for c in SINGLE])
def test_rdjson_suggestions_reproduce_the_fix(case: Case) -> None:
    path = str(case.path / "input.py")
    result = process_source(case.source, path, case.options(), rewrite=False)
    fixes = single_fixes([result], case.options(), {path: case.source})
    document = json.loads(rdjson_document([result], fixes, case.options()))
    RDJSON.validate(document)
    [diagnostic] = document["diagnostics"]
    assert diagnostic["code"] == {"value": result.findings[0].code, "url": rule_url(result.findings[0].code)}
    assert diagnostic["location"]["range"]["start"]["line"] == result.findings[0].line
    fixed = apply_suggestions(case.source.decode("utf-8"), diagnostic["suggestions"])
    assert fixed.encode("utf-8") == case.expected


def _scan(tmp_path: Path, output_format: str, *extra: str) -> Any:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "checkpointify",
            "scan",
            "--no-cache",
            "-q",
            "--format",
            output_format,
            *extra,
            ".",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stderr  # findings (and a broken file)
    return json.loads(done.stdout)


def _tree(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(JOB)
    (tmp_path / "b.py").write_text(JOB.replace("results", "rows"))
    (tmp_path / "broken.py").write_text(JOB + "if True\n")  # a syntax error where the screen keeps it


def test_rdjson_from_the_cli_is_valid_and_names_the_broken_file(tmp_path: Path) -> None:
    _tree(tmp_path)
    document = _scan(tmp_path, "rdjson")
    RDJSON.validate(document)
    by_path = {d["location"]["path"]: d for d in document["diagnostics"]}
    assert set(by_path) == {"a.py", "b.py", "broken.py"}
    assert by_path["broken.py"]["severity"] == "ERROR" and "syntax error" in by_path["broken.py"]["message"]
    fixed = apply_suggestions(JOB, by_path["a.py"]["suggestions"])
    assert "ckpt = checkpoint(" in fixed and "from checkpointify.runtime import checkpoint" in fixed


def test_gitlab_from_the_cli_is_valid_with_distinct_fingerprints(tmp_path: Path) -> None:
    _tree(tmp_path)
    issues = _scan(tmp_path, "gitlab")
    GITLAB.validate(issues)
    assert sorted(i["location"]["path"] for i in issues) == ["a.py", "b.py", "broken.py"]
    assert len({i["fingerprint"] for i in issues}) == len(issues)
    loop = next(i for i in issues if i["location"]["path"] == "a.py")
    assert loop["check_name"] == "CKP001" and loop["location"]["lines"]["begin"] == 6
    assert loop["severity"] == "major"


def test_the_schemas_reject_broken_documents() -> None:
    """Controls: the validators really read the schemas."""
    with pytest.raises(jsonschema.ValidationError):
        RDJSON.validate(
            {"diagnostics": [{"message": "m", "location": {"path": "a.py", "range": {"start": {"line": 0}}}}]}
        )
    with pytest.raises(jsonschema.ValidationError):
        RDJSON.validate({"diagnostics": [{"message": "m", "location": {}}]})
    with pytest.raises(jsonschema.ValidationError):
        GITLAB.validate([{"description": "d", "check_name": "c", "fingerprint": "f", "severity": "warning",
                          "location": {"path": "a.py", "lines": {"begin": 1}}}])  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        GITLAB.validate([{"description": "d", "check_name": "c", "fingerprint": "f", "severity": "minor",
                          "location": {"path": "a.py"}}])  # fmt: skip


def test_unsafe_fixes_get_suggestions_only_with_the_flag(tmp_path: Path) -> None:
    unsafe = [c for c in cases() if c.rewrites and not c.notebook and c.meta.get("unsafe_fixes")]
    if not unsafe:
        pytest.skip("no unsafe fixture")
    case = unsafe[0]
    path = str(case.path / "input.py")
    options = case.options()
    result = process_source(case.source, path, options, rewrite=False)
    fixes = single_fixes([result], options, {path: case.source})
    with_flag = json.loads(rdjson_document([result], fixes, options))
    without = json.loads(rdjson_document([result], fixes, type(options)(root=options.root)))
    assert any("suggestions" in d for d in with_flag["diagnostics"])
    assert not any(
        "suggestions" in d
        for d, f in zip(without["diagnostics"], result.findings)
        if f.fix is not None and f.fix.value == "unsafe"
    )
    assert gitlab_document([result]).startswith("[")
