"""The click options the rewrite commands share, declared once."""

from __future__ import annotations

from typing import Callable, TypeVar

import click

from checkpointify.engine.pipeline import DEFAULT_TIMEOUT

F = TypeVar("F", bound=Callable[..., object])

paths_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=str))
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
exit_zero_option = click.option(
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


def common_options(command: F) -> F:
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
        paths_argument,
    ):
        command = decorator(command)
    return command
