"""The click group, the CLI's error type, and the human side of every command: notes,
errors and summaries on stderr; data on stdout or ``--output``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import click

from checkpointify import __version__
from checkpointify.engine.discovery import Shard
from checkpointify.engine.pipeline import Stats
from checkpointify.engine.session import RunFlags, Stdin
from checkpointify.fileio import SourceError, output_kind, write_output
from checkpointify.output.report import Exit, error, say
from checkpointify.types import FileResult

FORMATS = ("text", "concise", "json", "sarif", "github", "junit", "rdjson", "gitlab")


class CliError(click.ClickException):
    """A usage problem found after parsing (bad combination, unwritable output): exit 2."""

    exit_code = Exit.USAGE


def notes(stats: Stats, flags: RunFlags) -> None:
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


def summary(text: str, stats: Stats, paths: Sequence[str], stdin: bool, quiet: bool) -> None:
    """The run's summary line, or, when the paths held no Python file at all, that warning
    instead (a typo in a path must not read as "no loops found")."""
    if quiet:
        return
    if not stdin and stats.candidates == 0:
        say("checkpointify: warning: no Python files found in %s" % ", ".join(paths or ["."]), style="yellow")
        return
    say(text)


def report_error(result: FileResult, verbose: bool) -> None:
    assert result.error is not None
    error(result.path, result.error)
    if verbose and result.detail:
        say(result.detail.rstrip())


def read_stdin(paths: Sequence[str], stdin_filename: Optional[str], need_name: bool) -> Optional[Stdin]:
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


def check_output(output: Optional[str], paths: Sequence[str] = ()) -> Optional[Path]:
    """Fail before the run, not after it, when ``--output`` cannot take the report: a
    folder, a block device, a missing folder, or one of the files the run reads (``scan
    x.py -o x.py``; a ``.py`` file in a folder it walks). ``-`` is stdout (None)."""
    if output is None or output == "-":
        return None
    path = Path(output)
    kind = output_kind(path)
    if kind in ("directory", "block device"):
        raise CliError("--output %s is a %s" % (output, kind))
    if not path.parent.is_dir():
        raise CliError("--output %s: folder %s does not exist" % (output, path.parent))
    if kind == "file" and _is_input(path, paths):
        raise CliError("--output %s is one of the files this run reads; refusing to overwrite it" % output)
    return path


def _is_input(path: Path, paths: Sequence[str]) -> bool:
    target = os.path.realpath(path)
    for raw in paths or ["."]:
        if raw == "-":
            continue
        named = os.path.realpath(raw)
        if target == named:
            return True
        if (
            target.endswith(".py")
            and os.path.isdir(named)
            and target.startswith(named.rstrip(os.sep) + os.sep)
        ):
            return True
    return False


def emit(data: bytes, output: Optional[Path]) -> None:
    """Data to stdout, or atomically to ``--output`` (then nothing goes to stdout)."""
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        write_output(output, data)
    except SourceError as exc:
        raise CliError("--output %s: %s" % (output, exc)) from exc


def check_exit_flags(exit_zero: bool, exit_non_zero_on_fix: bool = False) -> None:
    if exit_zero and exit_non_zero_on_fix:
        raise CliError("--exit-zero and --exit-non-zero-on-fix contradict each other")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="checkpointify")
def cli() -> None:
    """Find loops that collect results in memory and save them only at the end, and
    rewrite them so that every iteration is checkpointed and a re-run resumes."""


def check_shard(flags: RunFlags) -> None:
    """Fail as a usage error, before the run, when ``--shard`` is not K/N."""
    if flags.shard is not None:
        try:
            Shard.parse(flags.shard)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--shard") from exc
