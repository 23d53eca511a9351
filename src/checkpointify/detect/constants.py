"""Module constants a loop reads: part of its checkpoint's identity (``constants=``).

``MODEL = "gpt-4o"`` at the top of a script, read by the loop's body or by a helper the
body calls, decides each unit's result as much as the item does. A run after ``MODEL`` was
edited must not resume the units of a run with the old value, so the rewrite passes
``constants={"MODEL": MODEL}`` and the runtime counts them in the loop's identity (and
archives the log of the old values with a warning, see ``checkpointify.runtime.constants``).

A name counts as a module constant when all of these hold (anything else is left out: the
key must never raise, and must never hold state the loop changes):

* it is bound exactly once in the module, by a plain ``NAME = value`` (or ``NAME: T =
  value``) statement at the top level of the module (not inside ``if``/``try``/a function,
  never rebound, ``global``-assigned, augmented or deleted);
* that statement comes before the top-level statement holding the loop (the function's
  ``def``, the class, or the loop itself), so the name is bound whenever the loop starts;
* the value is a literal or a simple expression of literals: numbers, strings (f-strings
  too), bytes, ``True``/``False``/``None``, tuples, lists, dicts and sets of them, unary,
  binary and boolean operators, other constants, and ``os.getenv(...)``/``os.environ.get(...)``/
  ``os.environ[...]`` of such arguments;
* a list, dict or set is never changed anywhere in the module (``NAME[k] = v``,
  ``NAME.append(...)``, ``del NAME[k]``: it would be state, not a constant).

Helpers are followed through plain calls of module-level functions (``label(x)`` where
``def label`` is at the top of the module), up to ``_HELPER_DEPTH`` calls deep.
"""

from __future__ import annotations

import weakref
from typing import Dict, List, Optional, Sequence, Set, Tuple

import libcst as cst
from libcst.metadata import Scope

from checkpointify.detect.analysis import FileAnalysis
from checkpointify.detect.cstutil import loads, walk

_HELPER_DEPTH = 3
_TABLES: "weakref.WeakKeyDictionary[FileAnalysis, Dict[str, int]]" = weakref.WeakKeyDictionary()
_ENV_READS = frozenset({"os.getenv", "os.environ.get"})


def module_constants(
    a: FileAnalysis, site: cst.CSTNode, parts: Sequence[cst.CSTNode], exclude: Set[str]
) -> Tuple[str, ...]:
    """The module constants (see the module docstring) that ``parts`` (the loop's body)
    read, directly or through module-level helpers it calls, in order of first reading;
    minus ``exclude`` (the accumulators, the key's names, the loop's own names)."""
    table = _constant_table(a)
    if not table:
        return ()
    top = _top_level_index(a, site)
    if top is None:
        return ()
    found: List[str] = []
    seen_helpers: Set[int] = set()
    pending: List[Tuple[cst.CSTNode, int]] = [(part, 0) for part in parts]
    while pending:
        node, depth = pending.pop(0)
        for name in loads(node):
            value = name.value
            if value in exclude or value in found:
                continue
            if _is_global(a, name) and value in table and table[value] < top:
                found.append(value)
        if depth >= _HELPER_DEPTH:
            continue
        for helper in _called_helpers(a, node):
            if id(helper) not in seen_helpers:
                seen_helpers.add(id(helper))
                pending.append((helper.body, depth + 1))
    return tuple(found)


def _is_global(a: FileAnalysis, name: cst.Name) -> bool:
    """Whether ``name`` (a read) resolves to a binding of the module's global scope."""
    scope: Optional[Scope] = a.scopes.get(name)
    if scope is None:
        return False
    assignments = scope[name.value]
    return bool(assignments) and all(asg.scope is scope.globals for asg in assignments)


def _called_helpers(a: FileAnalysis, node: cst.CSTNode) -> List[cst.FunctionDef]:
    """The module-level functions that ``node`` calls by plain name."""
    helpers: List[cst.FunctionDef] = []
    for call in walk(node, ()):
        if not isinstance(call, cst.Call) or not isinstance(call.func, cst.Name):
            continue
        scope = a.scopes.get(call.func)
        if scope is None:
            continue
        assignments = list(scope[call.func.value])
        if len(assignments) != 1 or assignments[0].scope is not scope.globals:
            continue
        target = getattr(assignments[0], "node", None)
        if isinstance(target, cst.FunctionDef):
            helpers.append(target)
    return helpers


