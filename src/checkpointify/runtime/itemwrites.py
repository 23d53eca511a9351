"""Writes into the items of a loaded list, journaled so a re-run can replay them.

A loop that fills in the records of a list loaded before it (``data = json.load(f)``, then
``data[i]["answer"] = ask(data[i]["question"])`` or ``item["answer"] = ...`` for each
``item in data``, then ``json.dump(data, out)``) has no accumulator the checkpoint could
diff cheaply: the list is the state, and it is as large as the input. The rewrite writes
through a journal instead::

    data_writes = item_writes(data)
    ckpt = checkpoint("job.py::<module>::data", data, lambda: (data_writes.journal,),
                      constants={"data (as loaded)": data_writes.loaded})
    [data_writes.journal] = ckpt.restore()
    data_writes.replay()
    for item in ckpt:
        data_writes.of(item)["answer"] = ask(item["question"])   # data_writes[i][...] for data[i][...]

Each write goes to the item at once (``items[index][key] = value``, so the program sees
exactly what it saw) and is appended to ``journal`` as ``(index, key, value)``; the journal
is a plain list, so each unit's record holds only its own writes (O(unit), not O(list)).
``replay()`` applies the restored writes, in order, to the list the code before the loop
loaded again: the same stores in the same order, so the list is what an uninterrupted run
would hold at that point.

``loaded`` is a fingerprint of the whole list as it was loaded (taken before any write).
The rewrite passes it in ``constants=``, so a re-run over another input file (or over the
output of a finished run, when the program saves back into the file it read) never replays
the writes of the old input: the old log is archived as ``.stale`` with a warning and the
loop starts from zero, as the original program would (strict mode raises).

``of(item)`` finds the item's index by identity. An object that is not an item of the list
(the program made a copy after all) is written to as the program says, but cannot be
journaled: the unit's record then fails to pickle, so checkpointing of the loop steps aside
with one warning (strict mode raises) and a later re-run resumes from the units before it.
"""

from __future__ import annotations

from .fingerprint import fingerprint
from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple


class _Unjournaled:
    """A journal entry for a write that could not be tied to an item: never picklable, so
    the checkpoint steps aside instead of recording a unit it could not replay."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    def __reduce__(self) -> Any:
        raise TypeError(self.why)


class _Item:
    """One item of the list, seen through the journal: stores and ``update()`` are journaled,
    reads go to the item."""

    __slots__ = ("_owner", "_index")

    def __init__(self, owner: "ItemWrites", index: Any) -> None:
        self._owner = owner
        self._index = index

    def _target(self) -> Any:
        return self._owner.items[self._index]

    def __getitem__(self, key: Any) -> Any:
        return self._target()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._target()[key] = value
        self._owner._record(self._index, key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:
        """``dict.update``: each key stored in turn, as ``dict.update`` does, and journaled."""
        changes: Dict[Any, Any] = dict(*args, **kwargs)
        for key, value in changes.items():
            self[key] = value


class ItemWrites:
    """The list, and the writes made into its items through :meth:`of` and ``[index]``
    since it was wrapped (see the module docstring)."""

    def __init__(self, items: Any) -> None:
        self.items = items
        self.journal: List[Tuple[Any, Any, Any]] = []
        #: the fingerprint of the list as loaded (hex), before any write
        self.loaded = fingerprint(items).hex()
        self._replayed = 0
        self._positions: Optional[Dict[int, Any]] = None

    def __getitem__(self, index: Any) -> _Item:
        """``data_writes[i]["k"] = v`` for ``data[i]["k"] = v``."""
        return _Item(self, index)

    def of(self, item: Any) -> Any:
        """``data_writes.of(item)["k"] = v`` for ``item["k"] = v`` where ``item`` is an item
        of the list (found by identity)."""
        index = self._index_of(item)
        if index is None:
            return _Stray(self, item)
        return _Item(self, index)

    def _index_of(self, item: Any) -> Any:
        """The key of ``item`` in the list (None: not an item); the map is rebuilt once on a miss."""
        for fresh in (False, True):
            if self._positions is None or fresh:
                self._positions = self._index()
            found = self._positions.get(id(item))
            if found is not None and self.items[found[0]] is item:
                return found[0]
        return None

    def _index(self) -> Dict[int, Any]:
        items = self.items
        keys = list(items.keys()) if hasattr(items, "keys") else range(len(items))
        positions: Dict[int, Any] = {}
        for key in keys:
            positions.setdefault(id(items[key]), (key,))  # the first of shared objects
        return positions

    def _record(self, index: Any, key: Any, value: Any) -> None:
        self.journal.append((index, key, value))

    def replay(self) -> None:
        """Apply the journal's writes that are not in the list yet (after ``restore()``)."""
        items = self.items
        for entry in self.journal[self._replayed :]:
            index, key, value = entry
            items[index][key] = value
        self._replayed = len(self.journal)


class _Stray:
    """Writes into an object that is not an item of the list: done as the program says,
    journaled as an entry that stops the checkpoint (see :class:`_Unjournaled`)."""

    __slots__ = ("_owner", "_item")

    def __init__(self, owner: ItemWrites, item: Any) -> None:
        self._owner = owner
        self._item = item

    def __getitem__(self, key: Any) -> Any:
        return self._item[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._item[key] = value
        why = "a write into %r of an object that is not an item of the list cannot be journaled" % (key,)
        self._owner.journal.append(_Unjournaled(why))  # type: ignore[arg-type]

    def update(self, *args: Any, **kwargs: Any) -> None:
        changes: Dict[Any, Any] = dict(*args, **kwargs)
        for key, value in changes.items():
            self[key] = value


def item_writes(items: Any) -> ItemWrites:
    """Journal the writes a loop makes into the items of ``items`` (see the module docstring)."""
    return ItemWrites(items)
