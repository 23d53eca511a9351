"""``fix --interactive``: show each change with its hazards, apply only what is accepted.

For every finding whose fix ``fix`` would apply, the reviewer sees the diff of that
change alone (syntax-highlighted) and the finding's hazards, and answers ``y`` (apply),
``n`` (skip), ``a`` (apply this and every remaining change without asking) or ``q``
(stop; changes already accepted are kept). A file is written once, atomically, after its
last question, with exactly the accepted changes, verified like every other rewrite.

This needs a terminal on stdin and stdout; :func:`can_review` says whether there is one,
and the CLI refuses to start otherwise rather than abort half-way.
"""

from __future__ import annotations

import enum
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Protocol, Tuple

from checkpointify.api import rewrite_selected
from checkpointify.fileio import SourceError, check_encoding, write_atomic
from checkpointify.output.diffs import colorize, file_diff
from checkpointify.output.formats import detail_lines, location
from checkpointify.types import FileResult, Finding, Options, Safety

PROMPT = "Apply this change? [y]es/[n]o/[a]ll/[q]uit: "


class Answer(enum.Enum):
    YES = "y"
    NO = "n"
    ALL = "a"
    QUIT = "q"


def parse_answer(text: str) -> Optional[Answer]:
    """``y``/``yes``, ``n``/``no``, ``a``/``all``, ``q``/``quit`` in any case, else None."""
    word = text.strip().lower()
    for answer in Answer:
        if word and (word == answer.value or word == answer.name.lower()):
            return answer
    return None


class Reviewer(Protocol):
    def show(self, index: int, total: int, finding: Finding, diff: str) -> None:
        """Show change ``index`` of the ``total`` in its file: the finding, hazards and diff."""

    def ask(self) -> Answer:
        """The reviewer's answer (``QUIT`` when the input ends)."""


def can_review() -> bool:
    """Whether both stdin and stdout are terminals."""
    return sys.stdin.isatty() and sys.stdout.isatty()


