"""The click options the rewrite commands share, declared once."""

from __future__ import annotations

from typing import Callable, Optional, TypeVar

import click

from checkpointify.engine.pipeline import DEFAULT_TIMEOUT

F = TypeVar("F", bound=Callable[..., object])

# readable=False: an unreadable file is a per-file error of the run, not a usage error
paths_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=str, readable=False))
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


class _Size(click.ParamType):  # type: ignore[type-arg,unused-ignore]  # generic in click >= 8.2
    name = "SIZE"

    def convert(self, value: object, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> int:
        from checkpointify.config import parse_size

        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


_max_file_size = click.option(
    "--max-file-size",
    type=_Size(),
    default=None,
    metavar="SIZE",
    help="Report and skip files larger than this (default 5MB; 0: no limit). Analysis needs about "
    "170 times a file's size in memory.",
)
_max_memory = click.option(
    "--max-memory",
    type=_Size(),
    default=None,
    metavar="SIZE",
    help="Address space each worker may use (default 4GB; 0: no limit): a file that needs more "
    "fails alone instead of exhausting the machine.",
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
        _max_memory,
        _max_file_size,
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
