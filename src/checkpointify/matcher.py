"""Pure detection: a parsed module in, plans (findings plus what the fix needs) out.

The shape we look for, in one block (a module, function, method, ``if`` or ``with`` body):

    acc = []                      # an accumulator bound to an empty or literal value
    for item in items:            # a loop whose body does real work
        acc.append(work(item))    # ... and grows the accumulator
    save(acc)                     # later in the block: a sink persists acc or a value built from it

Each early return in :class:`_LoopAnalysis` carries a comment showing the code it rejects.
Nothing here changes the tree; :mod:`checkpointify.transformer` applies the plans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Dict,
    FrozenSet,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

import libcst as cst
from libcst.metadata import (
    MetadataWrapper,
    PositionProvider,
    QualifiedNameProvider,
    ScopeProvider,
)
from libcst.metadata.scope_provider import ClassScope, ImportAssignment, Scope

from checkpointify import sinks
from checkpointify.patterns import (
    COLLECT_COMPREHENSION,
    COLLECT_LOOP,
    Variant,
    fix_safety,
)
from checkpointify.types import Finding, Hazard, Options

Block = Sequence[cst.BaseStatement]
_PRUNE = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
_LOOPS = (cst.For, cst.While)
_EMPTY = cst.Module(body=[])

#: how an accumulator grows, by the kind of its initial value
_GROWTH_METHODS: Dict[str, FrozenSet[str]] = {
    "list": frozenset({"append", "extend"}),
    "deque": frozenset({"append", "extend"}),
    "dict": frozenset({"update", "setdefault"}),
    "set": frozenset({"add", "update"}),
    "number": frozenset(),
    "string": frozenset(),
}
_READ_METHODS = frozenset(
    {
        "get",
        "keys",
        "values",
        "items",
        "count",
        "index",
        "copy",
        "most_common",
        "issubset",
        "issuperset",
        "isdisjoint",
        "union",
        "intersection",
        "difference",
    }
)
_MUTATING_METHODS = frozenset(
    {
        "pop",
        "popitem",
        "remove",
        "discard",
        "clear",
        "sort",
        "reverse",
        "insert",
        "appendleft",
        "extendleft",
        "rotate",
        "subtract",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
    }
)
_UNORDERED_CALLS = frozenset(
    {"os.listdir", "os.scandir", "os.walk", "glob.glob", "glob.iglob"}
)
_UNORDERED_METHODS = frozenset({"glob", "rglob", "iterdir"})
_SINGLE_PASS_METHODS = frozenset(
    {"fetchmany", "iter_rows", "consume", "poll", "receive_messages", "stream"}
)
_SINGLE_PASS_CALLS = frozenset(
    {
        "builtins.iter",
        "builtins.map",
        "builtins.filter",
        "torch.utils.data.DataLoader",
        "itertools.islice",
        "itertools.chain",
    }
)
_SIDE_EFFECT_CALLS = frozenset(
    {
        "requests.post",
        "requests.put",
        "requests.patch",
        "requests.delete",
        "httpx.post",
        "httpx.put",
        "httpx.patch",
        "httpx.delete",
        "os.remove",
        "os.unlink",
        "os.rename",
        "os.replace",
        "os.rmdir",
        "shutil.move",
        "shutil.copy",
        "shutil.copy2",
        "shutil.copyfile",
        "shutil.copytree",
        "shutil.rmtree",
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.Popen",
        "os.system",
    }
)
_SIDE_EFFECT_METHODS = frozenset(
    {
        "execute",
        "executemany",
        "send",
        "sendall",
        "sendmail",
        "publish",
        "put_object",
        "post",
        "put",
        "patch",
        "delete",
        "insert_one",
        "insert_many",
        "update_one",
        "update_many",
        "delete_one",
        "delete_many",
    }
)
_COLLECTIVE_METHODS = frozenset(
    {
        "all_gather",
        "all_reduce",
        "all_to_all",
        "barrier",
        "broadcast",
        "reduce_scatter",
        "all_gather_object",
        "gather_object",
        "broadcast_object_list",
        "allreduce",
        "allgather",
        "bcast",
        "Barrier",
        "wait_for_everyone",
    }
)
_UNPICKLABLE_CALLS = frozenset(
    {
        "builtins.open",
        "threading.Lock",
        "threading.RLock",
        "sqlite3.connect",
        "socket.socket",
    }
)
_TINY_LITERAL_LOOP = 5


@dataclass(frozen=True)
class ComprehensionPlan:
    """How to unroll ``name = [elt for ... in ...]`` into a loop."""

    node: Union[cst.ListComp, cst.SetComp, cst.DictComp]
    kind: str  # "list", "set" or "dict"


@dataclass(frozen=True)
class Plan:
    """One finding plus what the transformer needs to rewrite it (CST nodes by identity)."""

    finding: Finding
    statement: cst.BaseStatement  # the For, or the comprehension's assignment line
    iterable: cst.BaseExpression
    target: cst.BaseAssignTargetExpression
    state: Tuple[
        str, ...
    ]  # names the checkpoint restores, in order (accumulators, carried state)
    loop_id: str
    key: Tuple[str, ...]
    complete_after: cst.BaseStatement
    comprehension: Optional[ComprehensionPlan] = None


@dataclass
class _Accumulator:
    name: str
    kind: str
    init: cst.BaseStatement


@dataclass
class _Chain:
    """A block and, when it is a ``with`` body, the block holding that ``with`` statement."""

    body: Block
    owner: Optional[cst.CSTNode]
    parent: Optional["_Chain"] = None
    index_in_parent: int = -1


@dataclass
class _Sink:
    call: cst.Call
    description: str
    statement: cst.BaseStatement  # the block-level statement holding the call
    chain: _Chain
    path: List[cst.CSTNode] = field(
        default_factory=list
    )  # statements from `statement` down to the call


class FileAnalysis:
    """Metadata and module-wide facts shared by every loop of one file."""

    def __init__(self, wrapper: MetadataWrapper, path: str, options: Options) -> None:
        self.module = wrapper.module
        self.path = path
        self.options = options
        self.scopes = wrapper.resolve(ScopeProvider)
        self.positions = wrapper.resolve(PositionProvider)
        self._qnames = wrapper.resolve(QualifiedNameProvider)
        self.runtime_module = options.runtime_module
        self.extra_sinks = frozenset(options.extra_sinks)
        self.extra_checkpoint_calls = frozenset(options.extra_checkpoint_calls) | {
            options.runtime_module + ".checkpoint"
        }
        self._generators: Dict[cst.CSTNode, bool] = {}
        self._ids: Dict[str, int] = {}

    # -- metadata helpers ----------------------------------------------------------------

    def qualified(self, node: cst.CSTNode) -> Set[str]:
        value = self._qnames.get(node)
        if value is None:
            return set()
        names = value() if callable(value) else value
        return {q.name for q in names}

    def line(self, node: cst.CSTNode) -> int:
        return int(self.positions[node].start.line)

    def end_line(self, node: cst.CSTNode) -> int:
        return int(self.positions[node].end.line)

    def is_generator(self, fn: cst.FunctionDef) -> bool:
        if fn not in self._generators:
            self._generators[fn] = any(
                isinstance(n, (cst.Yield,)) for n in walk(fn.body)
            )
        return self._generators[fn]

    def loop_identity(self, qualname: str, names: Sequence[str]) -> str:
        base = "%s::%s::%s" % (self.relative_path(), qualname, ",".join(names))
        count = self._ids.get(base, 0) + 1
        self._ids[base] = count
        return base if count == 1 else "%s#%d" % (base, count)

    def relative_path(self) -> str:
        path = Path(self.path)
        root = (
            self.options.root if self.options.root is not None else project_root(path)
        )
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return path.name


def project_root(path: Path) -> Path:
    """The nearest ancestor holding .git, pyproject.toml, setup.py or setup.cfg (else the file's folder)."""
    start = path.resolve().parent
    for candidate in (start, *start.parents):
        if any(
            (candidate / marker).exists()
            for marker in (".git", "pyproject.toml", "setup.py", "setup.cfg")
        ):
            return candidate
    return start


def find_plans(wrapper: MetadataWrapper, path: str, options: Options) -> List[Plan]:
    """Every collect-then-save site of a module, in source order."""
    analysis = FileAnalysis(wrapper, path, options)
    plans: List[Plan] = []
    _scan_block(analysis, _Chain(analysis.module.body, None), "<module>", None, plans)
    plans.sort(key=lambda p: (p.finding.line, p.finding.column))
    return plans


def _scan_block(
    analysis: FileAnalysis,
    chain: _Chain,
    qualname: str,
    function: Optional[cst.FunctionDef],
    plans: List[Plan],
) -> None:
    """Look at each statement of a block, then recurse into the blocks it holds."""
    in_generator = function is not None and analysis.is_generator(function)
    for index, stmt in enumerate(chain.body):
        if not in_generator:
            plan: Optional[Plan] = None
            if isinstance(stmt, cst.For) and stmt.asynchronous is None:
                plan = _LoopAnalysis(
                    analysis, chain, index, stmt, qualname, function
                ).run()
            elif isinstance(stmt, cst.SimpleStatementLine):
                plan = _comprehension_plan(
                    analysis, chain, index, stmt, qualname, function
                )
            if plan is not None:
                plans.append(plan)
        for child_chain, child_qualname, child_function in _child_blocks(
            stmt, chain, index, qualname, function
        ):
            _scan_block(analysis, child_chain, child_qualname, child_function, plans)


def _child_blocks(
    stmt: cst.BaseStatement,
    chain: _Chain,
    index: int,
    qualname: str,
    function: Optional[cst.FunctionDef],
) -> Iterator[Tuple[_Chain, str, Optional[cst.FunctionDef]]]:
    if isinstance(stmt, cst.FunctionDef):
        inner = (
            stmt.name.value
            if qualname == "<module>"
            else "%s.%s" % (qualname, stmt.name.value)
        )
        if function is not None:
            inner = "%s.<locals>.%s" % (qualname, stmt.name.value)
        yield _Chain(_body(stmt.body), stmt), inner, stmt
        return
    if isinstance(stmt, cst.ClassDef):
        inner = (
            stmt.name.value
            if qualname == "<module>"
            else "%s.%s" % (qualname, stmt.name.value)
        )
        # a class body is never a place for a loop we rewrite, but its methods are
        for sub in _body(stmt.body):
            if isinstance(sub, cst.FunctionDef):
                yield (
                    _Chain(_body(sub.body), sub),
                    "%s.%s" % (inner, sub.name.value),
                    sub,
                )
            elif isinstance(sub, cst.ClassDef):
                yield from _child_blocks(
                    sub, _Chain(_body(stmt.body), stmt), 0, inner, function
                )
        return
    if isinstance(stmt, cst.With):
        yield _Chain(_body(stmt.body), stmt, chain, index), qualname, function
        return
    for block in _statement_blocks(stmt):
        yield _Chain(block, stmt), qualname, function


def _body(suite: cst.BaseSuite) -> Block:
    return suite.body if isinstance(suite, cst.IndentedBlock) else ()


def _statement_blocks(stmt: cst.BaseStatement) -> Iterator[Block]:
    """The statement lists directly inside a compound statement (not functions or classes)."""
    if isinstance(stmt, (cst.For, cst.While)):
        yield _body(stmt.body)
        if stmt.orelse is not None:
            yield _body(stmt.orelse.body)
    elif isinstance(stmt, cst.If):
        yield _body(stmt.body)
        orelse = stmt.orelse
        while orelse is not None:
            yield _body(orelse.body)
            orelse = orelse.orelse if isinstance(orelse, cst.If) else None
    elif isinstance(stmt, (cst.Try, cst.TryStar)):
        yield _body(stmt.body)
        for handler in stmt.handlers:
            yield _body(handler.body)
        if stmt.orelse is not None:
            yield _body(stmt.orelse.body)
        if stmt.finalbody is not None:
            yield _body(stmt.finalbody.body)
    elif isinstance(stmt, cst.With):
        yield _body(stmt.body)
    elif isinstance(stmt, cst.Match):
        for case in stmt.cases:
            yield _body(case.body)


# ------------------------------------------------------------------------ tree helpers


def walk(node: cst.CSTNode, prune: Tuple[type, ...] = _PRUNE) -> Iterator[cst.CSTNode]:
    """Every node under ``node`` (itself included), not descending into ``prune`` types."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(c for c in reversed(current.children) if not isinstance(c, prune))


def all_names(module: cst.Module) -> FrozenSet[str]:
    names: Set[str] = set()
    for node in walk(module, ()):
        if isinstance(node, cst.Name):
            names.add(node.value)
    return frozenset(names)


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


def target_name(node: cst.CSTNode) -> Optional[str]:
    """``results`` for a Name; ``self.results`` for an attribute of self; else None."""
    if isinstance(node, cst.Name):
        return node.value
    if (
        isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == "self"
    ):
        return "self.%s" % node.attr.value
    return None


def _names_in(node: cst.CSTNode) -> Set[str]:
    """Names and ``self.x`` attributes read anywhere in ``node``."""
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
        elif isinstance(current, (cst.AnnAssign, cst.NamedExpr)) or (
            isinstance(current, (cst.For, cst.CompFor))
        ):
            skip = {id(current.target)}
        elif isinstance(current, cst.WithItem) and current.asname is not None:
            skip = {id(current.asname)}
        elif isinstance(current, cst.Attribute):
            skip = {id(current.attr)}
        elif isinstance(current, cst.Arg) and current.keyword is not None:
            skip = {id(current.keyword)}
        elif isinstance(current, (cst.FunctionDef, cst.ClassDef)):
            skip = {id(current.name)}
        elif isinstance(current, cst.Param):
            skip = {id(current.name)}
        stack.extend(c for c in reversed(current.children) if id(c) not in skip)


def _binds(stmt: cst.CSTNode, name: str) -> bool:
    """``stmt`` unconditionally rebinds ``name`` before anything else reads it."""
    assigned = _single_assignment(stmt)
    return (
        assigned is not None
        and assigned[0] == name
        and name not in {n.value for n in loads(assigned[1])}
    )


def read_after(name: str, statements: Iterable[cst.BaseStatement]) -> bool:
    """Whether ``statements`` (run in order) may read the value ``name`` has on entry."""
    for stmt in statements:
        if _binds(stmt, name):
            return False
        if any(n.value == name for n in loads(stmt)) and not _only_rebound_reads(
            stmt, name
        ):
            return True
    return False


def _only_rebound_reads(stmt: cst.CSTNode, name: str) -> bool:
    """``for name in other: use(name)``: every read sees the statement's own binding."""
    return (
        isinstance(stmt, cst.For)
        and name in _assigned_names(stmt.target)
        and not any(n.value == name for n in loads(stmt.iter))
        and (
            stmt.orelse is None or not any(n.value == name for n in loads(stmt.orelse))
        )
    )


def _assigned_names(target: cst.CSTNode) -> Set[str]:
    """Names bound by an assignment or loop target (``a, (b, c)`` -> a, b, c)."""
    if isinstance(target, (cst.Name, cst.Attribute)):
        name = target_name(target)
        return {name} if name else set()
    if isinstance(target, (cst.Tuple, cst.List)):
        out: Set[str] = set()
        for element in target.elements:
            out |= _assigned_names(element.value)
        return out
    if isinstance(target, cst.StarredElement):
        return _assigned_names(target.value)
    return set()


def _single_assignment(stmt: cst.CSTNode) -> Optional[Tuple[str, cst.BaseExpression]]:
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


# ------------------------------------------------------------------------- accumulators


def accumulator_kind(
    analysis: FileAnalysis, value: cst.BaseExpression
) -> Optional[str]:
    """The kind of accumulator an initial value makes, or None when it is not one."""
    if isinstance(value, cst.List) and all(
        not isinstance(e, cst.StarredElement) for e in value.elements
    ):
        return "list"  # [] or a literal list of rows (a header row)
    if isinstance(value, cst.Dict) and not value.elements:
        return "dict"
    if isinstance(value, cst.Set):
        return "set"
    if isinstance(value, (cst.Integer, cst.Float)):
        return "number"
    if isinstance(value, cst.UnaryOperation) and isinstance(
        value.expression, (cst.Integer, cst.Float)
    ):
        return "number"
    if isinstance(value, cst.SimpleString) and not value.value.lstrip(
        "rRuU"
    ).startswith(("b", "B")):
        return "string"
    if isinstance(value, cst.Call):
        names = analysis.qualified(value.func)
        no_data = not value.args
        if no_data and names & {"builtins.list"}:
            return "list"
        if no_data and names & {
            "builtins.dict",
            "collections.OrderedDict",
            "collections.Counter",
        }:
            return "dict"
        if no_data and names & {"builtins.set"}:
            return "set"
        if names & {"collections.defaultdict"}:
            return "dict"
        if no_data and names & {"collections.deque"}:
            return "deque"
    return None


# --------------------------------------------------------------------------- the loop


class _LoopAnalysis:
    """Decides whether one ``for`` statement is a collect-then-save loop, and how to fix it."""

    def __init__(
        self,
        analysis: FileAnalysis,
        chain: _Chain,
        index: int,
        loop: cst.For,
        qualname: str,
        function: Optional[cst.FunctionDef],
    ) -> None:
        self.a = analysis
        self.chain = chain
        self.index = index
        self.loop = loop
        self.qualname = qualname
        self.function = function
        self.hazards: List[Hazard] = []
        self.notes: List[str] = []

    def run(self) -> Optional[Plan]:
        a, loop = self.a, self.loop
        scope = a.scopes.get(loop)
        if scope is None or isinstance(scope, ClassScope):
            # class Config:  for name in FIELDS: ...   (a class body is not a job)
            return None
        if self._already_checkpointed():
            # for item in ckpt:   (ckpt = checkpoint(...) -- our own rewrite)
            return None
        if self._tiny_literal_iterable():
            # for name in ("a", "b", "c"): ...
            return None
        grown = self._grown_names()
        if not grown:
            # for x in xs: total_work(x)   (nothing accumulates)
            return None
        accumulators = self._accumulators(grown, scope)
        if not accumulators:
            # out = load(); for x in xs: out.append(f(x))   (not bound to an empty/literal value before the loop)
            return None
        if self._persists_per_item():
            # for x in xs: acc.append(f(x)); save(acc)   (already saves inside the body)
            return None
        if not self._does_work({acc.name for acc in accumulators}):
            # for k in keys: acc.append({"k": k})   (only builds literals)
            return None
        sink = _find_sink(a, self.chain, self.index, {acc.name for acc in accumulators})
        if sink is None:
            # acc = [...]; for ...: acc.append(f(x)); return acc   (only returned, printed or used in memory)
            return None
        self._check_exits(sink)
        self._check_growth(accumulators)
        self._check_iterable(self.loop.iter, scope)
        self._check_body(accumulators)
        carried = self._carried_state({acc.name for acc in accumulators})
        self._check_self_reference(
            self.loop.iter, [acc.name for acc in accumulators] + carried
        )
        self._check_loop_variable()
        return self._plan(accumulators, carried, sink, scope)

    # -- predicates ------------------------------------------------------------------

    def _already_checkpointed(self) -> bool:
        iterable = self.loop.iter
        if isinstance(iterable, cst.Call):
            return bool(self.a.qualified(iterable.func) & self.a.extra_checkpoint_calls)
        if not isinstance(iterable, cst.Name):
            return False
        for stmt in reversed(self._statements_before()):
            assigned = _single_assignment(stmt)
            if assigned and assigned[0] == iterable.value:
                value = assigned[1]
                return isinstance(value, cst.Call) and bool(
                    self.a.qualified(value.func) & self.a.extra_checkpoint_calls
                )
        return False

    def _tiny_literal_iterable(self) -> bool:
        iterable = self.loop.iter
        if isinstance(iterable, (cst.Tuple, cst.List, cst.Set)):
            elements = iterable.elements
            return len(elements) <= _TINY_LITERAL_LOOP and all(
                isinstance(
                    e.value,
                    (
                        cst.SimpleString,
                        cst.Integer,
                        cst.Float,
                        cst.Name,
                        cst.Attribute,
                        cst.Tuple,
                    ),
                )
                for e in elements
            )
        return False

    def _statements_before(self) -> List[cst.BaseStatement]:
        """Statements that run before the loop in its block and the enclosing ``with`` blocks, in order."""
        out: List[cst.BaseStatement] = []
        chain: Optional[_Chain] = self.chain
        limit = self.index
        while chain is not None:
            out[:0] = list(chain.body[:limit])
            if chain.parent is None:
                break
            limit = chain.index_in_parent
            chain = chain.parent
        return out

    def _statements_after(self) -> Iterator[cst.BaseStatement]:
        """Statements that run after the loop in its block, then after the enclosing ``with`` blocks."""
        chain: Optional[_Chain] = self.chain
        start = self.index + 1
        while chain is not None:
            yield from chain.body[start:]
            if chain.parent is None:
                return
            start = chain.index_in_parent + 1
            chain = chain.parent

    def _grown_names(self) -> Dict[str, List[str]]:
        """Names the body grows, with how: ``{"results": ["append"], "total": ["+="]}``."""
        grown: Dict[str, List[str]] = {}
        for node in walk(self.loop.body):
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
                name = target_name(node.func.value)
                method = node.func.attr.value
                if name and method in {
                    "append",
                    "extend",
                    "add",
                    "update",
                    "setdefault",
                }:
                    grown.setdefault(name, []).append(method)
                elif method in {"append", "extend", "add", "update"} and isinstance(
                    node.func.value, cst.Subscript
                ):
                    inner = target_name(node.func.value.value)
                    if inner:
                        grown.setdefault(inner, []).append("[]." + method)
            elif isinstance(node, cst.AugAssign):
                name = target_name(node.target)
                if name:
                    grown.setdefault(name, []).append("+=")
                elif isinstance(node.target, cst.Subscript):
                    inner = target_name(node.target.value)
                    if inner:
                        grown.setdefault(inner, []).append("[]+=")
            elif isinstance(node, cst.Assign):
                for t in node.targets:
                    if isinstance(t.target, cst.Subscript):
                        inner = target_name(t.target.value)
                        if inner:
                            grown.setdefault(inner, []).append("[]=")
                    else:
                        name = target_name(t.target)
                        if name and _is_self_concat(name, node.value):
                            grown.setdefault(name, []).append("= +")
        return grown

    def _accumulators(
        self, grown: Dict[str, List[str]], scope: Scope
    ) -> List[_Accumulator]:
        found: List[_Accumulator] = []
        before = self._statements_before()
        for name in grown:
            if "." in name or _declared_global(self.function, name):
                # self.results (a later issue), or `global results` in the function
                continue
            for stmt in reversed(before):
                assigned = _single_assignment(stmt)
                if assigned and assigned[0] == name:
                    kind = accumulator_kind(self.a, assigned[1])
                    if kind is not None and _plain_init(stmt, before, name):
                        found.append(_Accumulator(name, kind, stmt))
                    break
                if name in _bound_in(stmt):
                    break  # bound in a way we do not model (for, with, if-branch): not ours
        found.sort(key=lambda acc: before.index(acc.init))
        return found

    def _persists_per_item(self) -> bool:
        for node in walk(self.loop.body):
            if isinstance(node, cst.Call):
                if _describe_sink(self.a, node) is not None:
                    return True
                if (
                    isinstance(node.func, cst.Attribute)
                    and node.func.attr.value in sinks.PER_ITEM_PERSIST_METHODS
                ):
                    if not (
                        self.a.qualified(node.func) & sinks.NOT_SINKS
                    ) and not _on_std_stream(node.func):
                        return True
        return False

    def _does_work(self, accumulators: Set[str]) -> bool:
        for node in walk(self.loop.body):
            if isinstance(node, cst.Await):
                return True
            if not isinstance(node, cst.Call):
                continue
            func = node.func
            if isinstance(func, cst.Name) and func.value in sinks.CHEAP_BUILTINS:
                continue
            if isinstance(func, cst.Attribute):
                owner = target_name(func.value)
                if owner in accumulators or func.attr.value in sinks.CHEAP_METHODS:
                    continue
            return True
        return False

    # -- hazards ----------------------------------------------------------------------

    def _check_exits(self, sink: _Sink) -> None:
        for stmt in _statements_between(self.chain, self.index, sink):
            for node in walk(stmt):
                if isinstance(node, (cst.Return, cst.Raise)):
                    self._hazard(
                        Hazard.EXIT_BEFORE_SAVE,
                        "`%s` between the loop and the save"
                        % code_of(node).split("\n")[0].strip(),
                    )
                    return
            if _escapes_block(stmt):
                self._hazard(
                    Hazard.EXIT_BEFORE_SAVE,
                    "a break or continue between the loop and the save",
                )
                return

    def _check_growth(self, accumulators: List[_Accumulator]) -> None:
        for acc in accumulators:
            for node in walk(self.loop.body):
                problem = _growth_problem(acc, node)
                if problem:
                    self._hazard(Hazard.ACCUMULATOR_MUTATED, problem)
                    return

    def _check_iterable(
        self, iterable: cst.BaseExpression, scope: Scope, depth: int = 0
    ) -> None:
        if depth > 4:
            return
        if isinstance(iterable, (cst.Set, cst.SetComp)):
            self._hazard(Hazard.UNORDERED_ITERABLE, "iterates over a set")
            return
        if isinstance(iterable, cst.GeneratorExp):
            self._hazard(
                Hazard.SINGLE_PASS_ITERABLE,
                "iterates over a generator expression; skipping completed items re-runs it",
            )
            return
        if isinstance(iterable, cst.Name):
            for stmt in reversed(self._statements_before()):
                assigned = _single_assignment(stmt)
                if assigned and assigned[0] == iterable.value:
                    self._check_iterable(assigned[1], scope, depth + 1)
                    break
            if any(iterable.value in _names_in(n) for n in self.loop.body.body):
                if _consumed_in_body(self.loop.body, iterable.value):
                    self._hazard(
                        Hazard.SINGLE_PASS_ITERABLE,
                        "`%s` is also consumed inside the loop" % iterable.value,
                    )
            return
        if not isinstance(iterable, cst.Call):
            return
        names = self.a.qualified(iterable.func)
        if names & {"builtins.sorted"}:
            return  # sorted(os.listdir(d)) has a stable order
        if names & _UNORDERED_CALLS or names & {"builtins.set", "builtins.frozenset"}:
            self._hazard(
                Hazard.UNORDERED_ITERABLE,
                "iterates over %s(...), whose order may change"
                % callee_text(iterable.func),
            )
            return
        if (
            isinstance(iterable.func, cst.Attribute)
            and iterable.func.attr.value in _UNORDERED_METHODS
        ):
            self._hazard(
                Hazard.UNORDERED_ITERABLE,
                "iterates over %s(...), whose order may change"
                % callee_text(iterable.func),
            )
            return
        if names & _SINGLE_PASS_CALLS or (
            isinstance(iterable.func, cst.Attribute)
            and iterable.func.attr.value in _SINGLE_PASS_METHODS
        ):
            self._hazard(
                Hazard.SINGLE_PASS_ITERABLE,
                "iterates over %s(...)" % callee_text(iterable.func),
            )
            return
        if isinstance(iterable.func, cst.Name) and self._is_local_generator(
            iterable.func.value
        ):
            self._hazard(
                Hazard.SINGLE_PASS_ITERABLE,
                "iterates over the generator %s(); skipping completed items re-runs it"
                % iterable.func.value,
            )
            return
        if (
            names
            & {
                "builtins.enumerate",
                "builtins.zip",
                "builtins.reversed",
                "builtins.list",
                "builtins.tuple",
            }
            or (
                isinstance(iterable.func, cst.Name)
                and iterable.func.value in {"tqdm", "trange", "track"}
            )
            or any(n.startswith(("tqdm.", "rich.progress.")) for n in names)
        ):
            for arg in iterable.args:
                if arg.keyword is None:
                    self._check_iterable(arg.value, scope, depth + 1)

    def _is_local_generator(self, name: str) -> bool:
        for node in self.a.module.body:
            if isinstance(node, cst.FunctionDef) and node.name.value == name:
                return self.a.is_generator(node)
        return False

    def _check_body(self, accumulators: List[_Accumulator]) -> None:
        names = {acc.name for acc in accumulators}
        has_inner_loop = False
        for node in walk(self.loop.body):
            if isinstance(node, _LOOPS) or (
                isinstance(node, cst.For) and node.asynchronous
            ):
                has_inner_loop = True
            if not isinstance(node, cst.Call):
                continue
            qualified = self.a.qualified(node.func)
            method = (
                node.func.attr.value if isinstance(node.func, cst.Attribute) else None
            )
            owner = (
                target_name(node.func.value)
                if isinstance(node.func, cst.Attribute)
                else None
            )
            if (
                any(q.startswith("torch.distributed.") for q in qualified)
                or method in _COLLECTIVE_METHODS
            ):
                self._hazard(
                    Hazard.COLLECTIVE_OPERATION, "calls %s()" % callee_text(node.func)
                )
            elif qualified & _SIDE_EFFECT_CALLS or (
                method in _SIDE_EFFECT_METHODS and owner not in names
            ):
                self._hazard(Hazard.SIDE_EFFECTS, "calls %s()" % callee_text(node.func))
            elif method in {"append", "add", "extend"} and owner in names:
                for arg in node.args:
                    if isinstance(arg.value, (cst.Lambda, cst.GeneratorExp)) or (
                        isinstance(arg.value, cst.Call)
                        and self.a.qualified(arg.value.func) & _UNPICKLABLE_CALLS
                    ):
                        self._hazard(
                            Hazard.UNSERIALISABLE_RESULTS,
                            "accumulates %s" % code_of(arg.value),
                        )
            else:
                self._check_escape(node, names)
        if has_inner_loop:
            self._hazard(
                Hazard.NESTED_LOOP,
                "an inner loop's progress within the unit in flight is redone",
            )

    def _check_escape(self, call: cst.Call, accumulators: Set[str]) -> None:
        func = call.func
        if isinstance(func, cst.Name) and func.value in sinks.CHEAP_BUILTINS:
            return
        if isinstance(func, cst.Attribute):
            owner = target_name(func.value)
            if owner in accumulators or func.attr.value in sinks.LOGGING_METHODS:
                return
        for arg in call.args:
            value = arg.value
            name = target_name(value)
            if name in accumulators:
                self._hazard(
                    Hazard.ACCUMULATOR_ESCAPES,
                    "`%s` is passed to %s()" % (name, callee_text(func)),
                )

    def _carried_state(self, accumulators: Set[str]) -> List[str]:
        """Other names assigned in the loop whose value crosses iterations or outlives the loop."""
        targets = _assigned_names(self.loop.target)
        first_store: Dict[str, int] = {}
        for node in walk(
            self.loop.body,
            _PRUNE + (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp),
        ):
            for name in _assignment_targets(node):
                if name not in targets and name not in accumulators and "." not in name:
                    line = self.a.line(node)
                    first_store[name] = min(line, first_store.get(name, line))
        carried: List[str] = []
        after = list(self._statements_after())
        for name in sorted(first_store, key=lambda n: (first_store[n], n)):
            read_first = any(
                n.value == name and self.a.line(n) < first_store[name]
                for n in loads(self.loop.body)
            )
            if read_first or read_after(name, after):
                carried.append(name)
        if carried:
            self._hazard(
                Hazard.CARRIED_STATE,
                "%s also carried across iterations"
                % ", ".join("`%s`" % n for n in carried),
            )
        return carried

    def _check_loop_variable(self) -> None:
        after = list(self._statements_after())
        for name in sorted(_assigned_names(self.loop.target)):
            if "." not in name and read_after(name, after):
                self._hazard(
                    Hazard.LOOP_VARIABLE_USED_AFTER,
                    "`%s` is read after the loop" % name,
                )
                return

    def _check_self_reference(
        self, iterable: cst.BaseExpression, state: List[str]
    ) -> None:
        # for x in list(results): results.append(f(x))   (restore would change what is iterated)
        read = _names_in(iterable) & set(state)
        if read:
            self._hazard(
                Hazard.UNSUPPORTED_SHAPE,
                "the iterable reads %s, which the checkpoint restores"
                % ", ".join(sorted(read)),
            )

    def _hazard(self, hazard: Hazard, note: str) -> None:
        if hazard not in self.hazards:
            self.hazards.append(hazard)
            self.notes.append(note)

    # -- the plan ---------------------------------------------------------------------

    def _plan(
        self,
        accumulators: List[_Accumulator],
        carried: List[str],
        sink: _Sink,
        scope: Scope,
    ) -> Plan:
        names = [acc.name for acc in accumulators]
        exclude = (
            set(names + carried)
            | _assigned_names(self.loop.target)
            | _bound_in(self.loop)
        )
        persisted = [
            n
            for n in names
            if _same_sink(_find_sink(self.a, self.chain, self.index, {n}), sink)
        ]
        site = Site(
            variant=COLLECT_LOOP,
            statement=self.loop,
            iterable=self.loop.iter,
            target=self.loop.target,
            accumulators=names,
            persisted=persisted or names,
            carried=carried,
            sink=sink,
            hazards=self.hazards,
            notes=self.notes,
            qualname=self.qualname,
            key=context_names(scope, [self.loop.body], exclude),
        )
        return make_plan(self.a, site)


def _same_sink(found: Optional[_Sink], sink: _Sink) -> bool:
    return found is not None and found.call is sink.call


@dataclass
class Site:
    """Everything known about one collect-then-save site, before it becomes a Plan."""

    variant: Variant
    statement: cst.BaseStatement  # the loop, or the comprehension's assignment line
    iterable: cst.BaseExpression
    target: cst.BaseAssignTargetExpression
    accumulators: List[str]  # every accumulator the loop grows, in order of binding
    persisted: List[str]  # those that reach the sink
    carried: List[str]  # other state carried across iterations
    sink: _Sink
    hazards: List[Hazard]
    notes: List[str]
    qualname: str
    key: Tuple[str, ...]
    comprehension: Optional[ComprehensionPlan] = None


def make_plan(a: FileAnalysis, site: Site) -> Plan:
    """Assemble the finding and the fix plan for one site."""
    pos = a.positions[site.statement]
    shown = ", ".join("`%s`" % n for n in site.persisted)
    where = (
        "built by this comprehension"
        if site.comprehension
        else "collected in this loop"
    )
    message = (
        "%s %s %s and saved only after it by %s(); a crash before the save loses every completed unit"
        % (
            shown,
            "is" if len(site.persisted) == 1 else "are",
            where,
            site.sink.description,
        )
    )
    finding = Finding(
        code=site.variant.code,
        variant=site.variant.name,
        path=a.path,
        line=int(pos.start.line),
        column=int(pos.start.column) + 1,
        end_line=int(pos.end.line),
        accumulators=tuple(site.accumulators),
        sink=site.sink.description,
        hazards=tuple(site.hazards),
        fix=fix_safety(tuple(site.hazards)),
        message=message,
        fix_note="; ".join(site.notes),
    )
    return Plan(
        finding=finding,
        statement=site.statement,
        iterable=site.iterable,
        target=site.target,
        state=tuple(site.accumulators + site.carried),
        loop_id=a.loop_identity(site.qualname, site.accumulators),
        key=site.key,
        complete_after=_completion_anchor(site.sink),
        comprehension=site.comprehension,
    )


# ------------------------------------------------------------------- growth and escapes


def _is_self_concat(name: str, value: cst.BaseExpression) -> bool:
    """``total = total + x`` (a rebinding accumulation)."""
    return isinstance(value, cst.BinaryOperation) and target_name(value.left) == name


def _assignment_targets(node: cst.CSTNode) -> Set[str]:
    if isinstance(node, cst.Assign):
        out: Set[str] = set()
        for t in node.targets:
            out |= _assigned_names(t.target)
        return out
    if isinstance(node, (cst.AnnAssign, cst.AugAssign)):
        return _assigned_names(node.target)
    if isinstance(node, (cst.For,)):
        return _assigned_names(node.target)
    if isinstance(node, cst.NamedExpr):
        return _assigned_names(node.target)
    if isinstance(node, cst.WithItem) and node.asname is not None:
        return _assigned_names(node.asname.name)
    return set()


def _bound_in(stmt: cst.BaseStatement) -> Set[str]:
    names: Set[str] = set()
    for node in walk(stmt):
        names |= _assignment_targets(node)
    return names


def _plain_init(
    init: cst.BaseStatement, before: List[cst.BaseStatement], name: str
) -> bool:
    """No statement between the init and the loop rebinds the name (in any branch)."""
    after_init = before[before.index(init) + 1 :]
    return not any(name in _bound_in(stmt) for stmt in after_init)


def _declared_global(function: Optional[cst.FunctionDef], name: str) -> bool:
    if function is None:
        return False
    for node in walk(function.body):
        if isinstance(node, (cst.Global, cst.Nonlocal)) and any(
            n.name.value == name for n in node.names
        ):
            return True
    return False


def _growth_problem(acc: _Accumulator, node: cst.CSTNode) -> Optional[str]:
    """Why this node changes ``acc`` in a way a per-unit delta cannot capture (None if it does not)."""
    name = acc.name
    if (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and target_name(node.func.value) == name
    ):
        method = node.func.attr.value
        if method in _MUTATING_METHODS:
            return "`%s.%s()` inside the loop" % (name, method)
        if method in _READ_METHODS or method in _GROWTH_METHODS.get(
            acc.kind, frozenset()
        ):
            return None
        if acc.kind == "dict" and method in {"update", "setdefault"}:
            return None
        return "`%s.%s()` is not an accumulation of a %s" % (name, method, acc.kind)
    if isinstance(node, cst.Del):
        if name in _names_in(node.target):
            return "`del` on `%s` inside the loop" % name
    if isinstance(node, (cst.Assign, cst.AugAssign)):
        targets = (
            [t.target for t in node.targets]
            if isinstance(node, cst.Assign)
            else [node.target]
        )
        for target in targets:
            if target_name(target) == name:
                if isinstance(node, cst.AugAssign):
                    return (
                        None
                        if acc.kind in {"list", "number", "string", "set", "deque"}
                        else "`%s +=` on a %s" % (name, acc.kind)
                    )
                if _is_self_concat(name, node.value) and acc.kind in {
                    "list",
                    "number",
                    "string",
                }:
                    return None
                return "`%s` is rebound inside the loop" % name
            if isinstance(target, cst.Subscript):
                base = target.value
                if target_name(base) == name:
                    if acc.kind == "dict":
                        return None
                    return "`%s[...] =` on a %s" % (name, acc.kind)
                if isinstance(base, cst.Subscript) and target_name(base.value) == name:
                    return (
                        "`%s[...][...] =` (nested store) cannot be recorded per unit"
                        % name
                    )
            if (
                isinstance(target, cst.Attribute)
                and isinstance(target.value, cst.Subscript)
                and target_name(target.value.value) == name
            ):
                return "an element of `%s` is changed inside the loop" % name
    if (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and isinstance(node.func.value, cst.Subscript)
    ):
        if target_name(node.func.value.value) == name and acc.kind != "dict":
            return "an element of `%s` is changed inside the loop" % name
    return None


def _consumed_in_body(body: cst.BaseSuite, name: str) -> bool:
    """``next(f)`` or ``f.readline()`` inside the body: the iterator is advanced by the body too."""
    for node in walk(body):
        if isinstance(node, cst.Call):
            if (
                isinstance(node.func, cst.Name)
                and node.func.value == "next"
                and node.args
                and target_name(node.args[0].value) == name
            ):
                return True
            if (
                isinstance(node.func, cst.Attribute)
                and target_name(node.func.value) == name
                and node.func.attr.value
                in {"readline", "readlines", "read", "__next__", "send"}
            ):
                return True
    return False


def _on_std_stream(func: cst.Attribute) -> bool:
    value = func.value
    return (
        isinstance(value, cst.Attribute)
        and isinstance(value.value, cst.Name)
        and value.value.value == "sys"
        and value.attr.value in {"stdout", "stderr"}
    )


# ------------------------------------------------------------------------------ sinks


def _describe_sink(a: FileAnalysis, call: cst.Call) -> Optional[str]:
    """A readable name for the sink when ``call`` persists something, else None."""
    func = call.func
    qualified = a.qualified(func)
    if qualified & sinks.NOT_SINKS:
        return None
    known = qualified & (sinks.QUALIFIED_SINKS | a.extra_sinks)
    if known:
        return sorted(known)[0]
    if isinstance(func, cst.Name):
        if func.value == "print":
            for arg in call.args:
                if (
                    arg.keyword is not None
                    and arg.keyword.value == "file"
                    and not _is_std_stream(arg.value)
                ):
                    return "print(file=...)"
            return None
        if func.value in a.extra_sinks or sinks.name_says_sink(func.value):
            return func.value
        return None
    if isinstance(func, cst.Attribute):
        method = func.attr.value
        if _on_std_stream(func) or callee_text(func) in {
            "tqdm.write",
            "pbar.write",
            "console.print",
        }:
            return None
        if (
            method in sinks.METHOD_SINKS
            or method in a.extra_sinks
            or sinks.name_says_sink(method)
        ):
            if method in {"update", "add"}:
                return None
            return _short_callee(func)
    return None


def _is_std_stream(node: cst.BaseExpression) -> bool:
    return (
        isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == "sys"
    )


def _short_callee(func: cst.Attribute) -> str:
    text = callee_text(func)
    return text if len(text) <= 60 else "...%s" % text[-57:]


def _call_uses(call: cst.Call, tracked: Set[str]) -> bool:
    used: Set[str] = set()
    for arg in call.args:
        used |= _names_in(arg.value)
    if isinstance(call.func, cst.Attribute):
        used |= _names_in(call.func.value)
    return bool(used & tracked)


def _find_sink(
    a: FileAnalysis, chain: _Chain, index: int, accumulators: Set[str]
) -> Optional[_Sink]:
    """The first statement after the loop (in its block, then after enclosing ``with`` blocks) that saves."""
    tracked = set(accumulators)
    current: Optional[_Chain] = chain
    start = index + 1
    while current is not None:
        for stmt in current.body[start:]:
            found = _sink_in_statement(a, stmt, tracked)
            if found is not None:
                call, path = found
                return _Sink(
                    call,
                    _describe_sink(a, call) or callee_text(call.func),
                    stmt,
                    current,
                    path,
                )
            assigned = _single_assignment(stmt)
            if (
                assigned
                and assigned[0] in accumulators
                and not (_names_in(assigned[1]) & tracked)
            ):
                return None  # results = [] again: the collected value is dropped
            _track_derived(stmt, tracked)
        if current.parent is None:
            return None
        start = current.index_in_parent + 1
        current = current.parent
    return None


def _track_derived(stmt: cst.BaseStatement, tracked: Set[str]) -> None:
    """``payload = {"results": results}``, ``df["col"] = acc``: names now holding tracked data."""
    for node in walk(stmt):
        if isinstance(node, cst.Assign) and _names_in(node.value) & tracked:
            for t in node.targets:
                target: cst.BaseExpression = t.target
                while (
                    isinstance(target, (cst.Subscript, cst.Attribute))
                    and target_name(target) is None
                ):
                    target = target.value
                tracked |= _assigned_names(target)
        elif isinstance(node, cst.AugAssign) and _names_in(node.value) & tracked:
            tracked |= _assigned_names(node.target)
        elif (
            isinstance(node, cst.WithItem)
            and node.asname is not None
            and _names_in(node.item) & tracked
        ):
            tracked |= _assigned_names(node.asname.name)
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            owner = target_name(node.func.value)
            if (
                owner
                and node.func.attr.value
                in {"append", "extend", "update", "add", "insert"}
                and _call_uses(node, tracked)
            ):
                tracked.add(owner)  # summary.update(results=results)


def _sink_in_statement(
    a: FileAnalysis, stmt: cst.BaseStatement, tracked: Set[str]
) -> Optional[Tuple[cst.Call, List[cst.CSTNode]]]:
    """A sink call in ``stmt`` (searched depth first, statements in order) and the statement path to it."""
    local = set(tracked)
    return _search_sink(a, stmt, local, [stmt])


def _search_sink(
    a: FileAnalysis, node: cst.CSTNode, tracked: Set[str], path: List[cst.CSTNode]
) -> Optional[Tuple[cst.Call, List[cst.CSTNode]]]:
    if isinstance(node, cst.SimpleStatementLine):
        for small in node.body:
            for sub in walk(small):
                if (
                    isinstance(sub, cst.Call)
                    and _describe_sink(a, sub) is not None
                    and _call_uses(sub, tracked)
                ):
                    return sub, path
        _track_derived(node, tracked)
        return None
    if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
        return None
    if isinstance(node, cst.With):
        for item in node.items:
            for sub in walk(item):
                if (
                    isinstance(sub, cst.Call)
                    and _describe_sink(a, sub) is not None
                    and _call_uses(sub, tracked)
                ):
                    return sub, path
    if isinstance(node, cst.BaseCompoundStatement):
        for block in _statement_blocks(node):
            for child in block:
                found = _search_sink(a, child, tracked, path + [child])
                if found is not None:
                    return found
    return None


def _statements_between(
    chain: _Chain, index: int, sink: _Sink
) -> Iterator[cst.BaseStatement]:
    """Block-level statements after the loop and before the sink's statement."""
    current: Optional[_Chain] = chain
    start = index + 1
    while current is not None:
        for stmt in current.body[start:]:
            if stmt is sink.statement:
                return
            yield stmt
        if current.parent is None:
            return
        yield_owner_end = current.index_in_parent + 1
        current, start = current.parent, yield_owner_end


def _escapes_block(stmt: cst.BaseStatement) -> bool:
    """A break/continue in ``stmt`` that is not inside a loop of its own."""
    stack: List[cst.CSTNode] = [stmt]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.Break, cst.Continue)):
            return True
        for child in node.children:
            if not isinstance(child, _PRUNE + _LOOPS):
                stack.append(child)
    return False