def _top_level_index(a: FileAnalysis, site: cst.CSTNode) -> Optional[int]:
    """The index in the module's body of the top-level statement that holds ``site``."""
    line = a.positions[site].start.line
    for index, stmt in enumerate(a.module.body):
        pos = a.positions.get(stmt)
        if pos is not None and pos.start.line <= line <= pos.end.line:
            return index
    return None


def _constant_table(a: FileAnalysis) -> Dict[str, int]:
    """Module constant name -> index of its binding statement in the module's body."""
    cached = _TABLES.get(a)
    if cached is not None:
        return cached
    candidates: Dict[str, Tuple[int, cst.BaseExpression]] = {}
    for index, stmt in enumerate(a.module.body):
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            continue
        small = stmt.body[0]
        if isinstance(small, cst.Assign) and len(small.targets) == 1:
            target, value = small.targets[0].target, small.value
        elif isinstance(small, cst.AnnAssign) and small.value is not None:
            target, value = small.target, small.value
        else:
            continue
        if isinstance(target, cst.Name):
            candidates[target.value] = (index, value)
    global_scope = a.scopes.get(a.module)
    changed = _changed_containers(a.module)
    table: Dict[str, int] = {}
    for name, (index, value) in candidates.items():
        # exactly one binding in the whole module: the one found (no rebinding, `global`, del, +=)
        if global_scope is None or len(list(global_scope.assignments[name])) != 1:
            continue
        if name in changed and not _immutable(value):
            continue
        if _simple(a, value, candidates, set()):
            table[name] = index
    _TABLES[a] = table
    return table


def _simple(
    a: FileAnalysis,
    value: cst.BaseExpression,
    candidates: Dict[str, Tuple[int, cst.BaseExpression]],
    seen: Set[str],
) -> bool:
    """Whether ``value`` is a literal or a simple expression of literals and constants."""
    if isinstance(value, (cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString, cst.ConcatenatedString)):
        return True
    if isinstance(value, cst.FormattedString):
        return all(
            _simple(a, part.expression, candidates, seen)
            for part in value.parts
            if isinstance(part, cst.FormattedStringExpression)
        )
    if isinstance(value, cst.Name):
        if value.value in ("True", "False", "None"):
            return True
        if value.value in seen or value.value not in candidates:
            return False
        return _simple(a, candidates[value.value][1], candidates, seen | {value.value})
    if isinstance(value, (cst.Tuple, cst.List, cst.Set)):
        return all(
            not isinstance(e, cst.StarredElement) and _simple(a, e.value, candidates, seen)
            for e in value.elements
        )
    if isinstance(value, cst.Dict):
        return all(
            isinstance(e, cst.DictElement)
            and _simple(a, e.key, candidates, seen)
            and _simple(a, e.value, candidates, seen)
            for e in value.elements
        )
    if isinstance(value, cst.UnaryOperation):
        return _simple(a, value.expression, candidates, seen)
    if isinstance(value, (cst.BinaryOperation, cst.BooleanOperation)):
        return _simple(a, value.left, candidates, seen) and _simple(a, value.right, candidates, seen)
    if isinstance(value, cst.Call):
        # MODEL = os.getenv("MODEL", "gpt-4o")   (read once when the module runs)
        return bool(a.qualified(value.func) & _ENV_READS) and all(
            arg.keyword is None and arg.star == "" and _simple(a, arg.value, candidates, seen)
            for arg in value.args
        )
    if isinstance(value, cst.Subscript):
        # KEY = os.environ["API_MODEL"]
        return (
            "os.environ" in a.qualified(value.value)
            and len(value.slice) == 1
            and isinstance(value.slice[0].slice, cst.Index)
            and _simple(a, value.slice[0].slice.value, candidates, seen)
        )
    return False


def _immutable(value: cst.BaseExpression) -> bool:
    return not isinstance(value, (cst.List, cst.Dict, cst.Set))


def _changed_containers(module: cst.Module) -> Set[str]:
    """Names whose object something in the module may change: ``NAME[k] = v``, ``NAME[k] += v``,
    ``del NAME[k]``, or any ``NAME.attr`` (``NAME.append(x)``, ``NAME.update(...)``)."""
    changed: Set[str] = set()
    for node in walk(module, ()):
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name):
            changed.add(node.value.value)
        targets: List[cst.BaseExpression] = []
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, cst.Del):
            targets = [node.target]
        for target in targets:
            for part in walk(target, ()):
                if isinstance(part, cst.Subscript) and isinstance(part.value, cst.Name):
                    changed.add(part.value.value)
    return changed
