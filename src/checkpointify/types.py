"""The shared vocabulary: every module speaks in these types.

Results are frozen dataclasses. Nothing here raises across the per-file boundary: a file
that cannot be read, parsed or fixed becomes a :class:`FileResult` with ``error`` set.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple


class Safety(str, enum.Enum):
    """How far a fix can be trusted (Ruff's vocabulary).

    ``SAFE``: a resumed run provably reproduces an uninterrupted run; ``fix`` applies it.
    ``UNSAFE``: the rewrite is offered but resume may differ in a way the finding names;
    applied only with ``--unsafe-fixes``.
    """

    SAFE = "safe"
    UNSAFE = "unsafe"


class Hazard(str, enum.Enum):
    """Why a resumed run might not reproduce an uninterrupted one.

    The values are stable identifiers: JSON, SARIF and the docs use them, so never
    rename one; add new members instead.
    """

    UNORDERED_ITERABLE = "unordered-iterable"
    SINGLE_PASS_ITERABLE = "single-pass-iterable"
    ACCUMULATOR_MUTATED = "accumulator-mutated"
    ACCUMULATOR_ESCAPES = "accumulator-escapes"
    LOOP_VARIABLE_USED_AFTER = "loop-variable-used-after"
    CARRIED_STATE = "carried-state"
    SIDE_EFFECTS = "side-effects"
    UNSERIALISABLE_RESULTS = "unserialisable-results"
    COLLECTIVE_OPERATION = "collective-operation"
    NESTED_LOOP = "nested-loop"
    EXIT_BEFORE_SAVE = "exit-before-save"
    SCOPE_LEAK = "scope-leak"
    UNSUPPORTED_SHAPE = "unsupported-shape"
    AT_LEAST_ONCE = "at-least-once"
    WRITES_BEFORE_LOOP = "writes-before-loop"
    COMPLETED_AT_EXIT = "completed-at-exit"


@dataclass(frozen=True)
class Finding:
    """One collect-then-save site, as reported by ``scan`` and fixed by ``fix``.

    ``line``/``column`` are 1-based and point at the loop (or the comprehension's
    assignment); ``fix`` is None when no rewrite is offered, and ``fix_note`` then says why.
    In a notebook they are relative to cell ``cell`` (see :mod:`checkpointify.notebook`).
    """

    code: str
    variant: str
    path: str
    line: int
    column: int
    end_line: int
    accumulators: Tuple[str, ...]
    sink: str
    hazards: Tuple[Hazard, ...]
    fix: Optional[Safety]
    message: str
    fix_note: str = ""
    #: in a notebook: the cell's index among all cells (0-based); ``line``, ``column`` and
    #: ``end_line`` are then relative to that cell's source
    cell: Optional[int] = None
    #: in a notebook: the line of the file as stored (the JSON text) that holds ``line``
    file_line: Optional[int] = None


@dataclass(frozen=True)
class FileResult:
    """Everything the analysis learned about one file.

    ``new_source`` is the rewritten file (bytes, same encoding/BOM/newlines) when at least
    one fix was applied, else None. ``applied`` lists the findings the rewrite covers.
    ``error`` is a one-line reason when the file could not be processed; the file is then
    left byte-identical on disk.
    """

    path: str
    findings: Tuple[Finding, ...] = ()
    applied: Tuple[Finding, ...] = ()
    source: Optional[bytes] = None
    new_source: Optional[bytes] = None
    error: Optional[str] = None
    #: the error is a bug in checkpointify, not a problem with the file
    internal: bool = False
    #: a traceback for internal errors (shown with --verbose)
    detail: str = ""

    @property
    def changed(self) -> bool:
        return self.new_source is not None and self.new_source != self.source


@dataclass(frozen=True)
class Style:
    """How the project's own linters and formatter want the lines a rewrite inserts laid out.

    Read from the project's ruff, black and isort settings by :mod:`checkpointify.config`;
    :mod:`checkpointify.rewrite.layout` applies it. The defaults are ruff's and black's.
    ``source_roots`` are the folders (absolute) where a first-party module lives, like
    ruff's ``src`` setting: a module found there sorts with the project's own imports.
    """

    line_length: int = 88
    indent_width: int = 4
    known_first_party: Tuple[str, ...] = ()
    known_third_party: Tuple[str, ...] = ()
    known_local_folder: Tuple[str, ...] = ()
    force_single_line: bool = False
    force_sort_within_sections: bool = False
    from_first: bool = False
    case_sensitive: bool = False
    source_roots: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Options:
    """What the core needs to know besides the file itself.

    ``root`` is the directory checkpoint identities are made relative to (see
    :func:`checkpointify.detect.matcher.loop_identity`); ``None`` means "find the project root".
    ``cache_dir`` is the ``cache-dir`` setting, already made absolute (None: the default).
    """

    unsafe_fixes: bool = False
    runtime_module: str = "checkpointify.runtime"
    extra_sinks: Tuple[str, ...] = ()
    extra_checkpoint_calls: Tuple[str, ...] = ()
    root: Optional[Path] = None
    exclude: Tuple[str, ...] = field(default=())
    #: written into rewritten code as ``directory=...`` (else the runtime's default applies)
    checkpoint_dir: Optional[str] = None
    cache_dir: Optional[str] = None
    #: ``max-file-size`` / ``max-memory`` in bytes (None: the defaults; 0: no limit)
    max_file_size: Optional[int] = None
    max_memory: Optional[int] = None
    #: the layout of inserted lines (import position, line length): the project's ruff/black/isort settings
    style: Style = field(default_factory=Style)
    #: the formatter ``fix --format`` runs on changed files: "ruff", "black", "none" (None: detect)
    formatter: Optional[str] = None


def applicable(finding: Finding, options: Options) -> bool:
    """Whether ``fix``/``diff`` apply this finding's fix: safe fixes always, unsafe ones on request."""
    return finding.fix is Safety.SAFE or (finding.fix is Safety.UNSAFE and options.unsafe_fixes)
