"""Whether what a loop collects holds the results of its work.

A finding says "a crash before the save loses every completed unit". That is only true when
the values the loop collects are results of its work. In

    pairs = []
    for i, (query, passage) in enumerate(pair_gen):
        pairs.append((query, passage))
        if len(passage_batch) == batch_size:
            embeds = model.encode(passage_batch).tolist()
            index.upsert(vectors=list(zip(id_batch, embeds)))
    fp.write(...pairs...)

the expensive call's result goes elsewhere (here, an index written inside the loop) and
``pairs`` only holds the input items: a crash loses nothing a re-run cannot rebuild at the
cost of reading its input again, which is what a re-run of the original does anyway.

:func:`collects_work` follows the results of the loop body's work (calls that are not
cheap, awaits) through assignments, augmented assignments, ``with ... as`` names, inner
loop targets and in-place changes (``item["label"] = llm(x)``, ``item.update(fetch(x))``)
to the values the accumulators grow by. It errs towards "yes": any doubt keeps the finding.
"""

from __future__ import annotations

from typing import List, Sequence, Set

import libcst as cst

from checkpointify.detect.analysis import FileAnalysis
from checkpointify.detect.cstutil import target_name, walk
from checkpointify.detect.work import is_cheap_call

_MAX_PASSES = 4  # a name worked late in the body may feed an earlier statement on the next item


def collects_work(a: FileAnalysis, body: cst.CSTNode, accumulators: Set[str]) -> bool:
    """Whether a value an accumulator grows by (or is assigned) depends on a call in ``body``
    that is not cheap, directly or through names and objects that such a call changed."""
    worked: Set[str] = set()
    for _ in range(_MAX_PASSES):
        before = len(worked)
        for node in walk(body, ()):
            _taint(a, node, worked, accumulators)
        if len(worked) == before:
            break
    return bool(worked & accumulators)


def _taint(a: FileAnalysis, node: cst.CSTNode, worked: Set[str], accumulators: Set[str]) -> None:
    targets: List[cst.BaseExpression] = []
    value: Sequence[cst.CSTNode] = ()
    # a target's own parts count as what is stored: counts[token] += 1 with token worked
    if isinstance(node, cst.Assign):
        targets = [t.target for t in node.targets]
        value = [node.value, *targets]
    elif isinstance(node, (cst.AnnAssign, cst.AugAssign)) and node.value is not None:
        targets, value = [node.target], [node.value, node.target]
    elif isinstance(node, cst.NamedExpr):
        targets, value = [node.target], [node.value]
    elif isinstance(node, cst.WithItem) and node.asname is not None:
        targets, value = [node.asname.name], [node.item]
    elif isinstance(node, (cst.For, cst.CompFor)):
        targets, value = [node.target], [node.iter]
    elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        # acc.append(f(x)), item.update(fetch(x)): the receiver takes in what the arguments hold
        targets, value = [node.func.value], list(node.args)
    if targets and any(_holds_work(a, v, worked, accumulators) for v in value):
        for target in targets:
            worked.update(_bases(target))


def _holds_work(a: FileAnalysis, node: cst.CSTNode, worked: Set[str], accumulators: Set[str]) -> bool:
    for child in walk(node, ()):
        if isinstance(child, cst.Await):
            return True
        if isinstance(child, cst.Call) and not is_cheap_call(a, child, accumulators):
            return True
        if isinstance(child, cst.Name) and child.value in worked:
            return True
    return False


def _bases(target: cst.BaseExpression) -> Set[str]:
    """The names whose objects an assignment target binds or changes: ``x``, ``a, b``,
    ``item["k"]`` -> item, ``self.rows`` -> rows' owner (``self``) and ``rows``."""
    if isinstance(target, (cst.Tuple, cst.List)):
        out: Set[str] = set()
        for element in target.elements:
            out |= _bases(element.value)
        return out
    if isinstance(target, cst.StarredElement):
        return _bases(target.value)
    names: Set[str] = set()
    name = target_name(target)
    if name:
        names.add(name)
    while isinstance(target, (cst.Subscript, cst.Attribute)):
        target = target.value
        inner = target_name(target)
        if inner:
            names.add(inner)
    return names
