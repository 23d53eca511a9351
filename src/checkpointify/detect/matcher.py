"""Pure detection: a parsed module in, plans (findings plus what the fix needs) out.

The shape we look for, in one block (a module, function, method, ``if`` or ``with`` body):

    acc = []                      # an accumulator bound to an empty or literal value
    for item in items:            # a loop whose body does real work
        acc.append(work(item))    # ... and grows the accumulator
    save(acc)                     # later in the block: a sink persists acc or a value built from it

Each early return in :class:`_LoopSite` carries a comment showing the code it rejects.
Hazards come from :mod:`checkpointify.detect.hazards`, sinks from :mod:`checkpointify.detect.flow`.
Nothing here changes the tree; :mod:`checkpointify.rewrite.transformer` applies the plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AbstractSet, Any, Dict, FrozenSet, Iterator, List, Optional, Sequence, Set, Tuple, Union

import libcst as cst
from libcst.metadata import MetadataWrapper
from libcst.metadata.scope_provider import ClassScope, ImportAssignment, Scope

from checkpointify import catalogue
from checkpointify.detect import hazards as hz
from checkpointify.detect.analysis import Chain, FileAnalysis
from checkpointify.detect.collected import collects_work
from checkpointify.detect.concat import concat_growth, frame_concats, only_concat_binds
from checkpointify.detect.constants import module_constants
from checkpointify.detect.cstutil import (
    assigned_names,
    body_of,
    bound_in,
    callee_text,
    for_clauses,
    forget_children,
    is_concat_growth,
    is_self_concat,
    loads,
    names_in,
    single_assignment,
    statement_blocks,
    target_name,
    unpacked_value,
    walk,
)
from checkpointify.detect.external import DbCommit, QueueAck, find_db_commit, find_queue_ack
from checkpointify.detect.flow import (
    Sink,
    completion_anchor,
    find_sink,
    persists_per_item,
    statements_between,
)
from checkpointify.detect.helper import Returned, find_returned
from checkpointify.detect.items import ItemSite, item_site
from checkpointify.detect.rows import row_apply_site
from checkpointify.detect.suppression import suppression_comments
from checkpointify.detect.work import does_work, is_job, only_reads_local_files
from checkpointify.rules import (
    COLLECT_COMPREHENSION,
    COLLECT_LOOP,
    DB_COMMIT,
    HELPER_RETURN,
    ITEM_WRITES,
    QUEUE_ACK,
    ROW_APPLY,
    Variant,
    fix_safety,
)
from checkpointify.types import Finding, Hazard, Options

Comprehension = Union[cst.ListComp, cst.SetComp, cst.DictComp]


@dataclass(frozen=True)
class ComprehensionPlan:
    """How to unroll ``name = [elt for ... in ...]`` into a loop."""

    node: Comprehension
    kind: str  # "list", "set" or "dict"


@dataclass(frozen=True)
class Plan:
    """One finding plus what the transformer needs to rewrite it (CST nodes, matched by identity).

    ``kind`` is "for" (``iterable`` set), "while" (the loop's test is ``condition``) or
    "comprehension" (``comprehension`` set); ``asynchronous`` marks ``async for``.
    CKP002 plans carry the ``transaction`` (the connection's code); CKP003 plans carry the
    per-unit ``ack`` callback and the after-loop statement it replaces (``removed``), and
    no checkpoint at all.
    """

    finding: Finding
    kind: str
    statement: cst.BaseStatement  # the For/While, or the comprehension's assignment line
    iterable: Optional[cst.BaseExpression]
    condition: Optional[cst.BaseExpression]
    state: Tuple[str, ...]  # names the checkpoint restores, in order (accumulators, then carried state)
    loop_id: str
    key: Tuple[str, ...]
    constants: Tuple[str, ...]  # module constants the loop reads (checkpoint(..., constants=))
    complete_after: Optional[cst.BaseStatement]
    sink_line: int
    asynchronous: bool = False
    comprehension: Optional[ComprehensionPlan] = None
    transaction: Optional[str] = None
    ack: Optional[str] = None
    ack_grown: Optional[str] = None
    ack_latest: Optional[str] = None
    removed: Optional[cst.BaseStatement] = None
    resume: Optional[str] = None  # "identity" when the iteration order may change between runs
    #: helper-return: the checkpoint is ``deferred=True`` and ``complete_deferred(...)`` goes
    #: after each of these statements (the callers' saves) instead of ``complete()``
    deferred: Tuple[cst.BaseStatement, ...] = ()
    #: kind "parallel" (detect/parallel.py) and "shared" (detect/asyncshared.py): the calls to
    #: wrap, and the statement the handle goes before
    wraps: Tuple[Tuple[cst.Call, str], ...] = ()
    anchor: Optional[cst.BaseStatement] = None
    rows: Optional[cst.BaseExpression] = None  # kind "rows": the receiver of .apply/.map to wrap
    frames: Tuple[str, ...] = ()  # state names that are frames filled through .at/.loc (journaled)
    items: Optional[ItemSite] = None  # a loaded list whose items the loop writes (journaled)
    #: state names that are frames grown by ``pd.concat``, each with its callee's code (journaled)
    concats: Tuple[Tuple[str, str], ...] = ()


@dataclass
class Site:
    """Everything known about one site, before it becomes a Plan."""

    variant: Variant
    kind: str
    statement: cst.BaseStatement
    iterable: Optional[cst.BaseExpression]
    condition: Optional[cst.BaseExpression]
    accumulators: List[str]  # every accumulator the loop grows, in order of binding
    carried: List[str]  # other state carried across iterations
    sink_call: cst.Call  # the save, commit or ack after the loop
    sink: str  # how the finding names it
    message: str
    hazards: hz.Hazards
    qualname: str
    key: Tuple[str, ...]
    complete_after: Optional[cst.BaseStatement]
    comprehension: Optional[ComprehensionPlan] = None
    transaction: Optional[str] = None
    ack: Optional[QueueAck] = None
    resume: Optional[str] = None
    deferred: Tuple[cst.BaseStatement, ...] = ()
    rows: Optional[cst.BaseExpression] = None
    loop_names: Optional[List[str]] = None
    frames: Tuple[str, ...] = ()  # what the loop id names, when not the accumulators
    items: Optional[ItemSite] = None
    concats: Tuple[Tuple[str, str], ...] = ()  # Plan.concats
    parts: Sequence[cst.CSTNode] = ()  # what the loop runs per item (where constants are read)
    exclude: Set[str] = field(default_factory=set)  # names the loop binds


@dataclass
class _Accumulator:
    name: str
    kind: str
    init: cst.BaseStatement
    #: bound only under ``if cond:`` (``if save_dir: results = []``): reported, never rewritten
    conditional: bool = False
    #: kind "concat": the code of the ``pandas.concat`` callee the journal replays (``pd.concat``)
    callee: Optional[str] = None


def find_plans(
    wrapper: MetadataWrapper, path: str, options: Options, lines: Optional[AbstractSet[int]] = None
) -> List[Plan]:
    """Every collect-then-save site of a module, in source order, minus suppressed ones.

    With ``lines``, only statements that start on those lines are looked at as sites: the
    staged path passes the lines checkpointify.prefilter could not rule out. A change to
    what makes a site here must be made there too (see that module's docstring).
    """
    forget_children()  # the previous file's nodes
    analysis = FileAnalysis(wrapper, path, options)
    plans: List[Plan] = []
    _scan_block(analysis, Chain(analysis.module.body, None), "<module>", None, plans, lines)
    from checkpointify.detect.asyncshared import find as find_shared

    plans.extend(p for p in find_shared(analysis) if lines is None or p.finding.line in lines)
    if plans:
        from checkpointify.detect.parallel import drop_covered

        plans = drop_covered(analysis, plans)
    if plans:
        comments = suppression_comments(
            analysis.positions.code, {n for p in plans for n in (p.finding.line, p.sink_line)}
        )
        plans = [p for p in plans if not _suppressed(p, comments)]
    plans.sort(key=lambda p: (p.finding.line, p.finding.column))
    return plans


def _suppressed(plan: Plan, comments: Dict[int, Optional[FrozenSet[str]]]) -> bool:
    """``# checkpointify: ignore`` or ``# noqa[: CKP001]`` on the loop's line or the save's line."""
    for line in (plan.finding.line, plan.sink_line):
        if line in comments:
            codes = comments[line]
            if codes is None or plan.finding.code in codes:
                return True
    return False


def collected_message(persisted: Sequence[str], comprehension: bool, sink: str) -> str:
    return "%s %s %s and saved only after it by %s(); a crash before the save loses every completed unit" % (
        ", ".join("`%s`" % n for n in persisted),
        "is" if len(persisted) == 1 else "are",
        "built by this comprehension" if comprehension else "collected in this loop",
        sink,
    )


def returned_message(persisted: Sequence[str], comprehension: bool, returned: Returned) -> str:
    first = returned.callers[0]
    return (
        "%s %s %s and returned; %s saves %s only after the call, by %s(); a crash before that save loses every "
        "completed unit"
        % (
            ", ".join("`%s`" % n for n in persisted),
            "is" if len(persisted) == 1 else "are",
            "built by this comprehension" if comprehension else "collected in this loop",
            "%s()" % first.caller if first.caller != "<module>" else "the module",
            "it" if len(persisted) == 1 else "them",
            first.sink.description,
        )
    )


def make_plan(a: FileAnalysis, site: Site) -> Plan:
    """Assemble the finding and the fix plan for one site."""
    pos = a.positions[site.statement]
    finding = Finding(
        code=site.variant.code,
        variant=site.variant.name,
        path=a.path,
        line=int(pos.start.line),
        column=int(pos.start.column) + 1,
        end_line=int(pos.end.line),
        accumulators=tuple(site.accumulators),
        sink=site.sink,
        hazards=tuple(site.hazards.hazards),
        fix=fix_safety(tuple(site.hazards.hazards)),
        message=site.message,
        fix_note="; ".join(site.hazards.notes),
    )
    identity = site.accumulators + ([site.transaction] if site.transaction else [])
    return Plan(
        finding=finding,
        kind=site.kind,
        statement=site.statement,
        iterable=site.iterable,
        condition=site.condition,
        asynchronous=isinstance(site.statement, cst.For) and site.statement.asynchronous is not None,
        state=tuple(site.accumulators + site.carried),
        loop_id=a.loop_identity(site.qualname, site.loop_names or identity),
        key=site.key,
        constants=module_constants(
            a,
            site.statement,
            site.parts,
            set(site.key) | set(site.accumulators) | set(site.carried) | site.exclude,
        ),
        complete_after=site.complete_after,
        sink_line=a.line(site.sink_call),
        comprehension=site.comprehension,
        transaction=site.transaction,
        ack=site.ack.ack if site.ack else None,
        ack_grown=site.ack.grown if site.ack else None,
        ack_latest=site.ack.latest if site.ack else None,
        removed=site.ack.statement if site.ack else None,
        resume=site.resume,
        deferred=site.deferred,
        rows=site.rows,
        frames=site.frames,
        items=site.items,
        concats=site.concats,
    )


# ------------------------------------------------------------------------ walking blocks


def _scan_block(
    a: FileAnalysis,
    chain: Chain,
    qualname: str,
    function: Optional[cst.FunctionDef],
    plans: List[Plan],
    lines: Optional[AbstractSet[int]] = None,
    outer: Optional[cst.BaseStatement] = None,
) -> None:
    """Look at each statement of a block, then recurse into the blocks it holds.

    ``outer`` is the innermost loop of the same function around this block, if any.
    """
    in_generator: Optional[bool] = None  # computed for the block's first candidate statement
    bounded: Optional[bool] = None  # computed for its first plan
    for index, stmt in enumerate(chain.body):
        candidate = lines is None or a.line(stmt) in lines
        if candidate and in_generator is None:
            in_generator = function is not None and a.is_generator(function)
        if candidate and not in_generator:
            plan: Optional[Plan] = None
            if isinstance(stmt, (cst.For, cst.While)):
                plan = _LoopSite(a, chain, index, stmt, qualname, function).plan()
            elif isinstance(stmt, cst.SimpleStatementLine):
                from checkpointify.detect.parallel import statement_plan

                plan = (
                    statement_plan(a, chain, index, stmt, qualname, function)
                    or _comprehension_plan(a, chain, index, stmt, qualname, function)
                    or _row_apply_plan(a, chain, index, stmt, qualname, function)
                )
            if plan is not None and bounded is None:
                bounded = _loss_bounded(a, function, outer)
            if plan is not None and not (bounded and plan.finding.code != QUEUE_ACK.code):
                plans.append(plan)
        inner_outer = stmt if isinstance(stmt, (cst.For, cst.While)) else outer
        for child, child_qualname, child_function in _child_blocks(stmt, chain, index, qualname, function):
            nested = inner_outer if child_function is function else None
            _scan_block(a, child, child_qualname, child_function, plans, lines, nested)


def _loss_bounded(
    a: FileAnalysis, function: Optional[cst.FunctionDef], outer: Optional[cst.BaseStatement]
) -> bool:
    """Whether a crash inside this block loses at most one unit that something else persists.

    Two shapes, both seen as false positives on real user code (docs/labelled-set):

    * the block is inside a loop whose body persists every iteration
      (``for task in tasks: infos = [check(y) for y in ys]; logs.append(...); json.dump(logs, f)``):
      the outer iteration is the unit, and a checkpoint of the inner loop would need the outer
      unit in its identity (a re-run would meet the inner log of another outer item);
    * the block is in a function a pool runs per task (``executor.submit(get_answer, q)``)
      and saves right after its loop: the task is the unit, and many instances of the same
      loop would run at once under one identity.

    A queue ack after a batch is kept (CKP003 stores no checkpoint; acking per message is
    its whole point).
    """
    if outer is not None and isinstance(outer, (cst.For, cst.While)) and persists_per_item(a, outer.body):
        return True
    return function is not None and function.name.value in a.pool_tasks


def _child_blocks(
    stmt: cst.BaseStatement, chain: Chain, index: int, qualname: str, function: Optional[cst.FunctionDef]
) -> Iterator[Tuple[Chain, str, Optional[cst.FunctionDef]]]:
    if isinstance(stmt, cst.FunctionDef):
        name = stmt.name.value
        if function is not None:
            inner = "%s.<locals>.%s" % (qualname, name)
        else:
            inner = name if qualname == "<module>" else "%s.%s" % (qualname, name)
        yield Chain(body_of(stmt.body), stmt), inner, stmt
    elif isinstance(stmt, cst.ClassDef):
        inner = stmt.name.value if qualname == "<module>" else "%s.%s" % (qualname, stmt.name.value)
        # a class body is never a place for a loop we rewrite, but its methods are
        for sub in body_of(stmt.body):
            if isinstance(sub, cst.FunctionDef):
                yield Chain(body_of(sub.body), sub), "%s.%s" % (inner, sub.name.value), sub
            elif isinstance(sub, cst.ClassDef):
                yield from _child_blocks(sub, Chain(body_of(stmt.body), stmt), 0, inner, function)
    elif isinstance(stmt, cst.With):
        yield Chain(body_of(stmt.body), stmt, chain, index), qualname, function
    elif isinstance(stmt, (cst.If, cst.Try)):
        # results = []; try: <loop>; <save>   /   if ...: <loop>; <save>   (bound before, used inside)
        for block in statement_blocks(stmt):
            yield Chain(block, stmt, None, index, enclosing=chain), qualname, function
    else:
        for block in statement_blocks(stmt):
            yield Chain(block, stmt), qualname, function


# ------------------------------------------------------------------------- accumulators


def accumulator_kind(a: FileAnalysis, value: cst.BaseExpression) -> Optional[str]:
    """The kind of accumulator an initial value makes, or None when it is not one."""
    if isinstance(value, cst.List) and not any(isinstance(e, cst.StarredElement) for e in value.elements):
        return "list"  # [] or a literal list of rows (a header row)
    if isinstance(value, cst.Dict) and all(
        isinstance(e, cst.DictElement) and isinstance(e.value, cst.List) and not e.value.elements
        for e in value.elements
    ):
        return "dict"  # {} or a dict of empty lists ({"name": [], "price": []}), grown per key
    if isinstance(value, cst.Set):
        return "set"
    if isinstance(value, (cst.Integer, cst.Float)):
        return "number"
    if isinstance(value, cst.UnaryOperation) and isinstance(value.expression, (cst.Integer, cst.Float)):
        return "number"
    if isinstance(value, cst.SimpleString) and not value.value.lstrip("rRuU").startswith(("b", "B")):
        return "string"
    if isinstance(value, cst.Call):
        names = a.qualified(value.func)
        empty = not value.args
        if empty and "builtins.list" in names:
            return "list"
        if empty and names & {"builtins.dict", "collections.OrderedDict", "collections.Counter"}:
            return "dict"
        if empty and "builtins.set" in names:
            return "set"
        if "collections.defaultdict" in names:
            return "dict"
        if empty and "collections.deque" in names:
            return "deque"
    return None


def _grown_names(body: cst.CSTNode) -> List[str]:
    """Names the body grows (``acc.append``, ``acc[k] = v``, ``acc += x``, ``acc[k].append``), in order."""
    grown: List[str] = []
    for node in walk(body):
        name: Optional[str] = None
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            method, owner = node.func.attr.value, node.func.value
            if method in catalogue.GROWING_METHODS:
                name = target_name(owner) or (
                    target_name(owner.value) if isinstance(owner, cst.Subscript) else None
                )
        elif isinstance(node, cst.AugAssign):
            target = node.target
            name = target_name(target) or (
                (target_name(target.value) or frame_written(target))
                if isinstance(target, cst.Subscript)
                else None
            )
        elif isinstance(node, cst.Assign):
            for t in node.targets:
                if isinstance(t.target, cst.Subscript):
                    name = target_name(t.target.value) or frame_written(t.target)
                elif target_name(t.target) and (
                    is_self_concat(target_name(t.target) or "", node.value)
                    or is_concat_growth(target_name(t.target) or "", node.value)
                    or concat_growth(target_name(t.target) or "", node.value)
                ):
                    name = target_name(t.target)
        if name and name not in grown:
            grown.append(name)
    return grown


def frame_written(target: cst.Subscript) -> Optional[str]:
    """``df`` for ``df.at[...]``/``df.loc[...]``/``df.iat[...]``/``df.iloc[...]`` (a store target)."""
    owner = target.value
    if isinstance(owner, cst.Attribute) and owner.attr.value in catalogue.FRAME_INDEXERS:
        return target_name(owner.value)
    return None


def _frame_written_names(body: cst.CSTNode) -> Set[str]:
    """Names the body writes through a frame indexer."""
    found: Set[str] = set()
    for node in walk(body):
        targets: List[cst.BaseExpression] = []
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        elif isinstance(node, cst.AugAssign):
            targets = [node.target]
        for target in targets:
            name = frame_written(target) if isinstance(target, cst.Subscript) else None
            if name:
                found.add(name)
    return found


def _is_method(function: Optional[cst.FunctionDef]) -> bool:
    params = function.params.params if function is not None else ()
    return bool(params) and params[0].name.value == "self"


def _declared_global(function: Optional[cst.FunctionDef], name: str) -> bool:
    if function is None:
        return False
    return any(
        isinstance(node, (cst.Global, cst.Nonlocal)) and any(n.name.value == name for n in node.names)
        for node in walk(function.body)
    )


def _find_accumulators(
    a: FileAnalysis,
    grown: List[str],
    before: List[cst.BaseStatement],
    function: Optional[cst.FunctionDef],
    frames: AbstractSet[str] = frozenset(),
    items: Optional[ItemSite] = None,
    body: Optional[cst.CSTNode] = None,
) -> List[_Accumulator]:
    """The grown names bound, just before the loop, to an empty or literal value; the
    ``frames`` (written through ``.at``/``.loc``...) bound to any value (kind "frame"); the
    list whose ``items`` the loop writes into, bound in any way (kind "items"); and the names
    ``body`` grows by ``df = pd.concat([df, part])``, bound to any value but a literal
    container (kind "concat", detect/concat.py)."""
    concats = frame_concats(a, body) if body is not None else {}
    found: List[_Accumulator] = []
    if items is not None:
        grown = grown + [items.name] if items.name not in grown else grown
    for name in grown:
        if name.startswith("self.") and not _is_method(function):
            continue  # self.results outside a method
        if _declared_global(function, name):
            continue  # `global results` in the function: the name outlives the call
        for position in range(len(before) - 1, -1, -1):
            stmt = before[position]
            if items is not None and name == items.name and name in bound_in(stmt):
                # data = json.load(f) / with open(p) as f: data = json.load(f): its item writes are journaled
                found.append(_Accumulator(name, "items", stmt))
                break
            assigned = single_assignment(stmt)
            unpacked = unpacked_value(stmt, name) if assigned is None else None
            if unpacked is not None:
                assigned = (name, unpacked)  # scores, ads = [], []
            if assigned and assigned[0] == name:
                kind = accumulator_kind(a, assigned[1])
                if kind is None and name in frames and "." not in name:
                    kind = "frame"  # df = pd.read_csv(...): its cell writes are journaled
                if kind is None and name in concats and not _is_none(assigned[1]):
                    kind = "concat"  # df = pd.DataFrame(); ... df = pd.concat([df, part]): journaled calls
                if (
                    kind is None
                    and name in concats
                    and body is not None
                    and only_concat_binds(name, body)
                    and name not in frames
                ):
                    kind = "concat"  # df = None; ... df = pd.concat([df, part]) (pandas drops the None)
                if kind is None and _is_none(assigned[1]):
                    # preds = None ... preds = torch.cat((preds, out)) / preds += out after a
                    # first-unit bind: whatever it grows into is recorded as a snapshot
                    kind = "array"
                if kind is not None and not any(name in bound_in(s) for s in before[position + 1 :]):
                    callee = concats[name] if kind == "concat" else None
                    found.append(_Accumulator(name, kind, stmt, callee=callee))
                break
            conditional = _conditional_init(a, stmt, name)
            if conditional is not None:
                # if save_dir: results = []   ...   if save_dir: results.append(r)
                found.append(_Accumulator(name, conditional, stmt, conditional=True))
                break
            if name in bound_in(stmt):
                break  # bound in a way we do not model (for, with, an if branch): not ours
    found.sort(key=lambda acc: before.index(acc.init))
    return found


def _is_none(value: cst.BaseExpression) -> bool:
    return isinstance(value, cst.Name) and value.value == "None"


def _conditional_init(a: FileAnalysis, stmt: cst.BaseStatement, name: str) -> Optional[str]:
    """The accumulator kind when ``stmt`` is ``if cond:`` (no ``else``) holding only
    ``name = <accumulator>`` lines, one of them for ``name``."""
    if (
        not isinstance(stmt, cst.If)
        or stmt.orelse is not None
        or not isinstance(stmt.body, cst.IndentedBlock)
    ):
        return None
    kind: Optional[str] = None
    for sub in stmt.body.body:
        assigned = single_assignment(sub)
        if assigned is None or accumulator_kind(a, assigned[1]) is None:
            return None
        if assigned[0] == name:
            kind = accumulator_kind(a, assigned[1])
    return kind


def _already_resumes(
    a: FileAnalysis, loop: Union[cst.For, cst.While], before: List[cst.BaseStatement], accumulators: Set[str]
) -> bool:
    """The loop has resume logic of its own: a done-set, a start index, skip-if-output-exists."""
    loaded = _loaded_names(a, before) - accumulators
    iterable = loop.iter if isinstance(loop, cst.For) else None
    if (
        isinstance(iterable, cst.Call)
        and "builtins.range" in a.qualified(iterable.func)
        and len(iterable.args) >= 2
    ):
        if names_in(iterable.args[0].value) & loaded:
            return True  # for i in range(start, n)   (start computed from saved progress)
    if isinstance(iterable, cst.Subscript) and any(
        isinstance(e.slice, cst.Slice) and e.slice.lower is not None and names_in(e.slice.lower) & loaded
        for e in iterable.slice
    ):
        return True  # for x in items[start:]
    for node in walk(loop.body):
        if isinstance(node, cst.If) and _skips(node):
            test = node.test
            if isinstance(test, cst.Comparison) and any(
                isinstance(t.operator, cst.In) and names_in(t.comparator) & loaded for t in test.comparisons
            ):
                return True  # if key in done: continue
            if any(
                isinstance(n, cst.Call) and callee_text(n.func).endswith(catalogue.DONE_CHECK_SUFFIXES)
                for n in walk(test)
            ):
                return True  # if os.path.exists(out): continue
    return False


def _skips(node: cst.If) -> bool:
    """``if ...: continue`` (the body only skips the item)."""
    body = body_of(node.body) if isinstance(node.body, cst.IndentedBlock) else node.body.body
    first = body[0] if body else None
    if isinstance(first, cst.SimpleStatementLine):
        return isinstance(first.body[0], cst.Continue)
    return isinstance(first, cst.Continue)


def _loaded_names(a: FileAnalysis, before: List[cst.BaseStatement]) -> Set[str]:
    """Names bound before the loop to something computed (not an empty or literal value)."""
    loaded: Set[str] = set()
    for stmt in before:
        assigned = single_assignment(stmt)
        if assigned is not None and accumulator_kind(a, assigned[1]) is None and not _literal(assigned[1]):
            loaded.add(assigned[0])
    return loaded


def _literal(node: cst.BaseExpression) -> bool:
    return isinstance(
        node, (cst.Integer, cst.Float, cst.SimpleString, cst.Tuple, cst.List, cst.Dict, cst.Set)
    )


def _tiny_literal(node: cst.BaseExpression) -> bool:
    """``("id", "name", "email")``: a handful of constants is not a job worth checkpointing."""
    return (
        isinstance(node, (cst.Tuple, cst.List, cst.Set))
        and len(node.elements) <= catalogue.TINY_LITERAL_LOOP
        and all(
            isinstance(
                e.value, (cst.SimpleString, cst.Integer, cst.Float, cst.Name, cst.Attribute, cst.Tuple)
            )
            for e in node.elements
        )
    )


def context_names(
    a: FileAnalysis, scope: Scope, site: cst.CSTNode, body: Sequence[cst.CSTNode], exclude: Set[str]
) -> Tuple[str, ...]:
    """Loop-invariant variables of the loop's own scope that the body reads.

    They become the checkpoint's ``key``: a unit's result depends on the item *and* on
    them, so a run with other values (``process("test")`` after ``process("train")``)
    must not reuse the log. Imports, functions, classes, ``self``/``cls`` and names the
    loop itself binds are left out, and so is every name not bound *before* the site
    (``except ... as e``, ``with open(...) as f``, a loop-local): the key is evaluated
    before the first item, where such a name would raise ``NameError``.
    """
    found: List[str] = []
    for part in body:
        for node in loads(part):
            name = node.value
            if name in exclude or name in found or name in {"self", "cls"}:
                continue
            own = [asg for asg in scope[name] if asg.scope is scope]
            if (
                own
                and not any(
                    isinstance(asg, ImportAssignment)
                    or isinstance(getattr(asg, "node", None), (cst.FunctionDef, cst.ClassDef))
                    for asg in own
                )
                and bound_before(a, name, scope, site)
            ):
                found.append(name)
    return tuple(found)


def _with_parameters(
    function: Optional[cst.FunctionDef], key: Tuple[str, ...], exclude: Set[str]
) -> Tuple[str, ...]:
    """The key of a loop inside a function: every parameter (positional, keyword-only, then
    ``*args`` and ``**kwargs``), then the other names of ``key``. Each call of the function then gets its own checkpoint
    wherever its arguments tell the calls apart (``process("a", xs)`` and ``process("b",
    xs)`` run by two threads, or called one after the other), even when the loop's body
    does not read the parameter. The runtime fingerprints them by value, within a budget
    (``key_fingerprint``). ``self``/``cls`` and names the loop binds are left out; a
    parameter is always bound when the loop starts, so the key never raises ``NameError``.
    """
    if function is None:
        return key
    params = function.params
    names = [p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)]
    for star in (params.star_arg, params.star_kwarg):
        if isinstance(star, cst.Param):
            names.append(star.name.value)
    first = [n for n in names if n not in exclude and n not in {"self", "cls"}]
    return tuple(first + [n for n in key if n not in first])


def bound_before(a: FileAnalysis, name: str, scope: Scope, site: cst.CSTNode) -> bool:
    """Whether ``scope`` binds ``name`` somewhere outside ``site`` that starts before it.

    An approximation of "bound when the site starts" (a binding in an ``if`` branch counts),
    strict enough to rule out names bound only inside the loop.
    """
    inside = {id(n) for n in walk(site, ())}
    start = a.positions[site].start
    for asg in scope[name]:
        node = getattr(asg, "node", None)
        if asg.scope is not scope or node is None or id(node) in inside:
            continue
        pos = a.positions.get(node)
        if pos is not None and (pos.start.line, pos.start.column) < (start.line, start.column):
            return True
    return False


# ---------------------------------------------------------------------------- the loop


class _LoopSite:
    """Decides whether one ``for``/``async for``/``while`` loop collects then saves, and how to fix it."""

    def __init__(
        self,
        a: FileAnalysis,
        chain: Chain,
        index: int,
        loop: Union[cst.For, cst.While],
        qualname: str,
        function: Optional[cst.FunctionDef],
    ) -> None:
        self.a = a
        self.chain = chain
        self.index = index
        self.loop = loop
        self.qualname = qualname
        self.function = function
        self.items: Optional[ItemSite] = None

    def plan(self) -> Optional[Plan]:
        a, loop = self.a, self.loop
        scope = a.scopes.get(loop)
        if scope is None or isinstance(scope, ClassScope):
            # class Config:  for name in FIELDS: ...   (a class body is not a job)
            return None
        before = self.chain.before(self.index)
        if self._already_checkpointed(before):
            # for item in ckpt:   /   while ckpt.advance():   (our own rewrite)
            return None
        if isinstance(loop, cst.For) and _tiny_literal(loop.iter):
            # for name in ("id", "name", "email"): ...
            return None
        grown = _grown_names(loop.body)
        self.items = item_site(a, loop) if isinstance(loop, cst.For) else None
        accumulators = _find_accumulators(
            a, grown, before, self.function, _frame_written_names(loop.body), self.items, loop.body
        )
        names = [acc.name for acc in accumulators]
        if persists_per_item(a, loop.body):
            # for x in xs: acc.append(f(x)); save(acc)   (already saves, commits or acks inside the body)
            return None
        if _already_resumes(a, loop, before, set(names)):
            # for x in xs: if x in done: continue   (done loaded from disk: it resumes already)
            return None
        from checkpointify.detect.parallel import loop_plan

        handled, parallel = loop_plan(self, accumulators, before)
        if handled:
            # for fut in as_completed(futures): acc.append(fut.result())   (detect/parallel.py)
            return parallel
        if not does_work(a, [loop.body], set(names)):
            # for k in keys: acc.append({"k": k})   (only builds literals and formats)
            return None
        if only_reads_local_files(a, [loop.body], set(names)):
            # for p in paths: with open(p) as f: rows.append(json.load(f))   (a re-run reads them again, fast)
            return None
        if isinstance(loop, cst.For):
            ack = find_queue_ack(a, self.chain, self.index, loop, grown)
            if ack is not None:
                # for m in messages: handle(m); ids.append(m.id)   then   ack(ids)
                return self._ack_plan(accumulators, ack, scope, before)
        if not is_job(a, [loop.body], set(names), self._class()):
            # def render(self): for c in cases: out.append(self._case(c))   (a library helper: no evidence of work)
            return None
        sink = find_sink(a, self.chain, self.index, set(names)) if names else None
        if sink is not None:
            aliases = set(self.items.aliases) if self.items and self.items.name in names else set()
            if not collects_work(a, loop.body, set(names) | aliases):
                # for q in items: pairs.append(q); if full: index.upsert(model.encode(batch))
                # (what is collected holds no result of the work: a re-run rebuilds it by reading the input)
                return None
            return self._collect_plan(accumulators, sink, scope, before)
        if isinstance(loop, cst.For):
            commit = find_db_commit(a, self.chain, self.index, loop, before)
            if commit is not None:
                # for row in rows: cur.execute(...)   then   conn.commit()
                return self._commit_plan(accumulators, commit, scope, before)
        # a helper returning only counters (`return text, num_changed`) is not what its caller keeps
        # (a frame grown by pd.concat and returned is a container too: its journal is its record)
        containers = [acc.name for acc in accumulators if acc.kind in _IDENTITY_KINDS or acc.kind == "concat"]
        returned = (
            find_returned(a, self.chain, self.index, set(names), self.function, self.qualname)
            if containers
            else None
        )
        if returned is not None:
            # def run(xs): acc = []; for x in xs: acc.append(f(x)); return acc   and   json.dump(run(xs), f)
            return self._helper_plan(accumulators, returned, scope, before)
        # acc = []; for ...: acc.append(f(x)); return acc   (only returned, printed or used in memory)
        return None

    def _class(self) -> Optional[str]:
        """The enclosing class of a method (``Crawler`` for ``Crawler.run``)."""
        return _enclosing_class(self.qualname, self.function)

    def _already_checkpointed(self, before: List[cst.BaseStatement]) -> bool:
        loop = self.loop
        if isinstance(loop, cst.While):
            return any(
                isinstance(n, cst.Call)
                and isinstance(n.func, cst.Attribute)
                and n.func.attr.value == "advance"
                and self._is_checkpoint(n.func.value, before)
                for n in walk(loop.test)
            )
        return self._is_checkpoint(loop.iter, before)

    def _is_checkpoint(self, node: cst.BaseExpression, before: List[cst.BaseStatement]) -> bool:
        """``checkpoint(...)``, or a name bound to it just before the loop."""
        if isinstance(node, cst.Call):
            return bool(self.a.qualified(node.func) & self.a.checkpoint_calls)
        if isinstance(node, cst.Name):
            for stmt in reversed(before):
                assigned = single_assignment(stmt)
                if assigned and assigned[0] == node.value:
                    return (
                        self._is_checkpoint(assigned[1], []) if isinstance(assigned[1], cst.Call) else False
                    )
        return False

    def _hazards(
        self,
        accumulators: List[_Accumulator],
        between: Iterator[cst.BaseStatement],
        before: List[cst.BaseStatement],
    ) -> Tuple[hz.Hazards, List[str]]:
        """Every hazard of the loop, and the carried state to checkpoint with the accumulators."""
        a, loop = self.a, self.loop
        names = [acc.name for acc in accumulators]
        after = list(self.chain.after_all(self.index))
        found = hz.Hazards()
        conditional = [acc.name for acc in accumulators if acc.conditional]
        if conditional:
            # if save_dir: results = []   (the checkpoint would read `results` when it is unbound)
            found.add(
                Hazard.UNSUPPORTED_SHAPE,
                "%s %s bound only under an `if`; the checkpoint would read %s when the condition is false"
                % (
                    ", ".join("`%s`" % n for n in conditional),
                    "is" if len(conditional) == 1 else "are",
                    "it" if len(conditional) == 1 else "them",
                ),
            )
        hz.check_exits(found, between)
        hz.check_growth(
            found, [(acc.name, acc.kind) for acc in accumulators if acc.kind != "items"], loop.body
        )
        if self.items is not None and self.items.problem and any(acc.kind == "items" for acc in accumulators):
            found.add(Hazard.ACCUMULATOR_MUTATED, self.items.problem)
        if isinstance(loop, cst.For):
            hz.check_iterable(found, a, loop.iter, before, loop.body)
        else:
            hz.check_condition(found, a, loop.test)
        immutable = {acc.name for acc in accumulators if acc.kind in {"number", "string", "array"}}
        hz.check_body(found, a, loop.body, set(names), frozenset(immutable))
        carried = hz.carried_state(found, a, loop, set(names), after)
        scope = a.scopes.get(loop)
        if scope is not None:
            self._check_carried_bound(found, carried, scope)
            carried += self._stateful_context(found, scope, set(names + carried))
        if isinstance(loop, cst.For):
            # a frame's restore only replays its journal after the iterable started: iterating
            # the frame (df.iterrows()) sees what the uninterrupted run saw
            unframed = [acc.name for acc in accumulators if acc.kind not in ("frame", "items", "concat")]
            hz.check_self_reference(found, loop.iter, unframed + carried)
            hz.check_loop_variable(found, loop.target, after)
            hz.check_futures(found, a, loop.target, loop.iter, [loop.body])
        return found, carried

    def _check_carried_bound(self, found: hz.Hazards, carried: List[str], scope: Scope) -> None:
        """Carried state is read before the first item (``lambda: (acc, x)``): it must be bound by then."""
        unbound = [n for n in carried if not bound_before(self.a, n, scope, self.loop)]
        if unbound:
            # for p in pages: ...; last = parse(p)   then   print(last)   (`last` exists only after an item)
            found.add(
                Hazard.UNSUPPORTED_SHAPE,
                "%s %s bound only inside the loop and read after it, but the checkpoint would read %s before the "
                "first item"
                % (
                    ", ".join("`%s`" % n for n in unbound),
                    "is" if len(unbound) == 1 else "are",
                    "it" if len(unbound) == 1 else "them",
                ),
            )

    def _stateful_context(self, found: hz.Hazards, scope: Scope, state: Set[str]) -> List[str]:
        """Names the key would hold whose object the body changes: carried instead, and unsafe."""
        loop = self.loop
        bound = assigned_names(loop.target) if isinstance(loop, cst.For) else set()
        candidates = context_names(self.a, scope, loop, [loop.body], state | bound | bound_in(loop))
        changed = hz.state_changed(self.a, loop.body) - self.a.progress_bars
        stateful = [n for n in candidates if n in changed]
        if stateful:
            # rng = random.Random(0); for x in xs: out.append(f(x, rng.random()))
            found.add(
                Hazard.CARRIED_STATE,
                "the loop changes %s (a random generator, an iterator or a container), so each is restored from a "
                "snapshot with the accumulators, which must pickle" % ", ".join("`%s`" % n for n in stateful),
            )
        return stateful

    def _site(
        self, variant: Variant, accumulators: List[str], carried: List[str], scope: Scope, **fields: Any
    ) -> Site:
        loop = self.loop
        bound = assigned_names(loop.target) if isinstance(loop, cst.For) else set()
        exclude = set(accumulators + carried) | bound | bound_in(loop) | self.a.progress_bars
        exclude |= fields.pop("handles", set())
        return Site(
            variant=variant,
            kind="for" if isinstance(loop, cst.For) else "while",
            statement=loop,
            iterable=loop.iter if isinstance(loop, cst.For) else None,
            condition=loop.test if isinstance(loop, cst.While) else None,
            accumulators=accumulators,
            carried=carried,
            qualname=self.qualname,
            key=_with_parameters(
                self.function, context_names(self.a, scope, loop, [loop.body], exclude), exclude
            ),
            parts=[loop.body],
            exclude=exclude,
            **fields,
        )

    def _collect_plan(
        self, accumulators: List[_Accumulator], sink: Sink, scope: Scope, before: List[cst.BaseStatement]
    ) -> Plan:
        """CKP001: checkpoint the accumulators, complete after the save."""
        a = self.a
        names = [acc.name for acc in accumulators]
        last = self._last_sink(names, sink)
        found, carried = self._hazards(accumulators, statements_between(self.chain, self.index, last), before)
        if last.bulk_write:
            # cur.executemany(sql, rows); conn.commit()   (complete() goes after the commit)
            found.add(
                Hazard.AT_LEAST_ONCE,
                "the rows `%s` writes are written again on resume if the process dies between the commit "
                "and the checkpoint's completion" % last.bulk_write,
            )
        resume = resume_by_identity(found, [acc.kind for acc in accumulators], carried)
        persisted = [n for n in names if _same_sink(find_sink(a, self.chain, self.index, {n}), sink)] or names
        items = self.items if any(acc.kind == "items" for acc in accumulators) else None
        site = self._site(
            ITEM_WRITES if items is not None else COLLECT_LOOP,
            names,
            carried,
            scope,
            sink_call=sink.call,
            sink=sink.description,
            message=collected_message(persisted, False, sink.description)
            if items is None
            else "the items of `%s` are written in this loop and saved only after it by %s(); a crash before the "
            "save loses every completed unit" % (items.name, sink.description),
            hazards=found,
            complete_after=completion_anchor(last),
            resume=resume,
            frames=tuple(acc.name for acc in accumulators if acc.kind == "frame"),
            items=items,
            concats=tuple((acc.name, acc.callee) for acc in accumulators if acc.callee is not None),
        )
        return make_plan(a, site)

    def _helper_plan(
        self,
        accumulators: List[_Accumulator],
        returned: Returned,
        scope: Scope,
        before: List[cst.BaseStatement],
    ) -> Optional[Plan]:
        """Helper-return: checkpoint the helper's loop (deferred), complete after each caller's save."""
        names = [acc.name for acc in accumulators]
        between = _until(self.chain.after(self.index), returned.statement)
        found, carried = self._hazards(accumulators, between, before)
        if Hazard.ACCUMULATOR_ESCAPES in found.hazards:
            # for e in embs: if cos(e, torch.stack(kept)) < t: kept.append(e)   return kept
            # (each unit reads what earlier units kept: a filter over data in memory, not a
            # collection of independent results; the caller only sees what is left)
            return None
        resume = resume_by_identity(found, [acc.kind for acc in accumulators], carried)
        if not self.a.is_script:
            found.add(
                Hazard.COMPLETED_AT_EXIT,
                "`%s` is in a module that runs nothing of its own; a call from another file is completed "
                "only when the interpreter exits normally" % self.qualname,
            )
        first = returned.callers[0]
        site = self._site(
            HELPER_RETURN,
            names,
            carried,
            scope,
            sink_call=first.sink.call,
            sink=first.sink.description,
            message=returned_message(names, False, returned),
            hazards=found,
            complete_after=None,
            resume=resume,
            deferred=tuple(c.complete_after for c in returned.callers),
            frames=tuple(acc.name for acc in accumulators if acc.kind == "frame"),
            concats=tuple((acc.name, acc.callee) for acc in accumulators if acc.callee is not None),
        )
        return make_plan(self.a, site)

    def _last_sink(self, names: List[str], first: Sink) -> Sink:
        """The save that runs last among every accumulator's own save: ``complete()`` goes after it.

        scores.append(...); names.append(...)   then   dump(scores)   then   dump(names)
        (completing after the first save would drop the log while `names` is unsaved)
        """
        a = self.a
        last, last_end = first, a.positions[completion_anchor(first)].end
        for name in names:
            own = find_sink(a, self.chain, self.index, {name})
            if own is None:
                continue
            end = a.positions[completion_anchor(own)].end
            if (end.line, end.column) > (last_end.line, last_end.column):
                last, last_end = own, end
        return last

    def _commit_plan(
        self,
        accumulators: List[_Accumulator],
        commit: DbCommit,
        scope: Scope,
        before: List[cst.BaseStatement],
    ) -> Plan:
        """CKP002: commit each unit with its progress record, complete after the final commit."""
        between = (s for s in self.chain.after(self.index) if s is not commit.statement)
        found, carried = self._hazards(accumulators, _until(between, commit.statement), before)
        found.remove(Hazard.SIDE_EFFECTS)  # the writes are what the checkpoint commits
        if commit.transactional is None:
            found.add(
                Hazard.AT_LEAST_ONCE,
                "`%s` is not known to be a DB-API connection or a SQLAlchemy session here; if it is not one at "
                "run time, a unit committed just before a crash is written again on resume"
                % commit.connection,
            )
        if commit.writes_before:
            found.add(
                Hazard.WRITES_BEFORE_LOOP, "`%s` before the loop runs again on resume" % commit.writes_before
            )
        site = self._site(
            DB_COMMIT,
            [acc.name for acc in accumulators],
            carried,
            scope,
            sink_call=commit.call,
            sink="%s.commit" % commit.connection,
            message="rows are written in this loop and committed only after it by %s.commit(); a crash before "
            "the commit rolls back every completed unit" % commit.connection,
            hazards=found,
            complete_after=commit.statement,
            transaction=commit.connection,
            handles=commit.handles,
        )
        return make_plan(self.a, site)

    def _ack_plan(
        self, accumulators: List[_Accumulator], ack: QueueAck, scope: Scope, before: List[cst.BaseStatement]
    ) -> Plan:
        """CKP003: acknowledge each message when its unit completes; no checkpoint is stored."""
        loop = self.loop
        found = hz.Hazards()
        if ack.problem:
            found.add(Hazard.UNSUPPORTED_SHAPE, ack.problem)
        if any(isinstance(n, cst.Break) for n in walk(loop.body, cst_loops_and_scopes())):
            # for m in batch: ...; if done: break   (the last message would never be acknowledged)
            found.add(Hazard.UNSUPPORTED_SHAPE, "a `break` would leave the last message unacknowledged")
        others = [acc.name for acc in accumulators if acc.name != ack.grown]
        saved = [n for n in others if find_sink(self.a, self.chain, self.index, {n}) is not None]
        if saved:
            found.add(
                Hazard.UNSUPPORTED_SHAPE,
                "%s is saved after the loop: acknowledging a message before it is saved would lose it on a crash"
                % ", ".join("`%s`" % n for n in saved),
            )
        hz.check_body(found, self.a, loop.body, {acc.name for acc in accumulators})
        found.remove(Hazard.SIDE_EFFECTS)
        found.remove(Hazard.NESTED_LOOP)
        site = self._site(
            QUEUE_ACK,
            [ack.grown] if ack.grown else [],
            [ack.latest] if ack.latest else [],
            scope,
            sink_call=ack.call,
            sink=callee_text(ack.call.func),
            message="messages are processed in this loop and acknowledged only after it by %s(); a crash before "
            "the ack makes the broker redeliver every one of them" % callee_text(ack.call.func),
            hazards=found,
            complete_after=None,
            ack=ack,
        )
        return make_plan(self.a, site)


def _until(statements: Iterator[cst.BaseStatement], stop: cst.BaseStatement) -> Iterator[cst.BaseStatement]:
    for stmt in statements:
        if stmt is stop:
            return
        yield stmt


def cst_loops_and_scopes() -> Tuple[type, ...]:
    """Nodes whose ``break`` does not leave the loop being analysed."""
    return (cst.FunctionDef, cst.ClassDef, cst.Lambda, cst.For, cst.While)


_IDENTITY_KINDS = frozenset({"list", "dict", "set", "deque"})


def resume_by_identity(found: hz.Hazards, kinds: Sequence[str], carried: Sequence[str]) -> Optional[str]:
    """``"identity"`` when the only thing against a safe fix is an iteration order that may change.

    The runtime then matches completed items by fingerprint rather than position and
    re-applies their recorded effect where they appear now, which needs every checkpointed
    value to be a container it can change in place (not a number, a string or carried state).
    """
    if Hazard.UNORDERED_ITERABLE not in found.hazards or carried or not kinds:
        return None
    if not all(kind in _IDENTITY_KINDS for kind in kinds):
        return None
    found.remove(Hazard.UNORDERED_ITERABLE)
    return "identity"


def _same_sink(found: Optional[Sink], sink: Sink) -> bool:
    return found is not None and found.call is sink.call


# ---------------------------------------------------------------------- comprehensions


def _enclosing_class(qualname: str, function: Optional[cst.FunctionDef]) -> Optional[str]:
    if function is None or "." not in qualname or "<locals>" in qualname:
        return None
    return qualname.rsplit(".", 1)[0]


def _comprehension_plan(
    a: FileAnalysis,
    chain: Chain,
    index: int,
    stmt: cst.SimpleStatementLine,
    qualname: str,
    function: Optional[cst.FunctionDef],
) -> Optional[Plan]:
    assigned = single_assignment(stmt)
    if (
        assigned is None
        or "." in assigned[0]
        or not isinstance(assigned[1], (cst.ListComp, cst.SetComp, cst.DictComp))
    ):
        return None
    name, value = assigned[0], assigned[1]
    scope = a.scopes.get(stmt)
    if scope is None or isinstance(scope, ClassScope):
        # class C:  names = [f(x) for x in xs]
        return None
    if not is_job(a, _per_item_parts(value), set(), _enclosing_class(qualname, function)):
        # keys = [k.lower() for k in names]   (cheap; the outermost iterable runs once)
        return None
    if only_reads_local_files(a, _per_item_parts(value), {name}):
        # configs = [json.load(open(p)) for p in paths]   (reading local files is not work worth a checkpoint)
        return None
    if _tiny_literal(value.for_in.iter):
        # columns = [describe(c) for c in ("id", "name")]
        return None
    sink = find_sink(a, chain, index, {name})
    returned: Optional[Returned] = None
    if sink is None:
        returned = find_returned(a, chain, index, {name}, function, qualname)
        if returned is None:
            # vectors = [embed(x) for x in xs]; return vectors   (and no caller here saves them)
            return None
        sink = returned.callers[0].sink
    clauses = for_clauses(value.for_in)
    between = (
        _until(chain.after(index), returned.statement) if returned else statements_between(chain, index, sink)
    )
    found = _comprehension_hazards(a, chain, index, name, value, clauses, scope, between)
    kind = "list" if isinstance(value, cst.ListComp) else "set" if isinstance(value, cst.SetComp) else "dict"
    resume = resume_by_identity(found, [kind], [])
    exclude = {name}.union(*(assigned_names(c.target) for c in clauses)) | a.progress_bars
    parts = _per_item_parts(value)
    changed = hz.state_changed(a, value) - a.progress_bars
    stateful = [n for n in context_names(a, scope, stmt, parts, exclude) if n in changed]
    if stateful:
        # draws = [f(x, rng.random()) for x in xs]   (unrolled, `rng` would have to be restored too)
        found.add(
            Hazard.UNSUPPORTED_SHAPE,
            "the comprehension changes %s (a random generator, an iterator or a container), which its "
            "checkpoint would not restore" % ", ".join("`%s`" % n for n in stateful),
        )
        exclude |= set(stateful)
    key = context_names(a, scope, stmt, parts, exclude)
    if returned is not None and not a.is_script:
        found.add(
            Hazard.COMPLETED_AT_EXIT,
            "`%s` is in a module that runs nothing of its own; a call from another file is completed only when "
            "the interpreter exits normally" % qualname,
        )
    site = Site(
        variant=HELPER_RETURN if returned else COLLECT_COMPREHENSION,
        kind="comprehension",
        statement=stmt,
        iterable=clauses[0].iter,
        condition=None,
        accumulators=[name],
        carried=[],
        sink_call=sink.call,
        sink=sink.description,
        message=returned_message([name], True, returned)
        if returned
        else collected_message([name], True, sink.description),
        hazards=found,
        qualname=qualname,
        key=_with_parameters(function, key, exclude) if returned else key,
        complete_after=None if returned else completion_anchor(sink),
        comprehension=ComprehensionPlan(value, kind),
        resume=resume,
        deferred=tuple(c.complete_after for c in returned.callers) if returned else (),
        parts=parts,
        exclude=exclude,
    )
    return make_plan(a, site)


def _row_apply_plan(
    a: FileAnalysis,
    chain: Chain,
    index: int,
    stmt: cst.SimpleStatementLine,
    qualname: str,
    function: Optional[cst.FunctionDef],
) -> Optional[Plan]:
    """``df["label"] = df["text"].apply(classify)`` then a save of ``df`` (see :mod:`.rows`)."""
    row = row_apply_site(a, chain, index, stmt, _enclosing_class(qualname, function))
    if row is None:
        return None
    scope = a.scopes.get(stmt)
    assert scope is not None  # row_apply_site checked it
    exclude = {row.base} | set(a.progress_bars)
    key = _with_parameters(function, context_names(a, scope, stmt, list(row.parts), exclude), exclude)
    site = Site(
        variant=ROW_APPLY,
        kind="rows",
        statement=stmt,
        iterable=row.receiver,
        condition=None,
        accumulators=[row.base],
        carried=[],
        sink_call=row.sink.call,
        sink=row.sink.description,
        message="`%s` is computed row by row by .%s() and saved only after it by %s(); a crash before "
        "the save loses every completed row" % (row.target, row.method, row.sink.description),
        hazards=row.hazards,
        qualname=qualname,
        key=key,
        complete_after=completion_anchor(row.sink),
        rows=row.receiver,
        loop_names=[row.target],
    )
    return make_plan(a, site)


def _per_item_parts(value: Comprehension) -> List[cst.CSTNode]:
    """What a comprehension evaluates per item: the element, the conditions, inner iterables."""
    parts: List[cst.CSTNode] = [value.key, value.value] if isinstance(value, cst.DictComp) else [value.elt]
    for clause in for_clauses(value.for_in):
        parts.extend(test.test for test in clause.ifs)
        if clause is not value.for_in:
            parts.append(clause.iter)
    return parts


def _comprehension_hazards(
    a: FileAnalysis,
    chain: Chain,
    index: int,
    name: str,
    value: Comprehension,
    clauses: List[cst.CompFor],
    scope: Scope,
    between: Iterator[cst.BaseStatement],
) -> hz.Hazards:
    found = hz.Hazards()
    if any(c.asynchronous is not None for c in clauses) or any(
        isinstance(n, cst.NamedExpr) for n in walk(value)
    ):
        found.add(Hazard.UNSUPPORTED_SHAPE, "async comprehension or assignment expression")
    if any(isinstance(n, cst.Comment) for n in walk(value)):
        found.add(Hazard.UNSUPPORTED_SHAPE, "comments inside the comprehension would be lost")
    if name in names_in(value):
        # names = [f(n) for n in names]   (unrolling would empty `names` before reading it)
        found.add(Hazard.UNSUPPORTED_SHAPE, "the comprehension reads `%s`, the name it is assigned to" % name)
    leaked = _leaking_names(scope, value, clauses)
    if leaked:
        shown = ", ".join("`%s`" % n for n in leaked)
        found.add(Hazard.SCOPE_LEAK, "unrolling would bind %s, already used in this scope" % shown)
    if len(clauses) > 1:
        found.add(Hazard.NESTED_LOOP, "an inner `for` clause's progress within the unit in flight is redone")
    hz.check_exits(found, between)
    hz.check_iterable(found, a, clauses[0].iter, chain.before(index), None)
    hz.check_futures(found, a, clauses[0].target, clauses[0].iter, _per_item_parts(value))
    return found


def _leaking_names(scope: Scope, comp: cst.CSTNode, clauses: List[cst.CompFor]) -> List[str]:
    """Comprehension variables whose names the enclosing scope already binds or reads."""
    inside = {id(n) for n in walk(comp, ())}
    leaked: List[str] = []
    for clause in clauses:
        for name in sorted(assigned_names(clause.target)):
            uses = [acc for acc in scope.accesses[name] if id(acc.node) not in inside]
            binds: Dict[int, object] = {
                id(asg): asg
                for asg in scope.assignments[name]
                if id(getattr(asg, "node", None)) not in inside
            }
            if uses or binds:
                leaked.append(name)
    return leaked