def _completion_anchor(sink: _Sink) -> cst.BaseStatement:
    """The statement after which ``complete()`` goes: the save must have returned and its file closed.

    From the block-level statement holding the sink, go down through ``try`` bodies (so a
    save whose failure is caught keeps the checkpoint), and up out of a ``with`` whose
    resources the sink writes to (so the file is closed first).
    """
    anchor: cst.CSTNode = sink.statement
    for parent, child in zip(sink.path, sink.path[1:]):
        if isinstance(parent, (cst.Try, cst.TryStar)) and child in _body(parent.body):
            anchor = child
            continue
        break
    chain = sink.chain
    if anchor is sink.statement:
        while (
            isinstance(chain.owner, cst.With)
            and chain.parent is not None
            and _uses_with_targets(chain.owner, sink.call)
        ):
            anchor = chain.owner
            chain = chain.parent
    assert isinstance(anchor, cst.BaseStatement)
    return anchor


def _uses_with_targets(with_node: cst.With, call: cst.Call) -> bool:
    bound: Set[str] = set()
    for item in with_node.items:
        if item.asname is not None:
            bound |= _assigned_names(item.asname.name)
    used = _names_in(call)
    return bool(bound & used)


def context_names(
    scope: Scope, body: Sequence[cst.CSTNode], exclude: Set[str]
) -> Tuple[str, ...]:
    """Loop-invariant variables of the loop's own scope that the body reads.

    They become the checkpoint's ``key``: a unit's result depends on the item *and* on
    them, so a run with other values (``process("test")`` after ``process("train")``)
    must not reuse the log. Imports, functions, classes, ``self``/``cls`` and names the
    loop itself binds are left out.
    """
    found: List[str] = []
    for part in body:
        for node in loads(part):
            name = node.value
            if name in exclude or name in found or name in {"self", "cls"}:
                continue
            own = [a for a in scope[name] if a.scope is scope]
            if not own or any(
                isinstance(a, ImportAssignment)
                or isinstance(getattr(a, "node", None), (cst.FunctionDef, cst.ClassDef))
                for a in own
            ):
                continue
            found.append(name)
    return tuple(found)


