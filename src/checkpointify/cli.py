"""The command line: ``scan``, ``diff`` and ``fix`` over one runner call, and
``checkpoints`` over the logs the rewritten programs leave.

``main(argv) -> int`` is the testable entry point; ``entry_point`` is the console script.
The three rewrite commands differ only in what they print and write; their exit codes
all come from :func:`checkpointify.report.exit_code`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, TypeVar

import click

from checkpointify import __version__, checkpoints
from checkpointify.cache import default_directory, digest
from checkpointify.config import ConfigError, find_config, load_options
from checkpointify.diffs import unified_diff
from checkpointify.discovery import Selection, Shard
from checkpointify.fileio import SourceError, read_source, write_atomic, write_output
from checkpointify.formats import (
    github_annotations,
    json_document,
    junit_document,
    print_statistics_table,
    statistics,
    statistics_text,
)
from checkpointify.journal import Journal, journal_key
from checkpointify.pipeline import DEFAULT_TIMEOUT, Settings, Stats, run, run_source
from checkpointify.pool import default_jobs
from checkpointify.progress import Progress, wanted
from checkpointify.report import (
    Exit,
    Tally,
    color_for,
    error,
    exit_code,
    fix_summary,
    print_text,
    say,
    scan_summary,
    text_document,
)
from checkpointify.types import FileResult, Finding, Options

FORMATS = ("text", "json", "sarif", "github", "junit")

F = TypeVar("F", bound=Callable[..., object])


class CliError(click.ClickException):
    """A usage problem found after parsing (bad combination, unwritable output): exit 2."""

    exit_code = Exit.USAGE


# ------------------------------------------------------------------------- options

_paths = click.argument("paths", nargs=-1, type=click.Path(path_type=str))
_jobs = click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: the number of cores). Each file is analysed in a worker, "
    "so a crash on one file costs that file only.",
)
_timeout = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Give up on a file whose analysis takes longer (reported as an error).",
)
_cache_dir = click.option(
    "--cache-dir",
    metavar="DIR",
    default=None,
    help="Cache folder (default: .checkpointify_cache next to pyproject.toml, else here).",
)
_no_cache = click.option("--no-cache", is_flag=True, help="Neither read nor write the cache.")
_shard = click.option(
    "--shard",
    metavar="K/N",
    default=None,
    help="Process only shard K of N (K from 1 to N): files are split by a hash of their path.",
)
_quiet = click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress bar, summary or notes on stderr (findings, reports, diffs and errors stay).",
)
_include_generated = click.option(
    "--include-generated",
    is_flag=True,
    help="Also process files marked @generated in their first 2 KB.",
)
_no_prefilter = click.option(
    "--no-prefilter",
    "no_prefilter",
    is_flag=True,
    hidden=True,
    help="Run LibCST on every file with a loop (the reference path; for tests and benchmarks).",
)
_unsafe = click.option(
    "--unsafe-fixes",
    is_flag=True,
    default=None,
    help="Also apply fixes whose resume may differ (see each finding's hazards).",
)
_verbose = click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of internal errors.")
_stdin_filename = click.option(
    "--stdin-filename",
    metavar="NAME",
    default=None,
    help="Read one file from stdin (path `-`) and call it NAME in messages and checkpoint ids.",
)
_exit_zero = click.option(
    "--exit-zero",
    is_flag=True,
    help="Exit 0 even with findings, pending changes or applied fixes "
    "(not with files that failed, nor internal errors).",
)


_exclude = click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    help="Skip files and folders matching this glob (repeatable; added to [tool.checkpointify] exclude).",
)


def _common(command: F) -> F:
    for decorator in (
        _no_prefilter,
        _include_generated,
        _quiet,
        _shard,
        _no_cache,
        _cache_dir,
        _timeout,
        _exclude,
        _stdin_filename,
        _verbose,
        _unsafe,
        _jobs,
        _paths,
    ):
        command = decorator(command)
    return command


@dataclass(frozen=True)
class RunFlags:
    """The options every command shares that say how the run goes (not what a file means)."""

    jobs: Optional[int]
    timeout: float
    cache_dir: Optional[str]
    no_cache: bool
    shard: Optional[str]
    quiet: bool
    include_generated: bool
    no_prefilter: bool

    @classmethod
    def take(cls, params: Dict[str, object]) -> "RunFlags":
        """Pop these flags out of a command's keyword arguments."""
        names = (
            "jobs",
            "timeout",
            "cache_dir",
            "no_cache",
            "shard",
            "quiet",
            "include_generated",
            "no_prefilter",
        )
        return cls(**{name: params.pop(name) for name in names})  # type: ignore[arg-type]


