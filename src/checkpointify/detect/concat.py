"""Frames grown by ``pd.concat``: the accumulator kind "concat".

The shape, very common in labelling, scraping and evaluation scripts::

    df = pd.DataFrame(columns=["id", "label"])      # or pd.DataFrame(), or a loaded frame
    for item in items:
        part = pd.DataFrame([{"id": item, "label": classify(item)}])
        df = pd.concat([df, part], ignore_index=True)
    df.to_csv("out.csv", index=False)

``df`` holds every completed unit, as a list grown with ``append`` does, but it is rebound
to a new frame by each unit, so there is nothing the checkpoint could diff. The rewrite
journals each ``pd.concat`` call instead (runtime ``frame_concat``): what was joined to the
frame, and the call's other arguments; a re-run replays the same calls in the same order
onto the frame the code before the loop built again, so values, dtypes and index are those
of an uninterrupted run. Whatever the arguments (``axis=1``, ``keys=``, prepending with
``[part, df]``), replaying the call reproduces it, so none of them is refused here.

Only calls that resolve to ``pandas.concat`` count (``import pandas as pd``, ``from pandas
import concat``); the prefilter's twin (``prefilter.tree._frame_concat_grows``) accepts any
callee named ``concat``.
"""

from __future__ import annotations

from typing import Dict, Set

import libcst as cst

from checkpointify.detect.analysis import FileAnalysis
from checkpointify.detect.cstutil import assignment_targets, target_name, walk

PANDAS_CONCAT = "pandas.concat"


def concat_growth(name: str, value: cst.BaseExpression) -> bool:
    """``concat([name, part], ...)`` or ``x.concat((part, name), ...)``: a call of a callee
    named ``concat`` whose first positional argument is a list or tuple display holding
    ``name`` itself (syntax only; :func:`frame_concats` checks that it is pandas')."""
    if not isinstance(value, cst.Call) or not value.args or value.args[0].keyword is not None:
        return False
    func = value.func
    callee = (
        func.value
        if isinstance(func, cst.Name)
        else func.attr.value
        if isinstance(func, cst.Attribute)
        else None
    )
    if callee != "concat" or value.args[0].star:
        return False
    objs = value.args[0].value
    return isinstance(objs, (cst.List, cst.Tuple)) and any(
        isinstance(e, cst.Element) and target_name(e.value) == name for e in objs.elements
    )


def frame_concats(a: FileAnalysis, body: cst.CSTNode) -> Dict[str, str]:
    """The names the body grows by ``name = pandas.concat([..., name, ...], ...)``, each with
    the code of its callee (``pd.concat``): the one the rewrite binds to the journal.

    A name also grown by a ``concat`` that is not pandas' (``concat([df, x])`` of a local
    function) is left out: replaying it with pandas' would be wrong.
    """
    found: Dict[str, str] = {}
    foreign: Set[str] = set()
    for node in walk(body):
        if not isinstance(node, cst.Assign) or len(node.targets) != 1:
            continue
        name = target_name(node.targets[0].target)
        if not name or "." in name or not concat_growth(name, node.value):
            continue
        assert isinstance(node.value, cst.Call)
        if PANDAS_CONCAT in a.qualified(node.value.func):
            found.setdefault(name, a.module.code_for_node(node.value.func))
        else:
            foreign.add(name)
    return {name: callee for name, callee in found.items() if name not in foreign}


def only_concat_binds(name: str, body: cst.CSTNode) -> bool:
    """Every binding of ``name`` in the body is a concat growth (``df = None`` before the
    loop then ``df = pd.concat([df, part])``: pandas drops the ``None``, and the journal
    replays it; ``if df is None: df = part`` is not a journaled call, so it is not one)."""
    for node in walk(body):
        if name in assignment_targets(node) and not (
            isinstance(node, cst.Assign) and len(node.targets) == 1 and concat_growth(name, node.value)
        ):
            return False
    return True