# ---------------------------------------------------------------------- comprehensions


def _comprehension_plan(
    a: FileAnalysis,
    chain: _Chain,
    index: int,
    stmt: cst.SimpleStatementLine,
    qualname: str,
    function: Optional[cst.FunctionDef],
) -> Optional[Plan]:
    assigned = _single_assignment(stmt)
    if assigned is None or "." in assigned[0]:
        return None
    name, value = assigned
    if not isinstance(value, (cst.ListComp, cst.SetComp, cst.DictComp)):
        return None
    scope = a.scopes.get(stmt)
    if scope is None or isinstance(scope, ClassScope):
        # class C:  names = [f(x) for x in xs]
        return None
    if not _comprehension_does_work(value):
        # keys = [k.lower() for k in names]   (cheap)
        return None
    if _tiny_literal(value.for_in.iter):
        return None
    sink = _find_sink(a, chain, index, {name})
    if sink is None:
        # vectors = [embed(x) for x in xs]; return vectors
        return None
    kind = (
        "list"
        if isinstance(value, cst.ListComp)
        else "set"
        if isinstance(value, cst.SetComp)
        else "dict"
    )
    hazards: List[Hazard] = []
    notes: List[str] = []

    def hazard(h: Hazard, note: str) -> None:
        if h not in hazards:
            hazards.append(h)
            notes.append(note)

    clauses = for_clauses(value.for_in)
    if any(c.asynchronous is not None for c in clauses) or any(
        isinstance(n, cst.NamedExpr) for n in walk(value)
    ):
        hazard(Hazard.UNSUPPORTED_SHAPE, "async comprehension or assignment expression")
    if any(isinstance(n, cst.Comment) for n in walk(value)):
        hazard(
            Hazard.UNSUPPORTED_SHAPE, "comments inside the comprehension would be lost"
        )
    if name in _names_in(value):
        # names = [f(n) for n in names]   (unrolling would empty `names` before reading it)
        hazard(
            Hazard.UNSUPPORTED_SHAPE,
            "the comprehension reads `%s`, the name it is assigned to" % name,
        )
    leaked = _leaking_names(scope, value, clauses)
    if leaked:
        hazard(
            Hazard.SCOPE_LEAK,
            "unrolling would bind %s, already used in this scope"
            % ", ".join("`%s`" % n for n in leaked),
        )
    if len(clauses) > 1:
        hazard(
            Hazard.NESTED_LOOP,
            "an inner `for` clause's progress within the unit in flight is redone",
        )
    if sink.statement is not None:
        for between in _statements_between(chain, index, sink):
            if any(
                isinstance(n, (cst.Return, cst.Raise)) for n in walk(between)
            ) or _escapes_block(between):
                hazard(
                    Hazard.EXIT_BEFORE_SAVE,
                    "the block may exit between the comprehension and the save",
                )
                break
    probe = _LoopAnalysis(
        a,
        chain,
        index,
        cst.For(
            target=clauses[0].target,
            iter=clauses[0].iter,
            body=cst.IndentedBlock(body=[]),
        ),
        qualname,
        function,
    )
    probe._check_iterable(clauses[0].iter, scope)
    for h, note in zip(probe.hazards, probe.notes):
        hazard(h, note)
    exclude = {name}
    for clause in clauses:
        exclude |= _assigned_names(clause.target)
    parts: List[cst.CSTNode] = (
        [value.key, value.value] if isinstance(value, cst.DictComp) else [value.elt]
    )
    for clause in clauses:
        parts.extend(test.test for test in clause.ifs)
    parts.extend(clause.iter for clause in clauses[1:])
    key = context_names(scope, parts, exclude)
    site = Site(
        variant=COLLECT_COMPREHENSION,
        statement=stmt,
        iterable=clauses[0].iter,
        target=clauses[0].target,
        accumulators=[name],
        persisted=[name],
        carried=[],
        sink=sink,
        hazards=hazards,
        notes=notes,
        qualname=qualname,
        key=key,
        comprehension=ComprehensionPlan(value, kind),
    )
    return make_plan(a, site)


