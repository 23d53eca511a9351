"""``[tool.checkpointify]`` in pyproject.toml, merged with command-line options.

The configuration of a file is that of its project, as with ruff: the nearest
``pyproject.toml`` with a ``[tool.checkpointify]`` table at or above the file's folder, so
``checkpointify fix proj/`` run from outside ``proj`` honours ``proj/pyproject.toml``, and
``proj/sub/pyproject.toml`` governs the files under ``proj/sub/`` (per file:
``checkpointify.engine.projects``). The run's own settings (``cache-dir``,
``max-memory``, ``max-file-size``) come from the project of the first path. A
relative ``exclude`` pattern with a ``/`` is relative to the configuration's folder.
A ``pyproject.toml`` that is not valid TOML, unknown keys and wrong types are errors
naming the file (and the line), not ignored: a typo must not silently change what gets
rewritten.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from checkpointify.types import Options, Style

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


class ConfigError(Exception):
    """The configuration is invalid; the message names the file and the key."""


#: key -> (Options field, expected type)
_KEYS: Dict[str, Tuple[str, type]] = {
    "unsafe-fixes": ("unsafe_fixes", bool),
    "runtime-module": ("runtime_module", str),
    "extra-sinks": ("extra_sinks", list),
    "extra-checkpoint-calls": ("extra_checkpoint_calls", list),
    "exclude": ("exclude", list),
    "checkpoint-dir": ("checkpoint_dir", str),
    "cache-dir": ("cache_dir", str),
    "max-file-size": ("max_file_size", object),
    "max-memory": ("max_memory", object),
    "format": ("formatter", str),
}

#: what ``format`` may say: the formatter ``fix --format`` runs on the files it changed
FORMATTERS = ("ruff", "black", "none")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(value: object) -> int:
    """A size in bytes from ``5242880``, ``"5MB"``, ``"512K"`` or ``"4 GiB"`` (binary units);
    0 means no limit. Raises ValueError naming the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("a size: bytes, or a number with K, MB or GB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("a size: bytes, or a number with K, MB or GB (for example 5MB)")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "")[:1].lower()])


def find_config(start: Path) -> Optional[Path]:
    """The nearest ``pyproject.toml`` at or above ``start`` with a ``[tool.checkpointify]``
    table. Raises ConfigError for one on the way that cannot be read or parsed."""
    start = Path(os.path.abspath(start))
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            data = _parse(candidate)
            tool = data.get("tool", {})
            if isinstance(tool, dict) and "checkpointify" in tool:
                return candidate
    return None


def _parse(path: Path) -> Dict[str, Any]:
    """The TOML document at ``path``; ConfigError names the file, and the line and column
    of a syntax error (``path:3:20: invalid TOML: ...``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("%s: cannot read configuration: not valid UTF-8 (%s)" % (path, exc.reason)) from exc
    except OSError as exc:
        raise ConfigError("%s: cannot read configuration: %s" % (path, exc.strerror or exc)) from exc
    try:
        data: Dict[str, Any] = tomllib.loads(text)
        return data
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _POSITION.search(message)
        if where is None:
            raise ConfigError("%s: invalid TOML: %s" % (path, message)) from exc
        reason = message[: where.start()].rstrip()
        raise ConfigError(
            "%s:%s:%s: invalid TOML: %s" % (path, where.group(1), where.group(2), reason)
        ) from exc


_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def project_config(paths: Sequence[str]) -> Optional[Path]:
    """The configuration file of the run (see the module doc): that of the project the
    first path is in (the working directory without paths). Files elsewhere get their
    own project's configuration (``checkpointify.engine.projects``)."""
    raw = next((p for p in paths if p != "-"), ".")
    path = Path(raw)
    return find_config(Path(os.path.abspath(path if path.is_dir() else path.parent)))


def read_config(path: Path) -> Dict[str, Any]:
    data = _parse(path)
    table = data.get("tool", {}).get("checkpointify", {})
    if not isinstance(table, dict):
        raise ConfigError("%s: [tool.checkpointify] must be a table" % path)
    values: Dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            raise ConfigError(
                "%s: unknown key %r in [tool.checkpointify] (known: %s)"
                % (path, key, ", ".join(sorted(_KEYS)))
            )
        field, expected = _KEYS[key]
        if expected is object:
            try:
                values[field] = parse_size(value)
            except ValueError as exc:
                raise ConfigError("%s: [tool.checkpointify] %s must be %s" % (path, key, exc)) from exc
            continue
        if not isinstance(value, expected) or (
            isinstance(value, list) and not all(isinstance(v, str) for v in value)
        ):
            kind = "a list of strings" if expected is list else expected.__name__
            raise ConfigError("%s: [tool.checkpointify] %s must be %s" % (path, key, kind))
        values[field] = tuple(value) if isinstance(value, list) else value
    if "formatter" in values and values["formatter"] not in FORMATTERS:
        raise ConfigError(
            "%s: [tool.checkpointify] format must be one of %s"
            % (path, ", ".join(repr(f) for f in FORMATTERS))
        )
    if "runtime_module" in values and not all(
        part.isidentifier() for part in values["runtime_module"].split(".")
    ):
        raise ConfigError("%s: runtime-module must be a dotted module name" % path)
    return values


def load_options(
    cwd: Path,
    unsafe_fixes: Optional[bool] = None,
    config: Optional[Path] = None,
    style_from: Optional[Path] = None,
) -> Options:
    """Options from ``config``, else the configuration file found from ``cwd``, with CLI
    flags on top, and the project's :class:`Style` (:func:`read_style` from ``style_from``,
    else the configuration's folder, else ``cwd``).

    ``cache-dir`` is relative to the configuration file's folder, and so is an ``exclude``
    pattern holding a ``/`` when that folder is below the working directory.
    """
    path = config if config is not None else find_config(cwd)
    values = read_config(path) if path is not None else {}
    values["style"] = read_style(style_from or (path.parent if path is not None else cwd))
    if path is not None and "cache_dir" in values:
        values["cache_dir"] = str(path.parent / values["cache_dir"])
    if path is not None and "exclude" in values:
        values["exclude"] = _relative_to(path.parent, values["exclude"])
    if unsafe_fixes is not None:
        values["unsafe_fixes"] = unsafe_fixes
    return Options(**values)


def _relative_to(folder: Path, patterns: Sequence[str]) -> Tuple[str, ...]:
    """``exclude`` patterns of a configuration in ``folder``, as patterns on paths shown
    relative to the working directory (a pattern without ``/`` matches a name anywhere)."""
    try:
        prefix = Path(os.path.abspath(folder)).relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        try:
            prefix = Path(os.path.abspath(folder)).relative_to(Path.cwd()).as_posix()
        except ValueError:
            return tuple(patterns)  # above the working directory: as before, relative to it
    if prefix in ("", "."):
        return tuple(patterns)
    return tuple(
        "%s/%s" % (prefix, p.lstrip("/")) if "/" in p.rstrip("/") and not p.startswith("**") else p
        for p in patterns
    )


# --------------------------------------------------------------------------- the style


@dataclass(frozen=True)
class ProjectTools:
    """The ruff, black and isort settings of a project, as found from a folder in it."""

    ruff: Optional[Dict[str, Any]] = None
    ruff_root: Optional[Path] = None
    black: Optional[Dict[str, Any]] = None
    isort: Optional[Dict[str, Any]] = None
    root: Optional[Path] = None


def project_tools(start: Path) -> ProjectTools:
    """The nearest ruff configuration (``.ruff.toml``, ``ruff.toml`` or a ``pyproject.toml``
    with ``[tool.ruff]``) and ``[tool.black]``/``[tool.isort]`` tables at or above ``start``,
    up to the project's root (the first folder with a ``pyproject.toml`` or ``.git``).
    Raises ConfigError for a file that is not valid TOML."""
    start = Path(os.path.abspath(start))
    ruff: Optional[Dict[str, Any]] = None
    ruff_root: Optional[Path] = None
    black: Optional[Dict[str, Any]] = None
    isort: Optional[Dict[str, Any]] = None
    for directory in (start, *start.parents):
        for name in (".ruff.toml", "ruff.toml"):
            if ruff is None and (directory / name).is_file():
                ruff, ruff_root = _parse(directory / name), directory
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            tool = _parse(pyproject).get("tool", {})
            tool = tool if isinstance(tool, dict) else {}
            if ruff is None and isinstance(tool.get("ruff"), dict):
                ruff, ruff_root = tool["ruff"], directory
            black = tool.get("black") if isinstance(tool.get("black"), dict) else None
            isort = tool.get("isort") if isinstance(tool.get("isort"), dict) else None
            return ProjectTools(ruff, ruff_root, black, isort, directory)
        if (directory / ".git").exists():
            return ProjectTools(ruff, ruff_root, root=directory)
    return ProjectTools(ruff, ruff_root)


#: Style field -> (ruff's isort key, isort's key)
_ISORT_KEYS = {
    "known_first_party": ("known-first-party", "known_first_party"),
    "known_third_party": ("known-third-party", "known_third_party"),
    "known_local_folder": ("known-local-folder", "known_local_folder"),
    "force_single_line": ("force-single-line", "force_single_line"),
    "force_sort_within_sections": ("force-sort-within-sections", "force_sort_within_sections"),
    "from_first": ("from-first", "from_first"),
    "case_sensitive": ("case-sensitive", "case_sensitive"),
}


def read_style(start: Path) -> Style:
    """How the project ``start`` is in lays out code (see :class:`Style`): the line length
    from ruff, else black, else isort, else 88; the import settings from ruff's
    ``[lint.isort]``, else ``[tool.isort]``; the source folders from ruff's ``src`` (default
    ``.`` and ``src``) or isort's ``src_paths``. A value of the wrong type is ignored (the
    tool that owns it reports it), a file that is not TOML is a ConfigError."""
    tools = project_tools(start)
    ruff = tools.ruff or {}
    lint = ruff.get("lint") if isinstance(ruff.get("lint"), dict) else {}
    ruff_isort = lint.get("isort", ruff.get("isort", {})) if isinstance(lint, dict) else {}
    ruff_isort = ruff_isort if isinstance(ruff_isort, dict) else {}
    isort = tools.isort or {}
    values: Dict[str, Any] = {}
    for candidate in (
        isort.get("line_length"),
        (tools.black or {}).get("line-length"),
        ruff.get("line-length"),
    ):
        if isinstance(candidate, int) and not isinstance(candidate, bool) and candidate > 0:
            values["line_length"] = candidate
    indent = ruff.get("indent-width")
    if isinstance(indent, int) and not isinstance(indent, bool) and indent > 0:
        values["indent_width"] = indent
    for field, (ruff_key, isort_key) in _ISORT_KEYS.items():
        value = ruff_isort.get(ruff_key, isort.get(isort_key))
        default = getattr(Style(), field)
        if isinstance(default, bool) and isinstance(value, bool):
            values[field] = value
        elif (
            isinstance(default, tuple) and isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            values[field] = tuple(value)
    values["source_roots"] = _source_roots(tools, ruff, isort, start)
    return Style(**values)


def _source_roots(
    tools: ProjectTools, ruff: Dict[str, Any], isort: Dict[str, Any], start: Path
) -> Tuple[str, ...]:
    if tools.ruff_root is not None:
        root, folders = tools.ruff_root, ruff.get("src", [".", "src"])
    else:
        root = tools.root or Path(os.path.abspath(start))
        folders = isort.get("src_paths", [".", "src"])
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        folders = [".", "src"]
    return tuple(os.path.normpath(os.path.join(root, folder)) for folder in folders)


def detect_formatter(start: Path) -> Optional[str]:
    """The formatter the project at ``start`` uses: ``ruff`` with a ruff configuration
    (``[tool.ruff]`` or ``ruff.toml``), else ``black`` with ``[tool.black]``, else None."""
    tools = project_tools(start)
    if tools.ruff is not None:
        return "ruff"
    if tools.black is not None:
        return "black"
    return None
