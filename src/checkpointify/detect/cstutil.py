"""Small, pure helpers over LibCST trees: walking, names read and bound, statement blocks."""

from __future__ import annotations

import ast
import inspect
import textwrap
from typing import Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import libcst as cst

from checkpointify import catalogue

Block = Sequence[cst.BaseStatement]

#: nodes whose bodies run later or elsewhere (a walk of a loop body does not enter them)
PRUNE: Tuple[type, ...] = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
LOOPS: Tuple[type, ...] = (cst.For, cst.While)
COMPREHENSIONS: Tuple[type, ...] = (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)
_EMPTY = cst.Module(body=[])


#: id(node) -> (node, its children): LibCST computes ``node.children`` by running a visitor
#: over the node (as costly as a small walk), and the detectors walk the same statements
#: many times. The node is kept with its children, so an id cannot be reused while cached.
_CHILDREN: Dict[int, Tuple[cst.CSTNode, Sequence[cst.CSTNode]]] = {}
#: entries kept at most (about 100 bytes each): past this the cache starts again
_CHILDREN_LIMIT = 400_000


def children(node: cst.CSTNode) -> Sequence[cst.CSTNode]:
    """``node.children`` (in source order), computed once per node of the current file."""
    entry = _CHILDREN.get(id(node))
    if entry is not None and entry[0] is node:
        return entry[1]
    if len(_CHILDREN) >= _CHILDREN_LIMIT:
        _CHILDREN.clear()
    found = _children_of(node)
    _CHILDREN[id(node)] = (node, found)
    return found


def forget_children() -> None:
    """Drop the cache of :func:`children` (a new file is about to be analysed)."""
    _CHILDREN.clear()


#: the visit helpers of LibCST's ``_visit_and_replace_children``; each names the field it visits
_VISIT_HELPERS = frozenset(
    {
        "visit_required",
        "visit_optional",
        "visit_sentinel",
        "visit_iterable",
        "visit_sequence",
        "visit_body_iterable",
        "visit_body_sequence",
    }
)
#: node type -> the fields LibCST visits, in its visiting order (None: ask LibCST every time)
_VISITED_FIELDS: Dict[type, Optional[Tuple[str, ...]]] = {}
_NODE_TYPES: Dict[type, bool] = {}


def _children_of(node: cst.CSTNode) -> Sequence[cst.CSTNode]:
    """What ``node.children`` returns, read from the node's fields.

    LibCST computes ``children`` by rebuilding the node through a visitor (a new node,
    validated, per call: most of the cost of a walk). The same fields, read in the order
    its ``_visit_and_replace_children`` visits them (:func:`_visited_fields`), give the same
    nodes in the same order at a fraction of the cost.
    """
    kind = type(node)
    if kind in _VISITED_FIELDS:
        fields = _VISITED_FIELDS[kind]
    else:
        fields = _visited_fields(kind)
        if fields is not None and list(_read_fields(node, fields)) != list(node.children):
            fields = None  # a LibCST this code does not understand: its own (slow) answer
        _VISITED_FIELDS[kind] = fields
    if fields is None:
        return node.children
    return _read_fields(node, fields)


def _read_fields(node: cst.CSTNode, fields: Tuple[str, ...]) -> List[cst.CSTNode]:
    out: List[cst.CSTNode] = []
    for name in fields:
        value = getattr(node, name)
        kind = type(value)
        if kind is tuple or kind is list:
            out.extend(v for v in value if _is_node(type(v)))
        elif _is_node(kind):
            out.append(value)
    return out


def _is_node(kind: type) -> bool:
    """``issubclass(kind, cst.CSTNode)``, cached (an ABC's check is slow)."""
    known = _NODE_TYPES.get(kind)
    if known is None:
        known = _NODE_TYPES[kind] = issubclass(kind, cst.CSTNode)
    return known


