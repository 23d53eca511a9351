"""Per-file processing with LibCST. Never raises across a file boundary.

``process_source`` is the one core call: bytes in, :class:`FileResult` out. ``scan``,
``diff`` and ``fix`` all go through it and differ only in what they do with the result.
A rewrite is kept only if the new file compiles and a second pass over it changes
nothing; otherwise it is discarded and the file reported.

Runs over trees (discovery, the cache, the worker pool) are in
:mod:`checkpointify.engine.pipeline`, which imports this module only in its workers: a run
whose results all come from the cache never loads LibCST. This module never imports the
engine (the dependency goes one way).
"""

from __future__ import annotations

import ast
import re
import traceback
from collections import Counter
from dataclasses import dataclass, replace
from typing import AbstractSet, Callable, Collection, Optional, Sequence, Tuple

import libcst as cst
from libcst.metadata import MetadataWrapper

from checkpointify import notebook, prefilter
from checkpointify.detect.cstutil import all_names
from checkpointify.detect.matcher import Plan, find_plans
from checkpointify.fileio import SourceError, check_encoding
from checkpointify.rewrite import newsyntax
from checkpointify.rewrite.layout import arrange
from checkpointify.rewrite.transformer import apply_plans
from checkpointify.types import FileResult, Finding, Options, applicable

__all__ = [
    "CheckedRewrite",
    "Rewrite",
    "process_source",
    "rewrite_checked",
    "rewrite_module",
    "rewrite_selected",
]


@dataclass(frozen=True)
class Rewrite:
    plans: Tuple[Plan, ...]
    applied: Tuple[Plan, ...]
    module: cst.Module


def rewrite_module(
    module: cst.Module,
    path: str,
    options: Options,
    choose: Optional[Callable[[Plan], bool]] = None,
    lines: Optional[AbstractSet[int]] = None,
) -> Rewrite:
    """Find every site in ``module`` and apply the fixes ``choose`` accepts (no verification).

    ``choose`` defaults to :func:`checkpointify.types.applicable` under ``options``. ``lines``, when given, are
    the only lines a site can start on (``prefilter.candidate_lines``).
    """
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    found = (
        find_plans(wrapper, path, options, lines) if lines is not None else find_plans(wrapper, path, options)
    )
    plans = tuple(found)
    chosen = tuple(p for p in plans if (choose(p) if choose else applicable(p.finding, options)))
    names = set(all_names(wrapper.module))
    new_module = apply_plans(wrapper.module, chosen, names, options.runtime_module, options.checkpoint_dir)
    if chosen:
        # the project's import order and line length (a notebook's import stays in its cell)
        new_module = arrange(
            wrapper.module, new_module, options.runtime_module, options.style, not notebook.is_notebook(path)
        )
    return Rewrite(plans, chosen, new_module)


def process_source(
    source: bytes, path: str, options: Options, rewrite: bool, staged: bool = True, text_kept: bool = False
) -> FileResult:
    """Scan one file's bytes and, when ``rewrite``, compute the fixed bytes.

    With ``staged`` (the default), :mod:`checkpointify.prefilter` first rules out files
    that cannot hold a finding, without LibCST; otherwise LibCST parses every file that
    contains ``for`` or ``while``. Both give the same findings. The decoding check comes
    first either way, so a file that does not decode is always reported.

    Never raises: unreadable, undecodable or unparsable input becomes ``error``; so does
    an internal failure, with ``internal=True``. ``text_kept`` says that the text stage
    (``prefilter.text_stage``) already kept this file, so it is not run again.

    A notebook (``path`` ends in ``.ipynb``) is analysed as the module of its code cells
    (:mod:`checkpointify.notebook`): findings name their cell, and ``new_source`` is the
    notebook with only the changed cells' sources replaced.
    """
    if notebook.is_notebook(path):
        return _process_notebook(source, path, options, rewrite, staged)
    return _process(source, path, options, rewrite, staged, text_kept)