def _options(unsafe: Optional[bool], exclude: Sequence[str] = ()) -> Options:
    try:
        options = load_options(Path.cwd(), unsafe_fixes=unsafe)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    return replace(options, exclude=tuple(options.exclude) + tuple(exclude)) if exclude else options


def _settings(flags: RunFlags, options: Options, jobs: Optional[int] = None) -> Settings:
    """How the run goes: workers, time limit, cache folder, file selection."""
    shard = None
    if flags.shard is not None:
        try:
            shard = Shard.parse(flags.shard)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--shard") from exc
    return Settings(
        jobs=jobs if jobs is not None else (flags.jobs if flags.jobs is not None else default_jobs()),
        timeout=flags.timeout,
        cache_dir=None if flags.no_cache else _cache_folder(flags, options),
        selection=Selection(exclude=tuple(options.exclude), shard=shard),
        staged=not flags.no_prefilter,
        include_generated=flags.include_generated,
    )


def _cache_folder(flags: RunFlags, options: Options) -> Path:
    """--cache-dir, else cache-dir from the configuration, else next to pyproject.toml or here."""
    if flags.cache_dir is not None:
        return Path(flags.cache_dir)
    if options.cache_dir is not None:
        return Path(options.cache_dir)
    config = find_config(Path.cwd())
    return default_directory(config.parent if config is not None else None)


def _notes(stats: Stats, flags: RunFlags) -> None:
    """What the run skipped or could not do, in a line each (none with --quiet)."""
    if flags.quiet:
        return
    if stats.resumed:
        say(
            "checkpointify: resumed an interrupted run: %d %s it had finished %s skipped."
            % (
                stats.resumed,
                "file" if stats.resumed == 1 else "files",
                "was" if stats.resumed == 1 else "were",
            )
        )
    if stats.generated:
        say(
            "checkpointify: skipped %d %s marked @generated (--include-generated to process them)."
            % (stats.generated, "file" if stats.generated == 1 else "files")
        )
    if stats.cache_warning:
        say("checkpointify: warning: %s; continuing without the cache." % stats.cache_warning)


def _report_error(result: FileResult, verbose: bool) -> None:
    assert result.error is not None
    error(result.path, result.error)
    if verbose and result.detail:
        say(result.detail.rstrip())


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class Stdin:
    """One file read from stdin: its bytes and the name it goes by."""

    source: bytes
    name: str


def _stdin(paths: Sequence[str], stdin_filename: Optional[str], need_name: bool) -> Optional[Stdin]:
    """The file on stdin when the path is ``-`` (or only ``--stdin-filename`` is given)."""
    if "-" not in paths and not (stdin_filename is not None and not paths):
        if stdin_filename is not None:
            raise CliError("--stdin-filename needs the path `-` (read the file from stdin)")
        return None
    if list(paths) not in (["-"], []):
        raise CliError("`-` (stdin) must be the only path")
    if stdin_filename is None and need_name:
        raise CliError(
            "reading from stdin needs --stdin-filename NAME: the name is part of each "
            "rewritten loop's checkpoint id"
        )
    return Stdin(sys.stdin.buffer.read(), stdin_filename or "<stdin>")


@dataclass
class Session:
    """One command's run: its settings, what it saw, its progress bar, its journal."""

    settings: Settings
    flags: RunFlags
    stats: Stats
    progress: Progress
    journal: Optional[Journal] = None


def _session(flags: RunFlags, options: Options, jobs: Optional[int] = None) -> Session:
    return Session(_settings(flags, options, jobs), flags, Stats(), Progress(wanted(flags.quiet)))


