"""Where a checkpoint keeps its records: the interface :class:`~.checkpoint.Checkpoint` talks to.

Two stores implement it: :class:`~.filelog.FileStore` (the log file, and the fallback of
``transaction=`` for a connection that cannot hold the records) and
:class:`~.database.DatabaseStore` (``transaction=``: the connection's own database). Both
hold the same frames (:mod:`.frames`); a store only decides where they go and when they are
durable. This module is for the type checker: nothing imports it at run time.
"""

from __future__ import annotations

from typing import Protocol, Tuple

from .frames import _Scan


class Store(Protocol):
    """One loop's records, opened by ``restore()`` and released by ``close()`` or ``complete()``.

    Every method that writes raises :class:`~.errors.CheckpointWriteError` on failure and
    poisons the store: later calls to :meth:`check` (and so every write) raise too.
    """

    @property
    def where(self) -> str:
        """The store as messages name it (a path, or a table of a connection)."""

    @property
    def closed(self) -> bool:
        """Whether it was closed or removed: it records nothing more."""

    def open(self) -> None:
        """Take hold of it before reading: the file's lock, or the table (created if missing)."""

    def read(self) -> Tuple[bytes, _Scan, bool]:
        """The frames recorded so far, their scan, and whether the last run's loop ended at
        the next unit (its writes committed without a record). Raises
        :class:`~.errors.CorruptCheckpointError` for damage that is not a torn tail."""

    def resume(self, scan: _Scan) -> None:
        """Append after the frames that :meth:`read` found valid (cutting off a torn tail)."""

    def check(self) -> None:
        """Raise if it may not be written any more (failed earlier, or closed)."""

    def poison(self, message: str) -> None:
        """Refuse every later write, with ``message`` (a record that could not be encoded)."""

    def start_unit(self) -> None:
        """A unit starts (a database opens the unit's transaction with its marker)."""

    def write(self, frame: bytes, first: int, last: int) -> float:
        """Make one record (units ``first``..``last``) durable by the store's policy;
        returns the seconds spent on durability (fsync, commit), which batching does not
        reduce. Honours the ``CHECKPOINTIFY_FAULT`` points for those units."""

    def end(self) -> None:
        """The input is exhausted: make everything written durable."""

    def discard(self, reason: str) -> None:
        """A stale log (the default; strict mode: ``CHECKPOINTIFY_ON_STALE=restart``): set
        the records aside (archive or delete), with a warning."""

    def how_to_start_over(self) -> str:
        """The sentence that tells a user how to delete the records."""

    def remove(self) -> None:
        """``complete()``: delete the records durably and release the store."""

    def close(self) -> None:
        """Release the store, keeping the records (the next run resumes)."""


class Owner(Protocol):
    """What an open log knows of its checkpoint: it writes the checkpoint's waiting units
    when a newer checkpoint of the same loop takes over, and at interpreter exit."""

    def _flush_if_safe(self) -> None: ...
