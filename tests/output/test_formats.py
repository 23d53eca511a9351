"""scan's machine formats: SARIF (schema-validated, fixes applied back), GitHub, JUnit, statistics."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import jsonschema
import pytest

from checkpointify.cli import main
from checkpointify.output.formats import github_annotations, statistics, statistics_text
from checkpointify.output.sarif import replacements
from checkpointify.rules import HAZARDS
from checkpointify.types import FileResult, Finding, Hazard, Safety
from tests.support.fixture_cases import cases
from tests.support.programs import BROKEN, JOB, NO_FIX, UNSAFE

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schemas" / "sarif-2.1.0-rtm.5.json").read_text())


def scan(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> Tuple[int, str, str]:
    code = main(["scan", "-j", "1", *args])
    out, err = capsysbinary.readouterr()
    return code, out.decode("utf-8"), err.decode("utf-8")


def validate_sarif(document: Dict[str, Any]) -> None:
    validator = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join("%s: %s" % (list(e.path), e.message) for e in errors[:5])


def apply_replacements(text: str, changes: List[Dict[str, Any]]) -> str:
    """Apply SARIF replacements (line/column regions, columns in code points) to ``text``."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def offset(line: int, column: int) -> int:
        return starts[line - 1] + column - 1 if line <= len(starts) else len(text)

    edits = []
    for change in changes:
        region = change["deletedRegion"]
        start = offset(region["startLine"], region.get("startColumn", 1))
        end = offset(region["endLine"], region["endColumn"])
        edits.append((start, end, change["insertedContent"]["text"]))
    for start, end, new in sorted(edits, reverse=True):
        assert 0 <= start <= end <= len(text)
        text = text[:start] + new + text[end:]
    return text


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------------------ sarif


