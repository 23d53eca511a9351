"""SARIF 2.1.0 output: one rule per pattern code, results with regions, fixes as replacements.

Code-scanning UIs (GitHub code scanning, VS Code's SARIF viewer, reviewdog) show a
result's ``fixes`` as a suggested change. A finding's fix is computed by rewriting the
file with *that finding alone* (:func:`checkpointify.rewrite.verify.rewrite_selected`); the
rewrite is compared with the original line by line and every contiguous change becomes
one ``replacement``: the whole lines it removes (an empty region for a pure insertion)
and the text that replaces them, line endings included.

Columns are counted in Unicode code points (``run.columnKind``), as LibCST counts them.
Paths are relative to the working directory (``uriBaseId`` ``%SRCROOT%``, which
``originalUriBaseIds`` maps to the working directory's ``file:`` URI).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

from checkpointify import __version__
from checkpointify.fileio import SourceError, check_encoding, read_source
from checkpointify.output.diffs import split_lines
from checkpointify.rules import CODES, HAZARDS, REPOSITORY_URL, VARIANTS, Variant, rule_url
from checkpointify.types import FileResult, Finding, Options, Safety

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
#: placeholder until the project has a public home; SARIF viewers link to it
INFORMATION_URI = REPOSITORY_URL
SRCROOT = "%SRCROOT%"

Replacement = Dict[str, Any]


# ------------------------------------------------------------------------------ rules


def _section(markdown: str, title: str) -> str:
    """The text under ``## title`` in a rationale, unwrapped to one paragraph."""
    match = re.search(r"^## %s\n(.*?)(?=^## |\Z)" % re.escape(title), markdown, re.S | re.M)
    return " ".join(match.group(1).split()) if match else ""


def _hazard_table() -> str:
    rows = ["| hazard | fix | why |", "|---|---|---|"]
    for hazard, doc in HAZARDS.items():
        cap = doc.caps_fix_at.value if doc.caps_fix_at is not None else "none"
        rows.append("| `%s` | %s | %s |" % (hazard.value, cap, doc.explanation))
    return "\n".join(rows)


def rule(code: str, variants: Sequence[Variant]) -> Dict[str, Any]:
    """The reportingDescriptor of one code, documented by all its variants' rationales."""
    name, summary = CODES[code]
    what = " ".join(_section(v.rationale, "What it does") for v in variants)
    markdown = "\n\n".join(
        "## `%s`: %s\n\n%s" % (v.name, v.summary, re.sub(r"^## ", "### ", v.rationale, flags=re.M))
        for v in variants
    )
    markdown += "\n\n## Hazards\n\n" + _hazard_table() + "\n"
    text = "\n\n".join(v.rationale for v in variants)
    return {
        "id": code,
        "name": name,
        "shortDescription": {"text": summary[0].upper() + summary[1:] + "."},
        "fullDescription": {"text": what},
        "help": {"text": text, "markdown": markdown},
        "helpUri": rule_url(code),
        "defaultConfiguration": {"level": "warning"},
        "properties": {
            "tags": ["reliability", "checkpointing"],
            "variants": [v.name for v in variants],
        },
    }


def rules() -> List[Dict[str, Any]]:
    codes: Dict[str, List[Variant]] = {}
    for variant in VARIANTS:
        codes.setdefault(variant.code, []).append(variant)
    return [rule(code, variants) for code, variants in sorted(codes.items())]


# ------------------------------------------------------------------------------ paths


def artifact_location(path: str) -> Dict[str, Any]:
    """A relative path under ``%SRCROOT%``, or an absolute ``file:`` URI."""
    if Path(path).is_absolute():
        return {"uri": Path(path).as_uri()}
    return {"uri": quote(path.replace("\\", "/")), "uriBaseId": SRCROOT}


def _root_uri(root: Path) -> str:
    uri = root.resolve().as_uri()
    return uri if uri.endswith("/") else uri + "/"


# ----------------------------------------------------------------------------- fixes


def _decode(data: bytes, encoding: str) -> str:
    return data.decode(encoding, errors="replace")


def replacements(old: bytes, new: bytes) -> List[Replacement]:
    """One replacement per contiguous change between two versions of a file, by lines.

    A changed run of lines ``i1..i2`` (0-based, end exclusive) deletes from the start of
    line ``i1`` to the start of line ``i2`` (an empty region when nothing is deleted) and
    inserts the new lines' text. At the end of a file without a final newline the region
    ends at the end of the last line instead.
    """
    try:
        encoding = check_encoding(old)
    except SourceError:
        encoding = "utf-8"
    a, b = split_lines(old), split_lines(new)

    def position(index: int) -> Tuple[int, int]:
        if index < len(a) or not a or a[-1].endswith(b"\n"):
            return index + 1, 1
        return len(a), len(_decode(a[-1], encoding)) + 1

    out: List[Replacement] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        start, end = position(i1), position(i2)
        out.append(
            {
                "deletedRegion": {
                    "startLine": start[0],
                    "startColumn": start[1],
                    "endLine": end[0],
                    "endColumn": end[1],
                },
                "insertedContent": {"text": _decode(b"".join(b[j1:j2]), encoding)},
            }
        )
    return out


