"""In-place writes into the items of a list loaded before the loop (accumulator kind "items").

The shape, very common in LLM labelling and evaluation scripts::

    data = json.load(f)                                   # any binding before the loop
    for i in range(len(data)):                            # or enumerate(data), data, tqdm(...)
        data[i]["answer"] = ask(data[i]["question"])      # or item["answer"] = ..., item.update(...)
    json.dump(data, out)

Nothing is appended: the list is the state, and each unit writes keys into its own item.
:func:`item_site` recognises the loop and what the rewrite routes through the journal
(``runtime.itemwrites``); the matcher treats the list as an accumulator of kind "items"
and the rest of the finding (work, sink, hazards) as for any collect loop.

Every early return shows the code it rejects. What is rejected here is not a finding
(the list is then not an accumulator); what is accepted but cannot be replayed exactly
carries a ``problem`` (a finding without a fix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Set, Tuple

import libcst as cst

from checkpointify import catalogue
from checkpointify.detect.analysis import FileAnalysis
from checkpointify.detect.cstutil import assignment_targets, walk

_SCOPES = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
_MUTATING = catalogue.ITEM_CHANGING_METHODS


@dataclass(frozen=True)
class ItemSite:
    """A loop that writes into the items of list ``name``.

    ``index`` is the loop's name for the position (``i`` in ``data[i]``), ``aliases`` the
    loop-target names bound to an item (``item`` in ``for item in data``); ``problem`` says
    why the writes could not be replayed exactly (no fix then).
    """

    name: str
    index: Optional[str]
    aliases: Tuple[str, ...]
    problem: Optional[str] = None


def item_site(a: FileAnalysis, loop: cst.For) -> Optional[ItemSite]:
    """The list whose items ``loop`` writes into, or None when the loop is not that shape."""
    shape = _iteration(a, loop.iter, loop.target)
    if shape is None:
        # for row in rows.iterrows(): ...   /   for x, y in zip(a, b): ...
        return None
    name, index, aliases = shape
    body = loop.body
    writes = 0
    problem: Optional[str] = None
    for node in walk(body, _SCOPES):
        if name in assignment_targets(node) or (
            set(aliases) | ({index} if index else set())
        ) & assignment_targets(node):
            # for item in data: item = dict(item) ...   /   data = data[1:]   (rebound: not an alias any more)
            return None
        for target in _stores(node):
            kind = _written(target, name, index, aliases)
            if kind == "other":
                # data[i - 1]["next"] = ...   /   data[i] = {...}   (another unit's item, or a whole item)
                return None
            if kind == "key" and isinstance(node, cst.Del):
                # del item["draft"]   (the journal records stores, not deletions)
                problem = problem or "`del %s` removes a key, which the journal cannot record" % _code(target)
            if kind == "nested":
                problem = problem or (
                    "a write below an item's key (`%s`) cannot be journaled as a key of the item"
                    % _code(target)
                )
            if kind is not None:
                writes += 1
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            kind = _written(node.func.value, name, index, aliases, method=node.func.attr.value)
            if kind == "other":
                # data.append(x)   /   data[j].update(...)   (the list grows, or another item changes)
                return None
            if kind == "nested":
                problem = problem or "`%s()` changes an item in a way the journal cannot record" % _code(
                    node.func
                )
            if kind is not None:
                writes += 1
    if not writes:
        # for item in data: print(ask(item))   (nothing written into the items)
        return None
    if not _reads_only_own_item(body, name, index, aliases):
        # data[i]["x"] = f(data[i - 1]["x"])   /   ask(data)   /   seen.append(item)   (reads across units)
        return None
    return ItemSite(name, index, tuple(aliases), problem)


# ------------------------------------------------------------------------- the iteration


def _unwrap_progress(a: FileAnalysis, node: cst.BaseExpression) -> cst.BaseExpression:
    """``tqdm(x, total=n)`` -> ``x`` (a progress bar yields what it wraps; not ``trange(n)``)."""
    while (
        _progress_range(a, node) is None
        and isinstance(node, cst.Call)
        and node.args
        and node.args[0].keyword is None
        and not node.args[0].star
        and any(q.startswith(catalogue.PROGRESS_BAR_PREFIXES) for q in a.qualified(node.func))
    ):
        node = node.args[0].value
    return node


def _progress_range(a: FileAnalysis, node: cst.BaseExpression) -> Optional[cst.Call]:
    """``trange(n)``: tqdm's ``tqdm(range(n))``."""
    if isinstance(node, cst.Call) and any(
        q.startswith(catalogue.PROGRESS_BAR_PREFIXES) and q.endswith(".trange")
        for q in a.qualified(node.func)
    ):
        return node
    return None


