"""``scan``, ``diff`` and ``fix``: one engine run each, differing only in what they print,
what they write and their exit policy (:func:`checkpointify.output.report.exit_code`)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Sequence, Set, Tuple

import click

from checkpointify.cli.app import (
    FORMATS,
    CliError,
    check_exit_flags,
    check_output,
    check_shard,
    cli,
    emit,
    notes,
    read_stdin,
    report_error,
    summary,
)
from checkpointify.cli.formatting import choose as choose_formatter
from checkpointify.cli.formatting import format_files, format_source
from checkpointify.cli.options import common_options, exit_zero_option
from checkpointify.config import ConfigError
from checkpointify.engine.cache import digest
from checkpointify.engine.journal import Journal
from checkpointify.engine.projects import ProjectOptions
from checkpointify.engine.session import (
    RunFlags,
    Session,
    Stdin,
    journal_for,
    options_for,
    projects_for,
    run_results,
    session_for,
)
from checkpointify.fileio import SourceError, check_encoding, read_source, remove_stale_temps, write_atomic
from checkpointify.output.diffs import colorize, file_diff
from checkpointify.output.formats import (
    github_annotations,
    json_document,
    junit_document,
    print_statistics_table,
    statistics,
    statistics_text,
)
from checkpointify.output.report import (
    Tally,
    color_for,
    error,
    exit_code,
    fix_hint,
    fix_summary,
    print_text,
    say,
    scan_hint,
    scan_summary,
    text_document,
)
from checkpointify.output.reviewbots import gitlab_document, rdjson_document
from checkpointify.types import FileResult, Options


def _options(
    unsafe: Optional[bool], exclude: Sequence[str] = (), paths: Sequence[str] = ()
) -> Tuple[Options, ProjectOptions]:
    """The run's Options, and each file's (its nearest configuration's)."""
    try:
        options = options_for(unsafe, exclude, paths=paths)
        return options, projects_for(options, unsafe, exclude, paths)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc


# ----------------------------------------------------------------------------- scan


@cli.command()
@common_options
@click.option(
    "--output-format",
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text (each finding with its source lines), concise (one line each), json, sarif (SARIF "
    "2.1.0 with fixes), github (workflow annotations), junit, rdjson (reviewdog, with suggestions) "
    "or gitlab (GitLab Code Quality).",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    default=None,
    help="Write the report to FILE (atomically for a regular file; `-` is stdout).",
)
@click.option(
    "--statistics",
    is_flag=True,
    help="Print counts per code, hazard and fix safety instead of the findings.",
)
@exit_zero_option
def scan(
    paths: Sequence[str],
    unsafe_fixes: Optional[bool],
    verbose: bool,
    stdin_filename: Optional[str],
    exclude: Sequence[str],
    output_format: str,
    output: Optional[str],
    statistics: bool,
    exit_zero: bool,
    **run_flags: object,
) -> int:
    """Report collect-then-save loops. Exit 1 if any is found or a file fails."""
    flags = RunFlags.take(run_flags)
    check_shard(flags)
    if statistics and output_format != "text":
        raise CliError("--statistics prints a table; it cannot be combined with --format %s" % output_format)
    target = check_output(output, paths)
    options, projects = _options(unsafe_fixes, exclude, paths)
    session = session_for(flags, options, projects=projects)
    stdin = read_stdin(paths, stdin_filename, need_name=False)
    stream = output_format in ("text", "concise") and not statistics and target is None
    tally = Tally()
    results: List[FileResult] = []
    codes: Set[str] = set()
    for result in run_results(paths, stdin, options, False, session):
        tally.add(result)
        codes.update(f.code for f in result.findings)
        if stream:
            if result.findings:
                with session.progress.pause():
                    print_text(result, sys.stdout, _source_lines(result, stdin, output_format))
                    sys.stdout.flush()
        else:
            results.append(result)
        if result.error is not None:
            with session.progress.pause():
                report_error(result, verbose)
    sys.stdout.flush()
    if statistics:
        _print_statistics(results, target)
    elif not stream:
        emit(_scan_document(output_format, results, options, stdin).encode("utf-8"), target)
    notes(session.stats, flags)
    summary(scan_summary(tally), session.stats, paths, stdin is not None, flags.quiet)
    if codes and not flags.quiet:
        say(scan_hint(sorted(codes)))
    return exit_code("scan", tally, exit_zero=exit_zero)


def _scan_document(
    output_format: str, results: List[FileResult], options: Options, stdin: Optional[Stdin]
) -> str:
    if output_format == "json":
        return json_document(results)
    if output_format == "github":
        return github_annotations(results)
    if output_format == "junit":
        return junit_document(results)
    if output_format in ("sarif", "rdjson"):
        from checkpointify.output.sarif import sarif_document, single_fixes

        sources = {stdin.name: stdin.source} if stdin is not None else {}
        fixes = single_fixes(results, options, sources)
        if output_format == "rdjson":
            return rdjson_document(results, fixes, options)
        return sarif_document(results, fixes, Path.cwd())
    if output_format == "gitlab":
        return gitlab_document(results)
    if output_format == "concise":
        return text_document(results)
    return text_document(
        results, {r.path: _source_lines(r, stdin, "text") or [] for r in results if r.findings}
    )


def _source_lines(result: FileResult, stdin: Optional[Stdin], output_format: str) -> Optional[List[str]]:
    """The lines of a file with findings, for the full text format (None: concise, or unreadable)."""
    if output_format != "text" or not result.findings:
        return None
    if stdin is not None:
        data = stdin.source
    else:
        try:
            data = read_source(Path(result.path))
        except SourceError:
            return None
    try:
        return data.decode(check_encoding(data)).splitlines()
    except (SourceError, UnicodeDecodeError, LookupError):
        return None


def _print_statistics(results: List[FileResult], target: Optional[Path]) -> None:
    rows = statistics(results)
    if target is None and sys.stdout.isatty():
        print_statistics_table(rows, sys.stdout)
    else:
        emit(statistics_text(rows).encode("utf-8"), target)


# ----------------------------------------------------------------------------- diff


@cli.command()
@common_options
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    default=None,
    help="Write the patch to FILE (atomically for a regular file; `-` is stdout).",
)
@exit_zero_option
def diff(
    paths: Sequence[str],
    unsafe_fixes: Optional[bool],
    verbose: bool,
    stdin_filename: Optional[str],
    exclude: Sequence[str],
    output: Optional[str],
    exit_zero: bool,
    **run_flags: object,
) -> int:
    """Print the unified diff `fix` would apply; write nothing. Exit 1 if anything would change."""
    flags = RunFlags.take(run_flags)
    check_shard(flags)
    target = check_output(output, paths)
    options, projects = _options(unsafe_fixes, exclude, paths)
    session = session_for(flags, options, projects=projects)
    stdin = read_stdin(paths, stdin_filename, need_name=True)
    tally = Tally()
    color = target is None and color_for(sys.stdout)  # like git diff: colours on a terminal only
    # a notebook's diff is per cell on a terminal, else the .ipynb JSON text's (git applies it)
    terminal = target is None and sys.stdout.isatty()
    patch: List[bytes] = []
    for result in run_results(paths, stdin, options, True, session):
        tally.add(result)
        if result.changed:
            assert result.source is not None and result.new_source is not None
            hunk = file_diff(result.source, result.new_source, result.path, readable=terminal)
            if target is None:
                with session.progress.pause():
                    emit(colorize(hunk) if color else hunk, None)
            else:
                patch.append(hunk)
        if result.error is not None:
            with session.progress.pause():
                report_error(result, verbose)
    if target is not None:
        emit(b"".join(patch), target)
    notes(session.stats, flags)
    summary(
        fix_summary(tally, options.unsafe_fixes, dry_run=True),
        session.stats,
        paths,
        stdin is not None,
        flags.quiet,
    )
    return exit_code("diff", tally, exit_zero=exit_zero)


# ------------------------------------------------------------------------------ fix


@cli.command()
@common_options
@click.option(
    "-i",
    "--interactive",
    is_flag=True,
    help="Review each change (diff and hazards) and apply it or not: y/n/a(ll)/q(uit). Needs a terminal.",
)
@click.option(
    "--exit-non-zero-on-fix",
    is_flag=True,
    help="Exit 1 when a fix was applied (a CI job then fails and can push the change).",
)
@click.option(
    "--allow-read-only",
    is_flag=True,
    help="Also rewrite files without a write bit (by default a read-only file is an error, left untouched).",
)
@click.option(
    "--format/--no-format",
    "format_flag",
    default=None,
    help="Run the project's formatter on the files fix changed (ruff or black: `format` in "
    "[tool.checkpointify], else found from the project's configuration).",
)
@exit_zero_option
def fix(
    paths: Sequence[str],
    unsafe_fixes: Optional[bool],
    verbose: bool,
    stdin_filename: Optional[str],
    exclude: Sequence[str],
    interactive: bool,
    exit_non_zero_on_fix: bool,
    allow_read_only: bool,
    format_flag: Optional[bool],
    exit_zero: bool,
    **run_flags: object,
) -> int:
    """Rewrite the loops in place (safe fixes; unsafe ones with --unsafe-fixes).

    With `-` the file is read from stdin and the fixed file written to stdout. An
    interrupted run started again with the same arguments skips the files it finished.
    """
    flags = RunFlags.take(run_flags)
    check_shard(flags)
    check_exit_flags(exit_zero, exit_non_zero_on_fix)
    options, projects = _options(unsafe_fixes, exclude, paths)
    try:
        formatter = choose_formatter(format_flag, options.formatter, _start(paths))
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if interactive:
        return _fix_interactive(
            paths,
            stdin_filename,
            options,
            flags,
            verbose,
            exit_non_zero_on_fix,
            exit_zero,
            allow_read_only,
            projects,
        )
    session = session_for(flags, options, projects=projects)
    stdin = read_stdin(paths, stdin_filename, need_name=True)
    if stdin is None:
        session.journal = journal_for(paths, options, flags, session.settings)
    tally = Tally()
    cleaned: Set[str] = set()
    written: List[str] = []
    for result in run_results(paths, stdin, options, True, session):
        if stdin is None:
            _remove_stale_temps(result.path, cleaned, session, flags.quiet)
        if stdin is not None:
            # an editor replaces its buffer with stdout: always send the whole file
            emit(_stdin_output(result, stdin, formatter, tally), None)
        elif result.changed:
            result = _write(result, session.journal, allow_read_only)
            if result.error is None:
                written.append(result.path)
        tally.add(result)
        if result.error is not None:
            with session.progress.pause():
                report_error(result, verbose)
    if formatter is not None:
        for failure in format_files(formatter, written):
            tally.failed += 1
            error(failure.path, failure.reason)
    if session.journal is not None:
        session.journal.complete()
        if session.journal.problem and not flags.quiet:
            say("checkpointify: warning: %s; this run could not have been resumed." % session.journal.problem)
    notes(session.stats, flags)
    summary(
        fix_summary(tally, options.unsafe_fixes, dry_run=False),
        session.stats,
        paths,
        stdin is not None,
        flags.quiet,
    )
    if tally.changed_files and stdin is None and not flags.quiet:
        say(fix_hint())
    return exit_code("fix", tally, exit_zero=exit_zero, exit_non_zero_on_fix=exit_non_zero_on_fix)


def _start(paths: Sequence[str]) -> Path:
    """Where the project's formatter configuration is looked for: the first path's folder."""
    first = next((Path(p) for p in paths if p != "-"), Path("."))
    return first if first.is_dir() else first.parent


def _stdin_output(result: FileResult, stdin: Stdin, formatter: Optional[str], tally: Tally) -> bytes:
    """What ``fix -`` writes to stdout: the fixed file, formatted when asked (else as fixed)."""
    if not (result.changed and result.new_source):
        return stdin.source
    if formatter is None:
        return result.new_source
    formatted, problem = format_source(formatter, result.new_source, stdin.name)
    if problem is not None:
        tally.failed += 1
        error(stdin.name, problem)
    return formatted


def _remove_stale_temps(path: str, cleaned: Set[str], session: Session, quiet: bool) -> None:
    """Once per folder a run writes in: the temporary files a killed run left there."""
    folder = os.path.dirname(path) or "."
    if folder in cleaned:
        return
    cleaned.add(folder)
    for name in remove_stale_temps(Path(folder)):
        if not quiet:
            with session.progress.pause():
                say("checkpointify: removed %s, left by a run that was killed" % os.path.join(folder, name))


def _write(result: FileResult, journal: Optional[Journal], allow_read_only: bool = False) -> FileResult:
    """Replace the file atomically, then record it as finished."""
    assert result.source is not None and result.new_source is not None
    try:
        write_atomic(
            Path(result.path), result.new_source, expected=result.source, allow_read_only=allow_read_only
        )
    except SourceError as exc:
        return FileResult(result.path, findings=result.findings, error=str(exc))
    if journal is not None:
        journal.record(result.path, digest(result.new_source))
    return result


def _fix_interactive(
    paths: Sequence[str],
    stdin_filename: Optional[str],
    options: Options,
    flags: RunFlags,
    verbose: bool,
    exit_non_zero_on_fix: bool,
    exit_zero: bool,
    allow_read_only: bool = False,
    projects: Optional[ProjectOptions] = None,
) -> int:
    from checkpointify.cli.review import TerminalReviewer, can_review, review

    if "-" in paths or stdin_filename is not None:
        raise CliError("--interactive reads answers from the terminal; it cannot read the file from stdin")
    if not can_review():
        raise CliError(
            "--interactive needs a terminal on stdin and stdout; use `checkpointify diff` to "
            "review the changes or `checkpointify fix` to apply them without asking"
        )
    tally = Tally()
    # one worker unless -j says otherwise: the first question comes at once, and `q`
    # stops at once instead of waiting for files computed ahead
    session = session_for(replace(flags, quiet=True), options, jobs=flags.jobs or 1, projects=projects)
    pending = run_results(paths, None, options, True, session)
    for result in review(pending, options, TerminalReviewer(), allow_read_only):
        tally.add(result)
        if result.error is not None:
            report_error(result, verbose)
    notes(session.stats, flags)
    summary(fix_summary(tally, options.unsafe_fixes, dry_run=False), session.stats, paths, False, flags.quiet)
    return exit_code("fix", tally, exit_zero=exit_zero, exit_non_zero_on_fix=exit_non_zero_on_fix)
