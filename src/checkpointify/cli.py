"""The command line: ``scan``, ``diff`` and ``fix`` over one runner call, and
``checkpoints`` over the logs the rewritten programs leave.

``main(argv) -> int`` is the testable entry point; ``entry_point`` is the console script.
The three rewrite commands differ only in what they print and write, and in their exit
policy (:class:`checkpointify.report.Exit`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import click

from checkpointify import __version__, checkpoints
from checkpointify.config import ConfigError, load_options
from checkpointify.diffs import unified_diff
from checkpointify.fileio import SourceError, write_atomic
from checkpointify.report import (
    Exit,
    Tally,
    color_for,
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


def _jobs_or_default(jobs: Optional[int]) -> int:
    return jobs if jobs is not None else (os.cpu_count() or 1)


def _options(unsafe: Optional[bool]) -> Options:
    try:
        return load_options(Path.cwd(), unsafe_fixes=unsafe)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


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
@_verbose
def scan(
    paths: Sequence[str],
    output_format: str,
    jobs: Optional[int],
    unsafe_fixes: Optional[bool],
    verbose: bool,
) -> int:
    """Report collect-then-save loops. Exit 1 if any is found or a file fails."""
    options = _options(unsafe_fixes)
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
@_verbose
def diff(
    paths: Sequence[str],
    jobs: Optional[int],
    unsafe_fixes: Optional[bool],
    verbose: bool,
) -> int:
    """Print the unified diff `fix` would apply; write nothing. Exit 1 if anything would change."""
    options = _options(unsafe_fixes)
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
@_verbose
def fix(
    paths: Sequence[str],
    jobs: Optional[int],
    unsafe_fixes: Optional[bool],
    verbose: bool,
) -> int:
    """Rewrite the loops in place (safe fixes; unsafe ones with --unsafe-fixes)."""
    options = _options(unsafe_fixes)
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


# ----------------------------------------------------------------------------- checkpoints

_dir = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Checkpoint directory (default: $CHECKPOINTIFY_DIR, else ./.checkpointify).",
)


def _checkpoint_dir(directory: Optional[Path]) -> Path:
    if directory is not None:
        return directory
    parent = click.get_current_context().find_object(_CheckpointsDir)
    return parent.path if parent is not None and parent.path is not None else checkpoints.default_dir()


class _CheckpointsDir:
    def __init__(self, path: Optional[Path]) -> None:
        self.path = path


def _list_checkpoints(directory: Path) -> int:
    entries = checkpoints.load(directory)
    if not entries:
        say("No checkpoints in %s." % checkpoints.shown(directory))
        return Exit.OK
    checkpoints.render_table(checkpoints.rows(entries), sys.stdout, color_for(sys.stdout))
    sys.stdout.flush()
    busy = sum(1 for e in entries if e.info is not None and e.info.writer is not None)
    say(
        "%d checkpoint%s in %s%s."
        % (
            len(entries),
            "" if len(entries) == 1 else "s",
            checkpoints.shown(directory),
            ", %d in use" % busy if busy else "",
        )
    )
    return Exit.OK


@cli.group("checkpoints", invoke_without_command=True)
@_dir
@click.pass_context
def checkpoints_group(ctx: click.Context, directory: Optional[Path]) -> Optional[int]:
    """List (the default), show or clear the checkpoints rewritten programs leave behind."""
    ctx.obj = _CheckpointsDir(directory)
    if ctx.invoked_subcommand is None:
        return _list_checkpoints(_checkpoint_dir(directory))
    return None


@checkpoints_group.command("list")
@_dir
def checkpoints_list(directory: Optional[Path]) -> int:
    """A table of the checkpoints: loop, source, units done, size, age, state."""
    return _list_checkpoints(_checkpoint_dir(directory))


def _selected(directory: Path, ident: str) -> List[checkpoints.Entry]:
    chosen = checkpoints.select(checkpoints.load(directory), ident)
    if not chosen:
        error(
            ident,
            "no such checkpoint in %s (see `checkpointify checkpoints list`)" % checkpoints.shown(directory),
        )
    return chosen


@checkpoints_group.command("show")
@click.argument("ident", metavar="ID")
@_dir
def checkpoints_show(ident: str, directory: Optional[Path]) -> int:
    """Everything about one checkpoint: ID, file name, hash or loop id. Exit 1 if not found."""
    chosen = _selected(_checkpoint_dir(directory), ident)
    for index, entry in enumerate(chosen):
        if index:
            sys.stdout.write("\n")
        checkpoints.render_details(checkpoints.details(entry), sys.stdout)
    return Exit.OK if chosen else Exit.FAILED


@checkpoints_group.command("clear")
@click.argument("ident", metavar="[ID]", required=False)
@_dir
def checkpoints_clear(ident: Optional[str], directory: Optional[Path]) -> int:
    """Remove one checkpoint (ID, file name, hash or loop id) or all of them, so that the
    loops start from zero. A checkpoint a running process uses is left alone (exit 1)."""
    where = _checkpoint_dir(directory)
    if ident is None:
        chosen = checkpoints.load(where)
    else:
        chosen = _selected(where, ident)
        if not chosen:
            return Exit.FAILED
    removed, refused = checkpoints.clear(chosen)
    if ident is None:
        checkpoints.remove_orphan_locks(where)
    for path in removed:
        say("removed %s" % checkpoints.shown(path))
    for reason in refused:
        say("checkpointify: error: %s" % reason, style="red")
    if ident is None and not chosen:
        say("No checkpoints in %s." % checkpoints.shown(where))
    return Exit.FAILED if refused else Exit.OK


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