def _results(
    paths: Sequence[str],
    stdin: Optional[Stdin],
    options: Options,
    rewrite: bool,
    session: Session,
) -> Iterator[FileResult]:
    if stdin is not None:
        yield run_source(stdin.source, stdin.name, options, rewrite, session.settings)
        return
    yield from run(
        paths or ["."],
        options,
        rewrite,
        session.settings,
        journal=session.journal,
        progress=session.progress,
        stats=session.stats,
    )


# -------------------------------------------------------------------------- output


def _check_output(output: Optional[str]) -> Optional[Path]:
    """Fail before the run, not after it, when ``--output`` cannot be a file."""
    if output is None:
        return None
    path = Path(output)
    if path.is_dir():
        raise CliError("--output %s is a directory" % output)
    if not path.parent.is_dir():
        raise CliError("--output %s: folder %s does not exist" % (output, path.parent))
    return path


def _emit(data: bytes, output: Optional[Path]) -> None:
    """Data to stdout, or atomically to ``--output`` (then nothing goes to stdout)."""
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        write_output(output, data)
    except SourceError as exc:
        raise CliError("--output %s: %s" % (output, exc)) from exc


def _check_exit_flags(exit_zero: bool, exit_non_zero_on_fix: bool = False) -> None:
    if exit_zero and exit_non_zero_on_fix:
        raise CliError("--exit-zero and --exit-non-zero-on-fix contradict each other")


# ---------------------------------------------------------------------------- group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="checkpointify")
def cli() -> None:
    """Find loops that collect results in memory and save them only at the end, and
    rewrite them so that every iteration is checkpointed and a re-run resumes."""


# ----------------------------------------------------------------------------- scan


@cli.command()
@_common
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text, json, sarif (SARIF 2.1.0 with fixes), github (workflow annotations) or junit.",
)
@click.option("-o", "--output", metavar="FILE", default=None, help="Write the report to FILE, atomically.")
@click.option(
    "--statistics",
    is_flag=True,
    help="Print counts per code, hazard and fix safety instead of the findings.",
)
@_exit_zero
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
    if statistics and output_format != "text":
        raise CliError("--statistics prints a table; it cannot be combined with --format %s" % output_format)
    target = _check_output(output)
    options = _options(unsafe_fixes, exclude)
    session = _session(flags, options)
    stdin = _stdin(paths, stdin_filename, need_name=False)
    stream = output_format == "text" and not statistics and target is None
    tally = Tally()
    results: List[FileResult] = []
    for result in _results(paths, stdin, options, False, session):
        tally.add(result)
        if stream:
            if result.findings:
                with session.progress.pause():
                    print_text(result, sys.stdout)
                    sys.stdout.flush()
        else:
            results.append(result)
        if result.error is not None:
            with session.progress.pause():
                _report_error(result, verbose)
    sys.stdout.flush()
    if statistics:
        _print_statistics(results, target)
    elif not stream:
        _emit(_scan_document(output_format, results, options, stdin).encode("utf-8"), target)
    _notes(session.stats, flags)
    if not flags.quiet:
        say(scan_summary(tally))
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
    if output_format == "sarif":
        from checkpointify.sarif import sarif_document

        sources = {stdin.name: stdin.source} if stdin is not None else {}
        return sarif_document(results, _single_fixes(results, options, sources), Path.cwd())
    return text_document(results)


def _single_fixes(
    results: List[FileResult], options: Options, sources: Dict[str, bytes]
) -> Dict[Finding, FileResult]:
    """Each fixable finding's rewrite on its own (for SARIF), keyed by the finding.

    A file is read again for this; if it changed since the scan, its findings no longer
    match and simply get no fix.
    """
    fixes: Dict[Finding, FileResult] = {}
    from checkpointify.runner import rewrite_selected

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


def _print_statistics(results: List[FileResult], target: Optional[Path]) -> None:
    rows = statistics(results)
    if target is None and sys.stdout.isatty():
        print_statistics_table(rows, sys.stdout)
    else:
        _emit(statistics_text(rows).encode("utf-8"), target)


# ----------------------------------------------------------------------------- diff