def _visited_fields(kind: type) -> Optional[Tuple[str, ...]]:
    """The fields ``kind._visit_and_replace_children`` visits, in the order it visits them
    (the order of its ``visit_*(self, "field", ...)`` calls in its source: they are the
    arguments of one constructor call, evaluated left to right); None when its source
    cannot be read or does not have that form."""
    try:
        source = textwrap.dedent(inspect.getsource(kind._visit_and_replace_children))  # type: ignore[attr-defined]
        tree = ast.parse(source)
    except (AttributeError, OSError, TypeError, SyntaxError, ValueError):
        return None
    calls: List[Tuple[int, int, str]] = []
    for found in ast.walk(tree):
        if (
            isinstance(found, ast.Call)
            and isinstance(found.func, ast.Name)
            and found.func.id in _VISIT_HELPERS
        ):
            if len(found.args) < 2 or not isinstance(found.args[1], ast.Constant):
                return None
            field = found.args[1].value
            if not isinstance(field, str):
                return None
            calls.append((found.lineno, found.col_offset, field))
    ordered: List[str] = []
    for _, _, field in sorted(calls):
        if field not in ordered:  # ``names`` of ImportFrom: a node or a sequence, one field
            ordered.append(field)
    return tuple(ordered)


#: prune tuple -> node type -> whether a walk stops there
_PRUNED: Dict[Tuple[type, ...], Dict[type, bool]] = {}


def stops(kind: type, prune: Tuple[type, ...] = PRUNE) -> bool:
    """``issubclass(kind, prune)``, cached: what ``isinstance(node, prune)`` says of a node of
    type ``kind``, without an ABC's slow check on every node of a walk."""
    pruned = _PRUNED.get(prune)
    if pruned is None:
        pruned = _PRUNED[prune] = {}
    stop = pruned.get(kind)
    if stop is None:
        stop = pruned[kind] = issubclass(kind, prune)
    return stop


def walk(node: cst.CSTNode, prune: Tuple[type, ...] = PRUNE) -> Iterator[cst.CSTNode]:
    """Every node under ``node`` (itself included), not descending into ``prune`` types."""
    pruned = _PRUNED.get(prune)
    if pruned is None:
        pruned = _PRUNED[prune] = {}
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for child in reversed(children(current)):
            kind = type(child)
            stop = pruned.get(kind)
            if stop is None:
                stop = pruned[kind] = issubclass(kind, prune)
            if not stop:
                stack.append(child)


def all_names(module: cst.Module) -> FrozenSet[str]:
    """Every identifier that appears anywhere in the module (to pick names that are free)."""
    return frozenset(node.value for node in walk(module, ()) if isinstance(node, cst.Name))


