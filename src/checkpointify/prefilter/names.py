"""Name helpers over the standard ``ast`` tree: the ``ast`` twins of ``detect.cstutil``."""

from __future__ import annotations

import ast
from typing import (
    Any,
    Callable,
    Iterable,
    Iterator,
    List,
    Optional,
    Set,
    Tuple,
)

#: cstutil.PRUNE: nodes whose bodies run elsewhere
_PRUNE = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def full_name(node: ast.AST) -> Optional[str]:
    """``libcst.helpers.get_full_name_for_node`` over ``ast``: ``a.b`` for ``a.b(x)``, ``a[0]``...

    Like LibCST, an attribute of an unsupported value gives ``None.attr``.
    """
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return "%s.%s" % (full_name(node.value), node.attr)
    if isinstance(node, ast.Call):
        return full_name(node.func)
    if isinstance(node, ast.Subscript):
        return full_name(node.value)
    return None


def target_name(node: ast.AST) -> Optional[str]:
    """``cstutil.target_name``: ``x`` for a name, ``self.x`` for an attribute of self."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return "self.%s" % node.attr
    return None


def assigned_names(target: ast.AST) -> Set[str]:
    """``cstutil.assigned_names``: names a target binds (``a, (b, c)`` -> a, b, c)."""
    if isinstance(target, (ast.Name, ast.Attribute)):
        name = target_name(target)
        return {name} if name else set()
    if isinstance(target, (ast.Tuple, ast.List)):
        out: Set[str] = set()
        for element in target.elts:
            out |= assigned_names(element)
        return out
    if isinstance(target, ast.Starred):
        return assigned_names(target.value)
    return set()


def names_in(node: ast.AST) -> Set[str]:
    """Every name and ``self.x`` under ``node`` (a superset of ``cstutil.names_in``)."""
    found: Set[str] = set()
    for sub in walk(node):
        name = target_name(sub)
        if name is not None:
            found.add(name)
    return found


def callee_name(func: ast.AST) -> str:
    """The called name: ``f`` of ``f(x)``, ``m`` of ``obj.m(x)``, else ``""``."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def walk(node: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk``, about twice as fast (no generator per node; no ``Load``/``Store`` context)."""
    stack: List[Any] = [node]
    while stack:
        current = stack.pop()
        if not isinstance(current, ast.AST):
            continue  # a None in a list (a dict's ** key), or a string (Global.names)
        yield current
        for field in current._fields:
            if field == "ctx":
                continue
            value = getattr(current, field, None)
            if value.__class__ is list:
                stack.extend(value)
            elif isinstance(value, ast.AST):
                stack.append(value)


def pruned_walk(node: ast.AST, prune: Tuple[type, ...] = _PRUNE) -> Iterator[ast.AST]:
    """``cstutil.walk``: ``node`` and everything under it, not entering functions, classes,
    lambdas (or the node types ``prune`` names)."""
    stack: List[Any] = [node]
    while stack:
        current = stack.pop()
        if not isinstance(current, ast.AST):
            continue
        yield current
        for field in current._fields:
            if field == "ctx":
                continue
            value = getattr(current, field, None)
            if value.__class__ is list:
                stack.extend(v for v in value if not isinstance(v, prune))
            elif isinstance(value, ast.AST) and not isinstance(value, prune):
                stack.append(value)


def _walk_all(
    nodes: Iterable[ast.AST], walker: Callable[[ast.AST], Iterator[ast.AST]] = walk
) -> Iterator[ast.AST]:
    for node in nodes:
        yield from walker(node)
