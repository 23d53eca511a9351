"""Discovery and per-file processing. Never raises across a file boundary.

``process_source`` is the one core call: bytes in, :class:`FileResult` out. ``scan``,
``diff`` and ``fix`` all go through it and differ only in what they do with the result.
A rewrite is kept only if the new file compiles and a second pass over it changes
nothing; otherwise it is discarded and the file reported.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Collection, Iterable, Iterator, List, Optional, Sequence, Tuple

import libcst as cst
from libcst.metadata import MetadataWrapper

from checkpointify.cstutil import all_names
from checkpointify.fileio import SourceError, check_encoding, read_source
from checkpointify.matcher import Plan, find_plans
from checkpointify.transformer import apply_plans
from checkpointify.types import FileResult, Finding, Options, Safety

#: directories never entered when a folder is walked (explicitly named files are always read)
DEFAULT_EXCLUDED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "__pycache__",
        "node_modules",
        ".eggs",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".checkpointify",
        ".checkpointify_cache",
        "build",
        "dist",
        "site-packages",
    }
)


@dataclass(frozen=True)
class Rewrite:
    plans: Tuple[Plan, ...]
    applied: Tuple[Plan, ...]
    module: cst.Module


def applicable(plan: Plan, options: Options) -> bool:
    """Whether ``fix``/``diff`` apply this plan: safe fixes always, unsafe ones on request."""
    fix = plan.finding.fix
    return fix is Safety.SAFE or (fix is Safety.UNSAFE and options.unsafe_fixes)


def rewrite_module(
    module: cst.Module,
    path: str,
    options: Options,
    choose: Optional[Callable[[Plan], bool]] = None,
) -> Rewrite:
    """Find every site in ``module`` and apply the fixes ``choose`` accepts (no verification).

    ``choose`` defaults to :func:`applicable` under ``options``.
    """
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    plans = tuple(find_plans(wrapper, path, options))
    chosen = tuple(p for p in plans if (choose(p) if choose else applicable(p, options)))
    names = set(all_names(wrapper.module))
    new_module = apply_plans(wrapper.module, chosen, names, options.runtime_module, options.checkpoint_dir)
    return Rewrite(plans, chosen, new_module)


def may_match(source: bytes) -> bool:
    """Cheap text test: every site is a ``for`` or ``while`` loop, or a comprehension."""
    return b"for" in source or b"while" in source


def process_source(source: bytes, path: str, options: Options, rewrite: bool) -> FileResult:
    """Scan one file's bytes and, when ``rewrite``, compute the fixed bytes.

    Never raises: unreadable, undecodable or unparsable input becomes ``error``; so does
    an internal failure, with ``internal=True``.
    """
    try:
        check_encoding(source)
        if not may_match(source):
            return FileResult(path)
        module = _parse(source)
        result = _rewrite(module, path, options) if rewrite else _scan(module, path, options)
        return result
    except SourceError as exc:
        return FileResult(path, error=str(exc))
    except RecursionError:
        return FileResult(path, error="too deeply nested to analyse", internal=True)
    except Exception as exc:  # an internal error in one file never aborts the run
        return FileResult(
            path,
            error="internal error: %s: %s" % (type(exc).__name__, _one_line(exc)),
            internal=True,
            detail=traceback.format_exc(),
        )


def _parse(source: bytes) -> cst.Module:
    try:
        return cst.parse_module(source)
    except Exception as exc:
        raise SourceError(_syntax_error(source, exc)) from exc


def _syntax_error(source: bytes, exc: Exception) -> str:
    """Python's own description of a syntax error (LibCST's positions can be off)."""
    try:
        ast.parse(source)
    except SyntaxError as error:
        return "syntax error at line %s, column %s: %s" % (
            error.lineno,
            error.offset,
            error.msg,
        )
    except (ValueError, RecursionError, MemoryError) as error:
        return "cannot parse: %s" % _one_line(error)
    return "LibCST cannot parse this file: %s" % _one_line(getattr(exc, "message", exc))


def _scan(module: cst.Module, path: str, options: Options) -> FileResult:
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    plans = find_plans(wrapper, path, options)
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


def rewrite_checked(module: cst.Module, path: str, options: Options) -> CheckedRewrite:
    """Rewrite ``module`` and keep the result only if it compiles and is stable."""
    first = rewrite_module(module, path, options)
    findings = tuple(p.finding for p in first.plans)
    if not first.applied:
        return CheckedRewrite(findings, (), module)
    try:
        compile(module.bytes, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return CheckedRewrite(
            findings,
            (),
            module,
            "not fixed: the file does not compile (%s)" % _one_line(exc),
        )
    problem = _verify(first.module.bytes, path, options)
    if problem:
        return CheckedRewrite(
            findings,
            (),
            module,
            "internal error: %s; the fix was discarded and the file left untouched" % problem,
            True,
        )
    return CheckedRewrite(findings, tuple(p.finding for p in first.applied), first.module)


def _rewrite(module: cst.Module, path: str, options: Options) -> FileResult:
    outcome = rewrite_checked(module, path, options)
    if not outcome.applied:
        return FileResult(
            path,
            findings=outcome.findings,
            error=outcome.error,
            internal=outcome.internal,
        )
    return FileResult(
        path,
        findings=outcome.findings,
        applied=outcome.applied,
        source=module.bytes,
        new_source=outcome.module.bytes,
    )


def _verify(new_source: bytes, path: str, options: Options) -> Optional[str]:
    """Why a rewrite must be discarded (it does not compile or does not converge), or None."""
    try:
        compile(new_source, path, "exec", dont_inherit=True)
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
    wanted = set(selected)
    try:
        check_encoding(source)
        module = _parse(source)
        first = rewrite_module(
            module, path, options, lambda p: p.finding in wanted and p.finding.fix is not None
        )
        findings = tuple(p.finding for p in first.plans)
        if not first.applied:
            return FileResult(path, findings=findings)
        applied = tuple(p.finding for p in first.applied)
        new_source = first.module.bytes
        try:
            compile(source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:
            return FileResult(
                path, findings=findings, error="not fixed: the file does not compile (%s)" % _one_line(exc)
            )
        problem = _verify_subset(new_source, path, options, [f for f in findings if f not in applied])
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


def _signature(finding: Finding) -> Tuple[object, ...]:
    """A finding without its position (a rewrite above it moves it)."""
    return (finding.code, finding.variant, finding.accumulators, finding.sink, finding.hazards, finding.fix)


def _verify_subset(
    new_source: bytes, path: str, options: Options, remaining: Sequence[Finding]
) -> Optional[str]:
    """Why a partial rewrite must be discarded, or None (see :func:`rewrite_selected`)."""
    try:
        compile(new_source, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return "the rewritten file does not compile (%s)" % _one_line(exc)
    wrapper = MetadataWrapper(cst.parse_module(new_source), unsafe_skip_copy=True)
    again = Counter(_signature(p.finding) for p in find_plans(wrapper, path, options))
    if again != Counter(_signature(f) for f in remaining):
        return "a second scan of the partly rewritten file does not find exactly the other findings"
    return None


def _one_line(exc: object) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------- discovery


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when inside it, with forward slashes."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def discover(paths: Sequence[str], exclude: Sequence[str] = ()) -> Iterator[Path]:
    """Python files under ``paths``, each once, folders walked in sorted order.

    Named files are yielded whatever their suffix; folders contribute their ``*.py`` files,
    skipping :data:`DEFAULT_EXCLUDED_DIRS` and hidden folders. Anything matching an
    ``exclude`` glob (see :func:`excluded`) is skipped, named files included. A missing
    path is yielded as is, so processing reports it.
    """
    seen = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates: Iterable[Path] = _walk(path, exclude)
        else:
            candidates = [] if excluded(path, exclude) else [path]
        for candidate in candidates:
            key = os.path.normcase(os.path.abspath(candidate))
            if key not in seen:
                seen.add(key)
                yield candidate


def excluded(path: Path, patterns: Sequence[str]) -> bool:
    """Whether ``path`` (relative to the working directory) or one of its folders matches a glob.

    ``tests/*``, ``build``, ``*_pb2.py`` and ``legacy/**/*.py`` all work: a pattern is
    tried against the whole relative path, against the file or folder name, and against
    every leading folder of the path.
    """
    if not patterns:
        return False
    rel = display_path(path)
    parts = rel.split("/")
    candidates = [rel, parts[-1]] + ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)] + parts[:-1]
    return any(fnmatch.fnmatchcase(c, p.rstrip("/")) for p in patterns for c in candidates)


def _walk(root: Path, exclude: Sequence[str]) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            hidden = entry.name.startswith(".") or entry.name.endswith(".egg-info")
            if entry.name in DEFAULT_EXCLUDED_DIRS or hidden or excluded(path, exclude):
                continue
            yield from _walk(path, exclude)
        elif entry.name.endswith(".py") and entry.is_file() and not excluded(path, exclude):
            yield path


def process_file(path: Path, options: Options, rewrite: bool) -> FileResult:
    shown = display_path(path)
    try:
        source = read_source(path)
    except SourceError as exc:
        return FileResult(shown, error=str(exc))
    result = process_source(source, shown, options, rewrite)
    if not result.changed:
        result = replace(result, source=None, new_source=None)
    return result


def _process_star(args: Tuple[Path, Options, bool]) -> FileResult:
    return process_file(*args)


def run(paths: Sequence[str], options: Options, rewrite: bool, jobs: int = 1) -> Iterator[FileResult]:
    """Process every discovered file; results come in discovery order whatever ``jobs`` is."""
    files: List[Path] = list(discover(paths, options.exclude))
    if jobs <= 1 or len(files) < 2:
        for path in files:
            yield process_file(path, options, rewrite)
        return
    work = [(path, options, rewrite) for path in files]
    pool = ProcessPoolExecutor(max_workers=jobs)
    try:
        yield from pool.map(_process_star, work, chunksize=max(1, min(32, len(work) // (jobs * 8) or 1)))
    finally:
        # a consumer that stops early (an interactive review quit with `q`) must not wait
        # for the rest of the tree to be processed
        pool.shutdown(wait=True, cancel_futures=True)
