"""``acknowledge_each``: ack each message as its unit completes (CKP003); nothing is stored."""

from __future__ import annotations

from itertools import islice

from .errors import CheckpointError, _type_name
from .lite import TYPE_CHECKING, Generic, T

if TYPE_CHECKING:
    from typing import (
        Any,
        AsyncIterable,
        AsyncIterator,
        Callable,
        Iterable,
        Iterator,
        Optional,
        Sequence,
        Tuple,
        Union,
    )


class Acknowledger(Generic[T]):
    """What :func:`acknowledge_each` returns: iterate it (``for``, or ``async for`` over an
    async iterable) instead of the messages. ``acknowledged`` counts the acks it made."""

    def __init__(
        self,
        iterable: Union[Iterable[T], AsyncIterable[T]],
        ack: Callable[..., Any],
        grown: Optional[Callable[[], Sequence[Any]]],
        latest: Optional[Callable[[], Any]],
    ) -> None:
        if grown is not None and latest is not None:
            raise ValueError("acknowledge_each() takes grown= or latest=, not both")
        self._iterable = iterable
        self._ack = ack
        self._grown = grown
        self._latest = latest
        self._iterator: Optional[Iterator[T]] = None
        self._aiterator: Optional[AsyncIterator[T]] = None
        self._inflight = False
        self._done = False
        self._size = 0  # len(grown()) as of the last ack
        self._acked: Any = None  # the tag acknowledged last
        self.acknowledged = 0

    def _start(self) -> None:
        if self._grown is not None:
            self._size = len(self._grown())  # what was there before the loop is not its to ack

    def _settle(self) -> Any:
        """The unit handed out last has completed: acknowledge it (returns what ``ack``
        returned, or ``None`` when nothing was due)."""
        if not self._inflight:
            return None
        self._inflight = False
        if self._grown is not None:
            current = self._grown()
            new = list(islice(current, self._size, None))
            self._size = len(current)
            if not new:
                return None
            arguments: Tuple[Any, ...] = (new,)
        elif self._latest is not None:
            tag = self._latest()
            if tag is None or tag == self._acked:
                return None
            self._acked = tag
            arguments = (tag,)
        else:
            arguments = ()
        self.acknowledged += 1
        return self._ack(*arguments)

    def __iter__(self) -> "Acknowledger[T]":
        if self._iterator is None:
            iterable = self._iterable
            if not hasattr(iterable, "__iter__") and hasattr(iterable, "__aiter__"):
                raise CheckpointError(
                    "acknowledge_each() over an async iterable (%s): iterate it with `async for`"
                    % _type_name(iterable)
                )
            self._iterator = iter(iterable)  # type: ignore[arg-type]
            self._start()
        return self

    def __next__(self) -> T:
        if self._iterator is None:
            self.__iter__()
        result = self._settle()
        if hasattr(result, "__await__"):
            close = getattr(result, "close", None)
            if callable(close):
                close()
            raise CheckpointError(
                "the ack callback of acknowledge_each() returned an awaitable, which a plain `for` loop "
                "cannot await: iterate with `async for`, or acknowledge synchronously"
            )
        if self._done:
            raise StopIteration
        assert self._iterator is not None
        try:
            item = next(self._iterator)
        except StopIteration:
            self._done = True
            raise
        self._inflight = True
        return item

    def __aiter__(self) -> "Acknowledger[T]":
        if self._aiterator is None:
            iterable = self._iterable
            if not hasattr(iterable, "__aiter__"):
                raise CheckpointError(
                    "acknowledge_each() over a synchronous iterable (%s): iterate it with `for`"
                    % _type_name(iterable)
                )
            self._aiterator = iterable.__aiter__()
            self._start()
        return self

    async def __anext__(self) -> T:
        if self._aiterator is None:
            self.__aiter__()
        result = self._settle()
        if hasattr(result, "__await__"):
            await result
        if self._done:
            raise StopAsyncIteration
        assert self._aiterator is not None
        try:
            item = await self._aiterator.__anext__()
        except StopAsyncIteration:
            self._done = True
            raise
        self._inflight = True
        return item


def acknowledge_each(
    iterable: Union[Iterable[T], AsyncIterable[T]],
    ack: Callable[..., Any],
    *,
    grown: Optional[Callable[[], Sequence[Any]]] = None,
    latest: Optional[Callable[[], Any]] = None,
) -> Acknowledger[T]:
    """Hand out the messages of ``iterable`` and acknowledge each unit as soon as it has
    completed (CKP003): when the loop asks for the next message, or the messages run out.
    A unit that raises or ends the loop with ``break`` is never acknowledged.

    * ``grown`` (a callable returning the list the body appends to, e.g. the ids to ack):
      ``ack(new)`` with the elements the unit appended, if it appended any;
    * ``latest`` (a callable returning the latest delivery tag, e.g. for
      ``basic_ack(delivery_tag=tag, multiple=True)``): ``ack(tag)`` when the tag is not
      ``None`` and differs from the one acknowledged last;
    * neither: ``ack()``.

    Nothing is stored: the broker is the progress marker, so a re-run simply receives what
    was not acknowledged. At-least-once: the message in flight at a crash is redelivered
    and processed again. Over an async iterable iterate with ``async for``; an ``ack`` that
    returns an awaitable is then awaited.
    """
    return Acknowledger(iterable, ack, grown, latest)
