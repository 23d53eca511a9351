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


# NumPy's builtin dtypes are shared objects too: every int64 array of a program holds the
# one ``np.dtype("int64")``, so a final ``pickle.dump``/``df.to_pickle`` writes it once and
# refers back to it. A dtype pickles as ``dtype("i8", False, True)`` whose last argument asks
# for a *copy*, so every array restored from a checkpoint would hold a dtype of its own and
# the program's final pickle would hold more objects than an uninterrupted run's (a frame
# grown by ``pd.concat`` from an empty ``DataFrame()`` keeps its first part's arrays). A
# record therefore writes a dtype that *is* the builtin one as ``dtype("<i8")``, which
# loads as the builtin one again. Only objects pickle does not handle itself reach
# ``reducer_override`` (never a str, int, list or dict), and only programs that loaded
# NumPy use this pickler; numpy is never imported here.


class _NumpyRecordPickler(_RecordPickler):
    dtype: Any = None
    dtype_types: FrozenSet[type] = frozenset()

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) in self.dtype_types:
            dtype = self.dtype
            if dtype(obj.str) is obj:
                return dtype, (obj.str,)
        return NotImplemented


def _pickler_class() -> type:
    numpy = sys.modules.get("numpy")
    dtype = getattr(numpy, "dtype", None)
    if dtype is None:
        return _RecordPickler
    if _NumpyRecordPickler.dtype is not dtype:
        codes = getattr(numpy, "typecodes", {}).get("All", "")
        _NumpyRecordPickler.dtype_types = frozenset(type(dtype(code)) for code in codes)
        _NumpyRecordPickler.dtype = dtype
    return _NumpyRecordPickler


def _dumps(value: object) -> bytes:
    buffer = io.BytesIO()
    _pickler_class()(buffer, _PICKLE_PROTOCOL).dump(value)
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
