"""Reports for review bots: reviewdog's Diagnostic format (rdjson) and GitLab Code Quality.

``--format rdjson`` is a reviewdog ``DiagnosticResult``
(https://github.com/reviewdog/reviewdog/tree/master/proto/rdf): one diagnostic per
finding with its code, the rule's page and, for a fix ``fix`` would apply, ``suggestions``
carrying the replacement text of each changed range of the rewrite of that finding alone,
so ``reviewdog -f=rdjson -reporter=github-pr-review`` posts them as suggested changes. A
file that could not be processed is an ``ERROR`` diagnostic without a range.

``--format gitlab`` is GitLab's Code Quality report (a subset of the Code Climate spec):
a JSON array of issues with ``description``, ``check_name``, ``fingerprint`` (the same
stable fingerprint as SARIF's), ``severity`` and ``location.path``/``location.lines``.

Both are pure renderers: the per-finding rewrites come in (``fixes``, computed by
:func:`checkpointify.output.sarif.single_fixes`).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from checkpointify.output.sarif import fingerprint, replacements
from checkpointify.rules import REPOSITORY_URL, rule_url
from checkpointify.types import FileResult, Finding, Options, applicable

#: findings are "major" in GitLab's scale (a crash loses every completed unit); a file that
#: could not be analysed is "minor" (nothing is known about it)
FINDING_SEVERITY = "major"
ERROR_SEVERITY = "minor"


def _position(line: int, column: int = 0) -> Dict[str, int]:
    return {"line": line, "column": column} if column else {"line": line}


def _where(finding: Finding) -> Dict[str, Any]:
    """The finding's range in the file as stored (a notebook: the JSON line, no columns)."""
    if finding.cell is not None:
        line = finding.file_line or 1
        return {"start": _position(line), "end": _position(line)}
    return {"start": _position(finding.line, finding.column), "end": _position(finding.end_line)}


def _message(finding: Finding) -> str:
    if finding.cell is not None:
        return "cell %d, line %d: %s" % (finding.cell + 1, finding.line, finding.message)
    return finding.message


def suggestions(rewrite: FileResult) -> List[Dict[str, Any]]:
    """reviewdog suggestions for a rewrite: each changed run of lines, replaced by its new text
    (an insertion is an empty range; rdjson ranges, like SARIF regions, end exclusively)."""
    assert rewrite.source is not None and rewrite.new_source is not None
    out = []
    for change in replacements(rewrite.source, rewrite.new_source):
        region = change["deletedRegion"]
        out.append(
            {
                "range": {
                    "start": {"line": region["startLine"], "column": region["startColumn"]},
                    "end": {"line": region["endLine"], "column": region["endColumn"]},
                },
                "text": change["insertedContent"]["text"],
            }
        )
    return out


def rdjson_document(
    results: Sequence[FileResult], fixes: Mapping[Finding, FileResult], options: Options
) -> str:
    """The reviewdog ``DiagnosticResult`` of a run; suggestions for the fixes ``fix`` would
    apply (safe ones, and unsafe ones with ``--unsafe-fixes``)."""
    diagnostics: List[Dict[str, Any]] = []
    for result in results:
        for finding in result.findings:
            diagnostic: Dict[str, Any] = {
                "message": _message(finding),
                "location": {"path": finding.path, "range": _where(finding)},
                "severity": "WARNING",
                "code": {"value": finding.code, "url": rule_url(finding.code)},
            }
            rewrite = fixes.get(finding)
            if rewrite is not None and rewrite.changed and applicable(finding, options):
                diagnostic["suggestions"] = suggestions(rewrite)
            diagnostics.append(diagnostic)
        if result.error is not None:
            diagnostics.append(
                {"message": result.error, "location": {"path": result.path}, "severity": "ERROR"}
            )
    document = {
        "source": {"name": "checkpointify", "url": REPOSITORY_URL},
        "severity": "WARNING",
        "diagnostics": diagnostics,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def gitlab_document(results: Sequence[FileResult]) -> str:
    """GitLab's Code Quality report of a run (``artifacts: reports: codequality:``)."""
    issues: List[Dict[str, Any]] = []
    seen: Dict[Tuple[str, ...], int] = {}
    for result in results:
        for finding in result.findings:
            key = (finding.path, finding.code, ",".join(finding.accumulators), finding.sink)
            seen[key] = seen.get(key, 0) + 1
            line = finding.file_line if finding.cell is not None and finding.file_line else finding.line
            end = line if finding.cell is not None else finding.end_line
            issues.append(
                {
                    "description": "%s: %s" % (finding.code, _message(finding)),
                    "check_name": finding.code,
                    "fingerprint": fingerprint(finding, seen[key]),
                    "severity": FINDING_SEVERITY,
                    "location": {"path": finding.path, "lines": {"begin": line, "end": end}},
                }
            )
        if result.error is not None:
            issues.append(
                {
                    "description": "checkpointify could not process this file: %s" % result.error,
                    "check_name": "checkpointify-error",
                    "fingerprint": fingerprint(
                        Finding("error", "", result.path, 1, 1, 1, (), result.error, (), None, result.error)
                    ),
                    "severity": ERROR_SEVERITY,
                    "location": {"path": result.path, "lines": {"begin": 1}},
                }
            )
    return json.dumps(issues, indent=2, ensure_ascii=False) + "\n"
