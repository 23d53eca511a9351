"""The command line: ``scan``, ``diff`` and ``fix`` over one runner call.

``main(argv) -> int`` is the testable entry point; ``entry_point`` is the console script.
The three commands differ only in what they print and write, and in their exit policy
(:class:`checkpointify.report.Exit`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Sequence

import click

from checkpointify import __version__
from checkpointify.config import ConfigError, load_options
from checkpointify.diffs import unified_diff
from checkpointify.fileio import SourceError, write_atomic
from checkpointify.report import (
    Exit,
    Tally,
    error,
    fix_summary,
    json_document,
    print_text,
    say,
    scan_summary,
)
from checkpointify.runner import run
from checkpointify.types import FileResult, Options

_paths = click.argument("paths", nargs=-1, type=click.Path(path_type=str))
_jobs = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: number of cores).",
)
_unsafe = click.option(
    "--unsafe-fixes",
    is_flag=True,
    default=None,
    help="Also apply fixes whose resume may differ (see each finding's hazards).",
)
_verbose = click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of internal errors.")
_exclude = click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    help="Skip files and folders matching this glob (repeatable; added to [tool.checkpointify] exclude).",
)


def _jobs_or_default(jobs: Optional[int]) -> int:
    return jobs if jobs is not None else (os.cpu_count() or 1)


def _options(unsafe: Optional[bool], exclude: Sequence[str] = ()) -> Options:
    try:
        options = load_options(Path.cwd(), unsafe_fixes=unsafe)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    return replace(options, exclude=tuple(options.exclude) + tuple(exclude)) if exclude else options


def _report_error(result: FileResult, verbose: bool) -> None:
    assert result.error is not None
    error(result.path, result.error)
    if verbose and result.detail:
        say(result.detail.rstrip())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="checkpointify")
def cli() -> None:
    """Find loops that collect results in memory and save them only at the end, and
    rewrite them so that every iteration is checkpointed and a re-run resumes."""


@cli.command()
@_paths
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@_jobs
@_unsafe
@_exclude
@_verbose
def scan(
    paths: Sequence[str],
    output_format: str,
    jobs: Optional[int],
    unsafe_fixes: Optional[bool],
    exclude: Sequence[str],
    verbose: bool,
) -> int:
    """Report collect-then-save loops. Exit 1 if any is found or a file fails."""
    options = _options(unsafe_fixes, exclude)
    tally = Tally()
    results: List[FileResult] = []
    for result in run(paths or ["."], options, rewrite=False, jobs=_jobs_or_default(jobs)):
        tally.add(result)
        if output_format == "json":
            results.append(result)
        else:
            print_text(result, sys.stdout)
        if result.error is not None:
            _report_error(result, verbose)
    if output_format == "json":
        sys.stdout.write(json_document(results))
    sys.stdout.flush()
    say(scan_summary(tally))
    return Exit.FAILED if tally.findings or tally.failed else Exit.OK


@cli.command()
@_paths
@_jobs
@_unsafe
@_exclude
@_verbose
def diff(
    paths: Sequence[str],
    jobs: Optional[int],
    unsafe_fixes: Optional[bool],
    exclude: Sequence[str],
    verbose: bool,
) -> int:
    """Print the unified diff `fix` would apply; write nothing. Exit 1 if anything would change."""
    options = _options(unsafe_fixes, exclude)
    tally = Tally()
    out = sys.stdout.buffer
    for result in run(paths or ["."], options, rewrite=True, jobs=_jobs_or_default(jobs)):
        tally.add(result)
        if result.changed:
            assert result.source is not None and result.new_source is not None
            out.write(unified_diff(result.source, result.new_source, result.path))
            out.flush()
        if result.error is not None:
            _report_error(result, verbose)
    say(fix_summary(tally, options.unsafe_fixes, dry_run=True))
    return Exit.FAILED if tally.changed_files or tally.failed else Exit.OK


@cli.command()
@_paths
@_jobs
@_unsafe
@_exclude
@_verbose
def fix(
    paths: Sequence[str],
    jobs: Optional[int],
    unsafe_fixes: Optional[bool],
    exclude: Sequence[str],
    verbose: bool,
) -> int:
    """Rewrite the loops in place (safe fixes; unsafe ones with --unsafe-fixes)."""
    options = _options(unsafe_fixes, exclude)
    tally = Tally()
    for result in run(paths or ["."], options, rewrite=True, jobs=_jobs_or_default(jobs)):
        if result.changed:
            assert result.source is not None and result.new_source is not None
            try:
                write_atomic(Path(result.path), result.new_source, expected=result.source)
            except SourceError as exc:
                result = FileResult(result.path, findings=result.findings, error=str(exc))
        tally.add(result)
        if result.error is not None:
            _report_error(result, verbose)
    say(fix_summary(tally, options.unsafe_fixes, dry_run=False))
    return Exit.FAILED if tally.failed else Exit.OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="checkpointify", standalone_mode=False)
    except click.UsageError as exc:
        say("checkpointify: error: %s" % exc.format_message(), style="red")
        if exc.ctx is not None:
            say(exc.ctx.get_usage())
        return Exit.USAGE
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        say("Aborted.")
        return 130
    except KeyboardInterrupt:
        say("Interrupted.")
        return 130
    return int(result) if isinstance(result, int) else Exit.OK


def entry_point() -> None:
    sys.exit(main())