class TerminalReviewer:
    """Shows changes on stdout with rich and reads answers from stdin, one line each."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(highlight=False, markup=False, emoji=False)

    def show(self, index: int, total: int, finding: Finding, diff: str) -> None:
        from rich.text import Text

        head = Text()
        head.append("[%d/%d] " % (index, total), style="dim")
        head.append("%s: " % location(finding), style="bold")
        head.append(finding.code + " ", style="bold red")
        head.append(finding.message)
        self.console.print()
        self.console.print(head)
        for line in detail_lines(finding):
            style = "yellow" if line.startswith("hazard") else "dim"
            if finding.fix is Safety.UNSAFE and line.startswith("fix:"):
                style = "bold yellow"
            self.console.print("    " + line, style=style)
        # the patch as git shows it: coloured, and never re-wrapped (a wrapped `+` line
        # would read as two lines of code)
        self.console.file.write(colorize(diff.encode("utf-8", "surrogateescape")).decode("utf-8", "replace"))
        self.console.file.flush()

    def ask(self) -> Answer:
        """One key, no Enter needed (y, n, a, q; Ctrl-D quits); whitespace is ignored, so
        an answer typed with Enter works too. The terminal is in cbreak mode before the
        prompt is shown: a key typed the moment it appears (Ctrl-D above all, which the
        line discipline would otherwise take as the end of a line) is read as typed."""
        with _cbreak():
            self.console.print(PROMPT, end="")
            self.console.file.flush()
            while True:
                key = _read_key()
                if key in ("", "\x04"):  # end of input (or a hung-up terminal), Ctrl-D
                    try:
                        self.console.print()
                    except OSError:
                        pass  # the terminal is gone: nothing to finish the line on
                    return Answer.QUIT
                if key == "\x03":
                    raise KeyboardInterrupt
                if key.isspace():
                    continue
                self.console.print(key)
                answer = parse_answer(key)
                if answer is not None:
                    return answer
                self.console.print("Please answer y, n, a or q.", style="red")
                self.console.print(PROMPT, end="")
                self.console.file.flush()


@contextmanager
def _cbreak() -> Iterator[None]:
    """Keys without Enter while the block runs (cbreak mode: Ctrl-C still interrupts);
    nothing when stdin is not a terminal. The mode is restored after."""
    if not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    try:
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd, termios.TCSANOW)  # TCSAFLUSH (the default) would drop keys typed ahead
    except termios.error:  # the terminal hung up already: _read_key() sees the end of input
        yield
        return
    try:
        yield
    finally:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, saved)
        except termios.error:
            pass  # the terminal went away (hung up) after the key: nothing left to restore


def _read_key() -> str:
    """One character from the terminal (in cbreak mode: see :func:`_cbreak`), or the
    first character of a line when stdin is not a terminal."""
    if not sys.stdin.isatty():
        return sys.stdin.readline()[:1]
    try:
        return os.read(sys.stdin.fileno(), 1).decode("utf-8", "replace")
    except OSError:
        return ""  # the terminal hung up (EIO): the end of input, as Ctrl-D


@dataclass
class _Session:
    options: Options
    reviewer: Reviewer
    apply_all: bool = False
    quit: bool = False
    allow_read_only: bool = False


def review(
    results: Iterable[FileResult], options: Options, reviewer: Reviewer, allow_read_only: bool = False
) -> Iterator[FileResult]:
    """Review and write each file of a ``fix`` run; yields what happened to each file.

    ``results`` are ``fix`` results (``rewrite=True``). A yielded result's ``applied`` and
    ``new_source`` describe what was written (nothing when every change was declined);
    ``error`` is set when the file could not be written or the accepted subset failed
    verification, and the file is then untouched. After ``q`` no more files are read.
    """
    session = _Session(options, reviewer)
    session.allow_read_only = allow_read_only
    for result in results:
        if session.quit:
            return
        yield _review_file(result, session)


def _review_file(result: FileResult, session: _Session) -> FileResult:
    if not result.changed:
        return result
    assert result.source is not None and result.new_source is not None
    accepted: List[Finding] = []
    for index, finding in enumerate(result.applied, 1):
        if not session.apply_all:
            answer = _ask(result, finding, (index, len(result.applied)), session)
            if answer is None:
                continue
            if answer is Answer.QUIT:
                session.quit = True
                break
            if answer is Answer.NO:
                continue
            session.apply_all = answer is Answer.ALL
        accepted.append(finding)
    return _write(result, accepted, session.options, session.allow_read_only)


def _ask(
    result: FileResult, finding: Finding, position: Tuple[int, int], session: _Session
) -> Optional[Answer]:
    """The reviewer's answer for one change, or None when that change cannot be shown alone."""
    assert result.source is not None
    alone = rewrite_selected(result.source, result.path, session.options, [finding])
    if alone.error is not None or not alone.changed:
        return None
    assert alone.new_source is not None
    diff = _diff_text(result.source, alone.new_source, result.path)
    session.reviewer.show(position[0], position[1], finding, diff)
    return session.reviewer.ask()


def _diff_text(old: bytes, new: bytes, path: str) -> str:
    try:
        encoding = check_encoding(old)
    except SourceError:
        encoding = "utf-8"
    return file_diff(old, new, path, readable=True).decode(encoding, errors="replace")


def _write(
    result: FileResult, accepted: List[Finding], options: Options, allow_read_only: bool = False
) -> FileResult:
    assert result.source is not None and result.new_source is not None
    unchanged = FileResult(result.path, findings=result.findings)
    if not accepted:
        return unchanged
    if tuple(accepted) == result.applied:
        outcome = result  # everything accepted: the run's own verified rewrite
    else:
        outcome = rewrite_selected(result.source, result.path, options, accepted)
        if outcome.error is not None or outcome.new_source is None:
            return FileResult(
                result.path,
                findings=result.findings,
                error=outcome.error or "the accepted changes could not be applied",
                internal=outcome.internal,
                detail=outcome.detail,
            )
    assert outcome.new_source is not None
    try:
        write_atomic(
            Path(result.path), outcome.new_source, expected=result.source, allow_read_only=allow_read_only
        )
    except SourceError as exc:
        return FileResult(result.path, findings=result.findings, error=str(exc))
    return FileResult(
        result.path,
        findings=result.findings,
        applied=outcome.applied,
        source=result.source,
        new_source=outcome.new_source,
    )