def _process(
    source: bytes, path: str, options: Options, rewrite: bool, staged: bool, text_kept: bool
) -> FileResult:
    try:
        encoding = check_encoding(source)
        lines: Optional[AbstractSet[int]] = None
        if staged:
            # keep in step with the matcher: see the docstring of checkpointify.prefilter
            lines = prefilter.candidate_lines(source, encoding, options.extra_sinks, text_kept)
            if lines is not None and not lines:
                return FileResult(path)
        elif not prefilter.has_loop_keyword(source):
            return FileResult(path)
        newer: Optional[cst.Module] = None
        if lines is None:
            # LibCST is about to parse what the ast stage could not (or was not asked to):
            # what CPython rejects is a syntax error, never a crash or an internal error,
            # unless it is only syntax newer than this Python (see rewrite.newsyntax)
            rejected = _python_rejects(source)
            if rejected is not None:
                newer = newsyntax.check(source, _flags(path))
                if newer is None:
                    raise SourceError(rejected)
        module = newer if newer is not None else _parse(source)
        result = (
            _rewrite(source, module, path, options, lines, newer is not None)
            if rewrite
            else _scan(module, path, options, lines)
        )
        return _noted(result) if newer is not None else result
    except SourceError as exc:
        return FileResult(path, error=str(exc))
    except RecursionError:
        return FileResult(path, error="too deeply nested to analyse", internal=True)
    except MemoryError:
        return FileResult(
            path,
            error="not analysed: it needs more memory than a worker may use (raise it with --max-memory)",
        )
    except Exception as exc:  # an internal error in one file never aborts the run
        return FileResult(
            path,
            error="internal error: %s: %s" % (type(exc).__name__, _one_line(exc)),
            internal=True,
            detail=traceback.format_exc(),
        )


def _noted(result: FileResult) -> FileResult:
    """``result`` of a file only LibCST's parser accepts: every finding says so."""

    return replace(
        result, findings=tuple(map(_note, result.findings)), applied=tuple(map(_note, result.applied))
    )


def _note(finding: Finding) -> Finding:
    return replace(finding, message="%s (%s)" % (finding.message, newsyntax.NOTE))


def _parse(source: bytes) -> cst.Module:
    try:
        return cst.parse_module(source)
    except Exception as exc:
        raise SourceError(_syntax_error(source, exc)) from exc


def _syntax_error(source: bytes, exc: Exception) -> str:
    """Python's own description of a syntax error (LibCST's positions can be off)."""
    rejected = _python_rejects(source)
    if rejected is not None:
        return rejected
    return "LibCST cannot parse this file: %s" % _one_line(getattr(exc, "message", exc))


def _python_rejects(source: bytes) -> Optional[str]:
    """Why CPython's own parser rejects ``source`` (a NUL byte, too many nested brackets,
    any syntax error), with the real line and column; None when it accepts it."""
    nul = source.find(b"\0")
    if nul >= 0:
        line = source.count(b"\n", 0, nul) + 1
        column = nul - (source.rfind(b"\n", 0, nul) + 1) + 1
        return "syntax error at line %d, column %d: source code cannot contain null bytes" % (line, column)
    try:
        ast.parse(source)
    except SyntaxError as error:
        if error.lineno is None:
            return "syntax error: %s" % error.msg
        return "syntax error at line %s, column %s: %s" % (error.lineno, error.offset, error.msg)
    except (ValueError, OverflowError) as error:
        return "cannot parse: %s" % _one_line(error)
    except (RecursionError, MemoryError):
        return "cannot parse: too deeply nested for Python's own parser"
    return None


def _scan(
    module: cst.Module, path: str, options: Options, lines: Optional[AbstractSet[int]] = None
) -> FileResult:
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    plans = (
        find_plans(wrapper, path, options, lines) if lines is not None else find_plans(wrapper, path, options)
    )
    return FileResult(path, findings=tuple(p.finding for p in plans))


@dataclass(frozen=True)
class CheckedRewrite:
    """A verified rewrite: ``module`` is the new tree, or the original when nothing applies.

    ``error`` says why applicable fixes were not kept (the file does not compile, or the
    rewrite failed verification, then ``internal`` is True).
    """

    findings: Tuple[Finding, ...]
    applied: Tuple[Finding, ...]
    module: cst.Module
    error: Optional[str] = None
    internal: bool = False


def rewrite_checked(
    module: cst.Module,
    path: str,
    options: Options,
    lines: Optional[AbstractSet[int]] = None,
    newer: bool = False,
) -> CheckedRewrite:
    """Rewrite ``module`` and keep the result only if it compiles and is stable.

    ``lines`` (``prefilter.candidate_lines``) only speeds up the first pass; the second
    pass, over the rewritten file, looks everywhere. ``newer``: the running Python rejects
    the file's syntax and :func:`newsyntax.check` accepts it; "compiles" then means what
    that check means, for the file and for its rewrite.
    """
    first = rewrite_module(module, path, options, lines=lines)
    findings = tuple(p.finding for p in first.plans)
    if not first.applied:
        return CheckedRewrite(findings, (), module)
    try:
        _compile(module.bytes, path, newer)
    except (SyntaxError, ValueError) as exc:
        return CheckedRewrite(
            findings,
            (),
            module,
            "not fixed: the file does not compile (%s)" % _one_line(exc),
        )
    problem = _verify(first.module.bytes, path, options, newer)
    if problem:
        return CheckedRewrite(
            findings,
            (),
            module,
            "internal error: %s; the fix was discarded and the file left untouched" % problem,
            True,
        )
    return CheckedRewrite(findings, tuple(p.finding for p in first.applied), first.module)