def _builtin_call(a: FileAnalysis, node: cst.BaseExpression, name: str) -> Optional[cst.Call]:
    if isinstance(node, cst.Call) and "builtins.%s" % name in a.qualified(node.func):
        return node
    return None


def _iteration(
    a: FileAnalysis, iterable: cst.BaseExpression, target: cst.BaseAssignTargetExpression
) -> Optional[Tuple[str, Optional[str], List[str]]]:
    """``(list, index name, item aliases)`` for ``for i in range(len(data))``, ``for i, item
    in enumerate(data)`` and ``for item in data``, through progress bars."""
    iterable = _unwrap_progress(a, iterable)
    ranged = _builtin_call(a, iterable, "range") or _progress_range(a, iterable)
    if ranged is not None:
        # for i in range(len(data))
        if len(ranged.args) != 1 or not isinstance(target, cst.Name):
            return None
        length = _builtin_call(a, ranged.args[0].value, "len")
        if length is None or len(length.args) != 1 or not isinstance(length.args[0].value, cst.Name):
            return None
        return length.args[0].value.value, target.value, []
    counted = _builtin_call(a, iterable, "enumerate")
    if counted is not None:
        # for i, item in enumerate(data)   (no start=: the count is the position)
        if len(counted.args) != 1 or not isinstance(target, cst.Tuple) or len(target.elements) != 2:
            return None
        first, second = (e.value for e in target.elements)
        listed = _unwrap_progress(a, counted.args[0].value)
        if (
            not isinstance(first, cst.Name)
            or not isinstance(second, cst.Name)
            or not isinstance(listed, cst.Name)
        ):
            return None
        return listed.value, first.value, [second.value]
    if isinstance(iterable, cst.Name) and isinstance(target, cst.Name):
        # for item in data
        return iterable.value, None, [target.value]
    return None


# ------------------------------------------------------------------------------ writes


def _stores(node: cst.CSTNode) -> List[cst.BaseExpression]:
    if isinstance(node, cst.Assign):
        return [t.target for t in node.targets if isinstance(t.target, cst.Subscript)]
    if isinstance(node, (cst.AugAssign, cst.AnnAssign)) and isinstance(node.target, cst.Subscript):
        return [node.target]
    if isinstance(node, cst.Del) and isinstance(node.target, cst.Subscript):
        return [node.target]
    return []


def _item_of(node: cst.BaseExpression, name: str, index: Optional[str], aliases: List[str]) -> Optional[str]:
    """Whose item ``node`` is: "own" for the unit's item (``item``, ``data[i]``), "other" for
    another item or the list itself, None when unrelated."""
    if isinstance(node, cst.Name):
        if node.value in aliases:
            return "own"
        return "other" if node.value == name else None
    if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name) and node.value.value == name:
        element = node.slice[0].slice if len(node.slice) == 1 else None
        if (
            index is not None
            and isinstance(element, cst.Index)
            and isinstance(element.value, cst.Name)
            and element.value.value == index
        ):
            return "own"
        return "other"
    return None