@cli.command()
@_common
@click.option("-o", "--output", metavar="FILE", default=None, help="Write the patch to FILE, atomically.")
@_exit_zero
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
    target = _check_output(output)
    options = _options(unsafe_fixes, exclude)
    session = _session(flags, options)
    stdin = _stdin(paths, stdin_filename, need_name=True)
    tally = Tally()
    patch: List[bytes] = []
    for result in _results(paths, stdin, options, True, session):
        tally.add(result)
        if result.changed:
            assert result.source is not None and result.new_source is not None
            hunk = unified_diff(result.source, result.new_source, result.path)
            if target is None:
                with session.progress.pause():
                    _emit(hunk, None)
            else:
                patch.append(hunk)
        if result.error is not None:
            with session.progress.pause():
                _report_error(result, verbose)
    if target is not None:
        _emit(b"".join(patch), target)
    _notes(session.stats, flags)
    if not flags.quiet:
        say(fix_summary(tally, options.unsafe_fixes, dry_run=True))
    return exit_code("diff", tally, exit_zero=exit_zero)


# ------------------------------------------------------------------------------ fix


@cli.command()
@_common
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
@_exit_zero
def fix(
    paths: Sequence[str],
    unsafe_fixes: Optional[bool],
    verbose: bool,
    stdin_filename: Optional[str],
    exclude: Sequence[str],
    interactive: bool,
    exit_non_zero_on_fix: bool,
    exit_zero: bool,
    **run_flags: object,
) -> int:
    """Rewrite the loops in place (safe fixes; unsafe ones with --unsafe-fixes).

    With `-` the file is read from stdin and the fixed file written to stdout. An
    interrupted run started again with the same arguments skips the files it finished.
    """
    flags = RunFlags.take(run_flags)
    _check_exit_flags(exit_zero, exit_non_zero_on_fix)
    options = _options(unsafe_fixes, exclude)
    if interactive:
        return _fix_interactive(
            paths, stdin_filename, options, flags, verbose, exit_non_zero_on_fix, exit_zero
        )
    session = _session(flags, options)
    stdin = _stdin(paths, stdin_filename, need_name=True)
    if stdin is None:
        session.journal = _journal(paths, options, flags, session.settings)
    tally = Tally()
    for result in _results(paths, stdin, options, True, session):
        if stdin is not None:
            # an editor replaces its buffer with stdout: always send the whole file
            _emit(result.new_source if result.changed and result.new_source else stdin.source, None)
        elif result.changed:
            result = _write(result, session.journal)
        tally.add(result)
        if result.error is not None:
            with session.progress.pause():
                _report_error(result, verbose)
    if session.journal is not None:
        session.journal.complete()
        if session.journal.problem and not flags.quiet:
            say("checkpointify: warning: %s; this run could not have been resumed." % session.journal.problem)
    _notes(session.stats, flags)
    if not flags.quiet:
        say(fix_summary(tally, options.unsafe_fixes, dry_run=False))
    return exit_code("fix", tally, exit_zero=exit_zero, exit_non_zero_on_fix=exit_non_zero_on_fix)


def _journal(paths: Sequence[str], options: Options, flags: RunFlags, settings: Settings) -> Journal:
    """The journal of this command line, in the cache folder (which --no-cache does not move)."""
    folder = settings.cache_dir or _cache_folder(flags, options)
    key = journal_key(paths or ["."], options, [str(settings.selection), str(settings.staged)])
    return Journal.open(folder, key)


def _write(result: FileResult, journal: Optional[Journal]) -> FileResult:
    """Replace the file atomically, then record it as finished."""
    assert result.source is not None and result.new_source is not None
    try:
        write_atomic(Path(result.path), result.new_source, expected=result.source)
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
) -> int:
    from checkpointify.review import TerminalReviewer, can_review, review

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
    session = _session(replace(flags, quiet=True), options, jobs=flags.jobs or 1)
    results = _results(paths, None, options, True, session)
    for result in review(results, options, TerminalReviewer()):
        tally.add(result)
        if result.error is not None:
            _report_error(result, verbose)
    _notes(session.stats, flags)
    if not flags.quiet:
        say(fix_summary(tally, options.unsafe_fixes, dry_run=False))
    return exit_code("fix", tally, exit_zero=exit_zero, exit_non_zero_on_fix=exit_non_zero_on_fix)


# ------------------------------------------------------------------------------ main


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
    except CliError as exc:
        say("checkpointify: error: %s" % exc.format_message(), style="red")
        return exc.exit_code
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
