"""The pickle of a record's deltas, which keeps string identity (see below).

Imported with the first record written or read: ``pickle`` is not free to import.
"""

from __future__ import annotations

import io
import pickle
import sys

from .fingerprint import _PICKLE_PROTOCOL
from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Dict, FrozenSet


# pickle shares repeated objects, so the bytes a program's final ``pickle.dump`` writes
# depend on which strings are the *same object*. In the original run, literal keys and
# values (``{"id": x, "status": "ok"}``) are interned constants shared by every unit;
# unpickled from a checkpoint they would be fresh copies. So a record marks each
# identifier-like string that is interned when it is written (a pickle "persistent id"),
# and restore interns exactly those occurrences again; runtime strings that were distinct
# objects stay distinct. Only the marked strings cost anything on restore.

_IDENTIFIER_MAX = 64


class _RecordPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is str and len(obj) <= _IDENTIFIER_MAX and obj.isidentifier() and sys.intern(obj) is obj:
            return obj
        return None


def _dumps(value: object) -> bytes:
    buffer = io.BytesIO()
    _RecordPickler(buffer, _PICKLE_PROTOCOL).dump(value)
    return buffer.getvalue()


def _loads(data: Any) -> Any:
    unpickler = pickle.Unpickler(io.BytesIO(data))
    unpickler.persistent_load = sys.intern  # type: ignore[method-assign]  # C to C: no Python frame
    return unpickler.load()


def _reintern(value: Any, names: FrozenSet[str], memo: Dict[int, Any]) -> Any:
    """``value`` with the strings in ``names`` replaced by their interned copies (in place
    where possible): how logs of format 1 (0.1) recorded string identity."""
    t = type(value)
    if t is str:
        return sys.intern(value) if value in names else value
    key = id(value)
    if key in memo:
        return memo[key]
    if t is list:
        memo[key] = value
        value[:] = [_reintern(e, names, memo) for e in value]
        return value
    if t is tuple or t is set or t is frozenset:
        items = [_reintern(e, names, memo) for e in value]
        new = value if all(a is b for a, b in zip(items, value)) else t(items)
        memo[key] = new
        return new
    if isinstance(value, dict):
        memo[key] = value
        items = [(_reintern(k, names, memo), _reintern(v, names, memo)) for k, v in value.items()]
        dict.clear(value)
        dict.update(value, items)
        return value
    state = getattr(value, "__dict__", None)
    if type(state) is dict:
        memo[key] = value
        _reintern(state, names, memo)
    return value