def _rewrite(
    source: bytes,
    module: cst.Module,
    path: str,
    options: Options,
    lines: Optional[AbstractSet[int]] = None,
    newer: bool = False,
) -> FileResult:
    outcome = rewrite_checked(module, path, options, lines, newer)
    if not outcome.applied:
        return FileResult(
            path,
            findings=outcome.findings,
            error=outcome.error,
            internal=outcome.internal,
        )
    new_source = keep_original_tail(source, module.bytes, outcome.module.bytes)
    if new_source is None:
        return FileResult(path, findings=outcome.findings, error=_NOT_ROUND_TRIPPED)
    return FileResult(
        path,
        findings=outcome.findings,
        applied=outcome.applied,
        source=source,
        new_source=new_source,
    )


_NOT_ROUND_TRIPPED = "not fixed: LibCST does not reproduce this file byte for byte; left untouched"


def keep_original_tail(source: bytes, parsed: bytes, new: bytes) -> Optional[bytes]:
    """``new`` with the file's own trailing blank lines, or None when that cannot be done.

    LibCST drops some whitespace-only lines at the very end of a file (``"\n    \n\n"``
    comes back shorter), so the tree's bytes differ from the file's. The rewrite must still
    change nothing but the loops: the original tail is put back. Any other difference
    between the file and its parsed tree gives None (the file is left untouched).
    """
    if parsed == source:
        return new
    head = source.rstrip()
    if parsed.rstrip() != head:
        return None
    parsed_tail = parsed[len(head) :]
    if not new.endswith(parsed_tail):
        return None
    return new[: len(new) - len(parsed_tail)] + source[len(head) :]


def _verify(new_source: bytes, path: str, options: Options, newer: bool = False) -> Optional[str]:
    """Why a rewrite must be discarded (it does not compile or does not converge), or None."""
    try:
        _compile(new_source, path, newer)
    except (SyntaxError, ValueError) as exc:
        return "the rewritten file does not compile (%s)" % _one_line(exc)
    try:
        second = rewrite_module(cst.parse_module(new_source), path, options)
    except Exception as exc:
        return "the rewritten file cannot be re-analysed (%s)" % _one_line(exc)
    if second.module.bytes != new_source:
        return "a second pass over the rewritten file would change it again"
    return None


def rewrite_selected(source: bytes, path: str, options: Options, selected: Collection[Finding]) -> FileResult:
    """``source`` rewritten with the fixes of ``selected`` only, verified; never raises.

    This is how a reviewer's accepted subset is applied and how SARIF gets the change of
    one finding alone. ``selected`` are findings of this same ``source``, ``path`` and
    ``options`` (as ``scan`` reported them); a selected finding that is no longer found, or
    has no fix, is ignored, and a selected unsafe fix is applied whatever
    ``options.unsafe_fixes`` says. The rewrite is kept only if it compiles and a second
    scan of it finds exactly the findings that were not selected, unchanged (so ``fix``
    would rewrite those and nothing else); otherwise ``error`` says why, with
    ``internal=True``. ``applied`` lists the findings the rewrite covers.
    """
    if notebook.is_notebook(path):
        try:
            book = notebook.read(source)
        except SourceError as exc:
            return FileResult(path, error=str(exc))
        inner = _rewrite_selected(book.source, path, options, selected, lambda f: _locate(book, f))
        return _notebook_result(book, source, inner)
    return _rewrite_selected(source, path, options, selected, lambda f: f)


def _rewrite_selected(
    source: bytes,
    path: str,
    options: Options,
    selected: Collection[Finding],
    locate: Callable[[Finding], Finding],
) -> FileResult:
    wanted = set(selected)
    try:
        check_encoding(source)
        module = _parse(source)
        # LibCST parses it; when this Python does not, the scan that reported ``selected``
        # accepted it only through newsyntax.check (and noted its findings)
        newer = _python_rejects(source) is not None and newsyntax.check(source, _flags(path)) is not None
        if newer:
            located = locate
            locate = lambda f: _note(located(f))  # noqa: E731
        first = rewrite_module(
            module, path, options, lambda p: locate(p.finding) in wanted and p.finding.fix is not None
        )
        findings = tuple(locate(p.finding) for p in first.plans)
        if not first.applied:
            return FileResult(path, findings=findings)
        applied = tuple(locate(p.finding) for p in first.applied)
        repaired = keep_original_tail(source, module.bytes, first.module.bytes)
        if repaired is None:
            return FileResult(path, findings=findings, error=_NOT_ROUND_TRIPPED)
        new_source = repaired
        try:
            _compile(source, path, newer)
        except (SyntaxError, ValueError) as exc:
            return FileResult(
                path, findings=findings, error="not fixed: the file does not compile (%s)" % _one_line(exc)
            )
        problem = _verify_subset(new_source, path, options, [f for f in findings if f not in applied], newer)
    except SourceError as exc:
        return FileResult(path, error=str(exc))
    except Exception as exc:  # an internal error never escapes: the caller keeps the original
        return FileResult(
            path,
            error="internal error: %s: %s" % (type(exc).__name__, _one_line(exc)),
            internal=True,
            detail=traceback.format_exc(),
        )
    if problem:
        return FileResult(
            path,
            findings=findings,
            error="internal error: %s; the fix was discarded and the file left untouched" % problem,
            internal=True,
        )
    return FileResult(path, findings=findings, applied=applied, source=source, new_source=new_source)


