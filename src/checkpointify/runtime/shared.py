"""Coroutines that append to a shared list: each call's appends, recorded when it completes.

Many asyncio jobs do not return their results; each coroutine appends them to a list that
the program saves after the event loop has finished::

    results = []
    async def process(item, sem):
        async with sem:
            results.append({"id": item["id"], "out": await call_llm(item)})
    async def main(items):
        sem = asyncio.Semaphore(8)
        await asyncio.gather(*(process(x, sem) for x in items))
    asyncio.run(main(items))
    json.dump(results, open("out.json", "w"))

The unit is one call of the coroutine; what is recorded is its **effect on the list**: the
values it appended, in order, written durably when the call completes (not before: a call
killed or failed half-way is run again on resume, and its partial appends are never
replayed). A rewritten program wraps each call and each append::

    par = shared_appends("job.py::<module>::results")
    ...
            par.append(results, {...})                          # results.append({...})
    ...
        await asyncio.gather(*(par.appends(results, process, x, sem) for x in items))
    ...
    json.dump(results, open("out.json", "w"))
    par.complete()

:meth:`SharedAppends.appends` sets a :mod:`contextvars` variable to the call's unit before
it awaits the coroutine. Each asyncio task runs in its own copy of the context, so an
append made anywhere under that call (in the coroutine, in what it awaits, in tasks it
starts and awaits) finds its own unit, however the calls interleave. On a re-run, a
recorded call is not made: its recorded values are appended to the list when the program
awaits it, and only the pending calls run.

The key of a call is that of :class:`~.parallel.Parallel` (the function's name, its
arguments, the occurrence among equal calls), except that arguments that are not inputs
are counted by their type only: the shared list itself (it grows while the calls are
made), and asyncio/threading synchronisation objects and progress bars (a semaphore's or a
``tqdm`` bar's ``repr`` changes while the job runs).

**Order.** The original list is in completion order, which varies from run to run; a
resumed run's list holds the recorded calls' values first, then the others in completion
order. Equal output therefore means equal after the program's own sorting (or where the
order does not matter); each call's own values keep their order.

**Never worse than the original.** An append that cannot be attributed to the call it
runs under (made after that call completed, by a task it left running; or to another
list than the one the call was given) stops recording with one warning (strict mode:
:class:`~.errors.CheckpointError`); so does a value that cannot be pickled. The program's
list always receives every append as it is made. Only appended values and nothing of the
task are recorded; what a recorded call returned is not (a rewritten program does not use
it: a re-run's recorded call returns None).
"""

from __future__ import annotations

from .errors import CheckpointError
from .lite import TYPE_CHECKING
from .parallel import Parallel, _open_site

if TYPE_CHECKING:
    import os
    from contextvars import ContextVar
    from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, Union

    from .parallel import _Key

__all__ = ["SharedAppends", "shared_appends"]

#: module prefixes of argument types that are plumbing, not input (see the module docstring)
_PLUMBING = ("asyncio.", "threading", "_thread", "multiprocessing.synchronize", "tqdm", "rich.progress")
_VAR: List[ContextVar[Optional[_Unit]]] = []


def _current() -> ContextVar[Optional[_Unit]]:
    """The context variable naming the unit an append belongs to (made on first use)."""
    if not _VAR:
        from contextvars import ContextVar

        _VAR.append(ContextVar("checkpointify_shared_unit", default=None))
    return _VAR[0]


class _Unit:
    """One call in flight: the list it was given and the values it appended so far."""

    __slots__ = ("owner", "target", "values", "closed")

    def __init__(self, owner: SharedAppends, target: List[Any]) -> None:
        self.owner = owner
        self.target = target
        self.values: List[Any] = []
        self.closed = False


class SharedAppends(Parallel):
    """The recorded appends of each call of one shared-list site. Thread-safe."""

    _shape = "shared-appends"

    def appends(
        self, target: List[Any], fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Awaitable[Any]:
        """``fn(*args, **kwargs)``, a coroutine function that appends to ``target``: a
        coroutine that, for a recorded call, appends its recorded values to ``target`` and
        returns None without calling ``fn``; else awaits ``fn`` with its appends attributed
        to this call, and records them when it returns. The key is taken now, in the order
        the program makes the calls."""
        key = self.key(fn, _inputs(args, target), {k: _input(v, target) for k, v in kwargs.items()})
        self._open()
        return self._appends(key, target, fn, args, kwargs)

    async def _appends(
        self,
        key: _Key,
        target: List[Any],
        fn: Callable[..., Awaitable[Any]],
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
    ) -> Any:
        with self._lock:
            recorded = key in self._recorded
            values = self._recorded.get(key)
        if recorded:
            self.restored_units += 1
            target.extend(values or ())
            return None
        unit = _Unit(self, target)
        var = _current()
        token = var.set(unit)
        try:
            value = await fn(*args, **kwargs)
        finally:
            unit.closed = True
            var.reset(token)
        self.record(key, tuple(unit.values))  # only a call that returned: a failed one runs again
        return value

    def append(self, target: List[Any], value: Any) -> None:
        """``target.append(value)``, attributed to the call it runs under (if any)."""
        target.append(value)
        unit = _current().get()
        if unit is None or unit.owner is not self:
            return  # not under a call of this site: made again by a re-run, as in the original
        if unit.closed or unit.target is not target:
            self._failed(
                CheckpointError(
                    "an append to the shared list of %s cannot be attributed to the call it runs under (%s)"
                    % (
                        self.loop_id,
                        "that call has completed"
                        if unit.closed
                        else "it goes to another list than the call's",
                    )
                )
            )
            return
        unit.values.append(value)


def _input(value: Any, target: List[Any]) -> Any:
    """``value`` as the key sees it: the shared list and plumbing count by their type."""
    if value is target:
        return "<the shared list>"
    kind = type(value)
    module = getattr(kind, "__module__", "") or ""
    if module.startswith(_PLUMBING):
        return "<%s.%s>" % (module, kind.__qualname__)
    return value


def _inputs(args: Tuple[Any, ...], target: List[Any]) -> Tuple[Any, ...]:
    return tuple(_input(a, target) for a in args)


def shared_appends(
    loop_id: str,
    *,
    key: object = None,
    directory: Optional[Union[str, os.PathLike[str]]] = None,
    strict: Optional[bool] = None,
) -> SharedAppends:
    """Open the recorded appends of shared-list site ``loop_id`` (nothing is read until
    first use). ``key``, ``directory`` and ``strict`` are those of
    :func:`~.parallel.parallel`."""
    return _open_site(SharedAppends, loop_id, key, directory, strict)
