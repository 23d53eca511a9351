"""Renderers for findings, and the one exit-code policy.

Data (findings, diffs, JSON) goes to stdout; human text (summaries, errors) to stderr
through :func:`say` and :func:`error`. Colour is used only when the stream is a terminal
and ``NO_COLOR`` is not set.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import IO, Any, Dict, List, Optional

from checkpointify.patterns import HAZARDS
from checkpointify.types import FileResult, Finding, Safety

JSON_VERSION = 1


class Exit:
    """Exit codes, in one place (the README has the same table).

    ======  ==============================================================
    code    meaning
    ======  ==============================================================
    0       scan: no findings; diff: nothing would change; fix: no file failed
    1       scan: findings or failed files; diff: changes pending or failed files;
            fix: a file could not be processed
    2       usage error (bad option, bad configuration)
    ======  ==============================================================
    """

    OK = 0
    FAILED = 1
    USAGE = 2


def color_for(stream: IO[str]) -> bool:
    """Colour (and rich rendering) only on a terminal, and never with ``NO_COLOR``."""
    return (
        hasattr(stream, "isatty")
        and stream.isatty()
        and "NO_COLOR" not in os.environ
        and os.environ.get("TERM") != "dumb"
    )


def _console(stream: IO[str]) -> Any:
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=True, markup=False, emoji=False)


def say(message: str, style: Optional[str] = None) -> None:
    """Human-facing text on stderr."""
    if style and color_for(sys.stderr):
        _console(sys.stderr).print(message, style=style)
    else:
        print(message, file=sys.stderr)


def error(path: str, message: str) -> None:
    """The one way a per-file problem is shown: ``path: error: reason`` on stderr."""
    say("%s: error: %s" % (path, message), style="red")


@dataclass
class Tally:
    """What a run saw, for the summary line and the exit code."""

    files: int = 0
    findings: int = 0
    safe: int = 0
    unsafe: int = 0
    no_fix: int = 0
    failed: int = 0
    changed_files: int = 0
    applied: int = 0
    errors: List[FileResult] = field(default_factory=list)

    def add(self, result: FileResult) -> None:
        self.files += 1
        for finding in result.findings:
            self.findings += 1
            if finding.fix is Safety.SAFE:
                self.safe += 1
            elif finding.fix is Safety.UNSAFE:
                self.unsafe += 1
            else:
                self.no_fix += 1
        if result.error is not None:
            self.failed += 1
            self.errors.append(result)
        if result.changed:
            self.changed_files += 1
            self.applied += len(result.applied)


# ------------------------------------------------------------------------------- text


def finding_lines(finding: Finding) -> List[str]:
    lines = ["%s:%d:%d: %s %s" % (finding.path, finding.line, finding.column, finding.code, finding.message)]
    notes = finding.fix_note.split("; ") if finding.fix_note else []
    for index, hazard in enumerate(finding.hazards):
        note = notes[index] if index < len(notes) else HAZARDS[hazard].title
        lines.append("    hazard %s: %s" % (hazard.value, note))
    if finding.fix is Safety.SAFE:
        lines.append("    fix: safe (applied by `checkpointify fix`)")
    elif finding.fix is Safety.UNSAFE:
        lines.append("    fix: unsafe (applied by `checkpointify fix --unsafe-fixes`)")
    else:
        lines.append("    fix: none (rewrite by hand)")
    return lines


def print_text(result: FileResult, stream: IO[str]) -> None:
    if not result.findings:
        return
    if color_for(stream):
        from rich.text import Text

        console = _console(stream)
        for finding in result.findings:
            first, *rest = finding_lines(finding)
            head = Text()
            location, _, tail = first.partition(": %s " % finding.code)
            head.append(location + ": ", style="bold")
            head.append(finding.code + " ", style="bold red")
            head.append(tail)
            console.print(head)
            for line in rest:
                console.print(line, style="yellow" if "hazard" in line else "dim")
    else:
        for finding in result.findings:
            stream.write("\n".join(finding_lines(finding)) + "\n")


# ------------------------------------------------------------------------------- json


def finding_json(finding: Finding) -> Dict[str, Any]:
    return {
        "path": finding.path,
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


def json_document(results: List[FileResult]) -> str:
    findings = [finding_json(f) for r in results for f in r.findings]
    errors = [{"path": r.path, "message": r.error} for r in results if r.error is not None]
    return json.dumps({"version": JSON_VERSION, "findings": findings, "errors": errors}, indent=2) + "\n"


# ---------------------------------------------------------------------------- summaries


def _plural(n: int, word: str) -> str:
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def scan_summary(tally: Tally) -> str:
    if tally.findings == 0:
        text = "No collect-then-save loops found in %s." % _plural(tally.files, "file")
    else:
        text = (
            "Found %s in %s: %d with a safe fix, %d with an unsafe fix (--unsafe-fixes), %d without a fix."
            % (
                _plural(tally.findings, "finding"),
                _plural(tally.files, "file"),
                tally.safe,
                tally.unsafe,
                tally.no_fix,
            )
        )
    if tally.failed:
        text += " %s could not be processed." % _plural(tally.failed, "file")
    return text


def fix_summary(tally: Tally, unsafe_fixes: bool, dry_run: bool) -> str:
    verb = "would rewrite" if dry_run else "rewrote"
    text = "checkpointify %s %s in %s." % (
        verb,
        _plural(tally.applied, "loop"),
        _plural(tally.changed_files, "file"),
    )
    left = tally.findings - tally.applied
    if left:
        hidden = tally.unsafe if not unsafe_fixes else 0
        text += " %s left as is" % _plural(left, "finding")
        if hidden:
            text += " (%d with an unsafe fix: add --unsafe-fixes)" % hidden
        text += "."
    if tally.failed:
        text += " %s could not be processed." % _plural(tally.failed, "file")
    return text
