"""Row-wise pandas work: ``df["label"] = df["text"].apply(classify)`` then ``df.to_csv(...)``.

The shape, in one block (notebook cells are one module, so the save may be in a later cell)::

    df["label"] = df["text"].apply(classify)       # apply / progress_apply / map of a function
    df.to_csv("labelled.csv")                       # later: a sink persists the target's root

The function passed must do heavy work (``work.call_work`` is ``HEAVY`` for a call of it:
an API or model call, a request, a same-module helper whose body does one); opaque or
cheap functions (``len``, string clean-up, a parser imported from elsewhere) are not
enough, because ``.apply`` is far more often used for cheap reshaping than for jobs. The
fix wraps the receiver (``rows(df["text"]).apply(classify)``, see
:mod:`checkpointify.runtime.rows`): each call of the function is checkpointed and pandas
still builds the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import libcst as cst
from libcst.metadata.scope_provider import ClassScope

from checkpointify import catalogue
from checkpointify.detect import hazards as hz
from checkpointify.detect.analysis import Chain, FileAnalysis
from checkpointify.detect.cstutil import code_of, single_assignment, walk
from checkpointify.detect.flow import Sink, find_sink, statements_between
from checkpointify.detect.work import Work, call_work


def row_apply(stmt: cst.BaseStatement) -> Optional[Tuple[cst.BaseExpression, cst.Call]]:
    """``target = receiver.apply(func, ...)`` on a line of its own: (target, the call)."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return None
    small = stmt.body[0]
    if not isinstance(small, cst.Assign) or len(small.targets) != 1:
        return None
    call = small.value
    if (
        not isinstance(call, cst.Call)
        or not isinstance(call.func, cst.Attribute)
        or call.func.attr.value not in catalogue.ROW_APPLY_METHODS
        or not call.args
        or call.args[0].keyword is not None
        or call.args[0].star
    ):
        return None
    return small.targets[0].target, call


def root_name(node: cst.BaseExpression) -> Optional[str]:
    """``df`` for ``df``, ``df["x"]``, ``df.loc[:, "x"]``, ``df.x``; else None."""
    while isinstance(node, (cst.Subscript, cst.Attribute)):
        node = node.value
    return node.value if isinstance(node, cst.Name) else None


def function_work(a: FileAnalysis, func: cst.BaseExpression, cls: Optional[str]) -> Work:
    """The work one call of ``func`` (a lambda, a name or ``obj.method``) does."""
    if isinstance(func, cst.Lambda):
        level = Work.NONE
        for node in _calls(func.body):
            level = max(level, call_work(a, node, set(), cls, 0))
        return level
    if isinstance(func, (cst.Name, cst.Attribute)):
        return call_work(a, cst.Call(func=func), set(), cls, 0)
    return Work.NONE


def _calls(node: cst.CSTNode) -> List[cst.Call]:
    return [n for n in walk(node) if isinstance(n, cst.Call)]


def _already_wrapped(a: FileAnalysis, chain: Chain, index: int, receiver: cst.BaseExpression) -> bool:
    """``rows(...)`` where ``rows`` is bound to ``checkpoint_rows(...)`` earlier in the block."""
    if not isinstance(receiver, cst.Call) or not isinstance(receiver.func, cst.Name):
        return False
    wanted = {a.options.runtime_module + ".checkpoint_rows"}
    for stmt in reversed(chain.body[:index]):
        assigned = single_assignment(stmt)
        if assigned and assigned[0] == receiver.func.value:
            value = assigned[1]
            return isinstance(value, cst.Call) and bool(a.qualified(value.func) & wanted)
    return False


@dataclass(frozen=True)
class RowSite:
    """A row-apply statement: what the finding and the fix need."""

    target: str  # the assigned target, as code (``df["label"]``)
    base: str  # the name whose save makes the result durable (``df``)
    receiver: cst.BaseExpression  # what the rewrite wraps
    method: str
    sink: Sink
    hazards: hz.Hazards
    parts: Tuple[cst.BaseExpression, ...]  # the call's arguments (for the key)


def row_apply_site(
    a: FileAnalysis, chain: Chain, index: int, stmt: cst.BaseStatement, cls: Optional[str]
) -> Optional[RowSite]:
    """The row-apply site at ``chain.body[index]``, or None (see the module docstring)."""
    shape = row_apply(stmt)
    if shape is None:
        return None
    target, call = shape
    base = root_name(target)
    assert isinstance(call.func, cst.Attribute)
    scope = a.scopes.get(stmt)
    if base is None or scope is None or isinstance(scope, ClassScope):
        # obj.items()[0] = s.apply(f)   /   class C: x = s.apply(f)
        return None
    if _already_wrapped(a, chain, index, call.func.value):
        # rows = checkpoint_rows(...); df["x"] = rows(df["t"]).apply(f)   (the rewrite's own output)
        return None
    if function_work(a, call.args[0].value, cls) is not Work.HEAVY:
        # df["n"] = df["text"].apply(len)   (cheap, or opaque: usually a reshaping helper)
        return None
    sink = find_sink(a, chain, index, {base})
    if sink is None:
        # df["label"] = df["text"].apply(classify)   and the frame is never saved
        return None
    found = hz.Hazards()
    hz.check_exits(found, statements_between(chain, index, sink))
    return RowSite(
        target=code_of(target).strip(),
        base=base,
        receiver=call.func.value,
        method=call.func.attr.value,
        sink=sink,
        hazards=found,
        parts=tuple(arg.value for arg in call.args),
    )
