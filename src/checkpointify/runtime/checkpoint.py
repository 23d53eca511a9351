"""The checkpoint of one loop: restore, hand out the remaining items, record each unit.

:class:`Checkpoint` does the loop's side of the work (which items run, what each unit
changed, when a record is due) and leaves where records go to a :class:`~.store.Store`.
"""

from __future__ import annotations

import gc
import os
import sys
import time

from .deltas import _MUTABLE, _apply, _apply_in_place, _Tracker
from .errors import (
    _TAKEN_OVER,
    CheckpointError,
    CheckpointLockedError,
    CorruptCheckpointError,
    StaleCheckpointError,
    _describe_connection,
    _short,
    _shown,
    _type_name,
)
from .fingerprint import _legacy_key_fingerprint, fingerprint, key_fingerprint
from .frames import (
    _COMBINED,
    _FORMAT_V1,
    _REORDERABLE,
    FORMAT,
    RUNTIME_VERSION,
    _decode_units,
    _encode_record,
    _header,
    _live,
    _Scan,
    _scan,
    _Unit,
    _unpicklable,
)
from .lite import TYPE_CHECKING, Generic, T, deque
from .settings import _crash, _Settings, checkpoint_dir, log_name, remote_url, shard

if TYPE_CHECKING:
    from pathlib import Path
    from typing import (
        Any,
        AsyncIterable,
        AsyncIterator,
        Callable,
        Deque,
        Dict,
        Iterable,
        Iterator,
        List,
        Mapping,
        Optional,
        Sequence,
        Tuple,
        Union,
    )

    from .frames import _PendingUnit
    from .identity import _Plan
    from .store import Store


_WRITE_SHARE = 0.05  # batching keeps the time spent writing records under about this share
_MAX_BATCH_WINDOW = 1.0  # seconds: units never wait longer than this to be written
_BATCH_MAX_UNITS = 4096  # never hold more units than this in memory


# ------------------------------------------------------------------------ the checkpoint


_NO_ITEM = bytes(8)  # the "item fingerprint" of a while loop's units: there is no item


def _no_state() -> Tuple[Any, ...]:
    return ()


class _GcPaused:
    """Restoring only allocates; collections over the growing heap cost about half the time."""

    def __enter__(self) -> None:
        self.collecting = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc_info: object) -> None:
        if self.collecting:
            gc.enable()


class _Recorded:
    """What restore() found: the valid frames and the units they hold."""

    __slots__ = ("scan", "units")

    def __init__(self, scan: _Scan, units: List[_Unit]) -> None:
        self.scan = scan
        self.units = units


