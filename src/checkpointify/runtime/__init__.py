"""The checkpoint runtime that rewritten loops call. Standard library only; Python >= 3.9.

A rewritten loop looks like this::

    results = []
    ckpt = checkpoint("job.py::main::results", items, lambda: (results,))
    [results] = ckpt.restore()
    for item in ckpt:
        results.append(expensive_operation(item))
    save_results(results)
    ckpt.complete()

The public API is :func:`checkpoint`, :class:`Checkpoint`, :func:`complete_deferred`,
:func:`parallel`, :class:`Parallel`, :func:`acknowledge_each`,
:class:`Acknowledger`, :func:`read_info`, :func:`remove`, :class:`CheckpointInfo` and the
errors. The same checkpoint serves four loop shapes:

* ``for`` over an iterable, as above;
* ``while``: ``checkpoint(loop_id, state=...)`` without an iterable; the loop's test
  becomes ``while ckpt.advance() and <test>:``. ``restore()`` re-applies every recorded
  unit (there are no items to check);
* ``async for`` over an async iterable: ``[acc] = await ckpt.arestore()``, then
  ``async for item in ckpt:`` (position resume only);
* ``transaction=conn`` (rows written per item, one commit after the loop): the records
  live in table ``checkpointify_log`` of the connection's own database and are committed
  with each unit's writes, so exactly the committed units are skipped (a DB-API 2
  connection or a SQLAlchemy Session/Connection; any other object with ``commit()`` is
  committed, then recorded in the log file: at-least-once).

:func:`parallel` (:class:`Parallel`) is for work handed to a pool or an event loop: it
records each result keyed by its input from whichever thread delivers it, and a re-run
does not submit the inputs already done (see :mod:`.parallel`). :func:`shared_appends`
(:class:`SharedAppends`) is its form for coroutines that append to a shared list instead of
returning: each call's appends are recorded when it completes (see :mod:`.shared`).

:func:`checkpoint_rows` is for pandas' row-wise ``apply``/``progress_apply``/``map``
(``df["label"] = rows(df["text"]).apply(classify)``): each call of the function is a unit
(see :mod:`.rows`).

:func:`acknowledge_each` is for message loops that ack the whole batch after the loop:
it acks each unit as it completes and stores nothing (the broker is the progress
marker).

**Never worse than the original.** By default a checkpoint never makes a loop fail where
the original program would have succeeded: what it cannot do, it stops doing, says so in
one warning on stderr naming the loop and the cause, and the loop runs on. Which errors
degrade and which stop:

=============================================  ============================================  ==============================
what happens                                   default                                       strict (``CHECKPOINTIFY_STRICT=1``
                                                                                             or ``strict=True``)
=============================================  ============================================  ==============================
a value that cannot be pickled                 checkpointing of the loop stops; it runs on   :class:`CheckpointError`
disk full, read-only folder, I/O error,        checkpointing of the loop stops; it runs on   :class:`CheckpointWriteError`
failed fsync                                   (records written so far stay valid)
the log records other input, another loop,     archived as ``*.ckpt.stale``; the loop        :class:`StaleCheckpointError`
another shape or number of accumulators        starts from zero
a log damaged in the middle                    moved aside; the loop starts from zero in     :class:`CorruptCheckpointError`
                                               the same run
another process or thread runs the same        this one runs unchecked and leaves the        :class:`CheckpointLockedError`
loop with the same key                         other's log alone
misuse (iterating before ``restore()``, an     raises                                        raises
invalid argument or environment variable)
=============================================  ============================================  ==============================

``CHECKPOINTIFY_ON_STALE=error`` makes a stale log raise in the default mode too. A log is
only resumed by a run whose loop identity (the file part derived at run time: see
:mod:`.naming`), key (by value: see :func:`key_fingerprint`) and input items all match.
What the log-file checkpoint promises (the errors below are what strict mode raises):

* **Restore.** ``restore()`` takes the loop's lock, reads its log, re-applies each
  completed unit's effect to the accumulators and returns their values. By default
  (``resume="position"``) the items recorded must be the first items of the current input
  (checked by fingerprint; large arrays and buffers by a bounded sample, see
  :func:`fingerprint`); otherwise nothing is applied, the log is archived and the loop
  starts from zero (strict mode: :class:`StaleCheckpointError`). With ``resume="identity"`` units are matched by item instead, wherever the item
  now is in the input (for ``os.listdir``, ``glob``, sets): see :class:`Checkpoint`.
* **Record.** When the loop asks for the next item, the previous unit has finished
  (normally or by ``continue``): its effect on the accumulators is appended to the log as
  a framed, checksummed record and handed to the operating system (``os.write``, no user
  space buffer) before the next item is returned. A unit that raises, or that ends the loop
  with ``break``, is not recorded and runs again on resume. A record that is present in the
  log means the unit is done; its effect is applied exactly once.
* **Cheap units.** Writing a record costs something (computing the unit's effect, pickling,
  one ``write``). When a unit takes less than about 20 times that cost, records are batched
  so that writing takes at most about 5 % of the loop's time: units wait until 20 write
  costs (at most 1 s) have passed since the last write, then go out as one record. A
  ``kill -9``, an exception or a ``break`` then loses at most the units completed in that
  window; they simply run again. ``CHECKPOINTIFY_BATCH=off`` (and
  ``CHECKPOINTIFY_FSYNC=always``) writes every unit before the next starts, whatever it
  costs.
* **fsync.** ``CHECKPOINTIFY_FSYNC=batched`` (the default) syncs the log from a background
  thread about once a second (Redis' ``appendfsync everysec``), and synchronously when the
  input is exhausted, on ``close()`` and at interpreter exit; the directory is synced with
  the log's first sync and when ``complete()`` removes it. So a power loss costs at most
  about a second of completed units. ``always`` syncs every record before the next unit
  starts; ``never`` leaves it to the OS.
* **Failures.** A failed write or fsync raises :class:`CheckpointWriteError`, naming the
  file and the OS error: at once, or at the loop's next step when the sync thread met it.
  Nothing is retried (a retried fsync can report success for data the kernel already
  dropped); the checkpoint refuses every later write.
* **Damage.** On restore the longest valid prefix of frames is kept. A torn, zero-filled
  or garbage tail (the writer died mid-write, or the machine lost power) is cut off before
  the next append. A damaged frame followed by a valid one is corruption: the file is
  moved aside to ``<name>.corrupt-<time>`` and :class:`CorruptCheckpointError` is raised.
* **One writer.** A second process that opens the same checkpoint while the first runs
  gets :class:`CheckpointLockedError` naming it (``fcntl.flock``, released by the kernel
  when the holder dies, so a killed run never blocks a re-run). Without ``fcntl``
  (Windows) there is no lock.
* **Trust.** A log, or its folder, owned by another user or writable by group or others
  is refused with :class:`UntrustedCheckpointError` before it is read (unpickling runs
  code; see :mod:`.trust`). Folders are created 0700 with a ``.gitignore`` holding ``*``,
  logs 0600.
* **Complete.** ``complete()``, placed after the final save, removes the log: the next run
  starts from zero.

The log is ``<dir>/<slug>-<hash>.ckpt`` where ``<dir>`` is the ``directory=`` argument,
else ``$CHECKPOINTIFY_DIR``, else ``./.checkpointify``; its lock is ``<name>.ckpt.lock``.
Its format is described in :mod:`.frames`.

The package imports nothing outside the standard library and itself (relative imports
only), so that vendoring it is copying this folder. Its modules:

* :mod:`.checkpoint`: :class:`Checkpoint` and :func:`checkpoint` (the loop id's file part:
  :mod:`.naming`), over a :class:`.store.Store`:
  :mod:`.filelog` (the log file, fsync, the sync thread; its lock in :mod:`.lock`) or
  :mod:`.database` (``transaction=``) or :mod:`.objectstore` (a URL such as
  ``s3://bucket/prefix``: segments, snapshots, the lease of :mod:`.lease`, through
  :mod:`.remote`, which imports ``fsspec`` only then); :mod:`.identity` plans
  ``resume="identity"``;
* :mod:`.frames` (the on-disk format), :mod:`.pickling` (the records' pickle),
  :mod:`.deltas` (a unit's effect on the accumulators), :mod:`.fingerprint`,
  :mod:`.settings` (environment, fault injection), :mod:`.errors`;
* :mod:`.deferred` (``deferred=True``, :func:`complete_deferred`: a helper's loop whose
  caller saves, and completes);
* :mod:`.framewrites` (:func:`frame_writes`) and :mod:`.frameconcat` (:func:`frame_concat`):
  a frame filled through ``.at``/``.loc`` or grown by ``pd.concat``, journaled and replayed;
* :mod:`.acknowledge` (:func:`acknowledge_each`), :mod:`.inspection` (:func:`read_info`,
  :func:`remove`, :class:`CheckpointInfo`; :mod:`.remotelogs` for logs on object storage).

Importing the package is a cost every rewritten job pays, so it loads only what defining
the names needs (about 5 ms over bare Python; ``benchmarks/runtime_overhead.py --imports``).
``typing`` is for the type checker only (see :mod:`.lite`); ``pathlib``, ``re``,
``pickle``, the log file, the database store and inspection are imported where first
used: by :func:`checkpoint`, ``restore()``, ``transaction=`` or :func:`read_info`.
"""

