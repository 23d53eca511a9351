"""Renderers for findings, and the one exit-code policy.

Data (findings, diffs, JSON) goes to stdout; human text (summaries, errors) to stderr
through :func:`say` and :func:`error`. Colour is used only when the stream is a terminal
and ``NO_COLOR`` is not set.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import IO, Any, List, Mapping, Optional, Sequence

from checkpointify.output.formats import detail_lines, location
from checkpointify.output.snippets import snippet
from checkpointify.types import FileResult, Finding, Safety


class Exit:
    """Exit codes, in one place. The "Exit codes" table in docs/cli.md says the same.

    ======  ======================================================================
    code    meaning
    ======  ======================================================================
    0       nothing to report: scan found nothing, diff has nothing pending, fix
            succeeded (or ``--exit-zero`` turned findings, pending changes and
            applied fixes into success)
    1       scan: findings; diff: changes pending; fix: a fix was applied and
            ``--exit-non-zero-on-fix`` was given; any mode: a file could not be
            processed (unreadable, undecodable, does not parse or compile)
    2       usage error: unknown option, bad value, bad configuration, an
            interactive review without a terminal, an unwritable ``--output``
    3       internal error: checkpointify failed on a file (a bug); wins over 1
            and is never hidden by ``--exit-zero``
    ======  ======================================================================
    """

    OK = 0
    FAILED = 1
    USAGE = 2
    INTERNAL = 3


def exit_code(
    command: str,
    tally: Tally,
    exit_zero: bool = False,
    exit_non_zero_on_fix: bool = False,
) -> int:
    """The exit code of ``scan``, ``diff`` or ``fix`` after a run summed up by ``tally``.

    ``--exit-zero`` hides findings, pending changes and applied fixes, but never an
    internal error (3) nor a file that could not be processed (1): that file was not
    checked at all, and a green job must not hide it.
    """
    if tally.internal:
        return Exit.INTERNAL
    if tally.failed:
        return Exit.FAILED
    if exit_zero:
        return Exit.OK
    if command == "scan" and tally.findings:
        return Exit.FAILED
    if command == "diff" and tally.changed_files:
        return Exit.FAILED
    if command == "fix" and exit_non_zero_on_fix and tally.changed_files:
        return Exit.FAILED
    return Exit.OK


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
    internal: int = 0
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
            self.internal += result.internal
            self.errors.append(result)
        if result.changed:
            self.changed_files += 1
            self.applied += len(result.applied)


# ------------------------------------------------------------------------------- text


def finding_lines(finding: Finding, source: Optional[Sequence[str]] = None) -> List[str]:
    """A finding as text: ``path:line:col: CODE message``, then (given the file's ``source``
    lines: the full format) its source lines with the accumulator, loop and sink marked,
    then the hazards and the fix line."""
    head = "%s: %s %s" % (location(finding), finding.code, finding.message)
    shown = [line.text for line in snippet(finding, source)] if source is not None else []
    return [head] + shown + ["    " + line for line in detail_lines(finding)]


def text_document(
    results: Sequence[FileResult], sources: Optional[Mapping[str, Sequence[str]]] = None
) -> str:
    """The text format without colour, as one string (for ``--output``); with ``sources``
    (path -> lines) the full format, else the concise one."""
    return "".join(
        "\n".join(finding_lines(f, sources.get(r.path) if sources is not None else None)) + "\n"
        for r in results
        for f in r.findings
    )


_STYLES = {"code": "", "mark": "bold red", "edge": "blue", "elided": "blue"}


def print_text(result: FileResult, stream: IO[str], source: Optional[Sequence[str]] = None) -> None:
    """``result``'s findings on ``stream``, coloured on a terminal; with ``source`` (the
    file's lines) in the full format."""
    if not result.findings:
        return
    if color_for(stream):
        from rich.text import Text

        console = _console(stream)
        for finding in result.findings:
            first, *_ = finding_lines(finding)
            head = Text()
            location, _, tail = first.partition(": %s " % finding.code)
            head.append(location + ": ", style="bold")
            head.append(finding.code + " ", style="bold red")
            head.append(tail)
            console.print(head)
            for line in snippet(finding, source) if source is not None else []:
                console.print(line.text, style=_STYLES[line.kind])
            for detail in detail_lines(finding):
                console.print("    " + detail, style="yellow" if "hazard" in detail else "dim")
    else:
        for finding in result.findings:
            stream.write("\n".join(finding_lines(finding, source)) + "\n")


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


def scan_hint(codes: Sequence[str]) -> str:
    """Where to look after findings (a failed pre-commit hook or CI step shows it): the
    commands that show and apply the fixes, and the pages that explain each code."""
    from checkpointify.rules import rule_url

    pages = ", ".join("%s %s" % (code, rule_url(code)) for code in sorted(set(codes)))
    return (
        "See the fixes with `checkpointify diff <files>`, apply them with `checkpointify fix <files>`. "
        "Why, and the fix safety: `checkpointify rule <code>` or %s." % pages
    )


def fix_hint() -> str:
    """After ``fix`` changed files (a pre-commit hook then fails so that they get staged)."""
    return "Review the rewrite with `git diff`, then stage it (`git add -p`) and commit again."


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