def for_clauses(clause: cst.CompFor) -> List[cst.CompFor]:
    """The ``for`` clauses of a comprehension, outermost first."""
    out = [clause]
    inner = clause.inner_for_in
    while inner is not None:
        out.append(inner)
        inner = inner.inner_for_in
    return out


def _comprehension_does_work(
    value: Union[cst.ListComp, cst.SetComp, cst.DictComp],
) -> bool:
    for node in walk(value):
        if isinstance(node, cst.Await):
            return True
        if isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Name) and func.value in sinks.CHEAP_BUILTINS:
                continue
            if (
                isinstance(func, cst.Attribute)
                and func.attr.value in sinks.CHEAP_METHODS
            ):
                continue
            return True
    return False


def _tiny_literal(node: cst.BaseExpression) -> bool:
    return (
        isinstance(node, (cst.Tuple, cst.List, cst.Set))
        and len(node.elements) <= _TINY_LITERAL_LOOP
    )


def _leaking_names(
    scope: Scope, comp: cst.CSTNode, clauses: List[cst.CompFor]
) -> List[str]:
    """Comprehension variables whose names the enclosing scope already binds or reads."""
    inside = {id(n) for n in walk(comp, ())}
    leaked: List[str] = []
    for clause in clauses:
        for name in sorted(_assigned_names(clause.target)):
            uses = [acc for acc in scope.accesses[name] if id(acc.node) not in inside]
            binds = [
                asg
                for asg in scope.assignments[name]
                if id(getattr(asg, "node", None)) not in inside
            ]
            if uses or binds:
                leaked.append(name)
    return leaked
