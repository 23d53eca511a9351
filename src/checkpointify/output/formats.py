"""Machine-readable renderings of a scan: JSON, GitHub annotations, JUnit XML, statistics.

Each renderer takes the run's :class:`FileResult` list and returns the whole document as
text, so the CLI can print it or write it atomically to ``--output``. SARIF, which also
carries fixes, lives in :mod:`checkpointify.output.sarif`. The human text format and the
summaries stay in :mod:`checkpointify.output.report`.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import IO, Any, Dict, List, Sequence, Tuple

from checkpointify.rules import CODES, HAZARDS
from checkpointify.types import FileResult, Finding, Hazard, Safety

JSON_VERSION = 1

# ------------------------------------------------------------------------------- json


def location(finding: Finding) -> str:
    """``path:line:column``, or in a notebook ``path:cell N:line:column`` (N counts every
    cell from 1, markdown included, as the notebook shows them; line and column are in the cell)."""
    if finding.cell is not None:
        return "%s:cell %d:%d:%d" % (finding.path, finding.cell + 1, finding.line, finding.column)
    return "%s:%d:%d" % (finding.path, finding.line, finding.column)


def file_line(finding: Finding) -> int:
    """The line of the file as stored: in a notebook, the JSON line holding the cell's line."""
    return finding.file_line if finding.file_line is not None else finding.line


def finding_json(finding: Finding) -> Dict[str, Any]:
    document: Dict[str, Any] = {"path": finding.path}
    if finding.cell is not None:  # a notebook: the cell's index among all cells (0-based)
        document["cell"] = finding.cell
    return {
        **document,
        "line": finding.line,
        "column": finding.column,
        "end_line": finding.end_line,
        "code": finding.code,
        "message": finding.message,
        "accumulators": list(finding.accumulators),
        "sink": finding.sink,
        "hazards": [h.value for h in finding.hazards],
        "fix": finding.fix.value if finding.fix is not None else None,
    }


def json_document(results: Sequence[FileResult]) -> str:
    """The version 1 JSON contract (docs/cli.md); never change its shape."""
    findings = [finding_json(f) for r in results for f in r.findings]
    errors = [{"path": r.path, "message": r.error} for r in results if r.error is not None]
    return json.dumps({"version": JSON_VERSION, "findings": findings, "errors": errors}, indent=2) + "\n"


# ----------------------------------------------------------------------------- github


def _escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF are percent-encoded."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """A workflow command's property value: as data, plus ``:`` and ``,``."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def fix_line(finding: Finding) -> str:
    """What happens to a finding under ``fix``, in one line (text, GitHub and JUnit use it)."""
    if finding.fix is Safety.SAFE:
        return "fix: safe (applied by `checkpointify fix`)"
    if finding.fix is Safety.UNSAFE:
        return "fix: unsafe (applied by `checkpointify fix --unsafe-fixes`)"
    return "fix: none (rewrite by hand)"


def detail_lines(finding: Finding) -> List[str]:
    """The hazards (with the finding's own note when it has one) and the fix line."""
    notes = finding.fix_note.split("; ") if finding.fix_note else []
    lines = []
    for index, hazard in enumerate(finding.hazards):
        note = notes[index] if index < len(notes) else HAZARDS[hazard].title
        lines.append("hazard %s: %s" % (hazard.value, note))
    lines.append(fix_line(finding))
    return lines


def github_annotations(results: Sequence[FileResult]) -> str:
    """One ``::warning`` workflow command per finding and one ``::error`` per failed file.

    GitHub Actions turns them into annotations on the pull request's changed lines; paths
    are relative to the working directory, which in a workflow is the checkout root.
    """
    out: List[str] = []
    for result in results:
        for finding in result.findings:
            if finding.cell is not None:  # the JSON line of the cell's line; the message names the cell
                props = "file=%s,line=%d,title=%s" % (
                    _escape_property(finding.path),
                    file_line(finding),
                    _escape_property(
                        "%s (cell %d, line %d)" % (finding.code, finding.cell + 1, finding.line)
                    ),
                )
            else:
                props = "file=%s,line=%d,col=%d,endLine=%d,title=%s" % (
                    _escape_property(finding.path),
                    finding.line,
                    finding.column,
                    finding.end_line,
                    _escape_property(finding.code),
                )
            head = finding.message if finding.cell is None else location(finding) + ": " + finding.message
            message = "\n".join([head, *detail_lines(finding)])
            out.append("::warning %s::%s\n" % (props, _escape_data(message)))
        if result.error is not None:
            title = "checkpointify internal error" if result.internal else "checkpointify"
            out.append(
                "::error file=%s,title=%s::%s\n"
                % (_escape_property(result.path), _escape_property(title), _escape_data(result.error))
            )
    return "".join(out)