# --------------------------------------------------------------------------- notebooks


def _process_notebook(source: bytes, path: str, options: Options, rewrite: bool, staged: bool) -> FileResult:
    """:func:`process_source` for a notebook: its cells as one module, results mapped back."""
    try:
        book = notebook.read(source)
        notebook.validate(source)
    except SourceError as exc:
        return FileResult(path, error=str(exc))
    inner = _process(book.source, path, options, rewrite, staged, False)
    return _notebook_result(book, source, inner)


def _notebook_result(book: notebook.Notebook, source: bytes, inner: FileResult) -> FileResult:
    """A result on the module of ``book`` as a result on the notebook file ``source``."""
    error = _located_error(book, inner.error) if inner.error else inner.error
    result = replace(
        inner,
        findings=tuple(_locate(book, f) if f.cell is None else f for f in inner.findings),
        applied=tuple(_locate(book, f) if f.cell is None else f for f in inner.applied),
        error=error,
    )
    if inner.new_source is None:
        return replace(result, source=None)
    try:
        new_source = notebook.splice(book, inner.new_source)
    except SourceError as exc:
        return FileResult(inner.path, findings=result.findings, error=str(exc), internal=True)
    return replace(result, source=source, new_source=new_source)


def _locate(book: notebook.Notebook, finding: Finding) -> Finding:
    """``finding`` (on the module of ``book``) with its position in its cell."""
    cell, line = book.position(finding.line)
    end_cell, end_line = book.position(finding.end_line)
    return replace(
        finding,
        cell=cell,
        line=line,
        end_line=end_line if end_cell == cell else line,
        file_line=book.file_line(cell, line),
    )


_AT_LINE = re.compile(r"\bat line (\d+)")


def _located_error(book: notebook.Notebook, error: str) -> str:
    """``syntax error at line 12, ...`` on the module as ``... at cell 3, line 4, ...``."""

    def cell_line(match: "re.Match[str]") -> str:
        cell, line = book.position(int(match.group(1)))
        return "at cell %d, line %d" % (cell + 1, line)

    return _AT_LINE.sub(cell_line, error, count=1)


def _signature(finding: Finding) -> Tuple[object, ...]:
    """A finding without its position (a rewrite above it moves it)."""
    return (finding.code, finding.variant, finding.accumulators, finding.sink, finding.hazards, finding.fix)


def _verify_subset(
    new_source: bytes, path: str, options: Options, remaining: Sequence[Finding], newer: bool = False
) -> Optional[str]:
    """Why a partial rewrite must be discarded, or None (see :func:`rewrite_selected`)."""
    try:
        _compile(new_source, path, newer)
    except (SyntaxError, ValueError) as exc:
        return "the rewritten file does not compile (%s)" % _one_line(exc)
    wrapper = MetadataWrapper(cst.parse_module(new_source), unsafe_skip_copy=True)
    again = Counter(_signature(p.finding) for p in find_plans(wrapper, path, options))
    if again != Counter(_signature(f) for f in remaining):
        return "a second scan of the partly rewritten file does not find exactly the other findings"
    return None


def _flags(path: str) -> int:
    """``compile``'s flags for ``path``: a notebook's cells as a kernel runs them (IPython
    allows ``await`` at the top level of a cell)."""
    return ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if notebook.is_notebook(path) else 0


def _compile(source: bytes, path: str, newer: bool = False) -> None:
    """Compile ``source`` as Python would run it (see :func:`_flags`). With ``newer`` (the
    original file only parses with LibCST), what the running Python rejects is accepted
    when :func:`newsyntax.check` accepts it; the SyntaxError is raised otherwise."""
    try:
        compile(source, path, "exec", flags=_flags(path), dont_inherit=True)
    except SyntaxError:
        if not newer or newsyntax.check(source, _flags(path)) is None:
            raise


def _one_line(exc: object) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