class Checkpoint(Generic[T]):
    """One loop's checkpoint: restores, hands out the remaining items, records each unit.

    Use :func:`checkpoint` to create one. Not thread-safe: one loop, one thread.

    ``resume="position"`` (the default): a re-run must see the same input in the same
    order; the recorded units are its first items (checked by fingerprint, else
    :class:`StaleCheckpointError`), re-applied by ``restore()``.

    ``resume="identity"``: for input whose order may change between runs (``os.listdir``,
    ``glob``, sets). ``restore()`` returns the accumulators untouched and reads the whole
    input (so it must be finite); iterating then walks the *current* input and, for each
    item that was completed before, applies that unit's recorded effect in place at that
    point and skips the body; other items run. The accumulators must be mutable (lists,
    dicts, sets, deques, bytearrays and their subclasses). Items that are no longer in the
    input are ignored, so the result equals an uninterrupted run over the current input. A
    unit whose effect depended on earlier units (a counter incremented, a list inside a
    dict grown, an entry overwritten) is reused only while the order is unchanged up to
    it; after the first difference it runs again (see :class:`_Plan`).

    Three more shapes (see :func:`checkpoint`): a ``while`` loop (no iterable; the test
    calls :meth:`advance`), ``async for`` over an async iterable (:meth:`arestore`, then
    ``async for``; position mode only) and ``transaction=`` (the records live in the
    connection's database, committed with each unit's writes).
    """

    def __init__(
        self,
        loop_id: str,
        iterable: Optional[Union[Iterable[T], AsyncIterable[T]]],
        state: Optional[Callable[[], Tuple[Any, ...]]],
        key: object = None,
        directory: Optional[Union[Path, str]] = None,
        *,
        resume: str = "position",
        source: str = "",
        transaction: object = None,
        strict: Optional[bool] = None,
        legacy_id: Optional[str] = None,
        deferred: bool = False,
        constants: Optional[Mapping[str, object]] = None,
        upload_interval: Optional[float] = None,
    ) -> None:
        if resume not in ("position", "identity"):
            raise ValueError("resume must be 'position' or 'identity', not %r" % (resume,))
        if iterable is None and resume != "position":
            raise ValueError("resume='identity' matches units by item; a while loop (no iterable) has none")
        self.loop_id = loop_id
        self.resume = resume
        self.source = source
        self._state: Callable[[], Tuple[Any, ...]] = state if state is not None else _no_state
        self._iterable: Optional[Any] = iterable
        self._iterator: Iterator[T] = iter(())
        self._aiterator: Optional[AsyncIterator[T]] = None
        #: "for", "async for" (once arestore() ran) or "while" (no iterable)
        self._shape = "while" if iterable is None else "for"
        self._transaction = transaction
        self._key_fp = key_fingerprint(key) if key is not None else ""
        #: the module constants' fingerprints, by name (see :mod:`.constants`)
        self._constants: Dict[str, str] = {}
        if constants:
            from .constants import constants_fingerprints

            self._constants = constants_fingerprints(constants)
            self._key_fp += ":" + key_fingerprint(tuple(sorted(self._constants.items())))
        #: completed by the caller (see :mod:`.deferred`): the key fingerprint without ``#n``
        self._deferred: Optional[str] = None
        if deferred:
            from .deferred import occurrence_key

            self._deferred = self._key_fp
            self._key_fp = occurrence_key(loop_id, self._key_fp)
        self._default_dir = directory is None and not os.environ.get("CHECKPOINTIFY_DIR")
        #: the object-store URL of the logs (``s3://bucket/prefix``...; None: a local folder)
        self.url = remote_url(directory)
        self._shard = shard()
        if isinstance(directory, str):
            from pathlib import Path

            directory = Path(directory)
        self.directory = directory if directory is not None else checkpoint_dir()
        self.path = self.directory / log_name(loop_id, self._key_fp, self._shard)
        self._settings = _Settings.from_env()
        self._upload_interval = upload_interval
        #: raise instead of stepping aside (``strict=``, else ``CHECKPOINTIFY_STRICT``)
        self.strict = self._settings.strict if strict is None else bool(strict)
        #: why checkpointing of this loop stopped in this run (None: it runs)
        self.off: Optional[str] = None
        self._off_by_lock = False  # another instance holds the log: never touch it
        self._log_id = loop_id  # the loop id the log was written under (an earlier version's)
        self._legacy: Optional[Tuple[str, Path]] = None  # (id, path) of an earlier version's log
        if legacy_id is not None and legacy_id != loop_id and transaction is None and self.url is None:
            if key is None or key_fingerprint(key) == _legacy_key_fingerprint(key):
                legacy_fp = self._key_fp
                self._legacy = (legacy_id, self.directory / log_name(legacy_id, legacy_fp))
        self._consumed: List[T] = []  # input items restore() pulled that no unit has applied
        self._store: Optional[Store] = None  # from restore() on: the log file, or the database
        self._ended_early = False  # a committed open marker: the last run's loop ended at this unit
        self._accumulators = 0
        self._trackers: List[_Tracker] = []
        self._replay: Deque[T] = deque()
        self._plan: Optional[_Plan] = None
        self._inflight: Optional[Tuple[bytes, int]] = None  # fingerprint, replaced seq
        self._pending: List[_PendingUnit] = []  # completed units not written yet (a batch)
        self._last_write = 0.0  # perf_counter() when the last record was written
        # what writing a record costs: the minimum of the last few writes (a write that was
        # descheduled must not make slow units wait), growing with the accumulators
        self._write_costs: Deque[float] = deque(maxlen=8)
        # units wait to be written while less than this has passed since the last write
        self._window = 0.0 if self._settings.batch else -1.0
        self._seq = 0
        self._restored = False
        self._finished = False
        self._completed = False
        self._trackers_stale = False
        self._reused = 0
        self._rerun = 0
        #: how many recorded units restore() applied (identity mode: how many were reused so far)
        self.restored_units = 0

    # -- restore ----------------------------------------------------------------------

    def restore(self) -> List[Any]:
        """Take the loop's lock, re-apply the recorded units and return the accumulators.

        By default a checkpoint never stops the loop (see :func:`checkpoint`): when the
        recorded items are not the first items of the current input (position mode), or the
        log was written by another loop, it is archived and the loop starts from zero; a log
        damaged in the middle is moved aside and the loop starts from zero; when the log
        cannot be used (another process or thread runs the same loop, the directory is not
        writable) the loop runs unchecked. Each of these says so on stderr.

        In strict mode they raise instead: :class:`StaleCheckpointError` (nothing is
        applied then), :class:`CorruptCheckpointError`, :class:`CheckpointLockedError` and
        :class:`CheckpointWriteError`. A checkpoint over an async iterable is refused in
        both modes: use :meth:`arestore`.

        For a ``while`` loop (no iterable) every recorded unit is re-applied: there are no
        items whose fingerprints could show that the input changed.
        """
        self._check_restorable()
        iterable = self._iterable
        if iterable is not None and not hasattr(iterable, "__iter__") and hasattr(iterable, "__aiter__"):
            raise CheckpointError(
                "checkpoint %r is over an async iterable (%s): restore it with `await ckpt.arestore()` and "
                "iterate it with `async for`" % (self.loop_id, _type_name(iterable))
            )
        values = self._initial_values()
        if iterable is not None:
            self._iterator = iter(iterable)
        self._iterable = None
        try:
            self._open()
            with _GcPaused():
                recorded = self._read_records()
                applied = self._already_applied(values)
                if self.resume == "identity":
                    values = self._restore_by_identity(values, recorded)
                else:
                    live = _live(recorded.units)
                    mismatch = self._match_items(live)
                    values = self._restore_by_position(values, recorded, live, mismatch, applied)
        except CheckpointError as exc:
            self._restore_failed(exc)
        except BaseException:
            self._release()
            raise
        return self._ready(values)

    async def arestore(self) -> List[Any]:
        """:meth:`restore` for ``async for`` over an async iterable: the recorded items are
        read from it (awaited) and checked by fingerprint. Position mode only (identity
        would need the whole input first). Refused for a synchronous iterable or a while
        loop, which use :meth:`restore`."""
        self._check_restorable()
        iterable = self._iterable
        if iterable is None or not hasattr(iterable, "__aiter__"):
            raise CheckpointError(
                "arestore() is for `async for` over an async iterable; checkpoint %r is over %s: use "
                "restore() and a plain `%s` loop"
                % (self.loop_id, "no iterable" if iterable is None else _type_name(iterable), self._shape)
            )
        if self.resume != "position":
            raise CheckpointError(
                "checkpoint %r: resume=%r needs the whole input before the loop starts; an async iterable "
                "supports resume='position' only" % (self.loop_id, self.resume)
            )
        values = self._initial_values()
        self._aiterator = iterable.__aiter__()
        self._iterable = None
        self._shape = "async for"
        try:
            self._open()
            recorded = self._read_records()
            live = _live(recorded.units)
            mismatch = await self._amatch_items(live)
            with _GcPaused():
                values = self._restore_by_position(values, recorded, live, mismatch)
        except CheckpointError as exc:
            self._restore_failed(exc)
        except BaseException:
            self._release()
            raise
        return self._ready(values)

    def _restore_failed(self, exc: CheckpointError) -> None:
        """A restore that could not use its log: raise in strict mode (and for
        ``CHECKPOINTIFY_ON_STALE=error``), else step aside and let the loop run unchecked."""
        self._release()
        if self.strict or isinstance(exc, StaleCheckpointError):
            raise exc
        self._step_aside(exc)

    def _check_restorable(self) -> None:
        if self._restored:  # a restore() that failed (locked, stale...) may be retried
            raise CheckpointError("restore() was already called for checkpoint %r" % self.loop_id)

    def _initial_values(self) -> List[Any]:
        """The accumulators' values before any unit is applied."""
        values = list(self._state())
        if self.resume == "identity":
            _check_mutable(self.loop_id, values)
        self._accumulators = len(values)
        return values

    def _open(self) -> None:
        """Open the store: the log file (taking its lock) or, for ``transaction=``, the
        database table (no file, no lock: the transaction is the progress marker and the
        table's primary key stops a second writer)."""
        # the record pickle's import, now: the first record's cost calibrates batching
        from . import pickling  # noqa: F401

        self._adopt_legacy_log()
        if self._constants and self._transaction is None and self.url is None and not self.path.exists():
            from .constants import archive_other_constants

            archive_other_constants(self.path, self._log_id, self._constants, self.strict, self._warn)
        store = self._new_store(announce=True)
        self._store = store
        store.open()
        self._last_write = time.perf_counter()

    def _adopt_legacy_log(self) -> None:
        """Resume a log that an earlier version of the runtime wrote for this loop under the
        loop id the rewrite spelled out (``"job.py::main::results"``), when this very program
        wrote it (its header names the same source file) and the key is one that version
        fingerprinted by value. A log of the same literal id written by another file (a
        copy of the script) is not this loop's: it is left alone."""
        if self._legacy is None or self.path.exists():
            return
        legacy_id, legacy_path = self._legacy
        try:
            data = legacy_path.read_bytes()
        except OSError:
            return
        from .frames import _scan

        scan = _scan(data)
        try:
            header = _header(data, scan) if scan.frames else {}
        except Exception:
            header = {}
        written_by = str(header.get("source", "")).rpartition(":")[0]
        if header.get("loop_id") == legacy_id and written_by == self.source.rpartition(":")[0]:
            self.path = legacy_path
            self._log_id = legacy_id
            self._say(
                "%s: resuming %s, written by an earlier version of checkpointify"
                % (self.loop_id, _shown(legacy_path))
            )
        else:
            self._say(
                "%s: %s was written for loop id %r by %s, not by this file; it is not resumed here (and left "
                "alone)" % (self.loop_id, _shown(legacy_path), legacy_id, written_by or "an unknown program")
            )

    def _new_store(self, announce: bool) -> Store:
        """The store of this checkpoint's records (not opened yet): the log file, or for
        ``transaction=`` the connection's database when it can hold them, else the log file
        written after each commit (``announce``: say so)."""
        header = self._header()
        if self._transaction is not None:
            from .database import DatabaseStore, _database

            db, why_not = _database(self._transaction, self.path.name[: -len(".ckpt")])
            if db is not None:
                return DatabaseStore(
                    db, self.path, self.loop_id, header, self._settings.fault, default_dir=self._default_dir
                )
            if announce:
                self._say(
                    "%s: transaction=%s: %s; progress is kept in %s, written after each commit (at-least-once: "
                    "a unit committed just before a crash runs again)"
                    % (self.loop_id, _describe_connection(self._transaction), why_not, _shown(self.path))
                )
        import weakref

        from .stores import log_store

        store = log_store(
            self.url,  # object storage (objectstore.py) when a URL, else the log file
            self.path,
            self.loop_id,
            self._settings,
            header,
            weakref.ref(self),
            self._default_dir,
            commit_first=self._transaction,
            upload_interval=self._upload_interval,
        )
        if self._settings.batch:  # at most one upload per interval (CHECKPOINTIFY_BATCH=off: every unit)
            self._window = max(self._window, getattr(store, "min_window", 0.0))
        return store

    def _release(self) -> None:
        """restore() failed: let go of the store (nothing was written). Its own failure to
        close is not the news: the error that made restore() fail is."""
        if self._store is not None and not self._store.closed:
            try:
                self._store.close()
            except CheckpointError:
                pass

    def _ready(self, values: List[Any]) -> List[Any]:
        self._trackers = [_Tracker(v) for v in values]
        keep = getattr(self._store, "keep_trackers", None)
        if keep is not None:
            keep(self._trackers)
        self._restored = True
        return values

    def _header(self) -> Dict[str, Any]:
        return {
            "format": FORMAT,
            "loop_id": self._log_id,
            "key": self._key_fp,
            "source": self.source,
            "resume": self.resume,
            "loop": "while" if self._shape == "while" else "for",
            "state": self._accumulators,
            "python": sys.version.split()[0],
            "runtime": RUNTIME_VERSION,
            **({"constants": self._constants} if self._constants else {}),
            **({"shard": self._shard} if self._shard else {}),
        }

    def _already_applied(self, values: List[Any]) -> bool:
        """Whether ``values`` already hold every recorded unit: this process ran the loop
        before and stopped (a notebook cell interrupted, then run again in the same kernel
        without re-running the cell that creates the accumulators).

        Mutable containers tell by identity: the very objects the earlier run filled. Then
        every value must be as it was at the last record (else a unit that stopped half-way,
        or a batch not written yet, is in them: refused with a message). When every value is
        immutable (a counter, a string), one equal to the recorded state is taken as live:
        if it was re-created instead, it equals the initial value and the recorded units
        added nothing, so both readings give the same result."""
        trackers = getattr(self._store, "previous_trackers", None)
        if not trackers or len(trackers) != len(values):
            return False
        mutable = [isinstance(v, _MUTABLE) for v in values]
        if any(m and t.obj is not v for m, t, v in zip(mutable, trackers, values)):
            return False  # created again: the recorded units are applied to them
        changed = any(t.delta(v) is not None for t, v in zip(trackers, values))
        if not any(mutable) and changed:
            return False  # taken as created again (see above)
        if changed or self.resume == "identity":
            raise CheckpointError(
                "loop %r was interrupted in this process and its accumulators still hold what it did, "
                "with changes that are not in its log (a unit that stopped half-way, or cheap units not "
                "written yet): run the cell or code that creates them again, then this loop; it resumes "
                "from %s" % (self.loop_id, self._where())
            )
        return True

    def _restore_by_identity(self, values: List[Any], recorded: _Recorded) -> List[Any]:
        units = recorded.units
        items = list(self._iterator)
        self._consumed = items
        counts = {len(unit.deltas) for unit in units}
        if counts and counts != {len(values)}:
            self._on_stale("it records %d accumulators but the loop has %d" % (max(counts), len(values)))
            units, recorded = [], _Recorded(_scan(b""), [])
        keyed = any(isinstance(v, (dict, set)) for v in values)
        from .identity import _Plan

        self._open_existing(recorded.scan)
        self._plan = _Plan(items, [fingerprint(x) for x in items], units, keyed)
        self._consumed = []
        self._seq = max((u.seq for u in units), default=-1) + 1
        if units:
            self._say(
                "resuming %s by item identity: %d completed units recorded in %s"
                % (self.loop_id, self._plan.recorded, self._where())
            )
        return values

    def _restore_by_position(
        self,
        values: List[Any],
        recorded: _Recorded,
        live: List[_Unit],
        mismatch: Optional[str],
        applied: bool = False,
    ) -> List[Any]:
        if live:
            if mismatch is None:
                counts = {len(unit.deltas) for unit in live}
                if counts != {len(values)}:
                    mismatch = "it records %d accumulators but the loop has %d" % (max(counts), len(values))
            if mismatch is not None:
                self._on_stale(mismatch)  # raises, or archives the log and starts from zero
                return values
        self._seq = max((u.seq for u in recorded.units), default=-1) + 1
        self._open_existing(recorded.scan)  # the last step that can fail: nothing applied yet
        if live:
            for unit in live if not applied else ():  # a live re-run: already in the values
                values = [_apply(v, d) for v, d in zip(values, unit.deltas)]
            self._consumed = []
            self.restored_units = len(live)
            self._say(
                "resuming %s: %d completed units restored from %s" % (self.loop_id, len(live), self._where())
            )
        if self._ended_early:
            self._say(
                "%s: the last run left this loop at unit #%d without completing it (a `break`, or an "
                "exception) and its writes were committed after the loop; the loop ends there again instead "
                "of writing them twice" % (self.loop_id, self._seq)
            )
        return values

    def _open_existing(self, scan: _Scan) -> None:
        assert self._store is not None
        self._store.resume(scan)

    def _where(self) -> str:
        assert self._store is not None
        return self._store.where

    def _read_records(self) -> _Recorded:
        """The store's records; a corrupt log was moved aside (by default the loop starts
        from zero then), a log of another loop or shape is stale (see :meth:`_on_stale`)."""
        assert self._store is not None
        try:
            data, scan, self._ended_early = self._store.read()
        except CorruptCheckpointError as exc:
            if self.strict or exc.moved_to is None:
                raise
            self._warn("%s; this run starts the loop from zero" % exc)
            return _Recorded(_scan(b""), [])
        try:
            return _Recorded(scan, self._decode(data, scan))
        except StaleCheckpointError as exc:
            self._on_stale(exc.reason)  # raises, or archives the log
            return _Recorded(_scan(b""), [])

    def _decode(self, data: bytes, scan: _Scan) -> List[_Unit]:
        if not scan.frames:
            return []
        header = _header(data, scan)
        if header.get("format") not in (FORMAT, _FORMAT_V1) or header.get("loop_id") != self._log_id:
            raise StaleCheckpointError.because("it is not a checkpoint of this loop (header %r)" % (header,))
        shape = "while" if self._shape == "while" else "for"
        if header.get("loop", "for") != shape:
            raise StaleCheckpointError.because(
                "it was written by a %s loop, but this loop is now a %s loop" % (header.get("loop"), shape)
            )
        try:
            return _decode_units(data, scan, v1=header.get("format") == _FORMAT_V1)
        except Exception as exc:
            raise StaleCheckpointError.because(
                "a unit recorded in it cannot be loaded (%s: %s); was it written by other code?"
                % (type(exc).__name__, exc)
            ) from exc

    def _match_items(self, units: List[_Unit]) -> Optional[str]:
        """Pull one input item per unit (into ``_consumed``) and compare fingerprints: a
        description of the first mismatch or ``None``. A while loop has nothing to match."""
        if self._shape == "while":
            return None
        consumed = self._consumed
        iterator = self._iterator
        for index, unit in enumerate(units):
            try:
                item = next(iterator)
            except StopIteration:
                return _input_ended(index, units)
            consumed.append(item)
            mismatch = _item_mismatch(index, item, unit)
            if mismatch is not None:
                return mismatch
        return None

    async def _amatch_items(self, units: List[_Unit]) -> Optional[str]:
        """:meth:`_match_items` over the async iterator."""
        consumed = self._consumed
        aiterator = self._aiterator
        assert aiterator is not None
        for index, unit in enumerate(units):
            try:
                item = await aiterator.__anext__()
            except StopAsyncIteration:
                return _input_ended(index, units)
            consumed.append(item)
            mismatch = _item_mismatch(index, item, unit)
            if mismatch is not None:
                return mismatch
        return None

    def _how_to_start_over(self) -> str:
        assert self._store is not None
        return self._store.how_to_start_over()

    def _on_stale(self, reason: str) -> None:
        """The log was written by a run over other input (or by another loop): archive it
        and start from zero (the default: what the original program would do), or raise
        :class:`StaleCheckpointError` (strict mode, or ``CHECKPOINTIFY_ON_STALE=error``)."""
        on_stale = self._settings.on_stale or ("error" if self.strict else "restart")
        if on_stale == "restart":
            assert self._store is not None
            self._store.discard(reason)  # archive the log, or delete the rows (it warns)
            self._ended_early = False
            self._replay.extend(self._consumed)
            self._consumed = []
            return
        raise StaleCheckpointError(
            "checkpoint %s does not match the input: %s. It was written by a run over other "
            "input; %s, or set CHECKPOINTIFY_ON_STALE=restart to archive it and start from zero"
            % (self._where(), reason, self._how_to_start_over()),
            reason,
        )

    def _say(self, message: str) -> None:
        if not self._settings.quiet:
            print("checkpointify: " + message, file=sys.stderr)

    def _warn(self, message: str) -> None:
        """A warning: printed even with ``CHECKPOINTIFY_QUIET`` (it says that the run is
        not protected as the user expects)."""
        print("checkpointify: warning: " + message, file=sys.stderr)

    # -- stepping aside ----------------------------------------------------------------

    def _step_aside(self, exc: BaseException) -> None:
        """Checkpointing this loop stops for the rest of the run (the default reaction to
        every failure of the checkpoint itself): one warning naming the loop and the cause,
        the store is released as it is (its records stay valid for inspection), and the loop
        runs on over the rest of the input exactly as the original program would. Units
        already restored stay restored; items pulled from the input but not applied are
        handed out again."""
        if self.off is not None:
            return
        self.off = str(exc)
        # the log is another instance's (a lock held, or taken over by a newer call): hands off
        self._off_by_lock = isinstance(exc, CheckpointLockedError) or str(exc).endswith(_TAKEN_OVER)
        self._pending = []
        self._inflight = None
        plan, self._plan = self._plan, None
        if plan is not None:  # identity mode: the items it has not handed out yet
            self._replay.extend(plan.items[plan.pos :])
        self._replay.extend(self._consumed)
        self._consumed = []
        self._ended_early = False
        self._warn(
            "loop %s: %s. Checkpointing of this loop is off for the rest of this run: it runs on as it "
            "would without checkpointify, and a crash from here on loses its progress (set "
            "CHECKPOINTIFY_STRICT=1 to stop instead)" % (self.loop_id, self.off)
        )
        store = self._store
        if store is not None and not store.closed:
            try:
                store.close()
            except Exception:  # the store failed already; its lock is released regardless
                pass

    def _failed(self, exc: Exception) -> None:
        """Something in the checkpoint failed between units: raise it in strict mode, else
        step aside."""
        if self.strict:
            raise exc
        self._step_aside(exc)

    def _next_unchecked(self) -> T:
        """The next item when checkpointing is off: straight from the input."""
        if self._replay:
            return self._replay.popleft()
        try:
            return next(self._iterator)
        except StopIteration:
            self._finished = True
            self._on_finished()
            raise

    # -- iteration --------------------------------------------------------------------

    def __iter__(self) -> "Checkpoint[T]":
        if self._shape != "for":
            raise CheckpointError(self._wrong_loop("for"))
        return self

    def __next__(self) -> T:
        if self._step():
            raise StopIteration
        if self.off is not None:
            return self._next_unchecked()
        if self._ended_early:
            self._end()
            raise StopIteration
        if self._plan is not None:
            item, fp, replaces = self._next_by_identity()
        else:
            if self._replay:
                item = self._replay.popleft()
            else:
                try:
                    item = next(self._iterator)
                except StopIteration:
                    self._end()
                    raise
            fp, replaces = fingerprint(item), -1
        self._start_unit(fp, replaces)
        return item

    def __aiter__(self) -> "Checkpoint[T]":
        if self._shape != "async for":
            raise CheckpointError(self._wrong_loop("async for"))
        return self

    async def __anext__(self) -> T:
        if self._step():
            raise StopAsyncIteration
        if self.off is not None:
            if self._replay:
                return self._replay.popleft()
            assert self._aiterator is not None
            try:
                return await self._aiterator.__anext__()
            except StopAsyncIteration:
                self._finished = True
                self._on_finished()
                raise
        if self._replay:
            item = self._replay.popleft()
        elif self._ended_early:
            self._end()
            raise StopAsyncIteration
        else:
            assert self._aiterator is not None
            try:
                item = await self._aiterator.__anext__()
            except StopAsyncIteration:
                self._end()
                raise
        self._start_unit(fingerprint(item), -1)
        return item

    def advance(self) -> bool:
        """For a ``while`` loop (a checkpoint without an iterable): call it at every
        evaluation of the loop's test (``while ckpt.advance() and <test>:``). It records the
        previous unit, if one was handed out (a unit that ended by ``break`` or an exception
        never gets here, so it is not recorded; ``continue`` comes here, so it counts as
        done), then marks that a unit starts and returns True. It returns False only when
        the database shows that the last run's loop ended at this point (``transaction=``;
        see :class:`_Database`)."""
        if self._shape != "while":
            raise CheckpointError(
                "advance() is for while loops; checkpoint %r is over an iterable: iterate over it instead"
                % self.loop_id
            )
        if self._step():
            return False
        if self.off is not None:
            return True
        if self._ended_early:
            self._end()
            return False
        self._start_unit(_NO_ITEM, -1)
        return True

    def _wrong_loop(self, used: str) -> str:
        if not self._restored:
            how = "`await ckpt.arestore()`" if used == "async for" else "restore()"
            return "call %s before iterating over checkpoint %r" % (how, self.loop_id)
        if self._shape == "while":
            return (
                "checkpoint %r has no iterable: it is for a while loop (`while ckpt.advance():`)"
                % self.loop_id
            )
        return "checkpoint %r is over %s iterable: iterate it with `%s`, not `%s`" % (
            self.loop_id,
            "an async" if self._shape == "async for" else "a synchronous",
            self._shape,
            used,
        )

    def _step(self) -> bool:
        """The loop asks for its next unit: record the one in flight. True when the input
        was exhausted before (hand out nothing)."""
        if not self._restored:
            raise CheckpointError(
                "call %s before iterating over checkpoint %r"
                % ("`await ckpt.arestore()`" if self._shape == "async for" else "restore()", self.loop_id)
            )
        if self.off is None:
            try:
                if self._inflight is not None:
                    self._finish_unit(time.perf_counter())
                if not self._finished and not self._completed:
                    self._check_store()  # closed, taken over or failed: hand out nothing more
            except CheckpointError as exc:
                self._failed(exc)
        if self._finished:
            return True
        if self._completed:
            raise CheckpointError("checkpoint %r was completed; it cannot hand out items" % self.loop_id)
        return False

    def _check_store(self) -> None:
        assert self._store is not None
        self._store.check()

    def _start_unit(self, fp: bytes, replaces: int) -> None:
        """A unit starts (with a database, the first unit of a transaction opens it)."""
        assert self._store is not None
        self._store.start_unit()
        self._inflight = (fp, replaces)

    def _finish_unit(self, now: float) -> None:
        """The unit handed out last has finished: record it, now or with the next batch."""
        assert self._inflight is not None
        fp, replaces = self._inflight
        self._inflight = None
        self._pending.append((self._seq, fp, replaces))
        self._seq += 1
        if now - self._last_write >= self._window or len(self._pending) >= _BATCH_MAX_UNITS:
            self._flush()

    def _flush(self) -> None:
        """Write the completed units that wait as one record with their joint effect (with a
        database: insert it and commit, which makes the units' own writes durable with it).
        Only call it between units: it reads the accumulators, which must then hold
        completed units only."""
        units = self._pending
        store = self._store
        if not units or store is None:
            return
        store.check()
        started = time.perf_counter()
        self._pending = []
        trackers = self._trackers
        deltas = tuple([t.delta(v) for t, v in zip(trackers, self._state())])
        flags = _REORDERABLE if all(t.reorderable for t in trackers) else 0
        if len(units) > 1:
            flags |= _COMBINED
        try:
            frame = _encode_record(units, flags, deltas)
        except CheckpointError as exc:
            store.poison(str(exc))
            raise
        except Exception as exc:  # a value that cannot be pickled (a Future, a lock, a file...)
            message = _unpicklable(self.loop_id, units, deltas, exc)
            store.poison(message)
            raise CheckpointError(message) from exc
        extra = store.write(frame, units[0][0], units[-1][0])
        now = time.perf_counter()
        self._write_costs.append(now - started - extra)  # fsync: bounded by its own clock (1 s)
        if self._settings.batch:
            self._window = min(min(self._write_costs) / _WRITE_SHARE, _MAX_BATCH_WINDOW)
            self._window = max(self._window, getattr(store, "min_window", 0.0))
        self._last_write = now

    def _flush_if_safe(self) -> None:
        """Write the waiting units, unless a unit is in flight: its partial effect is in the
        accumulators and cannot be told apart (the batch is then lost and runs again)."""
        if self._pending and self._inflight is None:
            self._flush()

    def _end(self) -> None:
        """The input is exhausted: write what is queued and fsync (with a database: commit)."""
        self._finished = True
        if self._store is not None and self.off is None:
            try:
                self._flush()
                self._store.end()
            except CheckpointError as exc:
                self._failed(exc)
        self._on_finished()
        plan = self._plan
        if plan is not None and (self._rerun or plan.recorded > self._reused + self._rerun):
            self._say(
                "%s: reused %d of %d recorded units; %d ran again (their effect depends on the "
                "order, which changed); %d no longer match an input item"
                % (
                    self.loop_id,
                    self._reused,
                    plan.recorded,
                    self._rerun,
                    plan.recorded - self._reused - self._rerun,
                )
            )

    def _next_by_identity(self) -> Tuple[T, bytes, int]:
        plan = self._plan
        assert plan is not None
        while plan.pos < len(plan.items):
            index = plan.pos
            plan.pos += 1
            fp = plan.fps[index]
            queue = plan.by_fp.get(fp)
            replaces = -1
            if queue:
                unit = queue.popleft()
                if self._reuse(plan, unit):
                    continue
                self._rerun += 1
                replaces = unit.seq
            plan.exact = False
            if self._trackers_stale:  # forget the reused effects: they are not this unit's
                for tracker, value in zip(self._trackers, self._state()):
                    tracker.delta(value)
                self._trackers_stale = False
            return plan.items[index], fp, replaces
        self._end()
        raise StopIteration

    def _reuse(self, plan: _Plan, unit: _Unit) -> bool:
        """Apply ``unit``'s recorded effect in place if that is exact here (see :class:`_Plan`);
        for a batch, the whole batch's, skipping its other items."""
        values = self._state()
        if len(unit.deltas) != len(values):
            raise StaleCheckpointError(
                "checkpoint %s records %d accumulators but the loop has %d; %s"
                % (_shown(self.path), len(unit.deltas), len(values), self._how_to_start_over())
            )
        found = plan.reusable(unit, values)
        if found is None:
            return False
        members, exact = found
        self._flush_if_safe()  # fresh units first: their joint effect must not include this one
        plan.take(members, exact)
        for value, delta in zip(values, members[-1].deltas):
            if delta is not None:
                _apply_in_place(value, delta)
        self._trackers_stale = True
        self._reused += len(members)
        self.restored_units += len(members)
        return True

    def _on_finished(self) -> None:
        """A deferred checkpoint (see :mod:`.deferred`) whose input is exhausted: keep the
        log (and its lock) until the caller completes it, let go of what the accumulators
        hold, and hand the checkpoint to the caller's :func:`~.deferred.complete_deferred`."""
        if self._deferred is None:
            return
        from .deferred import finished

        # the log stays locked (another process's complete_deferred never removes it) and
        # synced (by _end); what the accumulators held is let go
        self._state = _no_state
        self._trackers = []
        keep = getattr(self._store, "keep_trackers", None)
        if keep is not None:
            keep([])
        finished(self, self.loop_id, self._deferred)

    # -- completion -------------------------------------------------------------------

    def complete(self) -> None:
        """The final save (or commit) succeeded: remove the log (durably) and release the
        lock, so that the next run starts from zero. With a database: delete the loop's
        rows, drop the table if no other loop has rows in it, and commit."""
        if self._completed:
            return
        if self._off_by_lock or (self.off is not None and self.url is None and not self.path.exists()):
            self._completed = True  # another instance's log, or none at all: nothing to remove
            return
        try:
            from .stores import for_removal

            # complete() without restore(), after close() or a failure: the log's lock first
            store = self._store = for_removal(self._store, lambda: self._new_store(announce=False))
            if self._settings.fault is not None and self._settings.fault[0] == "during-complete":
                _crash()
            self._completed = True
            self._inflight = None
            store.remove()
        except CheckpointError as exc:
            if self.strict:
                raise
            self._completed = True
            message = (
                "loop %s finished, but its checkpoint could not be removed: %s. The next run may resume from it (its items are checked) or start over"
                % (self.loop_id, exc)
            )
            if self.off is None:
                self._warn(message)
            else:  # the warning that checkpointing is off was this loop's one warning
                self._say(message)

    def close(self) -> None:
        """Stop without completing: write the completed units that are still queued, fsync
        and release the lock (with a database: commit them). The log stays, so the next run
        resumes. (The unit in flight, if any, is not recorded.)"""
        if self._store is not None and self.off is None:
            try:
                self._flush_if_safe()
            except CheckpointError as exc:
                self._failed(exc)
            self._inflight = None
            if self._store is not None and not self._store.closed:
                self._store.close()


