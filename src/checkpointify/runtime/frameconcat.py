"""A frame grown by ``pd.concat`` in a loop, journaled so a re-run can replay the calls.

``df = pd.concat([df, part], ignore_index=True)`` rebinds ``df`` to a new frame every
unit: the checkpoint has nothing to diff, and recording the whole frame after each unit
costs O(n^2) and does not even give back the same object graph (a resumed program's
``df.to_pickle`` bytes would differ). The rewrite records the *calls* instead::

    df_parts = frame_concat(df, pd.concat)
    ckpt = checkpoint("job.py::<module>::df", items, lambda: (df_parts.journal,))
    [df_parts.journal] = ckpt.restore()
    df = df_parts.replay()
    for item in ckpt:
        part = pd.DataFrame([{"id": item, "label": classify(item)}])
        df = df_parts.concat([df, part], ignore_index=True)

:meth:`FrameConcat.concat` calls the real function (pandas does exactly what it did) and
appends to ``journal`` what the call joined *besides the frame* (the operand list with the
frame's places left empty) and its other arguments; the journal is a plain list, so each
unit's record holds only its own parts, never the grown frame. :meth:`FrameConcat.replay`
makes the recorded calls again, in order, starting from the frame the code before the
loop built again: the same operations on the same operands in the same order, so the
frame's values, dtypes, columns and index are those of an uninterrupted run.

The frame's places in a call are found by identity (``obj is`` the frame as of the last
call or replay); the detector only accepts loops where the name is rebound by these calls
alone. Should a call see no operand that is the frame (the name was rebound some other
way), the whole operand list is recorded, so a replay still makes exactly that call.
pandas is never imported here.

Run again in the same process over the very frame it grew (a notebook's loop cell run
again after an interrupt, without the cell that creates the frame), :func:`frame_concat`
returns the same :class:`FrameConcat`: the checkpoint then sees the very journal the
interrupted run filled and goes on over it, as it does for a list, instead of replaying
the recorded calls onto a frame that already holds them.
"""

from __future__ import annotations

from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Sequence, Tuple

    #: (places of the frame in the operands, the operands with those places None, whether
    #: they were a tuple, the call's other positional arguments, its keyword arguments)
    Entry = Tuple[Tuple[int, ...], List[Any], bool, Tuple[Any, ...], Dict[str, Any]]


_LIVE: Any = None  # weakref.WeakValueDictionary: id(frame) -> the FrameConcat whose frame it is


def _live() -> Any:
    global _LIVE
    if _LIVE is None:
        import weakref  # here: a job that grows no frame this way does not pay for it

        _LIVE = weakref.WeakValueDictionary()
    return _LIVE


class FrameConcat:
    """A frame and the ``concat`` calls that grew it since it was wrapped (see the module
    docstring). ``frame`` is the frame as of the last call or replay."""

    def __init__(self, frame: Any, function: Callable[..., Any]) -> None:
        self.frame = frame
        self.function = function
        self.journal: List[Entry] = []
        self._replayed = 0

    def concat(self, objs: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        """``function(objs, *args, **kwargs)``, recorded in the journal; returns its result."""
        result = self.function(objs, *args, **kwargs)
        frame = self.frame
        places = tuple(i for i, obj in enumerate(objs) if obj is frame)
        operands = [None if i in places else obj for i, obj in enumerate(objs)]
        self.journal.append((places, operands, type(objs) is tuple, args, kwargs))
        self._hold(result)
        self._replayed = len(self.journal)
        return result

    def replay(self) -> Any:
        """Make the journal's calls not made yet (after ``restore()``), in order; returns the frame."""
        for places, operands, as_tuple, args, kwargs in self.journal[self._replayed :]:
            objs = [self.frame if i in places else obj for i, obj in enumerate(operands)]
            self._hold(self.function(tuple(objs) if as_tuple else objs, *args, **kwargs))
        self._replayed = len(self.journal)
        return self.frame

    def _hold(self, frame: Any) -> None:
        """``frame`` is the frame now; the registry knows this object by it alone."""
        live = _live()
        if live.get(id(self.frame)) is self:
            del live[id(self.frame)]
        self.frame = frame
        live[id(frame)] = self


def frame_concat(frame: Any, function: Callable[..., Any]) -> FrameConcat:
    """Journal the ``function`` (``pd.concat``) calls that grow ``frame`` (see the module
    docstring); the :class:`FrameConcat` that grew ``frame`` itself in this process, if any."""
    live = _live().get(id(frame))
    if live is not None and live.frame is frame and live.function is function:
        return live  # type: ignore[no-any-return]
    wrapped = FrameConcat(frame, function)
    _live()[id(frame)] = wrapped
    return wrapped
