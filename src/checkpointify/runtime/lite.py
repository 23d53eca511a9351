"""What the runtime needs from ``typing`` and ``collections`` at run time, without importing them.

Importing ``typing`` costs more than the rest of the runtime together (it loads ``re``,
``enum``, ``functools``, ``collections``...: about 13 ms on a 15 ms budget, measured by
``benchmarks/runtime_overhead.py --imports``), and every rewritten job pays for it. The
runtime's annotations are strings (``from __future__ import annotations``) and its typing
imports sit under ``if TYPE_CHECKING:``; what is left for run time is here:

* ``TYPE_CHECKING``: ``False`` at run time; mypy treats any name ``TYPE_CHECKING`` as true;
* ``Generic`` and ``T``: the base of :class:`~.checkpoint.Checkpoint` and
  :class:`~.acknowledge.Acknowledger`; the type checker sees ``typing.Generic[T]``, run time
  this stand-in, which keeps ``Checkpoint[int]`` valid in annotations evaluated at run time;
* ``deque``: the class ``collections.deque`` re-exports (``collections`` itself costs ~3 ms).
"""

from __future__ import annotations

__all__ = ["TYPE_CHECKING", "Generic", "T", "deque"]

TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections import deque as deque
    from typing import Generic as Generic
    from typing import TypeVar

    T = TypeVar("T")
else:
    try:
        from _collections import deque
    except ImportError:  # pragma: no cover - not CPython
        pass

    _GenericAlias = type(list[int])  # types.GenericAlias, whose import is not free either

    class Generic:
        """``typing.Generic`` as far as the runtime's classes use it: subscripting a
        subclass (``Checkpoint[int]``) gives a ``types.GenericAlias``."""

        __slots__ = ()

        def __class_getitem__(cls, item):
            return _GenericAlias(cls, item)

    T = "T"  # stands for typing.TypeVar("T"): only ever an argument of Generic[...]