from __future__ import annotations

from .acknowledge import Acknowledger, acknowledge_each
from .checkpoint import Checkpoint, checkpoint
from .deferred import complete_deferred
from .errors import (
    CheckpointError,
    CheckpointLockedError,
    CheckpointWriteError,
    CorruptCheckpointError,
    StaleCheckpointError,
    UntrustedCheckpointError,
)
from .fingerprint import fingerprint, key_fingerprint
from .frameconcat import FrameConcat, frame_concat
from .frames import FORMAT as FORMAT  # not in __all__ (it never was), but imported by name
from .frames import RUNTIME_VERSION
from .framewrites import FrameWrites, frame_writes
from .itemwrites import ItemWrites, item_writes
from .lite import TYPE_CHECKING
from .parallel import Parallel, parallel
from .rows import RowCheckpoint, checkpoint_rows
from .settings import checkpoint_dir, log_name
from .shared import SharedAppends, shared_appends

if TYPE_CHECKING:
    from typing import Any

    from .inspection import CheckpointInfo, is_log, read_info, remove

__all__ = [
    "acknowledge_each",
    "Acknowledger",
    "checkpoint",
    "Checkpoint",
    "complete_deferred",
    "parallel",
    "Parallel",
    "shared_appends",
    "SharedAppends",
    "checkpoint_rows",
    "frame_writes",
    "FrameWrites",
    "item_writes",
    "ItemWrites",
    "frame_concat",
    "FrameConcat",
    "RowCheckpoint",
    "CheckpointInfo",
    "CheckpointError",
    "CheckpointLockedError",
    "CheckpointWriteError",
    "CorruptCheckpointError",
    "StaleCheckpointError",
    "UntrustedCheckpointError",
    "checkpoint_dir",
    "fingerprint",
    "key_fingerprint",
    "log_name",
    "is_log",
    "read_info",
    "remove",
    "RUNTIME_VERSION",
]

_LAZY = ("CheckpointInfo", "is_log", "read_info", "remove")  # from .inspection, which needs dataclasses


def __getattr__(name: str) -> Any:
    """The inspection names, imported on first use (a rewritten loop never needs them)."""
    if name in _LAZY:
        from . import inspection

        value = getattr(inspection, name)
        globals()[name] = value
        return value
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
