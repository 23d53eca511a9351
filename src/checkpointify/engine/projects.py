"""Per-file configuration: each file is analysed with the ``[tool.checkpointify]`` of its
nearest project, as ruff does.

A run starts from the configuration of the project its paths are in (the *base*: it also
decides what belongs to the whole run, ``cache-dir`` and ``max-memory``). Walking a tree,
a file under a folder with its own ``pyproject.toml`` holding ``[tool.checkpointify]``
(``sub/pyproject.toml``) is analysed with that one instead: its ``unsafe-fixes``,
``runtime-module``, ``extra-sinks``, ``extra-checkpoint-calls``, ``checkpoint-dir``,
``max-file-size`` and ``exclude`` (its patterns relative to its own folder). The command
line's ``--unsafe-fixes``/``--no-unsafe-fixes`` and ``--exclude`` win over every file's
configuration, as they win over the base. Configurations are not merged: the nearest one
is the whole configuration of the files below it (ruff's rule without ``extend``).

A nested ``pyproject.toml`` that is not valid, or has an unknown key, is an error of each
file it governs (one line naming the configuration file and the reason); the rest of the
run goes on.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

from checkpointify.config import ConfigError, find_config, load_options
from checkpointify.engine.discovery import display_path, excluded_display
from checkpointify.types import Options

#: what a file gets: its Options (and whether they are the base's), or the error of its configuration
Resolved = Union[Tuple[Options, bool], str]


class ProjectOptions:
    """Which :class:`Options` each file of a run is analysed with (see the module doc)."""

    def __init__(
        self,
        base: Options,
        base_config: Optional[Path],
        unsafe: Optional[bool] = None,
        exclude: Sequence[str] = (),
    ) -> None:
        self.base = base
        self.base_config = base_config.resolve() if base_config is not None else None
        self._unsafe = unsafe
        self._exclude = tuple(exclude)
        self._by_folder: Dict[str, Optional[Path]] = {}
        self._by_config: Dict[Path, Union[Options, str]] = {}

    def for_file(self, path: Path) -> Resolved:
        """``(options, is_base)`` for ``path``, or the error of its nearest configuration."""
        folder = os.path.dirname(os.path.abspath(str(path)))
        if folder not in self._by_folder:
            try:
                found = find_config(Path(folder))
            except ConfigError as exc:
                return str(exc)
            self._by_folder[folder] = found.resolve() if found is not None else None
        config = self._by_folder[folder]
        if config is None or config == self.base_config:
            # no project of its own, or the run's: as before (a path outside every project
            # given with one inside a project keeps the run's configuration)
            return self.base, True
        options = self._by_config.get(config)
        if options is None:
            options = self._load(config)
            self._by_config[config] = options
        if isinstance(options, str):
            return options
        return options, False

    def _load(self, config: Path) -> Union[Options, str]:
        try:
            options = load_options(Path.cwd(), unsafe_fixes=self._unsafe, config=config)
        except ConfigError as exc:
            return str(exc)
        options = replace(
            options,
            exclude=tuple(options.exclude) + self._exclude,
            cache_dir=self.base.cache_dir,  # the run's, like max-memory: one per run
            max_memory=self.base.max_memory,
        )
        return options

    def excluded(self, path: Path, options: Options) -> bool:
        """Whether a file governed by a nested configuration is excluded by its patterns
        (the base's are applied while walking)."""
        return options is not self.base and excluded_display(display_path(path), options.exclude)


def options_digest(options: Options) -> str:
    """A short stable name of a file's Options, for the journal's record of a file."""
    return hashlib.blake2b(repr(options).encode("utf-8"), digest_size=6).hexdigest()
