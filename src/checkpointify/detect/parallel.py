"""collect-parallel: work handed to a pool or an event loop, its results saved only after it.

The expensive call is not in a loop body, so there is no loop to checkpoint: the rewrite
wraps the call that hands each input to the pool instead (``runtime.parallel``), which
records each result keyed by its input as it arrives and, on resume, does not submit the
inputs already done. The shapes (each early return below shows what it rejects):

    results = list(ex.map(f, xs))                       # also pool.imap/imap_unordered/starmap,
    for r in tqdm(pool.imap(f, xs)): out.append(r)      # wrapped in list(...) or tqdm(...)
    futures = [ex.submit(f, x) for x in xs]             # or {...: x}, or futures.append(...) in a loop
    for fut in as_completed(futures): out.append(fut.result())
    results = await asyncio.gather(*(fetch(x) for x in xs))     # or *tasks, tasks = [fetch(x) ...]
    for c in asyncio.as_completed([fetch(x) for x in xs]): out.append(await c)
    tasks = [tg.create_task(fetch(x)) for x in xs]; rows = [t.result() for t in tasks]
    rows = Parallel(n_jobs=4)(delayed(f)(x) for x in xs)        # joblib

and then a sink of the results (:func:`checkpointify.detect.flow.find_sink`). The
receiver of ``map``/``submit`` must be a name bound to a pool constructor
(``catalogue.POOL_CONSTRUCTORS``) in the file. Its ``ast`` twin is
``prefilter.tree._Module._parallel_may_match``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, FrozenSet, List, Optional, Sequence, Set, Tuple, Union

import libcst as cst
from libcst.metadata.scope_provider import ClassScope

from checkpointify import catalogue
from checkpointify.detect import hazards as hz
from checkpointify.detect.analysis import Chain, FileAnalysis
from checkpointify.detect.cstutil import (
    assigned_names,
    callee_text,
    for_clauses,
    last_name,
    names_in,
    single_assignment,
    target_name,
    walk,
)
from checkpointify.detect.flow import completion_anchor, find_sink, statements_between
from checkpointify.rules import COLLECT_PARALLEL
from checkpointify.types import Hazard

if TYPE_CHECKING:
    from checkpointify.detect.matcher import Plan, _Accumulator, _LoopSite

#: a call to rewrite, and how: "submit", "apply_async", "map" or "acall"
Wrap = Tuple[cst.Call, str]
_Comp = Union[cst.ListComp, cst.GeneratorExp, cst.SetComp]


def _bindings(a: FileAnalysis) -> Tuple[FrozenSet[str], FrozenSet[str]]:
    """(names bound to a pool, names bound to ``runtime.parallel(...)``), once per file."""
    if a.parallel_bindings is None:
        pools: Set[str] = set()
        handles: Set[str] = set()
        runtime = a.options.runtime_module + ".parallel"
        for value, targets in a.bound_calls:
            names = {n for n in (target_name(t) for t in targets) if n}
            if callee_text(value.func).rsplit(".", 1)[-1] in catalogue.POOL_CONSTRUCTORS:
                pools |= names
            elif runtime in a.qualified(value.func):
                handles |= names
        a.parallel_bindings = (frozenset(pools), frozenset(handles))
    return a.parallel_bindings


def _pool_method(a: FileAnalysis, node: cst.CSTNode, methods: FrozenSet[str]) -> Optional[str]:
    """``pool.imap(...)`` -> "imap" when ``pool`` is bound to a pool and the method is one of ``methods``."""
    if (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value in methods
        and target_name(node.func.value) in _bindings(a)[0]
    ):
        return node.func.attr.value
    return None


def _on_handle(a: FileAnalysis, nodes: Sequence[cst.CSTNode]) -> bool:
    """A call on a ``parallel()`` handle under ``nodes``: the site was rewritten already."""
    handles = _bindings(a)[1]
    return bool(handles) and any(
        isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and target_name(n.func.value) in handles
        for node in nodes
        for n in walk(node)
    )


def _unwrap(a: FileAnalysis, expr: cst.BaseExpression) -> cst.BaseExpression:
    """``await x``, ``list(x)``, ``tqdm(x, total=n)`` -> ``x``."""
    while True:
        if isinstance(expr, cst.Await):
            expr = expr.expression
        elif (
            isinstance(expr, cst.Call)
            and expr.args
            and expr.args[0].star == ""
            and expr.args[0].keyword is None
            and (
                "builtins.list" in a.qualified(expr.func)
                or any(q.startswith(catalogue.PROGRESS_BAR_PREFIXES) for q in a.qualified(expr.func))
            )
        ):
            expr = expr.args[0].value
        else:
            return expr


def _task_call(call: cst.Call) -> Optional[cst.Call]:
    """``asyncio.create_task(fetch(x))`` / ``tg.create_task(fetch(x))`` -> ``fetch(x)``."""
    if (
        last_name(call.func) in catalogue.TASK_METHODS
        and call.args
        and isinstance(call.args[0].value, cst.Call)
    ):
        return call.args[0].value
    return None


def _coroutine_wraps(comp: cst.BaseExpression) -> List[Wrap]:
    """``(fetch(x) for x in xs)`` or ``[create_task(fetch(x)) for x in xs]`` -> ``fetch(x)``."""
    if not isinstance(comp, (cst.ListComp, cst.GeneratorExp)) or not isinstance(comp.elt, cst.Call):
        return []
    call = _task_call(comp.elt) or comp.elt
    return [(call, "acall")]


def _producers(
    a: FileAnalysis, before: Sequence[cst.BaseStatement], names: Set[str], coroutines: bool
) -> Tuple[List[Wrap], Optional[cst.BaseStatement]]:
    """The calls that make the futures (or tasks, or coroutines) ``names`` hold, in the
    statements before the consumer that mention them, and the first such statement."""
    wraps: List[Wrap] = []
    anchor: Optional[cst.BaseStatement] = None
    from checkpointify.detect.matcher import _grown_names

    for stmt in before:
        if not names_in(stmt) & names:
            continue
        if isinstance(stmt, (cst.For, cst.While)) and set(_grown_names(stmt.body)) - names:
            # for n in ns: records.append(work(n)); handles.append(ex.submit(f, n))
            # (the loop collects serial work too: its own finding says why there is no fix)
            return [], None
        found: List[Wrap] = []
        for node in walk(stmt):
            method = _pool_method(a, node, catalogue.PARALLEL_SUBMIT_METHODS)
            if method is not None:
                assert isinstance(node, cst.Call)
                found.append((node, method))
            elif isinstance(node, cst.Call) and _task_call(node) is not None:
                inner = _task_call(node)
                assert inner is not None
                found.append((inner, "acall"))
        assigned = single_assignment(stmt)
        if not found and coroutines and assigned is not None and assigned[0] in names:
            found = _coroutine_wraps(assigned[1])
        if found:
            wraps.extend(found)
            anchor = anchor or stmt
    return wraps, anchor


def _joblib_tasks(a: FileAnalysis, node: cst.BaseExpression) -> Optional[cst.Call]:
    """``Parallel(n_jobs=4)(delayed(f)(x) for x in xs)`` -> the task ``delayed(f)(x)``; None
    for anything else (``return_as=`` given: the program wants a generator, not a list)."""
    if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Call) and len(node.args) == 1):
        return None
    runner = node.func
    if not a.qualified(runner.func) & catalogue.JOBLIB_PARALLEL:
        return None
    if any(arg.keyword is not None and arg.keyword.value == "return_as" for arg in runner.args):
        return None
    comp = node.args[0].value
    if node.args[0].star or not isinstance(comp, (cst.GeneratorExp, cst.ListComp)):
        return None
    task = comp.elt
    if (
        isinstance(task, cst.Call)
        and isinstance(task.func, cst.Call)
        and a.qualified(task.func.func) & catalogue.JOBLIB_DELAYED
    ):
        return task
    return None


def _wrap_hazards(found: hz.Hazards, wraps: Sequence[Wrap]) -> None:
    """What stops a keyed fix: a call whose input is not in its arguments."""
    for call, form in wraps:
        if form == "joblib":
            comp = call.args[0].value
            task = comp.elt if isinstance(comp, (cst.GeneratorExp, cst.ListComp)) else None
            if isinstance(task, cst.Call) and not task.args:
                # Parallel()(delayed(partial(f, x))() for x in xs)   (the input is inside the callable)
                found.add(
                    Hazard.UNSUPPORTED_SHAPE,
                    "`delayed(...)()` passes no input of its own, so results cannot be keyed by input",
                )
            continue
        positional = [arg for arg in call.args if arg.keyword is None]
        inputs = call.args if form == "acall" else call.args[1:]
        fn = call.func if form == "acall" else positional[0].value if positional else None
        if fn is None or isinstance(fn, cst.Lambda) and not inputs:
            # ex.submit(lambda: work(x))   (the input is inside the lambda: every call looks the same)
            found.add(
                Hazard.UNSUPPORTED_SHAPE,
                "`%s` hands the pool a callable without arguments: its input is hidden in a lambda or closure, "
                "so results cannot be keyed by input; pass the input as an argument (`submit(work, x)`)"
                % callee_text(call.func),
            )
        elif not inputs:
            # ex.submit(partial(work, x))   /   fetch()   (nothing tells the calls apart)
            found.add(
                Hazard.UNSUPPORTED_SHAPE,
                "`%s(...)` passes no input of its own (it may be bound in a partial or closure), so results "
                "cannot be keyed by input" % callee_text(call.func),
            )
        if any(arg.star == "**" for arg in call.args) and form == "map":
            found.add(Hazard.UNSUPPORTED_SHAPE, "`**` arguments of a pool's map are not supported")


def _message(accumulators: Sequence[str], wraps: Sequence[Wrap], sink: str) -> str:
    call = wraps[0][0]
    how = (
        callee_text(call.func)
        if wraps[0][1] != "acall"
        else "%s() awaited in parallel" % callee_text(call.func)
    )
    return (
        "%s %s collected from work run in parallel (%s) and saved only after all of it by %s(); a crash before "
        "the save loses every completed result"
        % (", ".join("`%s`" % n for n in accumulators), "is" if len(accumulators) == 1 else "are", how, sink)
    )


def loop_plan(
    site: _LoopSite, accumulators: List[_Accumulator], before: List[cst.BaseStatement]
) -> Tuple[bool, Optional[Plan]]:
    """A ``for`` loop over a pool's map or over futures: (handled, its plan).

    ``handled`` without a plan: the loop is a rewritten parallel site (no finding).
    """
    a, loop = site.a, site.loop
    if not isinstance(loop, cst.For):
        return False, None
    inner = _unwrap(a, loop.iter)
    wraps: List[Wrap] = []
    anchor: Optional[cst.BaseStatement] = loop
    if _pool_method(a, inner, catalogue.PARALLEL_MAP_METHODS):
        assert isinstance(inner, cst.Call)
        wraps = [(inner, "map")]
    else:
        iterated = [
            n
            for n in walk(loop.iter)
            if isinstance(n, cst.Call) and a.qualified(n.func) & catalogue.FUTURES_ITERABLES
        ]
        targets = assigned_names(loop.target)
        waits = any(
            isinstance(n, cst.Call)
            and isinstance(n.func, cst.Attribute)
            and n.func.attr.value in catalogue.FUTURE_RESULT_METHODS
            and target_name(n.func.value) in targets
            for n in walk(loop.body)
        )
        if not iterated and not waits:
            # for x in xs: out.append(f(x))   (an ordinary loop: matcher._LoopSite)
            return False, None
        if _on_handle(a, [loop.iter, *before]):
            # par = parallel(...); futures = [par.submit(ex, f, x) ...]   (our own rewrite)
            return True, None
        inline = iterated[0].args[0].value if iterated and iterated[0].args else None
        if inline is not None and _coroutine_wraps(inline):
            wraps = _coroutine_wraps(inline)
        else:
            asyncio = any(q.startswith("asyncio.") for n in iterated for q in a.qualified(n.func))
            wraps, anchor = _producers(a, before, names_in(loop.iter) - targets, asyncio)
    if _on_handle(a, [call for call, _ in wraps]):
        return True, None  # for c in asyncio.as_completed([par.acall(f, x) ...])   (our own rewrite)
    if not wraps or not accumulators or anchor is None:
        # for fut in as_completed(futures): ...   (futures made elsewhere: the loop's own hazard says so)
        return False, None
    names = [acc.name for acc in accumulators]
    sink = find_sink(a, site.chain, site.index, set(names))
    if sink is None:
        return False, None
    found = hz.Hazards()
    hz.check_exits(found, statements_between(site.chain, site.index, sink))
    _wrap_hazards(found, wraps)
    return True, _plan(a, site.qualname, site.function, anchor, loop, names, wraps, sink, found)


def statement_plan(
    a: FileAnalysis,
    chain: Chain,
    index: int,
    stmt: cst.SimpleStatementLine,
    qualname: str,
    function: Optional[cst.FunctionDef],
) -> Optional[Plan]:
    """``results = list(pool.map(f, xs))``, ``results = await asyncio.gather(*(f(x) for x in xs))``,
    ``rows = [t.result() for t in tasks]``: the statement that receives every result."""
    assigned = single_assignment(stmt)
    if assigned is None or "." in assigned[0]:
        return None
    scope = a.scopes.get(stmt)
    if scope is None or isinstance(scope, ClassScope):
        return None
    name, value = assigned
    inner = _unwrap(a, value)
    wraps: List[Wrap] = []
    anchor: Optional[cst.BaseStatement] = stmt
    before = chain.before(index)
    if _pool_method(a, inner, catalogue.PARALLEL_MAP_METHODS):
        assert isinstance(inner, cst.Call)
        wraps = [(inner, "map")]
    elif _joblib_tasks(a, inner) is not None:
        assert isinstance(inner, cst.Call)
        wraps = [(inner, "joblib")]
    elif isinstance(inner, cst.Call) and a.qualified(inner.func) & catalogue.GATHER_CALLS:
        starred = [arg.value for arg in inner.args if arg.star == "*"]
        if len(starred) != 1:
            # gather(fetch(a), fetch(b))   (a fixed handful of calls)
            return None
        if isinstance(starred[0], cst.Name):
            if _on_handle(a, before):
                return None
            wraps, anchor = _producers(a, before, {starred[0].value}, True)
        else:
            wraps = _coroutine_wraps(starred[0])
    elif isinstance(inner, cst.ListComp) and len(for_clauses(inner.for_in)) == 1:
        clause = inner.for_in
        targets = assigned_names(clause.target)
        waits = any(
            isinstance(n, cst.Call)
            and isinstance(n.func, cst.Attribute)
            and n.func.attr.value in catalogue.PARALLEL_RESULT_METHODS
            and target_name(n.func.value) in targets
            for n in walk(inner.elt)
        )
        if not waits:
            return None
        if _on_handle(a, [clause.iter, *before]):
            return None
        wraps, anchor = _producers(a, before, names_in(clause.iter) - targets, False)
    if _on_handle(a, [call for call, _ in wraps]):
        return None  # asyncio.gather(*(par.acall(f, x) for x in xs))   (our own rewrite)
    if not wraps or anchor is None:
        # vectors = [embed(x) for x in xs]   (no pool: matcher._comprehension_plan)
        return None
    sink = find_sink(a, chain, index, {name})
    if sink is None:
        # results = await asyncio.gather(...); print(results)   (never saved)
        return None
    found = hz.Hazards()
    hz.check_exits(found, statements_between(chain, index, sink))
    _wrap_hazards(found, wraps)
    return _plan(a, qualname, function, anchor, stmt, [name], wraps, sink, found)


def drop_covered(a: FileAnalysis, plans: List[Plan]) -> List[Plan]:
    """Plans of the statements that feed a parallel site: the futures list, the tasks
    comprehension, the loop that submits (``futures.append(ex.submit(f, x))``). Their
    work is the parallel site's; checkpointing them would store handles. The same goes for
    statements that already call a ``parallel()`` handle (our own rewrite, on a second pass)."""
    wrapped = {id(call) for plan in plans for call, _ in plan.wraps}
    if not wrapped and not _bindings(a)[1]:
        return plans
    kept = []
    for plan in plans:
        if plan.kind not in ("parallel", "shared") and (
            any(id(n) in wrapped for n in walk(plan.statement)) or _on_handle(a, [plan.statement])
        ):
            continue
        kept.append(plan)
    return kept


def _plan(
    a: FileAnalysis,
    qualname: str,
    function: Optional[cst.FunctionDef],
    anchor: cst.BaseStatement,
    receiver: cst.BaseStatement,
    names: List[str],
    wraps: List[Wrap],
    sink: object,
    found: hz.Hazards,
) -> Plan:
    from checkpointify.detect.flow import Sink
    from checkpointify.detect.matcher import Site, _with_parameters, make_plan

    assert isinstance(sink, Sink)
    site = Site(
        variant=COLLECT_PARALLEL,
        kind="parallel",
        statement=anchor,
        iterable=None,
        condition=None,
        accumulators=names,
        carried=[],
        sink_call=sink.call,
        sink=sink.description,
        message=_message(names, wraps, sink.description),
        hazards=found,
        qualname=qualname,
        key=_with_parameters(function, (), set()),
        complete_after=completion_anchor(sink),
    )
    plan = make_plan(a, site)
    end = a.positions[receiver].end
    finding = replace(plan.finding, end_line=max(plan.finding.end_line, int(end.line)))
    return replace(plan, finding=finding, wraps=tuple(wraps), anchor=anchor)