def _check_mutable(loop_id: str, values: List[Any]) -> None:
    for index, value in enumerate(values):
        if not isinstance(value, _MUTABLE):
            raise CheckpointError(
                "resume='identity' applies each reused unit's effect in place, so it needs mutable "
                "accumulators (list, dict, set, deque, bytearray); accumulator %d of %d of loop %r "
                "is %s. Use resume='position' for this loop"
                % (index + 1, len(values), loop_id, _type_name(value))
            )


def _input_ended(index: int, units: Sequence["_Unit"]) -> str:
    """Why resume stops when the input runs out after ``index`` of the completed ``units``."""
    return "the input now has %d items but %d were completed" % (index, len(units))


def _item_mismatch(index: int, item: object, unit: "_Unit") -> Optional[str]:
    """Why resume stops at ``item``, the ``index``-th of the input, or None when it is the
    item ``unit`` recorded (the sync and async resumes share this check)."""
    if fingerprint(item) == unit.fp:
        return None
    return "item #%d (%s) is not the item recorded at that position" % (index, _short(item))


def _location(directory: Optional[Union[str, "os.PathLike[str]"]]) -> Optional[Union[Path, str]]:
    """``directory=``: an object-store URL stays text, a folder becomes a Path."""
    if directory is None:
        return None
    if isinstance(directory, str) and remote_url(directory):
        return directory
    from pathlib import Path

    return Path(directory)


