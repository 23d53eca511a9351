"""Results of work run in parallel, recorded one input at a time from any thread.

A loop checkpoint (:class:`~.checkpoint.Checkpoint`) follows one thread through one loop.
Work handed to a pool or an event loop is different: the inputs are submitted up front,
their results arrive in any order, on any thread (a pool's worker or result-handler
thread, a future's done callback, the event loop). :class:`Parallel` records each result
when it arrives, **keyed by its input**, so completion order does not matter, and on a
re-run hands back the recorded results without submitting those inputs again. It never
records a future, a task or a pool: only the values they delivered.

A rewritten program wraps the per-input call and nothing else::

    par = parallel("job.py::<module>::answers")
    futures = [par.submit(executor, fetch, n) for n in items]      # executor.submit(fetch, n)
    rows = list(par.map(pool, "imap", score, items))                # pool.imap(score, items)
    out = await asyncio.gather(*(par.acall(fetch, x) for x in xs))  # gather(*(fetch(x) ...))
    ...save...
    par.complete()

The key of an input is the fingerprint (:func:`~.fingerprint.fingerprint`) of the call's
function name and arguments, plus its occurrence number among equal calls in the order
the program made them (so ``[f(1), f(1)]`` are two units). The log has the format of
every checkpoint (:mod:`.frames`; one unit a record) in the same store (:mod:`.stores`): a
local file with the same lock, trust checks and fsync policy (:mod:`.filelog`), or, when
``CHECKPOINTIFY_DIR`` / ``directory=`` is a URL such as ``s3://bucket/prefix``, objects
under it with a lease (:mod:`.objectstore`): there the results that arrive within one
upload interval (``CHECKPOINTIFY_UPLOAD_INTERVAL``, default 1 s) go up together, from a
background thread, so a machine that dies loses at most the last interval's results.
``complete()`` removes the log. Inputs recorded by an earlier run that the current run does
not make are ignored.

**Never worse than the original.** A result that cannot be pickled, a write that fails,
a log held by another process: by default one warning, then the work runs on unchecked
(results recorded so far stay valid); in strict mode (``strict=True`` or
``CHECKPOINTIFY_STRICT=1``) :class:`~.errors.CheckpointError` or its subclass is raised
where the program reads that result (``future.result()``, the map's iterator, the
awaited call).
"""

from __future__ import annotations

import os
import sys

from .errors import _TAKEN_OVER, CheckpointError, CheckpointLockedError, _shown
from .fingerprint import fingerprint
from .frames import _REORDERABLE, _decode_units, _encode_record, _header, _live
from .lite import TYPE_CHECKING
from .settings import _Settings, checkpoint_dir, log_name, remote_url, shard

if TYPE_CHECKING:
    from typing import (
        Any,
        Awaitable,
        Callable,
        Dict,
        Iterable,
        Iterator,
        List,
        Optional,
        Tuple,
        TypeVar,
        Union,
    )

    _Site = TypeVar("_Site", bound="Parallel")

    from .store import Store

    _Key = Tuple[bytes, int]

__all__ = ["Parallel", "parallel"]

_SHAPE = "parallel"
_ORDERED_LIST = ("map", "starmap")  # multiprocessing pool methods that return a list
_STARRED = ("starmap", "starmap_async")


