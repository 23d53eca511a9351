"""A unit's effect on the accumulators: how it is computed and re-applied (its pickle is
in :mod:`.pickling`)."""

from __future__ import annotations

from itertools import compress, islice
from operator import is_not, ne

from .errors import CheckpointError
from .lite import TYPE_CHECKING, deque

if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Set, Tuple

# A unit's record holds, for each accumulator, how it changed during the unit:
#   None            unchanged
#   ("e", suffix)   grew at the end (list, str, bytes, tuple, bytearray, deque)
#   ("d", items)    these keys were set (dict and its subclasses: Counter, defaultdict, ...)
#   ("s", elems)    these elements were added (set)
#   ("v", value)    replaced by this value (numbers, and anything that changed otherwise)

_APPENDABLE = (list, bytearray, deque)
_IMMUTABLE_SEQ = (str, bytes, tuple)
_NESTED = (list, dict, set, bytearray, deque)
_SCALARS = (int, float, complex, bool, type(None), frozenset)


class _Tracker:
    """Remembers an accumulator's value as of the last record, and diffs against it.

    A diff is O(what changed) for sequences, numbers and strings. For a dict it is one
    C-speed pass over the values (is each still the same object?) plus one over the values
    that are containers (is each still as long? ``defaultdict(list)`` grows them in place),
    about 20-40 ns an entry, and Python-level work only for the entries that changed or are
    new; for a set, one C-speed set difference. Batching (see ``_WRITE_SHARE``) keeps even
    a large dict's passes to a small share of the loop's time.
    """

    __slots__ = ("obj", "size", "values", "seen", "reorderable", "n_pos", "n_obj", "n_len", "n_slot")

    def __init__(self, value: object) -> None:
        self.obj: object = None
        #: whether the last delta's effect is independent of the units before it: it only
        #: appended to a sequence, added to a set or created dict keys (see resume="identity")
        self.reorderable = True
        self.size = 0
        self.values: List[object] = []
        self.seen: Set[object] = set()
        # dict values that are containers: their positions, the objects and their lengths
        self.n_pos: List[int] = []
        self.n_obj: List[Any] = []
        self.n_len: List[int] = []
        self.n_slot: Dict[int, int] = {}  # position -> index in the three lists above
        self.rebase(value)

    def rebase(self, value: object) -> None:
        self.obj = value
        self.size = 0
        self.values, self.seen = [], set()
        self.n_pos, self.n_obj, self.n_len, self.n_slot = [], [], [], {}
        if isinstance(value, dict):
            self.values = list(value.values())
            self.size = len(self.values)
            for index, item in enumerate(self.values):
                if isinstance(item, _NESTED):
                    self._track(index, item)
        elif isinstance(value, (set, frozenset)):
            self.seen = set(value)
            self.size = len(value)
        elif isinstance(value, (_APPENDABLE, _IMMUTABLE_SEQ)):
            self.size = len(value)

    def _track(self, index: int, item: Any) -> None:
        """Remember the dict value at ``index`` (its length, if it is a container)."""
        slot = self.n_slot.get(index)
        nested = isinstance(item, _NESTED)
        if slot is None:
            if nested:
                self.n_slot[index] = len(self.n_pos)
                self.n_pos.append(index)
                self.n_obj.append(item)
                self.n_len.append(len(item))
        elif nested:
            self.n_obj[slot], self.n_len[slot] = item, len(item)
        else:  # no longer a container: an empty tuple never grows
            self.n_obj[slot], self.n_len[slot] = (), 0

    def delta(self, value: object) -> Optional[Tuple[str, object]]:
        """How ``value`` differs from the remembered one; then remembers ``value``."""
        old = self.obj
        self.reorderable = True
        result: Optional[Tuple[str, object]] = ("v", value)
        if type(value) is type(old):
            if isinstance(value, dict):
                result = self._dict_delta(value)
            elif isinstance(value, set):
                result = self._set_delta(value)
            elif isinstance(value, (_APPENDABLE, _IMMUTABLE_SEQ)):
                result = self._seq_delta(value, old)
            elif value is old and isinstance(value, _SCALARS):
                result = None
        if result is not None and result[0] == "v":
            self.rebase(value)
            self.reorderable = False
        self.obj = value
        return result

    def _seq_delta(self, value: Any, old: Any) -> Optional[Tuple[str, object]]:
        n = self.size
        if len(value) < n or (value is not old and isinstance(value, _IMMUTABLE_SEQ) and value[:n] != old):
            return ("v", value)
        self.size = len(value)
        if self.size == n:
            return None
        return ("e", list(value)[n:] if isinstance(value, deque) else value[n:])

    def _dict_delta(self, value: Dict[Any, Any]) -> Optional[Tuple[str, object]]:
        n = self.size
        if len(value) < n:
            return ("v", value)  # something was deleted: fall back to a snapshot
        vals = list(value.values())
        # an existing key keeps its position in a dict, and a replaced value has a new identity
        replaced = set(compress(range(n), map(is_not, vals, self.values)))
        # container values can grow in place (defaultdict(list)): compare their lengths
        grown = set(compress(self.n_pos, map(ne, map(len, self.n_obj), self.n_len))) if self.n_pos else set()
        for index in grown:
            slot = self.n_slot[index]
            self.n_len[slot] = len(self.n_obj[slot])
        for index in replaced:
            self._track(index, vals[index])
        for index in range(n, len(vals)):
            self._track(index, vals[index])
        self.values, self.size = vals, len(vals)
        changed = replaced | grown
        if not changed and len(vals) == n:
            return None
        self.reorderable = not changed  # only new keys: the unit did not read-modify-write
        if changed:
            keys = list(value)
            items = [(keys[i], vals[i]) for i in sorted(changed)]
            items.extend(zip(keys[n:], vals[n:]))
        else:  # only new keys, at the end: no need to list them all
            items = list(zip(reversed(list(islice(reversed(value), len(vals) - n))), vals[n:]))
        return ("d", items)

    def _set_delta(self, value: Set[Any]) -> Optional[Tuple[str, object]]:
        if len(value) == self.size:
            return None  # sets only grow in an accumulating loop
        if len(value) < self.size:
            return ("v", value)
        added = value - self.seen
        self.seen.update(added)
        self.size = len(value)
        return ("s", list(added))


