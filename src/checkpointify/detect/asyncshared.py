"""collect-async-shared: coroutines that append to a shared list, gathered, then the list saved.

The coroutine returns nothing; it appends to a list (a global, or one passed in as an
argument, possibly through several functions), the calls are gathered (often bounded by a
semaphore) in one function, run by ``asyncio.run(...)`` in another, and the list is saved
afterwards::

    results = []
    async def process(item, sem):
        async with sem:
            results.append({"id": item["id"], "out": await call_llm(item)})
    async def main(items):
        sem = asyncio.Semaphore(8)
        await asyncio.gather(*(process(x, sem) for x in items))   # the site (the finding's line)
    asyncio.run(main(items))
    json.dump(results, open("out.json", "w"))

The unit is one call of the coroutine; the rewrite (``rewrite/asyncshared.py``) wraps each
call (``par.appends(results, process, x, sem)``) and each append inside the coroutine
(``par.append(results, v)``), opens the handle (``runtime.shared_appends``) before the
list's binding and completes it after the save. The calls may be made by a generator or
list in ``gather(*...)``, ``create_task``/``ensure_future`` (a ``TaskGroup``'s included), or a
list of coroutines or tasks consumed by ``gather``/``wait``/``as_completed``.

A second, fix-less shape: ``raw = []; asyncio.run(job(..., raw)); <save raw>`` where ``job``
is not defined in the file (the appends are out of sight).

This runs only when cheap checks pass (an ``async def`` with an ``.append`` to a name it
does not bind, or a module-level ``asyncio.run``); it walks the module once for calls,
then only those functions. Its ``ast`` twin is ``prefilter.tree._Module._async_shared_sites``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import libcst as cst

from checkpointify import catalogue
from checkpointify.detect import hazards as hz
from checkpointify.detect.analysis import Chain, FileAnalysis
from checkpointify.detect.cstutil import (
    PRUNE,
    assignment_targets,
    body_of,
    callee_text,
    last_name,
    names_in,
    single_assignment,
    statement_blocks,
    walk,
)
from checkpointify.detect.flow import Sink, completion_anchor, find_sink, statements_between
from checkpointify.rules import COLLECT_ASYNC_SHARED
from checkpointify.types import Hazard

if TYPE_CHECKING:
    from checkpointify.detect.matcher import Plan

_MAX_DEPTH = 4  # how many functions a list may be handed through
#: what the functions that run the calls may do with the list besides handing it on (they
#: also read it: ``len(results)`` after the gather)
_AFTER_RUN_METHODS = frozenset({"sort", "copy", "count", "index"})


@dataclass
class _Coroutine:
    """An ``async def`` that appends to ``name``: a global (``param`` None) or its parameter."""

    fn: cst.FunctionDef
    name: str
    param: Optional[Tuple[Optional[int], str]]  # (positional index or None, parameter name)
    appends: List[cst.Call]
    problems: List[str] = field(default_factory=list)


_FIELDS: Dict[type, Tuple[str, ...]] = {}
#: the nodes ``cstutil.assignment_targets`` reads
_BINDERS = (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.For, cst.NamedExpr, cst.WithItem, cst.ExceptHandler)


def _children(node: cst.CSTNode) -> List[cst.CSTNode]:
    """``node.children`` without its visitor (it costs most of a walk): the node's fields that
    hold nodes or sequences of nodes, in declaration order."""
    kind = type(node)
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(kind.__dataclass_fields__)
    out: List[cst.CSTNode] = []
    for name in names:
        value = getattr(node, name)
        if _is_node(type(value)):
            out.append(value)
        elif type(value) in (list, tuple):
            out.extend(v for v in value if _is_node(type(v)))
    return out


_NODE_TYPES: Dict[type, bool] = {}


def _is_node(kind: type) -> bool:
    """``issubclass(kind, cst.CSTNode)``, cached (an ABC's check is slow)."""
    known = _NODE_TYPES.get(kind)
    if known is None:
        known = _NODE_TYPES[kind] = issubclass(kind, cst.CSTNode)
    return known


def _walk(node: cst.CSTNode, prune: Tuple[type, ...] = PRUNE) -> Iterator[cst.CSTNode]:
    """``cstutil.walk`` over :func:`_children` (the same nodes, not the same order)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(c for c in _children(current) if not isinstance(c, prune))


@dataclass
class _CallSite:
    call: cst.Call
    function: Optional[cst.FunctionDef]  # the innermost enclosing function
    parents: Tuple[cst.CSTNode, ...]  # the nearest ancestors, innermost first


class _Calls:
    """One walk of the module: calls of plain names (``f(...)``), each with its function and
    nearest ancestors; and in which functions each name, and ``name.attr``, occurs."""

    def __init__(self, module: cst.Module) -> None:
        self.by_name: Dict[str, List[_CallSite]] = {}
        #: name -> ids of the innermost functions it occurs in (id(None): the module's scope)
        self.names: Dict[str, Set[int]] = {}
        #: name -> (attribute, innermost function) for every ``name.attribute``
        self.attributes: Dict[str, List[Tuple[str, Optional[cst.FunctionDef]]]] = {}
        stack: List[Tuple[cst.CSTNode, Tuple[cst.CSTNode, ...], Optional[cst.FunctionDef]]] = [
            (module, (), None)
        ]
        while stack:
            node, parents, fn = stack.pop()
            if isinstance(node, cst.Name):
                self.names.setdefault(node.value, set()).add(id(fn))
            elif isinstance(node, cst.Call) and isinstance(node.func, cst.Name):
                self.by_name.setdefault(node.func.value, []).append(_CallSite(node, fn, parents))
            elif isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name):
                self.attributes.setdefault(node.value.value, []).append((node.attr.value, fn))
            inner = node if isinstance(node, cst.FunctionDef) else fn
            up = (node, *parents[:2])
            stack.extend((child, up, inner) for child in _children(node))


@dataclass
class _Terminal:
    """Where the list is made: ``name = []`` in ``function`` (None: the module)."""

    name: str
    function: Optional[cst.FunctionDef]
    binding: cst.BaseStatement


# ----------------------------------------------------------------------------- gates


def _async_functions(a: FileAnalysis) -> List[cst.FunctionDef]:
    return [f for f in a.functions.values() if f.asynchronous is not None]


def _params(fn: cst.FunctionDef) -> Tuple[List[str], List[str]]:
    p = fn.params
    return [x.name.value for x in (*p.posonly_params, *p.params)], [x.name.value for x in p.kwonly_params]


def _binds(fn: cst.FunctionDef, name: str) -> bool:
    """Whether ``fn`` binds ``name`` locally (an assignment, a loop or ``with`` target...)."""
    nodes = list(_walk(fn.body))
    if any(isinstance(node, cst.Global) and any(n.name.value == name for n in node.names) for node in nodes):
        return False
    return any(name in assignment_targets(node) for node in nodes if isinstance(node, _BINDERS))


def _coroutines(a: FileAnalysis) -> List[_Coroutine]:
    """Every ``async def`` that appends to a name it does not bind, or to its parameter."""
    found: List[_Coroutine] = []
    for fn in _async_functions(a):
        appends: Dict[str, List[cst.Call]] = {}
        names: Dict[str, int] = {}
        for node in _walk(fn.body):
            if isinstance(node, cst.Name):
                names[node.value] = names.get(node.value, 0) + 1
            elif isinstance(node, cst.Global):  # global results   (declares, does not use)
                for item in node.names:
                    names[item.name.value] = names.get(item.name.value, 0) - 1
            if (
                isinstance(node, cst.Call)
                and isinstance(node.func, cst.Attribute)
                and node.func.attr.value == "append"
                and isinstance(node.func.value, cst.Name)
                and len(node.args) == 1
                and not node.args[0].star
                and node.args[0].keyword is None
            ):
                appends.setdefault(node.func.value.value, []).append(node)
        positional, kwonly = _params(fn)
        for name, calls in appends.items():
            if name in positional:
                param: Optional[Tuple[Optional[int], str]] = (positional.index(name), name)
            elif name in kwonly:
                param = (None, name)
            elif _binds(fn, name):
                continue  # rows = []; ...; rows.append(r)   (the coroutine's own list)
            else:
                param = None
            co = _Coroutine(fn, name, param, calls)
            if names.get(name, 0) != len(calls):
                # async def work(x): results.append(f(x)); print(len(results))
                co.problems.append(
                    "`%s` is also read or changed inside `%s()`, not only appended to, so what a call "
                    "appended cannot be replayed on its own" % (name, fn.name.value)
                )
            found.append(co)
    return found


# ----------------------------------------------------------------------------- entry


def find(a: FileAnalysis) -> List[Plan]:
    """Every shared-list plan of the module (cheap when the gates fail)."""
    plans: List[Plan] = []
    coroutines = _coroutines(a) if _async_functions(a) else []
    calls: Optional[_Calls] = None
    if coroutines:
        calls = _Calls(a.module)
        for co in coroutines:
            plan = _site_plan(a, calls, co)
            if plan is not None and all(plan.statement is not p.statement for p in plans):
                plans.append(plan)
    plans.extend(_handoff_plans(a))
    return plans


# ----------------------------------------------------------------------------- the site


def _site(a: FileAnalysis, fn: cst.FunctionDef) -> Optional[Tuple[cst.BaseStatement, bool]]:
    """The statement of ``fn`` that waits for the calls (``await asyncio.gather(*tasks)``, a
    loop over ``as_completed``, ``async with TaskGroup()``), and whether it drops the results."""
    for stmt in _statements(body_of(fn.body)):
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if any(
                    isinstance(n, cst.Call)
                    and (
                        a.qualified(n.func) & catalogue.ASYNC_WAITS
                        or last_name(n.func) in catalogue.ASYNC_WAIT_NAMES
                    )
                    for n in walk(small)
                ):
                    dropped = isinstance(small, cst.Expr)
                    return stmt, dropped
        elif isinstance(stmt, cst.For) and any(
            isinstance(n, cst.Call) and a.qualified(n.func) & catalogue.ASYNC_WAITS for n in walk(stmt.iter)
        ):
            return stmt, False
        elif isinstance(stmt, cst.With) and stmt.asynchronous is not None:
            if any(
                isinstance(item.item, cst.Call) and last_name(item.item.func) == catalogue.TASK_GROUP
                for item in stmt.items
            ):
                return stmt, True
    return None


def _statements(block: Sequence[cst.BaseStatement]) -> Iterator[cst.BaseStatement]:
    """Every statement of a block and of the blocks inside it (not of nested functions)."""
    for stmt in block:
        yield stmt
        if not isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            for inner in statement_blocks(stmt):
                yield from _statements(list(inner))


def _in_parallel(site: _CallSite) -> bool:
    """``create_task(work(x))``, ``(work(x) for x in xs)``, ``task = work(x)``,
    ``tasks.append(work(x))``: a call made now and awaited with the others (not ``await work(x)``)."""
    parents = site.parents
    if not parents:
        return False
    first = parents[0]
    if isinstance(first, (cst.GeneratorExp, cst.ListComp)) and first.elt is site.call:
        return True
    if isinstance(first, cst.Arg) and len(parents) > 1 and isinstance(parents[1], cst.Call):
        owner = parents[1]
        return last_name(owner.func) in catalogue.TASK_METHODS or (
            isinstance(owner.func, cst.Attribute) and owner.func.attr.value == "append"
        )
    return isinstance(first, cst.Assign) and first.value is site.call


def _argument(call: cst.Call, param: Tuple[Optional[int], str]) -> Optional[cst.BaseExpression]:
    index, name = param
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    positional = [arg for arg in call.args if arg.keyword is None]
    if any(arg.star for arg in positional):
        return None
    if index is not None and index < len(positional):
        return positional[index].value
    return None


def _site_plan(a: FileAnalysis, calls: _Calls, co: _Coroutine) -> Optional[Plan]:
    sites = calls.by_name.get(co.fn.name.value, [])
    if not sites:
        return None
    problems = list(co.problems)
    wrapped = [s for s in sites if _in_parallel(s)]
    if not wrapped:
        # for x in xs: await work(x)   (one at a time: a loop, matcher._LoopSite)
        return None
    if len(wrapped) != len(sites):
        problems.append("`%s()` is also called one at a time elsewhere" % co.fn.name.value)
    gatherers = {id(s.function): s.function for s in wrapped}
    if len(gatherers) != 1 or wrapped[0].function is None:
        return None
    gatherer = wrapped[0].function
    found_site = _site(a, gatherer)
    if found_site is None:
        return None
    site_stmt, dropped = found_site
    if not dropped and _returns_value(co.fn):
        problems.append(
            "`%s()` also returns a value that the program reads, besides appending" % co.fn.name.value
        )
    # the list each call appends to, as the gathering function names it, and where it is made
    path: Set[str] = {gatherer.name.value}
    heres: Set[str] = set()
    for s in wrapped:
        arg = _argument(s.call, co.param) if co.param is not None else cst.Name(co.name)
        if not isinstance(arg, cst.Name):
            # process(x, lists[k])   (which list a call appends to is not a name)
            return None
        heres.add(arg.value)
    if len(heres) != 1:
        return None
    local = heres.pop()
    # a global, a closure over the gatherer's list or parameter, or a parameter handed down
    terminal = _resolve(a, calls, local, gatherer, 0, path)
    if terminal is None:
        return None
    reaching = _reaching(calls, gatherer.name.value)
    found = _sink(a, calls, terminal, gatherer, site_stmt, local, reaching)
    if found is None:
        # the list is printed, returned or dropped: nothing is lost
        return None
    sink, chain, index = found
    hazards = hz.Hazards()
    hz.check_exits(hazards, statements_between(chain, index, sink))
    if terminal.function is not None and not _inside(terminal.function, gatherer):
        problems.append(
            "`%s` is made in `%s()` but filled by calls in `%s()`; pass nothing else and bind it at module level "
            "for a fix" % (terminal.name, terminal.function.name.value, gatherer.name.value)
        )
    site_calls = {id(n) for n in walk(site_stmt) if isinstance(n, cst.Call)}
    problems.extend(_other_uses(a, calls, terminal, co, reaching | path, site_calls, {terminal.name, local}))
    for problem in problems[:1]:
        hazards.add(Hazard.UNSUPPORTED_SHAPE, problem)
    forms: List[Tuple[cst.Call, str]] = []
    for s in wrapped:
        arg = _argument(s.call, co.param) if co.param is not None else None
        forms.append((s.call, "appends:%s" % (arg.value if isinstance(arg, cst.Name) else co.name)))
    forms.extend((call, "append") for call in co.appends)
    return _plan(a, co, terminal, site_stmt, sink, forms, hazards)


def _returns_value(fn: cst.FunctionDef) -> bool:
    return any(
        isinstance(n, cst.Return)
        and n.value is not None
        and not (isinstance(n.value, cst.Name) and n.value.value == "None")
        for n in walk(fn.body)
    )


def _inside(outer: cst.FunctionDef, inner: cst.FunctionDef) -> bool:
    return outer is inner or any(n is inner for n in walk(outer.body, ()))


def _module_binding(a: FileAnalysis, name: str) -> Optional[cst.BaseStatement]:
    """The last module-level ``name = []``, when every module-level binding of ``name`` is
    one (``raw = []`` at the top and again under ``if __name__ == "__main__":``)."""
    bindings = [
        stmt
        for stmt in _statements(list(a.module.body))
        if not isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) and name in _bound(stmt)
    ]
    for stmt in bindings:
        assigned = single_assignment(stmt)
        if assigned is None or not _empty_list(assigned[1]):
            return None
    return bindings[-1] if bindings else None


def _bound(stmt: cst.BaseStatement) -> Set[str]:
    if isinstance(stmt, cst.SimpleStatementLine):
        out: Set[str] = set()
        for small in stmt.body:
            out |= assignment_targets(small)
        return out
    if isinstance(stmt, cst.For):
        return assignment_targets(stmt.target)
    return set()


def _empty_list(value: cst.BaseExpression) -> bool:
    return (isinstance(value, cst.List) and not value.elements) or (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Name)
        and value.func.value == "list"
        and not value.args
    )


def _resolve(
    a: FileAnalysis,
    calls: _Calls,
    name: str,
    fn: Optional[cst.FunctionDef],
    depth: int,
    path: Set[str],
) -> Optional[_Terminal]:
    """Where the list ``name`` (as ``fn`` sees it) is made, following parameters to callers."""
    if depth > _MAX_DEPTH:
        return None
    if fn is not None:
        positional, kwonly = _params(fn)
        if name in positional or name in kwonly:
            param = (positional.index(name) if name in positional else None, name)
            callers = calls.by_name.get(fn.name.value, [])
            terminal: Optional[_Terminal] = None
            for caller in callers:
                arg = _argument(caller.call, param)
                if not isinstance(arg, cst.Name):
                    return None
                term = _resolve(a, calls, arg.value, caller.function, depth + 1, path)
                if term is None or (terminal is not None and term.binding is not terminal.binding):
                    return None
                terminal = term
                if caller.function is not None:
                    path.add(caller.function.name.value)
            return terminal
        if _binds(fn, name):
            bindings = [
                s
                for s in _statements(list(body_of(fn.body)))
                if isinstance(s, cst.SimpleStatementLine) and name in _bound(s)
            ]
            assigned = single_assignment(bindings[0]) if len(bindings) == 1 else None
            if assigned is None or not _empty_list(assigned[1]):
                return None
            return _Terminal(name, fn, bindings[0])
    binding = _module_binding(a, name)
    return _Terminal(name, None, binding) if binding is not None else None


def _reaching(calls: _Calls, start: str) -> Set[str]:
    """``start`` and every function that calls it, directly or not (by name)."""
    found = {start}
    todo = [start]
    while todo:
        for site in calls.by_name.get(todo.pop(), []):
            if site.function is not None and site.function.name.value not in found:
                found.add(site.function.name.value)
                todo.append(site.function.name.value)
    return found


def _chains(chain: Chain) -> Iterator[Tuple[Chain, int, cst.BaseStatement]]:
    """The statements of ``chain`` and of the ``with``/``if``/``try`` blocks in it, in order
    (the blocks built as ``matcher._child_blocks`` builds them)."""
    for index, stmt in enumerate(chain.body):
        yield chain, index, stmt
        if isinstance(stmt, cst.With):
            yield from _chains(Chain(body_of(stmt.body), stmt, chain, index))
        elif isinstance(stmt, (cst.If, cst.Try)):
            for block in statement_blocks(stmt):
                yield from _chains(Chain(list(block), stmt, None, index, enclosing=chain))


def _calls_any(stmt: cst.BaseStatement, names: Set[str], nodes: Set[int]) -> bool:
    return any(
        isinstance(n, cst.Call)
        and (id(n) in nodes or (isinstance(n.func, cst.Name) and n.func.value in names))
        for n in walk(stmt)
    )


def _sink(
    a: FileAnalysis,
    calls: _Calls,
    terminal: _Terminal,
    gatherer: cst.FunctionDef,
    site_stmt: cst.BaseStatement,
    local: str,
    reaching: Set[str],
) -> Optional[Tuple[Sink, Chain, int]]:
    """The save of the list: after the site in the gathering function, else after the
    statement of the list's own scope that (through calls) runs the site."""
    for chain, index, stmt in _chains(Chain(body_of(gatherer.body), gatherer)):
        if stmt is site_stmt:
            found = _save_after(a, chain, index, local)
            if found is not None:
                return found
    started = False
    site_calls = {id(n) for n in walk(site_stmt) if isinstance(n, cst.Call)}
    for chain, index, stmt in _chains(_scope(a, terminal)):
        if stmt is terminal.binding:
            started = True
            continue
        if not started or isinstance(stmt, (cst.FunctionDef, cst.ClassDef, cst.If, cst.Try, cst.With)):
            continue
        if _calls_any(stmt, reaching, site_calls):
            return _save_after(a, chain, index, terminal.name)
    return None


def _save_after(a: FileAnalysis, chain: Chain, index: int, name: str) -> Optional[Tuple[Sink, Chain, int]]:
    """The save of ``name`` after ``chain.body[index]``, also when a loop first reshapes it
    (``for batch in results: for k, v in batch.items(): rows.append(...)``, then ``rows`` saved);
    with the index the hazards are checked from."""
    sink = find_sink(a, chain, index, {name})
    if sink is not None:
        return sink, chain, index
    from checkpointify.detect.matcher import _grown_names

    for later in range(index + 1, len(chain.body)):
        stmt = chain.body[later]
        if isinstance(stmt, cst.For) and name in names_in(stmt.iter):
            grown = set(_grown_names(stmt.body))
            sink = find_sink(a, chain, later, grown) if grown else None
            return (sink, chain, later) if sink is not None else None
        if name in names_in(stmt):
            return None
    return None


def _other_uses(
    a: FileAnalysis,
    calls: _Calls,
    terminal: _Terminal,
    co: _Coroutine,
    path: Set[str],
    site_calls: Set[int],
    aliases: Set[str],
) -> List[str]:
    """Uses of the list that are not the coroutine's appends, handing it down the functions
    that reach the site, or what follows the run (the program's own sorting, the save)."""
    name = terminal.name
    problems: List[str] = []
    if terminal.function is None:
        where = calls.names.get(name, set())
        for fn in a.functions.values():
            if id(fn) not in where or fn is co.fn or fn.name.value in path or _binds(fn, name):
                continue
            # def report(): results.clear()   (what the program does with it is out of reach)
            problems.append("`%s` is also used by `%s()`" % (name, fn.name.value))
            break
    for alias in sorted(aliases):
        for attr, owner in calls.attributes.get(alias, []):
            if (
                owner is not None
                and owner is not co.fn
                and owner.name.value in path
                and attr not in _AFTER_RUN_METHODS
            ):
                # async def main(xs, out): out.clear(); await asyncio.gather(...)
                problems.append("`%s.%s` in `%s()`" % (alias, attr, owner.name.value))
                return problems
    started = False
    for _chain, _index, stmt in _chains(_scope(a, terminal)):
        if stmt is terminal.binding:
            started = True
            continue
        if not started or isinstance(stmt, (cst.FunctionDef, cst.ClassDef, cst.If, cst.Try, cst.With)):
            continue
        if _calls_any(stmt, path, site_calls):
            break  # the run: what follows it reads the filled list
        if any(isinstance(n, cst.Name) and n.value == name for n in walk(stmt)):
            # results = []; results.append(header); asyncio.run(main())
            problems.append("`%s` is used before the coroutines fill it" % name)
            break
    return problems


def _scope(a: FileAnalysis, terminal: _Terminal) -> Chain:
    if terminal.function is None:
        return Chain(a.module.body, None)
    return Chain(body_of(terminal.function.body), terminal.function)


def _plan(
    a: FileAnalysis,
    co: _Coroutine,
    terminal: _Terminal,
    site_stmt: cst.BaseStatement,
    sink: Sink,
    forms: List[Tuple[cst.Call, str]],
    hazards: hz.Hazards,
) -> Plan:
    from checkpointify.detect.matcher import Site, _with_parameters, make_plan

    qualname = "<module>" if terminal.function is None else terminal.function.name.value
    message = (
        "`%s` is filled by calls of `%s()` run concurrently (each appends to it) and saved only after all of "
        "them by %s(); a crash before the save loses every completed call"
        % (terminal.name, co.fn.name.value, sink.description)
    )
    site = Site(
        variant=COLLECT_ASYNC_SHARED,
        kind="shared",
        statement=site_stmt,
        iterable=None,
        condition=None,
        accumulators=[terminal.name],
        carried=[],
        sink_call=sink.call,
        sink=sink.description,
        message=message,
        hazards=hazards,
        qualname=qualname,
        key=_with_parameters(terminal.function, (), {terminal.name}),
        complete_after=completion_anchor(sink),
    )
    plan = make_plan(a, site)
    return replace(plan, wraps=tuple(forms), anchor=terminal.binding)


# ----------------------------------------------------------------------------- handoff


def _handoff_plans(a: FileAnalysis) -> List[Plan]:
    """``raw = []; asyncio.run(job(..., shared_list=raw)); <save raw>`` with ``job`` not
    defined here: reported without a fix (which call appends what is out of sight)."""
    from checkpointify.detect.matcher import Site, make_plan

    plans: List[Plan] = []
    scopes: List[Tuple[Chain, str, Optional[cst.FunctionDef]]] = [
        (Chain(a.module.body, None), "<module>", None)
    ]
    for chain, index, stmt in _chains(scopes[0][0]):
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
            continue
        small = stmt.body[0]
        value = small.value if isinstance(small, cst.Expr) else None
        if not isinstance(value, cst.Call) or not _runs_coroutine(a, value):
            continue
        if not value.args or not isinstance(value.args[0].value, cst.Call):
            continue
        job = value.args[0].value
        if not isinstance(job.func, cst.Name) or job.func.value in a.functions:
            continue  # the coroutine function is here: _site_plan looks inside it
        lists = [
            arg.value.value
            for arg in job.args
            if isinstance(arg.value, cst.Name) and _bound_empty_before(chain, index, arg.value.value)
        ]
        if len(lists) != 1:
            continue
        sink = find_sink(a, chain, index, {lists[0]})
        if sink is None:
            continue
        hazards = hz.Hazards()
        hazards.add(
            Hazard.UNSUPPORTED_SHAPE,
            "`%s` is filled by coroutines of `%s()`, which is not defined in this file, so which call appends "
            "what cannot be seen" % (lists[0], job.func.value),
        )
        site = Site(
            variant=COLLECT_ASYNC_SHARED,
            kind="shared",
            statement=stmt,
            iterable=None,
            condition=None,
            accumulators=[lists[0]],
            carried=[],
            sink_call=sink.call,
            sink=sink.description,
            message="`%s` is filled by the coroutines of %s() and saved only after all of them by %s(); a crash "
            "before the save loses every completed call"
            % (lists[0], callee_text(job.func), sink.description),
            hazards=hazards,
            qualname="<module>",
            key=(),
            complete_after=completion_anchor(sink),
        )
        plans.append(make_plan(a, site))
    return plans


def _runs_coroutine(a: FileAnalysis, call: cst.Call) -> bool:
    """``asyncio.run(...)``, also in a file that uses ``asyncio`` without importing it (a
    fragment run after another, a notebook export)."""
    qualified = a.qualified(call.func)
    return bool(qualified & catalogue.ASYNC_RUNNERS) or (
        not qualified and callee_text(call.func) in catalogue.ASYNC_RUNNERS
    )


def _bound_empty_before(chain: Chain, index: int, name: str) -> bool:
    """``name = []`` is the last statement before ``chain.body[index]`` that mentions ``name``."""
    for stmt in reversed(chain.before(index)):
        if name in _bound(stmt):
            assigned = single_assignment(stmt)
            return assigned is not None and assigned[0] == name and _empty_list(assigned[1])
        if any(isinstance(n, cst.Name) and n.value == name for n in walk(stmt)):
            return False
    return False