class Parallel:
    """The recorded results of one parallel site (see the module docstring). Thread-safe.

    The log is opened (locked, read) on first use, in the thread that makes the first
    call; records are written under one lock from whichever thread delivers a result.
    """

    #: the ``loop`` field of the log's header: a log of another shape is never resumed
    _shape = _SHAPE

    def __init__(
        self,
        loop_id: str,
        key: object = None,
        directory: Optional[Union[str, "os.PathLike[str]"]] = None,
        *,
        source: str = "",
        strict: Optional[bool] = None,
    ) -> None:
        import threading  # here, not with the module: importing the runtime stays cheap (see lite.py)

        from .fingerprint import key_fingerprint

        self.loop_id = loop_id
        self.source = source
        self._key_fp = key_fingerprint(key) if key is not None else ""
        self._default_dir = directory is None and not os.environ.get("CHECKPOINTIFY_DIR")
        #: an object-store URL (``directory=`` or ``CHECKPOINTIFY_DIR``): the log is objects there
        self._remote = remote_url(str(directory) if directory is not None else None)
        from pathlib import Path

        self._shard = shard()  # CHECKPOINTIFY_SHARD=K/N: each shard of a job array has its own log
        self.directory = Path(directory) if directory is not None else checkpoint_dir()
        self.path = self.directory / log_name(loop_id, self._key_fp, self._shard)
        self._settings = _Settings.from_env()
        self.strict = self._settings.strict if strict is None else bool(strict)
        #: why recording stopped in this run (None: it records)
        self.off: Optional[str] = None
        self._off_by_lock = False
        self._lock = threading.RLock()
        self._store: Optional[Store] = None
        # object storage: records that wait for the next upload (at most one per interval)
        self._interval = 0.0
        self._batch: List[bytes] = []
        self._batch_first = 0
        self._last_upload = 0.0
        self._timer: Optional[threading.Timer] = None
        self._opened = False
        self._completed = False
        self._recorded: Dict[_Key, Any] = {}
        self._seen: Dict[bytes, int] = {}  # fingerprint -> calls made so far (the occurrence counter)
        self._seq = 0
        self._deferred: Optional[CheckpointError] = (
            None  # strict: an error met in a callback, raised by complete()
        )
        #: how many results came from the log rather than from running the work
        self.restored_units = 0

    # -- the general API -----------------------------------------------------------------

    def key(self, fn: object, args: Tuple[Any, ...] = (), kwargs: Optional[Dict[str, Any]] = None) -> _Key:
        """The key of the next call of ``fn(*args, **kwargs)``: its fingerprint and how many
        equal calls came before it in this run. Call it in the program's own order."""
        fp = _fingerprint(fn, args, kwargs)
        with self._lock:
            occurrence = self._seen.get(fp, 0)
            self._seen[fp] = occurrence + 1
        return fp, occurrence

    def done(self, key: _Key) -> bool:
        """Whether a result is recorded for ``key`` (from this run or an earlier one)."""
        self._open()
        with self._lock:
            return key in self._recorded

    def result(self, key: _Key) -> Any:
        """The recorded result of ``key`` (``KeyError`` when there is none)."""
        with self._lock:
            return self._recorded[key]

    def record(self, key: _Key, value: Any) -> None:
        """Record ``value`` as the result of ``key``, durably by the fsync policy. Callable
        from any thread. Default mode: a value that cannot be pickled or a failed write
        stops recording with one warning; strict mode raises :class:`CheckpointError`."""
        self._open()
        with self._lock:
            if key in self._recorded and self.off is None:
                return
            self._recorded[key] = value
            if self.off is not None or self._store is None:
                return
            self._seq += 1
            try:
                frame = _encode_record([(self._seq, key[0], -1)], _REORDERABLE, (key[1], value))
            except CheckpointError as exc:
                self._failed(exc)
                return
            except Exception as exc:
                self._failed(
                    CheckpointError(
                        "the result of unit #%d of %s cannot be pickled (%s: %s)"
                        % (self._seq, self.loop_id, type(exc).__name__, exc)
                    )
                )
                return
            if self._interval > 0:
                self._queue(frame)
                return
            try:
                self._store.write(frame, self._seq, self._seq)
            except CheckpointError as exc:
                self._failed(exc)

    def _queue(self, frame: bytes) -> None:
        """Object storage: keep the record for the next upload, which goes now if the last
        one is an interval old, else when it is (a timer), or at exit, whichever is first.
        Called under the lock."""
        import time

        if not self._batch:
            self._batch_first = self._seq
        self._batch.append(frame)
        wait = self._last_upload + self._interval - time.monotonic()
        if wait <= 0:
            self._upload()
        elif self._timer is None:
            import threading

            self._timer = threading.Timer(wait, self._upload_when_due)
            self._timer.daemon = True
            self._timer.start()

    def _upload_when_due(self) -> None:
        """The timer: upload what waits (a failure steps aside; strict: raised by complete())."""
        with self._lock:
            self._timer = None
            try:
                self._upload()
            except CheckpointError as exc:  # strict mode: no caller to raise to in this thread
                self._deferred = self._deferred or exc

    def _upload(self) -> None:
        """Hand the waiting records to the store as one segment (uploaded in the background)."""
        import time

        frames, self._batch = self._batch, []
        store = self._store
        if not frames or store is None or self.off is not None:
            return
        self._last_upload = time.monotonic()
        try:
            store.write(b"".join(frames), self._batch_first, self._seq)
        except CheckpointError as exc:
            self._failed(exc)

    def pending(self, inputs: Iterable[Any], fn: object = None) -> List[Any]:
        """The inputs (each the single argument of ``fn``) with no recorded result, in order."""
        items = list(inputs)
        seen: Dict[bytes, int] = {}  # its own occurrence counts: asking is not calling
        keys = []
        for x in items:
            fp = _fingerprint(fn, (x,), None)
            keys.append((fp, seen.get(fp, 0)))
            seen[fp] = keys[-1][1] + 1
        self._open()
        with self._lock:
            return [x for x, k in zip(items, keys) if k not in self._recorded]

    # -- pools and executors --------------------------------------------------------------

    def submit(self, executor: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``executor.submit(fn, *args, **kwargs)`` for a ``concurrent.futures`` executor: a
        recorded input is not submitted (its future is returned done); a new one is, and its
        result is recorded by the future's done callback, before the returned future is
        resolved. Returns a ``concurrent.futures.Future``."""
        from concurrent.futures import Future

        key = self.key(fn, args, kwargs)
        outer: Future[Any] = Future()
        if self.done(key):
            self.restored_units += 1
            outer.set_result(self.result(key))
            return outer
        inner = executor.submit(fn, *args, **kwargs)
        inner.add_done_callback(lambda f: self._deliver(key, f, outer))
        return outer

    def _deliver(self, key: _Key, inner: Any, outer: Any) -> None:
        """A done callback: record the result, then resolve the program's future."""
        if inner.cancelled():
            outer.cancel()
            outer.set_running_or_notify_cancel()
            return
        exc = inner.exception()
        if exc is not None:
            outer.set_exception(exc)  # not recorded: the input runs again on resume
            return
        value = inner.result()
        try:
            self.record(key, value)
        except CheckpointError as error:  # strict mode
            outer.set_exception(error)
            return
        outer.set_result(value)

    def map(self, pool: Any, method: str, fn: Callable[..., Any], *iterables: Any, **kwargs: Any) -> Any:
        """``pool.<method>(fn, *iterables, **kwargs)`` with the pending inputs only.

        ``method`` is ``map``/``imap``/``imap_unordered``/``starmap`` of a
        ``multiprocessing`` pool (each pending input goes out by ``apply_async``, its result
        recorded by the pool's callback), or ``map`` of a ``concurrent.futures`` executor
        (by ``submit``). Every pending input is submitted now, as the originals do; the
        results come back in input order (``imap_unordered``: the recorded ones first, then
        in completion order); ``map``/``starmap`` of a pool return a list. ``chunksize`` only
        tunes how inputs travel and is not passed on; ``timeout`` (an executor's ``map``)
        bounds each wait.
        """
        star = method in _STARRED
        if star:
            calls = [tuple(a) for a in iterables[0]]
        elif len(iterables) == 1:
            calls = [(a,) for a in iterables[0]]
        else:
            calls = list(zip(*iterables))
        if not hasattr(pool, "submit") and not hasattr(pool, "apply_async"):
            # a pool of another library (pathos, ray.util): run the program's own call, unchecked
            self._failed(
                CheckpointError(
                    "%s has neither submit() nor apply_async(), so its results cannot be recorded one by one"
                    % type(pool).__name__
                )
            )
            return getattr(pool, method)(fn, *iterables, **kwargs)
        keys = [self.key(fn, c) for c in calls]
        chunksize = kwargs.pop("chunksize", None)
        timeout = kwargs.pop("timeout", None)
        if kwargs:
            raise TypeError("%s() got unexpected keyword arguments %s" % (method, sorted(kwargs)))
        del chunksize  # it only tunes how inputs travel: each pending input goes on its own
        if hasattr(pool, "submit"):
            futures = [self.submit(pool, fn, *c) for c in calls]
            return (f.result(timeout) for f in futures)
        results = self._apply_each(pool, fn, calls, keys, unordered=method == "imap_unordered")
        return list(results) if method in _ORDERED_LIST else results

    def _apply_each(
        self,
        pool: Any,
        fn: Callable[..., Any],
        calls: List[Tuple[Any, ...]],
        keys: List[_Key],
        unordered: bool,
    ) -> Iterator[Any]:
        import queue

        self._open()
        arrived: queue.Queue[Tuple[bool, Any]] = queue.Queue()
        handles: List[Any] = []
        for c, k in zip(calls, keys):
            if self.done(k):
                self.restored_units += 1
                handles.append(_Ready(self.result(k)))
                continue

            def delivered(value: Any, k: _Key = k) -> None:
                try:
                    self.record(k, value)
                except CheckpointError as error:
                    arrived.put((False, error))
                    return
                arrived.put((True, value))

            handles.append(
                pool.apply_async(fn, c, callback=delivered, error_callback=lambda e: arrived.put((False, e)))
            )
        return self._unordered(handles, arrived) if unordered else self._in_order(handles)

    def _in_order(self, handles: List[Any]) -> Iterator[Any]:
        for handle in handles:
            yield handle.get()

    def _unordered(self, handles: List[Any], arrived: Any) -> Iterator[Any]:
        waiting = 0
        for handle in handles:
            if isinstance(handle, _Ready):
                yield handle.get()
            else:
                waiting += 1
        for _ in range(waiting):
            ok, value = arrived.get()
            if not ok:
                raise value
            yield value

    def apply_async(
        self,
        pool: Any,
        fn: Callable[..., Any],
        args: Tuple[Any, ...] = (),
        kwds: Optional[Dict[str, Any]] = None,
        callback: Optional[Callable[[Any], Any]] = None,
        error_callback: Optional[Callable[[BaseException], Any]] = None,
    ) -> Any:
        """``pool.apply_async(fn, args, kwds, callback, error_callback)``: a recorded input
        returns a ready result (its ``callback`` called at once); a new one is recorded by
        the pool's callback before the program's own ``callback`` runs."""
        key = self.key(fn, tuple(args), kwds)
        if self.done(key):
            self.restored_units += 1
            value = self.result(key)
            if callback is not None:
                callback(value)
            return _Ready(value)

        def delivered(value: Any) -> None:
            try:
                self.record(key, value)
            except (
                CheckpointError
            ) as error:  # strict: a pool's callback must not raise (it would hang the pool)
                self._deferred = self._deferred or error
            if callback is not None:
                callback(value)

        return pool.apply_async(
            fn, tuple(args), kwds or {}, callback=delivered, error_callback=error_callback
        )

    def joblib(self, runner: Any, tasks: Iterable[Tuple[Any, Tuple[Any, ...], Dict[str, Any]]]) -> List[Any]:
        """``runner(tasks)`` for a ``joblib.Parallel`` and its ``delayed(f)(x)`` tasks: the
        recorded inputs are not run; the others run in one call of ``runner``, switched for
        that call to ``return_as="generator_unordered"`` so that each result is recorded as it
        arrives. Returns the list in input order, as ``runner(tasks)`` does."""
        calls = [(fn, tuple(args), dict(kwargs)) for fn, args, kwargs in tasks]
        keys = [self.key(fn, args, kwargs) for fn, args, kwargs in calls]
        self._open()
        out: List[Any] = [None] * len(calls)
        todo: List[int] = []
        for index, key in enumerate(keys):
            if self.done(key):
                self.restored_units += 1
                out[index] = self.result(key)
            else:
                todo.append(index)
        if not todo:
            return out
        switches = ("return_as", "return_generator", "return_ordered")
        saved = {name: getattr(runner, name) for name in switches if hasattr(runner, name)}
        backend = getattr(runner, "_backend", None)
        if len(saved) != len(switches) or (
            type(backend).__name__ != "SequentialBackend"
            and not getattr(backend, "supports_return_generator", True)
        ):
            self._failed(
                CheckpointError("this joblib.Parallel cannot hand results back one by one (return_as)")
            )
            values = runner(calls[i] for i in todo)
            for index, value in zip(todo, values):
                out[index] = value
            return out
        runner.return_as, runner.return_generator, runner.return_ordered = "generator_unordered", True, False
        try:
            for index, value in runner((_Indexed(calls[i][0], i), calls[i][1], calls[i][2]) for i in todo):
                self.record(keys[index], value)
                out[index] = value
        finally:
            for name, value in saved.items():
                setattr(runner, name, value)
        return out

    # -- asyncio ---------------------------------------------------------------------

    def acall(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """``fn(*args, **kwargs)`` for a coroutine function: an awaitable that returns the
        recorded result without calling ``fn``, or awaits ``fn`` and records what it
        returns. The key is taken now, in the order the program makes the calls."""
        key = self.key(fn, args, kwargs)
        self._open()
        return self._acall(key, fn, args, kwargs)

    async def _acall(
        self, key: _Key, fn: Callable[..., Awaitable[Any]], args: Tuple[Any, ...], kwargs: Dict[str, Any]
    ) -> Any:
        with self._lock:
            if key in self._recorded:
                self.restored_units += 1
                return self._recorded[key]
        value = await fn(*args, **kwargs)
        self.record(key, value)
        return value

    # -- opening, failing, completing --------------------------------------------------

    def _open(self) -> None:
        """Take the log's lock and read what earlier runs recorded (once)."""
        if self._opened:
            return
        with self._lock:
            if self._opened:
                return
            self._opened = True
            try:
                self._read()
            except CheckpointError as exc:
                if self._store is not None and not self._store.closed:
                    try:
                        self._store.close()
                    except CheckpointError:
                        pass
                self._store = None
                if self.strict:
                    raise
                self._step_aside(exc)

    def _new_store(self, header: Dict[str, Any]) -> Store:
        import weakref

        from .stores import log_store

        return log_store(
            self._remote,
            self.path,
            self.loop_id,
            self._settings,
            header,
            weakref.ref(self),
            self._default_dir,
        )

    def _read(self) -> None:
        import time

        from .frames import FORMAT

        header = {
            "format": FORMAT,
            "loop_id": self.loop_id,
            "key": self._key_fp,
            "source": self.source,
            "resume": "identity",
            "loop": self._shape,
            "state": 1,
            "python": sys.version.split()[0],
            **({"shard": self._shard} if self._shard else {}),
        }
        store = self._store = self._new_store(header)
        if self._settings.batch:  # object storage: at most one upload per interval
            self._interval = getattr(store, "min_window", 0.0)
        store.open()
        self._last_upload = time.monotonic()
        data, scan, _ended = store.read()
        if scan.frames:
            found = _header(data, scan)
            mismatch = [k for k in ("loop_id", "key", "loop") if found.get(k) != header[k]]
            if mismatch:
                if self._settings.on_stale == "error" or (
                    self.strict and self._settings.on_stale != "restart"
                ):
                    from .errors import StaleCheckpointError

                    raise StaleCheckpointError(
                        "checkpoint %s was written by another loop (%s differ)"
                        % (_shown(self.path), mismatch),
                        "another loop",
                    )
                store.discard("written by another loop or shape")
                return
            try:
                units = _live(_decode_units(data, scan, False))
            except Exception as exc:
                raise CheckpointError("cannot read the results in %s: %s" % (_shown(self.path), exc)) from exc
            for unit in units:
                occurrence, value = unit.deltas
                self._recorded[(unit.fp, occurrence)] = value
                self._seq = max(self._seq, unit.seq)
            if self._recorded:
                self._say(
                    "%s: %d results restored from %s" % (self.loop_id, len(self._recorded), _shown(self.path))
                )
            store.resume(scan)

    def _flush_if_safe(self) -> None:
        """Upload the records waiting for the next interval (at exit, or when a newer
        instance of the site takes the log over): each is a delivered result, never half
        of one (the store's owner protocol). A local log writes each as it arrives."""
        with self._lock:
            self._upload()

    def _say(self, message: str) -> None:
        if not self._settings.quiet:
            print("checkpointify: " + message, file=sys.stderr)

    def _failed(self, exc: CheckpointError) -> None:
        if self.strict:
            raise exc
        self._step_aside(exc)

    def _step_aside(self, exc: BaseException) -> None:
        """Recording stops for the rest of the run, with one warning; the work runs on."""
        if self.off is not None:
            return
        self.off = str(exc)
        # the log is another instance's (a lock or lease held, or taken over by a newer call)
        self._off_by_lock = isinstance(exc, CheckpointLockedError) or self.off.endswith(_TAKEN_OVER)
        print(
            "checkpointify: warning: %s: %s. Its results are no longer recorded in this run: the work runs on as "
            "it would without checkpointify, and a crash from here on loses them (set CHECKPOINTIFY_STRICT=1 to "
            "stop instead)" % (self.loop_id, self.off),
            file=sys.stderr,
        )
        store = self._store
        if store is not None and not store.closed:
            try:
                store.close()
            except Exception:
                pass

    def complete(self) -> None:
        """The results were saved: remove the log (durably) so the next run starts from zero."""
        with self._lock:
            if self._deferred is not None:
                raise self._deferred
            if self._completed:
                return
            self._completed = True
            if self._off_by_lock:
                return
            self._batch = []  # the results were saved: what waits need not go up
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                from .stores import for_removal

                store = self._store = for_removal(self._store, lambda: self._new_store({}))
                store.remove()
            except CheckpointError as exc:
                if self.strict:
                    raise
                message = "%s finished, but its checkpoint could not be removed: %s" % (self.loop_id, exc)
                if self.off is None:
                    print("checkpointify: warning: " + message, file=sys.stderr)
                else:  # as a loop's: the warning that recording stopped was this site's one warning
                    self._say(message)


def _fingerprint(fn: object, args: Tuple[Any, ...], kwargs: Optional[Dict[str, Any]]) -> bytes:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return fingerprint((str(name), tuple(args), sorted((kwargs or {}).items())))


class _Indexed:
    """A task's function that returns ``(index, result)``: results that arrive out of order
    are matched to their input (picklable when the function is)."""

    __slots__ = ("fn", "index")

    def __init__(self, fn: Callable[..., Any], index: int) -> None:
        self.fn = fn
        self.index = index

    def __call__(self, *args: Any, **kwargs: Any) -> Tuple[int, Any]:
        return self.index, self.fn(*args, **kwargs)

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_Indexed, (self.fn, self.index))


class _Ready:
    """The ``multiprocessing`` ``AsyncResult`` of an input whose result was recorded."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def get(self, timeout: Optional[float] = None) -> Any:
        return self._value

    def wait(self, timeout: Optional[float] = None) -> None:
        return None

    def ready(self) -> bool:
        return True

    def successful(self) -> bool:
        return True


def parallel(
    loop_id: str,
    *,
    key: object = None,
    directory: Optional[Union[str, os.PathLike[str]]] = None,
    strict: Optional[bool] = None,
) -> Parallel:
    """Open the recorded results of parallel site ``loop_id`` (nothing is read until first
    use). ``key``, ``directory`` and ``strict`` are those of :func:`~.checkpoint.checkpoint`;
    the loop id's file part is resolved the same way (:mod:`.naming`)."""
    return _open_site(Parallel, loop_id, key, directory, strict)


def _open_site(
    cls: Callable[..., _Site],
    loop_id: str,
    key: object,
    directory: Optional[Union[str, os.PathLike[str]]],
    strict: Optional[bool],
) -> _Site:
    """``cls`` for ``loop_id``, its file part resolved and its source named after the
    program line that called the public factory (:func:`parallel`, ``shared_appends``)."""
    from pathlib import Path

    from .naming import run_time_id

    caller = sys._getframe(2)
    filename = caller.f_code.co_filename
    return cls(
        run_time_id(loop_id, filename),
        key=key,
        directory=directory,
        source="%s:%d" % (_shown(Path(filename)), caller.f_lineno),
        strict=strict,
    )