def fix_object(finding: Finding, rewrite: FileResult) -> Optional[Dict[str, Any]]:
    """The SARIF ``fix`` for one finding, from the rewrite of that finding alone."""
    if finding.fix is None or not rewrite.changed or rewrite.error is not None:
        return None
    assert rewrite.source is not None and rewrite.new_source is not None
    safety = finding.fix.value
    if finding.fix is Safety.SAFE:
        description = (
            "Checkpoint this loop so that a re-run resumes. Safe fix: `checkpointify fix` applies it."
        )
    else:
        description = (
            "Checkpoint this loop so that a re-run resumes. Unsafe fix (hazards: %s): "
            "`checkpointify fix --unsafe-fixes` applies it." % ", ".join(h.value for h in finding.hazards)
        )
    return {
        "description": {"text": description},
        "artifactChanges": [
            {
                "artifactLocation": artifact_location(finding.path),
                "replacements": replacements(rewrite.source, rewrite.new_source),
            }
        ],
        "properties": {"safety": safety},
    }


# ---------------------------------------------------------------------------- results


def fingerprint(finding: Finding, occurrence: int = 1) -> str:
    """Stable across edits elsewhere in the file: the path, code, what is collected and by
    which sink, and ``occurrence`` (the n-th finding of the file with those)."""
    key = "\0".join(
        [finding.path, finding.code, ",".join(finding.accumulators), finding.sink, str(occurrence)]
    )
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _fingerprints(results: Sequence[FileResult]) -> Dict[Finding, str]:
    seen: Dict[Tuple[str, ...], int] = {}
    out: Dict[Finding, str] = {}
    for result in results:
        for finding in result.findings:
            key = (finding.path, finding.code, ",".join(finding.accumulators), finding.sink)
            seen[key] = seen.get(key, 0) + 1
            out[finding] = fingerprint(finding, seen[key])
    return out


def region(finding: Finding) -> Dict[str, Any]:
    """Where the finding is in the file as stored. In a notebook that is the JSON text: the
    region is the line holding the loop's first line in its cell's ``source`` (no column:
    JSON escapes make cell columns meaningless there); the cell is in the properties."""
    if finding.cell is not None:
        return {"startLine": finding.file_line or 1}
    return {"startLine": finding.line, "startColumn": finding.column, "endLine": finding.end_line}


def result_object(finding: Finding, rewrite: Optional[FileResult], fingerprint_: str = "") -> Dict[str, Any]:
    message = finding.message
    if finding.cell is not None:
        message = "cell %d, line %d: %s" % (finding.cell + 1, finding.line, message)
    result: Dict[str, Any] = {
        "ruleId": finding.code,
        "level": "warning",
        "message": {"text": message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": artifact_location(finding.path),
                    "region": region(finding),
                }
            }
        ],
        "partialFingerprints": {"checkpointify/v1": fingerprint_ or fingerprint(finding)},
        "properties": {
            "variant": finding.variant,
            "accumulators": list(finding.accumulators),
            "sink": finding.sink,
            "hazards": [h.value for h in finding.hazards],
            "fixSafety": finding.fix.value if finding.fix is not None else None,
        },
    }
    if finding.cell is not None:
        result["properties"].update(
            cell=finding.cell, cellLine=finding.line, cellColumn=finding.column, cellEndLine=finding.end_line
        )
    fix = fix_object(finding, rewrite) if rewrite is not None else None
    if fix is not None:
        result["fixes"] = [fix]
    return result


def _notification(result: FileResult) -> Dict[str, Any]:
    assert result.error is not None
    return {
        "level": "error",
        "message": {"text": result.error},
        "descriptor": {"id": "internal-error" if result.internal else "unprocessable-file"},
        "locations": [{"physicalLocation": {"artifactLocation": artifact_location(result.path)}}],
    }


def sarif_document(
    results: Sequence[FileResult],
    fixes: Mapping[Finding, FileResult],
    root: Path,
) -> str:
    """The whole SARIF log for one run.

    ``fixes`` maps a finding to the rewrite of that finding alone; findings without an
    entry (no fix offered, or the rewrite failed) get no ``fixes``. Files that could not
    be processed become ``toolExecutionNotifications``; ``executionSuccessful`` is false
    only when checkpointify itself failed on a file (an internal error).
    """
    prints = _fingerprints(results)
    log = {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "checkpointify",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules(),
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not any(r.internal for r in results),
                        "toolExecutionNotifications": [_notification(r) for r in results if r.error],
                    }
                ],
                "originalUriBaseIds": {SRCROOT: {"uri": _root_uri(root)}},
                "columnKind": "unicodeCodePoints",
                "results": [result_object(f, fixes.get(f), prints[f]) for r in results for f in r.findings],
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"


def single_fixes(
    results: List[FileResult], options: Options, sources: Dict[str, bytes]
) -> Dict[Finding, FileResult]:
    """Each fixable finding's rewrite on its own (for SARIF), keyed by the finding.

    A file is read again for this; if it changed since the scan, its findings no longer
    match and simply get no fix.
    """
    from checkpointify.rewrite.verify import rewrite_selected  # LibCST: only a SARIF run pays

    fixes: Dict[Finding, FileResult] = {}

    for result in results:
        fixable = [f for f in result.findings if f.fix is not None]
        if not fixable:
            continue
        source = sources.get(result.path)
        if source is None:
            try:
                source = read_source(Path(result.path))
            except SourceError:
                continue
        for finding in fixable:
            alone = rewrite_selected(source, result.path, options, [finding])
            if alone.applied == (finding,) and alone.changed:
                fixes[finding] = alone
    return fixes
