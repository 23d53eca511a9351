"""``[tool.checkpointify]`` in pyproject.toml, merged with command-line options.

The nearest ``pyproject.toml`` at or above the working directory that has a
``[tool.checkpointify]`` table is used. Unknown keys and wrong types are errors, not
ignored: a typo must not silently change what gets rewritten.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

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
}


def find_config(start: Path) -> Optional[Path]:
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            try:
                data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError, UnicodeDecodeError):
                continue
            if "checkpointify" in data.get("tool", {}):
                return candidate
    return None


def read_config(path: Path) -> Dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError("%s: cannot read configuration: %s" % (path, exc)) from exc
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


def load_options(cwd: Path, unsafe_fixes: Optional[bool] = None) -> Options:
    """Options from the configuration file found from ``cwd``, with CLI flags on top.

    ``cache-dir`` is relative to the configuration file's folder.
    """
    path = find_config(cwd)
    values = read_config(path) if path is not None else {}
    if path is not None and "cache_dir" in values:
        values["cache_dir"] = str(path.parent / values["cache_dir"])
    if unsafe_fixes is not None:
        values["unsafe_fixes"] = unsafe_fixes
    return Options(**values)
