"""Run assembly: from a command's flags and configuration to the :class:`Settings` of a run.

What every command shares before it iterates results: the flags that say how a run goes
(:class:`RunFlags`), the :class:`Options` from the configuration, the cache folder, the
journal of a ``fix`` command line, and the :class:`Session` holding them with the run's
statistics and progress bar. No printing here, and no LibCST.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

from checkpointify.config import find_config, load_options, project_config
from checkpointify.engine.cache import default_directory
from checkpointify.engine.discovery import Selection, Shard
from checkpointify.engine.journal import Journal, journal_key
from checkpointify.engine.pipeline import (
    DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_MEMORY,
    Settings,
    Stats,
    run,
    run_source,
)
from checkpointify.engine.pool import default_jobs
from checkpointify.engine.progress import Progress, wanted
from checkpointify.engine.projects import ProjectOptions
from checkpointify.types import FileResult, Options


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
    max_file_size: Optional[int] = None
    max_memory: Optional[int] = None

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
            "max_file_size",
            "max_memory",
        )
        return cls(**{name: params.pop(name, None) for name in names})  # type: ignore[arg-type]


def options_for(
    unsafe: Optional[bool],
    exclude: Sequence[str] = (),
    root: Optional[Path] = None,
    paths: Sequence[str] = (),
) -> Options:
    """The configuration of the project ``paths`` are in (:func:`project_config`; from
    ``root``, default the working directory, without paths), with the command line's
    ``--unsafe-fixes`` and ``--exclude`` on top. Raises ``ConfigError``."""
    config = project_config(paths) if paths else None
    style_from = _folder_of(paths[0]) if paths and paths[0] != "-" else None
    options = load_options(root or Path.cwd(), unsafe_fixes=unsafe, config=config, style_from=style_from)
    return replace(options, exclude=tuple(options.exclude) + tuple(exclude)) if exclude else options


def projects_for(
    options: Options, unsafe: Optional[bool], exclude: Sequence[str] = (), paths: Sequence[str] = ()
) -> ProjectOptions:
    """Per-file configuration over :func:`options_for`'s ``options`` (the base): see
    :mod:`checkpointify.engine.projects`. Raises ``ConfigError`` like it."""
    config = project_config(paths) if paths else find_config(Path.cwd())
    return ProjectOptions(options, config, unsafe, exclude)


def _folder_of(path: str) -> Path:
    """The folder a path's project settings are looked for from (a file's own folder)."""
    return Path(path) if Path(path).is_dir() else Path(path).parent


def settings_for(flags: RunFlags, options: Options, jobs: Optional[int] = None) -> Settings:
    """How the run goes: workers, time limit, cache folder, file selection."""
    shard = None
    if flags.shard is not None:
        shard = Shard.parse(flags.shard)  # ValueError names the problem
    return Settings(
        jobs=jobs if jobs is not None else (flags.jobs if flags.jobs is not None else default_jobs()),
        timeout=flags.timeout,
        cache_dir=None if flags.no_cache else cache_folder(flags, options),
        selection=Selection(exclude=tuple(options.exclude), shard=shard),
        staged=not flags.no_prefilter,
        include_generated=flags.include_generated,
        max_file_size=_limit(flags.max_file_size, options.max_file_size, DEFAULT_MAX_FILE_SIZE),
        max_memory=_limit(flags.max_memory, options.max_memory, DEFAULT_MAX_MEMORY),
    )


def _limit(flag: Optional[int], configured: Optional[int], default: int) -> Optional[int]:
    """The flag, else the configuration, else the default; 0 means no limit (None)."""
    value = flag if flag is not None else configured if configured is not None else default
    return value or None


def cache_folder(flags: RunFlags, options: Options) -> Path:
    """--cache-dir, else cache-dir from the configuration, else next to pyproject.toml or here."""
    if flags.cache_dir is not None:
        return Path(flags.cache_dir)
    if options.cache_dir is not None:
        return Path(options.cache_dir)
    config = find_config(Path.cwd())
    return default_directory(config.parent if config is not None else None)


@dataclass(frozen=True)
class Stdin:
    """One file read from stdin: its bytes and the name it goes by."""

    source: bytes
    name: str


@dataclass
class Session:
    """One command's run: its settings, what it saw, its progress bar, its journal."""

    settings: Settings
    flags: RunFlags
    stats: Stats
    progress: Progress
    journal: Optional[Journal] = None
    #: per-file configuration (None: every file gets the run's Options)
    projects: Optional[ProjectOptions] = None


def session_for(
    flags: RunFlags, options: Options, jobs: Optional[int] = None, projects: Optional[ProjectOptions] = None
) -> Session:
    return Session(
        settings_for(flags, options, jobs), flags, Stats(), Progress(wanted(flags.quiet)), projects=projects
    )


def run_results(
    paths: Sequence[str],
    stdin: Optional[Stdin],
    options: Options,
    rewrite: bool,
    session: Session,
) -> Iterator[FileResult]:
    """The results of a run over ``paths`` (default ``.``), or of the one file on stdin."""
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
        projects=session.projects,
    )


def journal_for(paths: Sequence[str], options: Options, flags: RunFlags, settings: Settings) -> Journal:
    """The journal of this command line, in the cache folder (which --no-cache does not move)."""
    folder = settings.cache_dir or cache_folder(flags, options)
    key = journal_key(paths or ["."], options, [str(settings.selection), str(settings.staged)])
    return Journal.open(folder, key)