# ------------------------------------------------------------------------------ junit

# characters XML 1.0 cannot hold, even escaped
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", text)


def junit_document(results: Sequence[FileResult]) -> str:
    """JUnit XML: one testsuite, one testcase per scanned file.

    A file with findings has one ``<failure>`` per finding (type = the code); a file that
    could not be processed has one ``<error>``. ``failures`` and ``errors`` on the suite
    count test cases (files), as JUnit consumers expect.
    """
    failing = sum(1 for r in results if r.findings)
    errored = sum(1 for r in results if r.error is not None)
    counts = {"tests": str(len(results)), "failures": str(failing), "errors": str(errored)}
    suites = ET.Element("testsuites", {"name": "checkpointify", **counts})
    suite = ET.SubElement(suites, "testsuite", {"name": "checkpointify", **counts, "skipped": "0"})
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            {"name": _xml_text(result.path), "classname": "checkpointify", "file": _xml_text(result.path)},
        )
        for finding in result.findings:
            head = "%s: %s %s" % (location(finding), finding.code, finding.message)
            failure = ET.SubElement(
                case,
                "failure",
                {"type": finding.code, "message": _xml_text(head), "line": str(file_line(finding))},
            )
            failure.text = _xml_text("\n".join([head, *detail_lines(finding)]))
        if result.error is not None:
            kind = "internal-error" if result.internal else "unprocessable-file"
            error = ET.SubElement(case, "error", {"type": kind, "message": _xml_text(result.error)})
            error.text = _xml_text(result.detail or result.error)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


# ------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class StatRow:
    count: int
    kind: str  # "code", "hazard" or "fix"
    name: str
    description: str


_FIX_ROWS: Tuple[Tuple[str, str], ...] = (
    ("safe", "applied by `checkpointify fix`"),
    ("unsafe", "applied by `checkpointify fix --unsafe-fixes`"),
    ("none", "no fix offered: rewrite by hand"),
)


def statistics(results: Sequence[FileResult]) -> List[StatRow]:
    """Counts per code, per hazard and per fix safety, most frequent first in each group.

    Codes and hazards that never occur are left out; the three fix rows are always there.
    """
    findings = [f for r in results for f in r.findings]
    rows: List[StatRow] = []
    codes: Dict[str, int] = {}
    hazards: Dict[Hazard, int] = {}
    fixes = {name: 0 for name, _ in _FIX_ROWS}
    for finding in findings:
        codes[finding.code] = codes.get(finding.code, 0) + 1
        for hazard in finding.hazards:
            hazards[hazard] = hazards.get(hazard, 0) + 1
        fixes[finding.fix.value if finding.fix is not None else "none"] += 1
    for code, count in sorted(codes.items(), key=lambda item: (-item[1], item[0])):
        rows.append(StatRow(count, "code", code, CODES[code][1] if code in CODES else ""))
    for hazard, count in sorted(hazards.items(), key=lambda item: (-item[1], item[0].value)):
        rows.append(StatRow(count, "hazard", hazard.value, HAZARDS[hazard].title))
    for name, description in _FIX_ROWS:
        rows.append(StatRow(fixes[name], "fix", name, description))
    return rows


_HEADERS = ("count", "kind", "name", "description")


def statistics_text(rows: Sequence[StatRow]) -> str:
    """Plain, aligned columns (what a pipe, a file or a CI log gets)."""
    table = [_HEADERS] + [(str(r.count), r.kind, r.name, r.description) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    lines = []
    for row in table:
        count = row[0].rjust(widths[0])
        lines.append(
            ("%s  %s  %s  %s" % (count, row[1].ljust(widths[1]), row[2].ljust(widths[2]), row[3])).rstrip()
        )
    return "\n".join(lines) + "\n"


def print_statistics_table(rows: Sequence[StatRow], stream: IO[str]) -> None:
    """The same rows as a rich table, for a terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="checkpointify statistics", title_justify="left")
    table.add_column("count", justify="right", style="bold")
    table.add_column("kind")
    table.add_column("name", style="cyan")
    table.add_column("description", style="dim")
    previous = None
    for row in rows:
        if previous is not None and row.kind != previous:
            table.add_section()
        previous = row.kind
        table.add_row(str(row.count), row.kind, row.name, row.description)
    Console(file=stream, highlight=False, markup=False, emoji=False).print(table)
