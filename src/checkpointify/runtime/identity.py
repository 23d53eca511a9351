"""``resume="identity"``: which recorded units a run reuses over input whose order changed."""

from __future__ import annotations

from collections import Counter, deque

from .deltas import _applicable_in_place
from .frames import _REORDERABLE, _live, _Unit
from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Deque, Dict, List, Optional, Sequence, Tuple


class _Plan:
    """How a ``resume="identity"`` run reuses recorded units over the current input.

    A recorded unit is reused when its item comes up (wherever it now is) if either
    (a) *exact*: every unit before it in the log was reused, in log order, and no body ran
    in between, so the accumulators are exactly as they were when it was recorded; or
    (b) *independent*: its effect did not depend on earlier units (it only appended to
    lists, added to sets or created dict keys that do not exist yet), and no unit recorded
    before it has vanished from the input while the loop has dict or set accumulators (a
    vanished unit may have added an element or key that later units then added again
    invisibly). A batch (cheap units written together, with one joint effect) is reused
    only whole and exact: its items come up next to each other, in log order. Otherwise
    the item runs again, and the new record replaces the old one.
    """

    __slots__ = ("items", "fps", "pos", "by_fp", "order", "exact_pos", "exact", "cut", "keyed")

    def __init__(self, items: List[Any], fps: List[bytes], units: List[_Unit], keyed: bool) -> None:
        self.items = items
        self.fps = fps
        self.pos = 0
        live = _live(units)
        self.by_fp: Dict[bytes, Deque[_Unit]] = {}
        for unit in live:
            self.by_fp.setdefault(unit.fp, deque()).append(unit)
        wanted = Counter(fps)
        self.cut: Optional[int] = None  # units after this seq may miss invisible effects
        for fp, queue in self.by_fp.items():
            for unit in list(queue)[wanted.get(fp, 0) :]:  # recorded more often than it occurs now
                if unit.keyed:
                    self.cut = unit.seq if self.cut is None else min(self.cut, unit.seq)
        self.order = [u.seq for u in live]
        self.exact_pos = 0
        self.exact = True
        self.keyed = keyed

    @property
    def recorded(self) -> int:
        return len(self.order)

    def reusable(self, unit: _Unit, values: Sequence[Any]) -> Optional[Tuple[Tuple[_Unit, ...], bool]]:
        """Whether ``unit``'s recorded effect (for a batch, the whole batch's) can be applied
        to ``values`` here: ``(the units it covers, exact)``, or ``None`` (the item runs again;
        after that no later unit is exact)."""
        members = unit.batch or (unit,)
        exact = (
            self.exact
            and unit is members[0]
            and self.exact_pos < len(self.order)
            and self.order[self.exact_pos] == unit.seq
        )
        if unit.batch is not None:
            exact = exact and self._batch_comes_next(members[1:])
            if not exact:
                self.exact = False
                return None
        elif not exact:
            self.exact = False
            if not unit.flags & _REORDERABLE or (self.keyed and self.cut is not None and unit.seq > self.cut):
                return None
        effect = members[-1].deltas
        if not all(_applicable_in_place(v, d, not exact) for v, d in zip(values, effect)):
            self.exact = False
            return None
        return members, exact

    def take(self, members: Tuple[_Unit, ...], exact: bool) -> None:
        """``members`` (a unit, or a whole batch) are reused: skip the batch's other items."""
        for member in members[1:]:
            self.by_fp[member.fp].popleft()
        self.pos += len(members) - 1
        if exact:
            self.exact_pos += len(members)

    def _batch_comes_next(self, rest: Sequence[_Unit]) -> bool:
        """Whether the input items right after the current one are ``rest``'s, in order."""
        if self.pos + len(rest) > len(self.items):
            return False
        for offset, member in enumerate(rest):
            queue = self.by_fp.get(self.fps[self.pos + offset])
            if not queue or queue[0] is not member:
                return False
        return True
