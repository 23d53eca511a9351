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
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from checkpointify.types import Options

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
}

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
    if "runtime_module" in values and not all(
        part.isidentifier() for part in values["runtime_module"].split(".")
    ):
        raise ConfigError("%s: runtime-module must be a dotted module name" % path)
    return values


def load_options(cwd: Path, unsafe_fixes: Optional[bool] = None, config: Optional[Path] = None) -> Options:
    """Options from ``config``, else the configuration file found from ``cwd``, with CLI
    flags on top.

    ``cache-dir`` is relative to the configuration file's folder, and so is an ``exclude``
    pattern holding a ``/`` when that folder is below the working directory.
    """
    path = config if config is not None else find_config(cwd)
    values = read_config(path) if path is not None else {}
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
