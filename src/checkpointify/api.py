"""The public facade: what the CLI, the LibCST codemod command and the tests call.

Everything a caller needs to run checkpointify from Python, without reaching into the
layers behind it::

    from checkpointify import api

    options = api.load_options(Path("."))                  # [tool.checkpointify], if any
    for result in api.run(["src"], options, rewrite=False, settings=api.Settings(jobs=2)):
        for finding in result.findings:
            print(result.path, finding.line, finding.code, finding.message)

    result = api.process_source(b"...", "job.py", api.Options(), rewrite=True)
    result.new_source                                       # the fixed bytes, or None

Nothing here raises across a file boundary: every per-file problem is a
:class:`FileResult` with ``error`` set. Importing this module does not import LibCST;
the calls that need it (:func:`process_source`, :func:`rewrite_selected`,
:func:`rewrite_checked`) load it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Collection

from checkpointify.config import ConfigError, find_config, load_options
from checkpointify.engine.discovery import Candidate, Selection, Shard, discover
from checkpointify.engine.pipeline import DEFAULT_TIMEOUT, Settings, Stats, run, run_source
from checkpointify.types import FileResult, Finding, Hazard, Options, Safety, applicable

if TYPE_CHECKING:  # LibCST types, for annotations only
    import libcst as cst

    from checkpointify.rewrite.verify import CheckedRewrite

__all__ = [
    "DEFAULT_TIMEOUT",
    "Candidate",
    "ConfigError",
    "FileResult",
    "Finding",
    "Hazard",
    "Options",
    "Safety",
    "Selection",
    "Settings",
    "Shard",
    "Stats",
    "applicable",
    "discover",
    "find_config",
    "load_options",
    "process_source",
    "rewrite_checked",
    "rewrite_selected",
    "run",
    "run_source",
]


def process_source(
    source: bytes, path: str, options: Options, rewrite: bool = False, staged: bool = True
) -> FileResult:
    """One file's bytes, analysed in this process: its findings and, with ``rewrite``, the
    verified new bytes (``new_source``). ``path`` names the file in messages and in the
    checkpoint ids of the rewrite. Never raises."""
    from checkpointify.rewrite.verify import process_source as process

    return process(source, path, options, rewrite, staged)


def rewrite_selected(source: bytes, path: str, options: Options, selected: Collection[Finding]) -> FileResult:
    """``source`` rewritten with the fixes of ``selected`` findings only, verified (how an
    interactive review's accepted subset and SARIF's per-finding fixes are made)."""
    from checkpointify.rewrite.verify import rewrite_selected as select

    return select(source, path, options, selected)


def rewrite_checked(module: "cst.Module", path: str, options: Options) -> "CheckedRewrite":
    """A parsed LibCST module rewritten and verified (the codemod command's entry)."""
    from checkpointify.rewrite.verify import rewrite_checked as checked

    return checked(module, path, options)