def _apply(value: Any, delta: Optional[Tuple[str, Any]]) -> Any:
    """Re-apply one recorded delta; mutable accumulators are changed in place."""
    if delta is None:
        return value
    tag, data = delta
    if tag == "v":
        return data
    if tag == "e":
        if isinstance(value, _APPENDABLE):
            value.extend(data)
            return value
        return value + data
    if tag == "d":
        for k, v in data:
            value[k] = v
        return value
    if tag == "s":
        value.update(data)
        return value
    raise CheckpointError("unknown record type %r" % (tag,))


_MUTABLE = (list, dict, set, bytearray, deque)


def _apply_in_place(value: Any, delta: Tuple[str, Any]) -> None:
    """Apply one delta to a mutable accumulator without rebinding it (resume="identity")."""
    tag, data = delta
    if tag == "e":
        value.extend(data)
    elif tag == "d":
        for k, v in data:
            value[k] = v
    elif tag == "s":
        value.update(data)
    elif isinstance(value, dict):  # "v": a snapshot; dict's own methods (Counter.update adds)
        dict.clear(value)
        dict.update(value, data)
    elif isinstance(value, set):
        value.clear()
        value.update(data)
    elif isinstance(value, deque):
        value.clear()
        value.extend(data)
    else:  # list, bytearray
        value[:] = data


def _applicable_in_place(value: Any, delta: Optional[Tuple[str, Any]], new_keys_only: bool) -> bool:
    """Whether :func:`_apply_in_place` can apply ``delta`` to ``value`` (and, for dicts with
    ``new_keys_only``, whether none of the keys it sets exists yet)."""
    if delta is None:
        return True
    tag, data = delta
    if tag == "e":
        return isinstance(value, _APPENDABLE)
    if tag == "d":
        return isinstance(value, dict) and not (new_keys_only and any(k in value for k, _ in data))
    if tag == "s":
        return isinstance(value, set)
    return type(value) is type(data) and isinstance(value, _MUTABLE)