def code_of(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def callee_text(func: cst.BaseExpression) -> str:
    """``json.dump``, ``writer.writerows``, ``pd.DataFrame(...).to_csv``: the callee, arguments elided."""
    if isinstance(func, cst.Name):
        return func.value
    if isinstance(func, cst.Attribute):
        return "%s.%s" % (callee_text(func.value), func.attr.value)
    if isinstance(func, cst.Call):
        return "%s(...)" % callee_text(func.func)
    if isinstance(func, cst.Subscript):
        return "%s[...]" % callee_text(func.value)
    return "<expression>"


def last_name(func: cst.BaseExpression) -> str:
    """The called name: ``attr`` of ``x.attr``, ``name`` of ``name``, else ``""``."""
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return ""


def bound_calls(module: cst.Module) -> List[Tuple[cst.Call, List[cst.BaseExpression]]]:
    """Every call bound to names, with its targets: ``x = f(...)`` and ``with f(...) as x``,
    in source order. Both are statements (an expression holds neither), so only statements
    are visited (:func:`every_statement`), not the much larger expressions."""
    found: List[Tuple[cst.Call, List[cst.BaseExpression]]] = []
    for node in every_statement(module):
        if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
            found.append((node.value, [t.target for t in node.targets]))
        elif isinstance(node, cst.With):
            for item in node.items:
                if item.asname is not None and isinstance(item.item, cst.Call):
                    found.append((item.item, [item.asname.name]))
    return found


def every_statement(module: cst.Module) -> Iterator[cst.CSTNode]:
    """Every statement of the module, small ones (``x = 1``, ``import a``) and compound ones,
    at any depth (in functions, classes and one-line suites too), in source order; an ``elif``
    is part of its ``if``, not a statement of its own."""
    stack: List[cst.CSTNode] = list(reversed(module.body))
    while stack:
        node = stack.pop()
        if isinstance(node, cst.SimpleStatementLine):
            stack.extend(reversed(node.body))
            continue
        yield node
        if isinstance(node, cst.BaseCompoundStatement):
            inner: List[cst.CSTNode] = []
            for suite in _suites(node):
                inner.extend(suite.body)
            stack.extend(reversed(inner))


def _suites(stmt: cst.BaseCompoundStatement) -> List[cst.BaseSuite]:
    """The suites of a compound statement, in source order (``else`` and handlers included)."""
    if isinstance(stmt, (cst.FunctionDef, cst.ClassDef, cst.With)):
        return [stmt.body]
    if isinstance(stmt, (cst.For, cst.While)):
        return [stmt.body] + ([stmt.orelse.body] if stmt.orelse is not None else [])
    if isinstance(stmt, cst.If):
        out: List[cst.BaseSuite] = [stmt.body]
        orelse: Optional[cst.CSTNode] = stmt.orelse
        while orelse is not None:
            if isinstance(orelse, cst.If):
                out.append(orelse.body)
                orelse = orelse.orelse
            else:
                assert isinstance(orelse, cst.Else)
                out.append(orelse.body)
                orelse = None
        return out
    if isinstance(stmt, (cst.Try, cst.TryStar)):
        out = [stmt.body] + [h.body for h in stmt.handlers]
        if stmt.orelse is not None:
            out.append(stmt.orelse.body)
        if stmt.finalbody is not None:
            out.append(stmt.finalbody.body)
        return out
    if isinstance(stmt, cst.Match):
        return [case.body for case in stmt.cases]
    return _outer_suites(stmt)  # a compound statement this code does not know (a newer LibCST)


def _outer_suites(node: cst.CSTNode) -> List[cst.BaseSuite]:
    """The suites under ``node`` that are not inside another of them, in source order."""
    out: List[cst.BaseSuite] = []
    for child in children(node):
        if isinstance(child, cst.BaseSuite):
            out.append(child)
        else:
            out.extend(_outer_suites(child))
    return out


def target_name(node: cst.CSTNode) -> Optional[str]:
    """``results`` for a Name; ``self.results`` for an attribute of self; else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
        return "self.%s" % node.attr.value
    return None


def names_in(node: cst.CSTNode) -> Set[str]:
    """Names and ``self.x`` attributes that appear anywhere in ``node`` (nested scopes excluded)."""
    found: Set[str] = set()
    for n in walk(node, (cst.FunctionDef, cst.ClassDef)):
        name = target_name(n)
        if name is not None:
            found.add(name)
    return found


def loads(node: cst.CSTNode) -> Iterator[cst.Name]:
    """Name nodes read under ``node`` (assignment targets skipped), in source order."""
    stack: List[cst.CSTNode] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Name):
            yield current
            continue
        skip: Set[int] = set()
        if isinstance(current, cst.Assign):
            skip = {id(t) for t in current.targets}
        elif isinstance(current, (cst.AnnAssign, cst.NamedExpr, cst.For, cst.CompFor)):
            skip = {id(current.target)}
        elif isinstance(current, cst.WithItem) and current.asname is not None:
            skip = {id(current.asname)}
        elif isinstance(current, cst.Attribute):
            skip = {id(current.attr)}
        elif isinstance(current, cst.Arg) and current.keyword is not None:
            skip = {id(current.keyword)}
        elif isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Param)):
            skip = {id(current.name)}
        stack.extend(c for c in reversed(children(current)) if id(c) not in skip)


def assigned_names(target: cst.CSTNode) -> Set[str]:
    """Names bound by an assignment or loop target (``a, (b, c)`` -> a, b, c)."""
    if isinstance(target, (cst.Name, cst.Attribute)):
        name = target_name(target)
        return {name} if name else set()
    if isinstance(target, (cst.Tuple, cst.List)):
        out: Set[str] = set()
        for element in target.elements:
            out |= assigned_names(element.value)
        return out
    if isinstance(target, cst.StarredElement):
        return assigned_names(target.value)
    return set()


def assignment_targets(node: cst.CSTNode) -> Set[str]:
    """Names a single node binds (an assignment, a ``for``, a walrus, ``with ... as``, ``except ... as``)."""
    if isinstance(node, cst.Assign):
        out: Set[str] = set()
        for t in node.targets:
            out |= assigned_names(t.target)
        return out
    if isinstance(node, (cst.AnnAssign, cst.AugAssign, cst.For, cst.NamedExpr)):
        return assigned_names(node.target)
    if isinstance(node, cst.WithItem) and node.asname is not None:
        return assigned_names(node.asname.name)
    if isinstance(node, cst.ExceptHandler) and node.name is not None:
        return assigned_names(node.name.name)  # except Exception as e:
    return set()


def bound_in(stmt: cst.CSTNode) -> Set[str]:
    """Every name a statement binds anywhere inside it (nested scopes excluded)."""
    names: Set[str] = set()
    for node in walk(stmt):
        names |= assignment_targets(node)
    return names


def single_assignment(stmt: cst.CSTNode) -> Optional[Tuple[str, cst.BaseExpression]]:
    """``name = value`` (or ``name: T = value``) on a line of its own."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return None
    small = stmt.body[0]
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        name = target_name(small.targets[0].target)
        return (name, small.value) if name else None
    if isinstance(small, cst.AnnAssign) and small.value is not None:
        name = target_name(small.target)
        return (name, small.value) if name else None
    return None


def unpacked_value(stmt: cst.CSTNode, name: str) -> Optional[cst.BaseExpression]:
    """The element bound to ``name`` by ``a, name = [], []`` (a tuple of names from a tuple
    display of the same length, no starred element) on a line of its own."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return None
    small = stmt.body[0]
    if not isinstance(small, cst.Assign) or len(small.targets) != 1:
        return None
    target, value = small.targets[0].target, small.value
    if not isinstance(target, (cst.Tuple, cst.List)) or not isinstance(value, (cst.Tuple, cst.List)):
        return None
    if len(target.elements) != len(value.elements) or any(
        isinstance(e, cst.StarredElement) for e in (*target.elements, *value.elements)
    ):
        return None
    names = [target_name(e.value) for e in target.elements]
    if names.count(name) != 1:
        return None
    return value.elements[names.index(name)].value


def read_after(name: str, statements: Iterable[cst.BaseStatement]) -> bool:
    """Whether ``statements`` (run in order) may read the value ``name`` has on entry."""
    for stmt in statements:
        assigned = single_assignment(stmt)
        if assigned is not None and assigned[0] == name and name not in {n.value for n in loads(assigned[1])}:
            return False  # rebound before anything reads it
        if any(n.value == name for n in loads(stmt)) and not _reads_own_binding(stmt, name):
            return True
    return False


def _reads_own_binding(stmt: cst.CSTNode, name: str) -> bool:
    """Every read of ``name`` in ``stmt`` sees a binding ``stmt`` made first.

    ``for name in other: use(name)``, and ``for s in other: name = f(s); use(name)`` (the
    body rebinds it before reading it, in every iteration).
    """
    if not isinstance(stmt, (cst.For, cst.While)):
        return False
    header = stmt.iter if isinstance(stmt, cst.For) else stmt.test
    if any(n.value == name for n in loads(header)):
        return False
    if stmt.orelse is not None and any(n.value == name for n in loads(stmt.orelse)):
        return False
    if isinstance(stmt, cst.For) and name in assigned_names(stmt.target):
        return True
    return not read_after(name, body_of(stmt.body))


def escapes_block(stmt: cst.BaseStatement) -> bool:
    """A ``break``/``continue`` in ``stmt`` that is not inside a loop of its own."""
    stack: List[cst.CSTNode] = [stmt]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.Break, cst.Continue)):
            return True
        stack.extend(c for c in children(node) if not isinstance(c, PRUNE + LOOPS))
    return False


def exits(stmt: cst.BaseStatement) -> Optional[str]:
    """The first ``return``/``raise``/block-leaving ``break`` or ``continue`` in ``stmt``, as code.

    A function or class defined by ``stmt`` exits nothing (a notebook defines helpers in
    the cells between a loop and its save: their ``return`` is not the block's).
    """
    if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
        return None
    for node in walk(stmt):
        if isinstance(node, (cst.Return, cst.Raise)):
            return code_of(node).split("\n")[0].strip()
    return "break or continue" if escapes_block(stmt) else None


def body_of(suite: cst.BaseSuite) -> Block:
    return suite.body if isinstance(suite, cst.IndentedBlock) else ()


def statement_blocks(stmt: cst.BaseStatement) -> Iterator[Block]:
    """The statement lists directly inside a compound statement (not functions or classes)."""
    if isinstance(stmt, (cst.For, cst.While)):
        yield body_of(stmt.body)
        if stmt.orelse is not None:
            yield body_of(stmt.orelse.body)
    elif isinstance(stmt, cst.If):
        yield body_of(stmt.body)
        orelse = stmt.orelse
        while orelse is not None:
            yield body_of(orelse.body)
            orelse = orelse.orelse if isinstance(orelse, cst.If) else None
    elif isinstance(stmt, (cst.Try, cst.TryStar)):
        yield body_of(stmt.body)
        for handler in stmt.handlers:
            yield body_of(handler.body)
        if stmt.orelse is not None:
            yield body_of(stmt.orelse.body)
        if stmt.finalbody is not None:
            yield body_of(stmt.finalbody.body)
    elif isinstance(stmt, cst.With):
        yield body_of(stmt.body)
    elif isinstance(stmt, cst.Match):
        for case in stmt.cases:
            yield body_of(case.body)


def for_clauses(clause: cst.CompFor) -> List[cst.CompFor]:
    """The ``for`` clauses of a comprehension, outermost first."""
    out = [clause]
    inner = clause.inner_for_in
    while inner is not None:
        out.append(inner)
        inner = inner.inner_for_in
    return out


def is_self_concat(name: str, value: cst.BaseExpression) -> bool:
    """``total = total + x``: a rebinding accumulation."""
    return isinstance(value, cst.BinaryOperation) and target_name(value.left) == name


def is_concat_growth(name: str, value: cst.BaseExpression) -> bool:
    """``preds = torch.cat((preds, out))``, ``np.concatenate([preds, out])``, ``np.append(preds,
    out)`` (a module's function of ``catalogue.CONCAT_FUNCTIONS`` whose first argument is, or
    lists, ``name``), also as a branch of ``out if preds is None else torch.cat(...)``."""
    if isinstance(value, cst.IfExp):
        return is_concat_growth(name, value.body) or is_concat_growth(name, value.orelse)
    if (
        not isinstance(value, cst.Call)
        or not isinstance(value.func, cst.Attribute)
        or value.func.attr.value not in catalogue.CONCAT_FUNCTIONS
        or not value.args
        or value.args[0].keyword is not None
    ):
        return False
    first = value.args[0].value
    if target_name(first) == name:
        return True
    return isinstance(first, (cst.List, cst.Tuple)) and any(
        isinstance(e, cst.Element) and target_name(e.value) == name for e in first.elements
    )


def is_std_stream(node: cst.BaseExpression) -> bool:
    """``sys.stdout`` / ``sys.stderr`` (or any ``sys.<attr>``)."""
    return isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "sys"