def _written(
    target: cst.BaseExpression,
    name: str,
    index: Optional[str],
    aliases: List[str],
    method: Optional[str] = None,
) -> Optional[str]:
    """How a store target (or a method's receiver) changes the list: "key" (a key of the
    unit's item), "nested" (below a key of it), "other" (the list, or another item), None."""
    if method is not None:
        owner = _item_of(target, name, index, aliases)
        if owner == "own":
            if method == "update":
                return "key"  # item.update({...})
            return "nested" if method in _MUTATING else None  # item.pop("k")   /   item.strip()
        if owner == "other":
            return "other" if method in _MUTATING else None  # data.append(x)   /   data.index(x)
        deeper = _below_item(target, name, index, aliases)
        if deeper is not None and method in _MUTATING:
            return "nested" if deeper == "own" else "other"  # item["tags"].append(t)
        return None
    if not isinstance(target, cst.Subscript):
        return None
    owner = _item_of(target.value, name, index, aliases)
    if owner is not None:
        return "key" if owner == "own" else "other"
    if _item_of(target, name, index, aliases) == "other":
        return "other"  # data[i] = {...}
    deeper = _below_item(target.value, name, index, aliases)
    if deeper is not None:
        return "nested" if deeper == "own" else "other"
    return None


def _below_item(
    node: cst.BaseExpression, name: str, index: Optional[str], aliases: List[str]
) -> Optional[str]:
    """Whose item a subscript or attribute chain is rooted at ("own", "other" or None)."""
    while isinstance(node, (cst.Subscript, cst.Attribute)):
        owner = _item_of(node.value, name, index, aliases)
        if owner is not None:
            return owner
        node = node.value
    return None


# ------------------------------------------------------------------------------- reads


def _reads_only_own_item(body: cst.BaseSuite, name: str, index: Optional[str], aliases: List[str]) -> bool:
    """The body uses the list only as ``data[i]`` and ``len(data)``, and an item alias does
    not escape into another container or name (each unit sees only its own item)."""
    for scope in walk(body, ()):
        if isinstance(scope, _SCOPES) and any(
            isinstance(n, cst.Name) and (n.value == name or n.value in aliases) for n in walk(scope, ())
        ):
            return False  # for item in data: pool.submit(lambda: item.update(f(item)))   (not journaled)
    inside: Set[int] = set()
    for node in walk(body, _SCOPES):
        if isinstance(node, cst.Subscript) and _item_of(node, name, index, aliases) == "own":
            inside.update(id(n) for n in walk(node.value, ()))
        elif (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Name)
            and node.func.value == "len"
            and len(node.args) == 1
        ):
            inside.update(id(n) for n in walk(node.args[0].value, ()))
    for node in walk(body, _SCOPES):
        if isinstance(node, cst.Name) and node.value == name and id(node) not in inside:
            return False  # ask(data), data[j], data[i - 1]
        if isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.NamedExpr)):
            value = node.value
            if value is not None and _bare_alias(value, aliases):
                return False  # previous = item
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            if node.func.attr.value in catalogue.DERIVING_METHODS and any(
                _bare_alias(arg.value, aliases) for arg in node.args
            ):
                return False  # kept.append(item)
        if isinstance(node, cst.Return) and node.value is not None and _bare_alias(node.value, aliases):
            return False
        if (
            isinstance(node, cst.Yield)
            and isinstance(node.value, cst.BaseExpression)
            and _bare_alias(node.value, aliases)
        ):
            return False
    return True


def _bare_alias(value: cst.BaseExpression, aliases: List[str]) -> bool:
    """``item``, or ``(item, x)`` / ``[item]`` / ``{"k": item}``: the item object itself."""
    if isinstance(value, cst.Name):
        return value.value in aliases
    if isinstance(value, (cst.Tuple, cst.List, cst.Set)):
        return any(_bare_alias(e.value, aliases) for e in value.elements)
    if isinstance(value, cst.Dict):
        return any(isinstance(e, cst.DictElement) and _bare_alias(e.value, aliases) for e in value.elements)
    return False


def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)