def checkpoint(
    loop_id: str,
    iterable: Optional[Union[Iterable[T], AsyncIterable[T]]] = None,
    state: Optional[Callable[[], Tuple[Any, ...]]] = None,
    *,
    key: object = None,
    resume: str = "position",
    transaction: object = None,
    directory: Optional[Union[str, "os.PathLike[str]"]] = None,
    strict: Optional[bool] = None,
    deferred: bool = False,
    constants: Optional[Mapping[str, object]] = None,
    upload_interval: Optional[float] = None,
) -> Checkpoint[T]:
    """Open the checkpoint of loop ``loop_id``.

    ``iterable`` is what the loop iterates: a ``for`` loop iterates the checkpoint
    instead (after :meth:`Checkpoint.restore`), an ``async for`` loop over an async
    iterable too (after ``await`` :meth:`Checkpoint.arestore`). Without it the checkpoint
    is for a ``while`` loop, whose test calls :meth:`Checkpoint.advance`. ``state`` returns
    the loop's accumulators (a tuple, in a fixed order; ``None``: none, and ``restore()``
    returns ``[]``); ``key`` separates calls of the same loop over different inputs (the
    function parameters the iterable depends on; see :func:`key_fingerprint`); ``resume``
    is ``"position"`` (the input is the same sequence on every run) or ``"identity"`` (its
    order may change: see :class:`Checkpoint`). ``constants`` maps the names of the module
    constants the loop reads (``{"MODEL": MODEL}``) to their values: they count in the
    loop's identity like ``key``, and a log of this loop written under other constants (an
    interrupted run of the program before ``MODEL`` was edited) is archived as ``.stale``
    with a warning, and the loop starts from zero (see :mod:`.constants`).

    ``transaction`` is the database connection the loop writes through (CKP002): a DB-API 2
    connection or a SQLAlchemy ``Session``/``Connection`` keeps the records in its own
    database, in table ``checkpointify_log``, and each unit (or batch of cheap units) is
    committed with its record: exactly once. Any other object with ``commit()`` (or a
    connection that autocommits) is committed per unit and the record then written to the
    log file: at-least-once.

    The log lives in ``directory``, else ``$CHECKPOINTIFY_DIR``, else ``./.checkpointify``
    (only that default folder is removed when it is left empty). Nothing is read, locked
    or written until :meth:`Checkpoint.restore`. A URL there (``s3://bucket/prefix``,
    ``gs://``, ``az://``, any fsspec protocol) keeps the log on object storage (see
    :mod:`.objectstore`; needs ``pip install 'checkpointify[s3]'``), uploaded at most once
    per ``upload_interval`` seconds (default ``$CHECKPOINTIFY_UPLOAD_INTERVAL``, else 1).
    ``$CHECKPOINTIFY_SHARD=K/N`` gives shard K of N of a job its own log.

    **The loop's identity.** A rewritten program passes ``"<file>::<function>::<names>"``.
    The file part is replaced at run time by the calling file's path relative to its
    project root (the nearest folder up with ``.git``, ``pyproject.toml``, ``setup.py`` or
    ``setup.cfg``), else its absolute path: so a script copied to ``job_v2.py``, or
    ``a/run.py`` and ``b/run.py``, never share a log (see :mod:`.naming`). A log written
    under the literal id by an earlier version of the runtime is still resumed by the file
    that wrote it.

    **Never worse than the original.** By default a checkpoint never makes the loop fail
    where the original program would have succeeded. What it cannot do, it stops doing,
    says so once on stderr (naming the loop and the cause) and lets the loop run on:

    * a value that cannot be pickled, a record that cannot be written or synced (disk
      full, read-only folder, I/O error): checkpointing of the loop stops for the rest of
      the run; the records written so far stay valid;
    * the log records other input (the input changed, the loop is re-entered with other
      input, the input is sampled afresh each run), or another loop or shape: the log is
      archived as ``<name>.stale`` and the loop starts from zero;
    * a log damaged in the middle: moved aside as ``<name>.corrupt-<time>``; the loop
      starts from zero in the same run;
    * another process (or another thread of this process) runs the same loop with the
      same key: this one runs unchecked and leaves that one's log alone.

    ``strict=True`` (or ``CHECKPOINTIFY_STRICT=1``; the argument wins) raises instead:
    :class:`StaleCheckpointError`, :class:`CorruptCheckpointError`,
    :class:`CheckpointWriteError`, :class:`CheckpointLockedError` or
    :class:`CheckpointError` (unpicklable values). Errors in how the checkpoint is used
    (iterating before ``restore()``, a ``for`` loop over an async iterable, an invalid
    argument or environment variable) raise in both modes.

    ``deferred=True`` is for a loop in a helper that returns its results to a caller that
    saves them: the log is kept when the loop ends, and the caller's
    :func:`complete_deferred` (or, failing that, a normal interpreter exit) removes it
    (see :mod:`.deferred`).
    """
    from pathlib import Path  # here, not with the module: see lite.py

    from .naming import run_time_id

    caller = sys._getframe(1)
    filename = caller.f_code.co_filename
    source = "%s:%d" % (_shown(Path(filename)), caller.f_lineno)
    return Checkpoint(
        run_time_id(loop_id, filename),
        iterable,
        state,
        key=key,
        directory=_location(directory),
        resume=resume,
        source=source,
        transaction=transaction,
        strict=strict,
        legacy_id=loop_id,
        deferred=deferred,
        constants=constants,
        upload_interval=upload_interval,
    )
