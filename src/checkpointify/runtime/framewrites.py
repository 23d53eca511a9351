"""Cell and row writes into a frame, journaled so a re-run can replay them.

A loop that fills a frame loaded before it (``df.at[i, "answer"] = ask(row)``,
``df.loc[i, "col"] = ...``, ``table.loc[len(table)] = [...]``) has no accumulator the
checkpoint could diff cheaply: the frame is the state. The rewrite writes through a
journal instead::

    df_writes = frame_writes(df)
    ckpt = checkpoint("job.py::<module>::df", df.iterrows(), lambda: (df_writes.journal,))
    [df_writes.journal] = ckpt.restore()
    df_writes.replay()
    for index, row in ckpt:
        df_writes.at[index, "answer"] = ask(row)

Each write goes to the frame at once (``getattr(frame, accessor)[key] = value``, so pandas
does exactly what it did) and is appended to ``journal`` as ``(accessor, key, value)``;
the journal is a plain list, so each unit's record holds only its own writes. ``replay()``
applies the restored writes, in order, to the frame the code before the loop built again:
the same operations in the same order, so the frame's values, dtypes and index are those
of an uninterrupted run. pandas is never imported here.
"""

from __future__ import annotations

from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, List, Tuple

ACCESSORS = ("at", "loc", "iat", "iloc")


class _Indexer:
    __slots__ = ("_owner", "_accessor")

    def __init__(self, owner: "FrameWrites", accessor: str) -> None:
        self._owner = owner
        self._accessor = accessor

    def __getitem__(self, key: Any) -> Any:
        return getattr(self._owner.frame, self._accessor)[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        getattr(self._owner.frame, self._accessor)[key] = value
        self._owner.journal.append((self._accessor, key, value))


class FrameWrites:
    """The frame, and the writes made through :attr:`at`, :attr:`loc`, :attr:`iat` and
    :attr:`iloc` since it was wrapped (see the module docstring)."""

    def __init__(self, frame: Any) -> None:
        self.frame = frame
        self.journal: List[Tuple[str, Any, Any]] = []
        self._replayed = 0

    @property
    def at(self) -> _Indexer:
        return _Indexer(self, "at")

    @property
    def loc(self) -> _Indexer:
        return _Indexer(self, "loc")

    @property
    def iat(self) -> _Indexer:
        return _Indexer(self, "iat")

    @property
    def iloc(self) -> _Indexer:
        return _Indexer(self, "iloc")

    def replay(self) -> None:
        """Apply the journal's writes that are not in the frame yet (after ``restore()``)."""
        for accessor, key, value in self.journal[self._replayed :]:
            if accessor not in ACCESSORS:
                raise ValueError("a frame write through %r cannot be replayed" % (accessor,))
            getattr(self.frame, accessor)[key] = value
        self._replayed = len(self.journal)


def frame_writes(frame: Any) -> FrameWrites:
    """Journal the writes a loop makes into ``frame`` (see the module docstring)."""
    return FrameWrites(frame)