def test_the_schema_check_catches_a_broken_log() -> None:
    """A control: the validator really reads the schema (a bad region is rejected)."""
    bad = {
        "version": "2.1.0",
        "runs": [
            {"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}, "level": "loud"}]}
        ],
    }
    with pytest.raises(AssertionError):
        validate_sarif(bad)


def test_sarif_is_valid_and_carries_rules_results_fixes_and_errors(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    (project / "pkg").mkdir()
    (project / "pkg" / "job one.py").write_bytes(JOB)
    (project / "unsafe.py").write_bytes(UNSAFE)
    (project / "nofix.py").write_bytes(NO_FIX)
    (project / "broken.py").write_bytes(BROKEN)
    code, out, err = scan(capsysbinary, "--format", "sarif")
    assert code == 1 and "broken.py: error: syntax error" in err
    document = json.loads(out)
    validate_sarif(document)
    [run] = document["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "checkpointify" and driver["informationUri"].startswith("https://")
    assert [r["id"] for r in driver["rules"]] == ["CKP001", "CKP002", "CKP003"]
    rule = driver["rules"][0]
    headings = re.findall(r"^#+ .*$", rule["help"]["markdown"], re.M)
    assert "## Why is this bad?" not in headings  # demoted under each variant's own heading
    assert (
        "### Why is this bad?" in rule["help"]["markdown"]
        and "`collect-comprehension`" in rule["help"]["markdown"]
    )
    assert all("`%s`" % h.value in rule["help"]["markdown"] for h in Hazard)
    assert run["columnKind"] == "unicodeCodePoints"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.resolve().as_uri() + "/"

    by_uri = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]: r for r in run["results"]}
    assert set(by_uri) == {"pkg/job%20one.py", "unsafe.py", "nofix.py"}
    seed = by_uri["pkg/job%20one.py"]
    location = seed["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
    assert location["region"] == {"startLine": 6, "startColumn": 1, "endLine": 7}
    assert seed["ruleId"] == "CKP001" and seed["level"] == "warning"
    assert seed["properties"] == {
        "variant": "collect-loop",
        "accumulators": ["results"],
        "sink": "json.dump",
        "hazards": [],
        "fixSafety": "safe",
    }
    [fix] = seed["fixes"]
    assert fix["properties"] == {"safety": "safe"}
    [change] = fix["artifactChanges"]
    assert len(change["replacements"]) == 3  # the import, the loop head, the completion
    fixed = apply_replacements(JOB.decode(), change["replacements"])
    assert main(["fix", "pkg/job one.py"]) == 0  # the file's only finding: the same as `fix`
    assert fixed == (project / "pkg" / "job one.py").read_text()

    unsafe = by_uri["unsafe.py"]
    assert unsafe["properties"]["hazards"] == ["unordered-iterable"]
    assert unsafe["properties"]["fixSafety"] == "unsafe"
    assert unsafe["fixes"][0]["properties"] == {"safety": "unsafe"}
    assert "unordered-iterable" in unsafe["fixes"][0]["description"]["text"]
    nofix = by_uri["nofix.py"]
    assert nofix["properties"]["fixSafety"] is None and "fixes" not in nofix

    [invocation] = run["invocations"]
    assert invocation["executionSuccessful"] is True
    [note] = invocation["toolExecutionNotifications"]
    assert note["level"] == "error" and note["message"]["text"].startswith("syntax error at line 1")
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "broken.py"


def test_sarif_fix_of_each_fixture_finding_reproduces_its_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Applying a result's replacements to the original gives that finding's rewrite; for a
    file whose only finding has a safe fix, that is exactly the fixture's expected.py."""
    monkeypatch.chdir(tmp_path)
    single: Dict[str, bytes] = {}
    newer: Set[str] = set()
    for case in cases():
        if case.meta.get("unsafe_fixes"):
            continue
        folder = tmp_path / case.path.parent.name / case.path.name
        folder.mkdir(parents=True)
        (folder / "pyproject.toml").write_text("[project]\nname = 'case'\n")
        name = "input" + case.suffix  # notebooks too: their fixes are replacements on the JSON lines
        shutil.copy(case.path / name, folder / name)
        if case.newer_syntax:
            newer.add("%s/%s/%s" % (case.path.parent.name, case.path.name, name))
        if len(case.expected_findings) == 1 and case.rewrites:
            single["%s/%s/%s" % (case.path.parent.name, case.path.name, name)] = case.expected
    code, out, _ = scan(capsysbinary, "--format", "sarif")
    assert code == 1
    document = json.loads(out)
    validate_sarif(document)
    results = document["runs"][0]["results"]
    with_fix = [r for r in results if "fixes" in r]
    assert len(with_fix) >= 30
    checked = 0
    for result in with_fix:
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        original = (tmp_path / uri).read_bytes().decode("utf-8")
        fixed = apply_replacements(original, result["fixes"][0]["artifactChanges"][0]["replacements"])
        if (
            uri.endswith(".py") and uri not in newer
        ):  # newer syntax: test_fixtures compiles it with its Python
            compile(fixed, uri, "exec")
        # CKP003 rewrites store nothing; row-apply rewrites open checkpoint_rows(...); coroutines
        # appending to a shared list open shared_appends(...)
        assert any(
            word in fixed
            for word in (
                "checkpoint(",
                "checkpoint_rows(",
                "acknowledge_each(",
                "parallel(",
                "shared_appends(",
            )
        )
        if uri in single:
            assert fixed.encode("utf-8") == single[uri], uri
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize(
    "old, new",
    [
        (b"a\nb\nc\n", b"a\nX\nb\nc\nY\n"),  # insertions, one at the very end
        (b"a\r\nb\r\nc\r\n", b"I\r\na\r\nB\r\nc\r\n"),  # CRLF kept in the inserted text
        (b"a\nb\nc", b"a\nb\nc\nd"),  # no final newline: the region ends at the end of the last line
        (b"a\nb", b"Z\na\nb"),
        (b"# coding: latin-1\nx = '\xe9'\ny = 1\n", b"# coding: latin-1\nx = '\xe9'\nz = '\xe0'\ny = 1\n"),
        (b"x = '\xc3\xa9t\xc3\xa9'\ny = 1\n", b"x = '\xc3\xa9t\xc3\xa9'\ny = 2\n"),
    ],
    ids=["lf", "crlf", "no-final-newline", "prepend", "latin-1", "utf-8"],
)
def test_replacements_rebuild_the_new_text(old: bytes, new: bytes) -> None:
    encoding = "latin-1" if b"latin-1" in old else "utf-8"
    text = apply_replacements(old.decode(encoding), replacements(old, new))
    assert text.encode(encoding) == new


def test_sarif_from_stdin_has_fixes_for_the_named_file(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    monkeypatch.setattr("sys.stdin", _Stdin(JOB))
    code, out, _ = scan(capsysbinary, "--format", "sarif", "--stdin-filename", "src/job.py", "-")
    assert code == 1
    document = json.loads(out)
    validate_sarif(document)
    [result] = document["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/job.py"
    fixed = apply_replacements(JOB.decode(), result["fixes"][0]["artifactChanges"][0]["replacements"])
    assert '"src/job.py::<module>::results"' in fixed


class _Stdin:
    def __init__(self, data: bytes) -> None:
        import io

        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


# ----------------------------------------------------------------------------- github

ANNOTATION = re.compile(
    r"^::warning file=(?P<file>[^,]+),line=(?P<line>\d+),col=(?P<col>\d+),endLine=(?P<end>\d+),"
    r"title=(?P<title>CKP\d{3})::(?P<message>.+)$"
)


def test_github_annotations(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    (project / "job.py").write_bytes(JOB)
    (project / "unsafe.py").write_bytes(UNSAFE)
    (project / "broken.py").write_bytes(BROKEN)
    code, out, _ = scan(capsysbinary, "--format", "github")
    assert code == 1
    lines = out.splitlines()
    assert (
        lines[0]
        == "::error file=broken.py,title=checkpointify::syntax error at line 1, column 11: invalid syntax"
    )
    job, unsafe = [ANNOTATION.match(line) for line in lines[1:]]
    assert job is not None and unsafe is not None
    assert job.group("file", "line", "col", "end", "title") == ("job.py", "6", "1", "7", "CKP001")
    assert job.group("message") == (
        "`results` is collected in this loop and saved only after it by json.dump(); "
        "a crash before the save loses every completed unit%0Afix: safe (applied by `checkpointify fix`)"
    )
    assert "%0Ahazard unordered-iterable: " in unsafe.group("message")
    assert unsafe.group("message").endswith("%0Afix: unsafe (applied by `checkpointify fix --unsafe-fixes`)")


def test_github_escapes_per_the_workflow_command_rules() -> None:
    finding = Finding(
        code="CKP001",
        variant="collect-loop",
        path="a,b:c%d.py",
        line=3,
        column=2,
        end_line=4,
        accumulators=("r",),
        sink="save",
        hazards=(Hazard.SIDE_EFFECTS,),
        fix=Safety.UNSAFE,
        message="100% lost: a, b\r\nc",
        fix_note="posts, deletes",
    )
    error = FileResult("x:y,z.py", error="bad\nthing 50%", internal=True)
    out = github_annotations([FileResult(finding.path, findings=(finding,)), error])
    first, second = out.splitlines()
    assert first.startswith("::warning file=a%2Cb%3Ac%25d.py,line=3,col=2,endLine=4,title=CKP001::")
    assert first.endswith(
        "::100%25 lost: a, b%0D%0Ac%0Ahazard side-effects: posts, deletes%0Afix: unsafe (applied by `checkpointify fix --unsafe-fixes`)"
    )
    assert second == "::error file=x%3Ay%2Cz.py,title=checkpointify internal error::bad%0Athing 50%25"


# ------------------------------------------------------------------------------ junit


def test_junit_one_testcase_per_file(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    (project / "job.py").write_bytes(JOB)
    (project / "clean.py").write_bytes(b"x = 1\n")
    (project / "unsafe.py").write_bytes(UNSAFE)
    (project / "broken.py").write_bytes(BROKEN)
    code, out, _ = scan(capsysbinary, "--format", "junit")
    assert code == 1
    root = ET.fromstring(out.encode("utf-8"))
    assert root.tag == "testsuites"
    [suite] = list(root)
    assert suite.tag == "testsuite" and suite.get("name") == "checkpointify"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "2", "1")
    cases_by_name = {case.get("name"): case for case in suite.findall("testcase")}
    assert sorted(str(name) for name in cases_by_name) == ["broken.py", "clean.py", "job.py", "unsafe.py"]
    assert list(cases_by_name["clean.py"]) == []
    [failure] = cases_by_name["job.py"].findall("failure")
    assert failure.get("type") == "CKP001" and failure.get("line") == "6"
    assert (failure.get("message") or "").startswith("job.py:6:1: CKP001 `results` is collected")
    assert "fix: safe" in (failure.text or "")
    assert "hazard unordered-iterable" in (cases_by_name["unsafe.py"].find("failure").text or "")  # type: ignore[union-attr]
    [error] = cases_by_name["broken.py"].findall("error")
    assert error.get("type") == "unprocessable-file" and "syntax error" in (error.get("message") or "")


# ------------------------------------------------------------------------- statistics


def test_statistics_replace_the_listing(project: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    (project / "job.py").write_bytes(JOB)
    (project / "job2.py").write_bytes(JOB)
    (project / "unsafe.py").write_bytes(UNSAFE)
    (project / "nofix.py").write_bytes(NO_FIX)
    code, out, err = scan(capsysbinary, "--statistics")
    assert code == 1 and "Found 4 findings in 4 files" in err
    assert out.splitlines() == [
        "count  kind    name                 description",
        "    4  code    CKP001               results are collected in a loop or comprehension and saved only after it",
        "    1  hazard  accumulator-mutated  %s" % HAZARDS[Hazard.ACCUMULATOR_MUTATED].title,
        "    1  hazard  unordered-iterable   %s" % HAZARDS[Hazard.UNORDERED_ITERABLE].title,
        "    2  fix     safe                 applied by `checkpointify fix`",
        "    1  fix     unsafe               applied by `checkpointify fix --unsafe-fixes`",
        "    1  fix     none                 no fix offered: rewrite by hand",
    ]


def test_statistics_of_a_clean_tree_has_only_fix_rows() -> None:
    rows = statistics([FileResult("a.py")])
    assert [(r.kind, r.name, r.count) for r in rows] == [
        ("fix", "safe", 0),
        ("fix", "unsafe", 0),
        ("fix", "none", 0),
    ]
    assert statistics_text(rows).splitlines()[0].split() == ["count", "kind", "name", "description"]


def test_statistics_with_a_data_format_is_a_usage_error(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, err = scan(capsysbinary, "--statistics", "--format", "json")
    assert (code, out) == (2, "") and "--statistics" in err


def test_sarif_fingerprints_are_distinct_and_survive_edits_above(
    project: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    twice = b"import json\n\nr = []\nfor x in a:\n    r.append(f(x))\njson.dump(r, o1)\n\nr = []\nfor x in b:\n    r.append(f(x))\njson.dump(r, o2)\n"

    def prints() -> List[str]:
        document = json.loads(scan(capsysbinary, "--format", "sarif", "job.py")[1])
        return [r["partialFingerprints"]["checkpointify/v1"] for r in document["runs"][0]["results"]]

    (project / "job.py").write_bytes(twice)
    first = prints()
    assert len(first) == 2 and len(set(first)) == 2
    (project / "job.py").write_bytes(b"# a comment moves everything down\n" + twice)
    assert prints() == first


def test_sarif_outside_the_working_directory_uses_file_uris(
    project: Path, tmp_path_factory: pytest.TempPathFactory, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "job #1.py"
    elsewhere.write_bytes(JOB)
    code, out, _ = scan(capsysbinary, "--format", "sarif", str(elsewhere))
    assert code == 1
    document = json.loads(out)
    validate_sarif(document)
    [result] = document["runs"][0]["results"]
    location = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location == {"uri": elsewhere.as_uri()} and "%231.py" in location["uri"]
    assert result["fixes"][0]["artifactChanges"][0]["artifactLocation"] == location
