"""A helper loops and returns; a caller in the same file saves what it returned.

The shape (the most common structure of research code)::

    def run_model(samples):           # the helper
        out = []
        for s in samples:             # the site: the loop (or comprehension) inside the helper
            out.append(model(s))
        return out                    # the accumulator, or a value built from it, leaves by return

    def main():                       # every caller in the file saves the result
        preds = run_model(data)
        json.dump(preds, f)           # <- ``complete_deferred(...)`` goes after this save

The helper's checkpoint is opened with ``deferred=True`` (the log outlives the call) and
each caller completes it after its save (see :mod:`checkpointify.runtime.deferred`).
What this module promises the matcher: a :class:`Returned` only when the value returned
reads the accumulators, the function's name is only ever *called* in this file (never
passed on, so no caller is unseen here), and every call's result reaches a save in its
caller. Each early return below carries a comment showing the code it rejects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Set, Tuple

import libcst as cst

from checkpointify import catalogue
from checkpointify.detect.analysis import Chain, FileAnalysis
from checkpointify.detect.cstutil import (
    Block,
    assigned_names,
    body_of,
    callee_text,
    children,
    names_in,
    statement_blocks,
    stops,
    walk,
)
from checkpointify.detect.flow import Sink, completion_anchor, describe_sink, find_sink, track_derived
from checkpointify.detect.work import Work, only_reads_local_files, work_done


@dataclass(frozen=True)
class CallerSave:
    """One call of the helper and the save in its caller that persists the result."""

    call: cst.Call
    sink: Sink
    complete_after: cst.BaseStatement  # where ``complete_deferred(...)`` goes
    caller: str  # the caller's name, for the finding (``main``, ``<module>``)


@dataclass(frozen=True)
class Returned:
    """The helper's ``return`` of the accumulators and the saving caller of every call."""

    statement: cst.BaseStatement  # the block-level ``return ...`` line
    callers: Tuple[CallerSave, ...]


@dataclass(frozen=True)
class _Place:
    chain: Chain
    index: int
    function: Optional[cst.FunctionDef]
    qualname: str


class _Index:
    """Where every block-level statement of the module sits (built once per file)."""

    def __init__(self, module: cst.Module) -> None:
        self.places: Dict[int, _Place] = {}
        self.owner_of: Dict[int, cst.CSTNode] = {}
        self.calls: Dict[int, cst.BaseStatement] = {}  # id(call) -> innermost statement holding it
        #: calls ``f(...)`` and ``self.f(...)`` by name, and every other use of those names
        self.name_calls: Dict[str, List[cst.Call]] = {}
        self.self_calls: Dict[str, List[cst.Call]] = {}
        self.name_refs: Dict[str, List[cst.CSTNode]] = {}
        self.self_refs: Dict[str, List[cst.CSTNode]] = {}
        self._index(Chain(module.body, None), None, "<module>")
        self._references(module)

    def _references(self, module: cst.Module) -> None:
        not_references: Set[int] = set()
        names: List[cst.Name] = []
        for node in walk(module, ()):
            if isinstance(node, cst.Call):
                text = callee_text(node.func)
                if isinstance(node.func, cst.Name):
                    self.name_calls.setdefault(text, []).append(node)
                elif text.startswith("self.") and text.count(".") == 1:
                    self.self_calls.setdefault(text, []).append(node)
            elif isinstance(node, cst.Attribute):
                not_references.add(id(node.attr))  # model.eval(): another object's attribute
                text = callee_text(node)
                if text.startswith("self.") and text.count(".") == 1:
                    self.self_refs.setdefault(text, []).append(node)
            elif isinstance(node, cst.Arg) and node.keyword is not None:
                not_references.add(id(node.keyword))
            elif isinstance(node, (cst.Param, cst.FunctionDef, cst.ClassDef)):
                not_references.add(id(node.name))
            elif isinstance(node, cst.Name):
                names.append(node)
        for node in names:
            if id(node) not in not_references:
                self.name_refs.setdefault(node.value, []).append(node)

    def _index(self, chain: Chain, function: Optional[cst.FunctionDef], qualname: str) -> None:
        for index, stmt in enumerate(chain.body):
            self.places[id(stmt)] = _Place(chain, index, function, qualname)
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef, cst.With)):
                blocks: List[Block] = [body_of(stmt.body)]
            else:
                blocks = list(statement_blocks(stmt))
            # the statements of those blocks are indexed below: their calls are theirs
            inner = {id(s) for block in blocks for s in block}
            stack: List[cst.CSTNode] = [stmt]
            while stack:
                node = stack.pop()
                if isinstance(node, cst.Call):
                    self.calls[id(node)] = stmt
                stack.extend(c for c in children(node) if not stops(type(c)) and id(c) not in inner)
            if isinstance(stmt, cst.FunctionDef):
                name = stmt.name.value if qualname == "<module>" else "%s.%s" % (qualname, stmt.name.value)
                self._index(Chain(body_of(stmt.body), stmt), stmt, name)
            elif isinstance(stmt, cst.ClassDef):
                name = stmt.name.value if qualname == "<module>" else "%s.%s" % (qualname, stmt.name.value)
                self._index(Chain(body_of(stmt.body), stmt), function, name)
            elif isinstance(stmt, cst.With):
                self._index(Chain(body_of(stmt.body), stmt, chain, index), function, qualname)
            else:
                for block in statement_blocks(stmt):
                    self._index(Chain(block, stmt), function, qualname)


_INDEXES: Dict[int, Tuple[cst.Module, _Index]] = {}


def _index_of(a: FileAnalysis) -> _Index:
    cached = _INDEXES.get(id(a))
    if cached is None or cached[0] is not a.module:
        _INDEXES.clear()  # one file at a time: keep only the current one
        cached = (a.module, _Index(a.module))
        _INDEXES[id(a)] = cached
    return cached[1]


def find_returned(
    a: FileAnalysis,
    chain: Chain,
    index: int,
    names: Set[str],
    function: Optional[cst.FunctionDef],
    qualname: str,
) -> Optional[Returned]:
    """The helper-return shape for the site at ``chain.body[index]``, or None."""
    if function is None or "<locals>" in qualname or any(n.startswith("self.") for n in names):
        # for x in xs: acc.append(f(x))   at module level: there is no caller
        # def outer(): def inner(): ...   (a closure: its calls are not tracked)
        return None
    returned = _return_after(a, chain, index, names)
    if returned is None:
        # acc = []; for ...: acc.append(f(x)); print(acc)   (the result does not leave by return)
        return None
    index_ = _index_of(a)
    calls = _calls_of(a, function, qualname)
    if not calls:
        # def collect(items): ...; return results   (no caller in this file: it may be anyone's)
        return None
    saves: List[CallerSave] = []
    for call in calls:
        stmt = index_.calls.get(id(call))
        place = index_.places.get(id(stmt)) if stmt is not None else None
        if stmt is None or place is None or place.function is function:
            return None  # a recursive call
        save = _caller_save(a, index_, call, stmt, place)
        if save is None:
            # preds = run_model(data); print(accuracy(preds))   (a caller that does not save it)
            return None
        saves.append(save)
    return Returned(returned, tuple(saves))


def _return_after(a: FileAnalysis, chain: Chain, index: int, names: Set[str]) -> Optional[cst.BaseStatement]:
    """The block-level ``return`` after the loop whose value reads the accumulators (or a
    value built from them: ``df["pred"] = preds; return df``)."""
    tracked = set(names)
    for level, start in chain.levels(index):
        for stmt in level.body[start:]:
            if isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[-1], cst.Return):
                value = stmt.body[-1].value
                return stmt if value is not None and names_in(value) & tracked else None
            track_derived(a, stmt, tracked)
        if isinstance(level.owner, cst.FunctionDef):
            break
    return None


def _calls_of(a: FileAnalysis, function: cst.FunctionDef, qualname: str) -> List[cst.Call]:
    """Every call of the helper in this file, or [] when its name is also used otherwise
    (``pool.map(run_model, xs)``, ``callback=self.run_model``: callers this file does not show)."""
    index_ = _index_of(a)
    name = function.name.value
    if "." in qualname:
        key = "self.%s" % name
        calls, references = index_.self_calls.get(key, []), index_.self_refs.get(key, [])
    else:
        calls, references = index_.name_calls.get(name, []), index_.name_refs.get(name, [])
    callees = {id(call.func) for call in calls}
    if any(id(ref) not in callees for ref in references):
        # pool.map(run_model, xs)   /   fn = run_model   (the helper escapes: unseen callers)
        return []
    return list(calls)


def _caller_save(
    a: FileAnalysis, index_: _Index, call: cst.Call, stmt: cst.BaseStatement, place: _Place
) -> Optional[CallerSave]:
    """The save in the caller of what ``call`` returned, and where the completion goes."""
    if _per_item(stmt, call):
        # codes = [encode(s) for s in sentences]   /   df["y"] = df["x"].apply(lambda t: label(t))
        # (one call per item: the caller's iteration is the unit, the helper's loop a part of it)
        return None
    for node in walk(stmt):
        if (
            isinstance(node, cst.Call)
            and node is not call
            and describe_sink(a, node) is not None
            and any(_holds(arg.value, call) for arg in node.args)
        ):
            # json.dump(run_model(data), f)
            sink = Sink(node, describe_sink(a, node) or callee_text(node.func), stmt, place.chain, [stmt])
            return _saved(a, index_, call, sink, place)
    tracked = _receivers(stmt, call)
    if not tracked:
        # run_model(data)   /   return run_model(data)   (the result is not kept here)
        return None
    chain, index = place.chain, place.index
    while True:
        last = _last_sink(a, chain, index, tracked)
        if last is not None:
            if not _persists_data(last.call, _derived_until(a, chain, index, last, tracked)):
                # torch.save(model, f"fold{i}_{score:.2%}.pt")   (the result only names the file)
                return None
            return _saved(a, index_, call, last, place)
        for stmt_after in chain.after(index):
            track_derived(a, stmt_after, tracked)  # results.append(preds): `results` holds it now
        owner = _outer_owner(chain)
        if owner is None or isinstance(owner, (cst.FunctionDef, cst.ClassDef)):
            return None
        if isinstance(owner, (cst.For, cst.While)) and not _over_settings(a, owner, place.function):
            # for text in data: r = attack(text); results.append(r)   then   save(results)
            # (a call per item of the caller's loop: that loop is the unit; its own finding says so)
            return None
        outer = index_.places.get(id(owner))
        if outer is None:
            return None
        chain, index = outer.chain, outer.index


_PER_ITEM = (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp, cst.Lambda)


def _per_item(stmt: cst.BaseStatement, call: cst.Call) -> bool:
    """The call sits in a comprehension, generator or lambda of the statement."""
    return any(isinstance(n, _PER_ITEM) and _holds(n, call) for n in walk(stmt))


def _persists_data(call: cst.Call, tracked: Set[str]) -> bool:
    """The save writes a tracked value as data: its receiver (``df.to_csv``) or an argument
    that is not only a file name built from it (an f-string, ``%``, ``.format``, a path join)."""
    if isinstance(call.func, cst.Attribute) and names_in(call.func.value) & tracked:
        return True
    return any(names_in(arg.value) & tracked and not _names_a_file(arg.value) for arg in call.args)


def _derived_until(a: FileAnalysis, chain: Chain, index: int, sink: Sink, tracked: Set[str]) -> Set[str]:
    """The tracked names and those built from them up to the save (``df["y"] = preds``)."""
    derived = set(tracked)
    handles: Set[str] = set()
    for stmt in chain.after(index):
        if stmt is sink.statement:
            break
        track_derived(a, stmt, derived)
    for node in sink.path:
        track_derived(a, node, derived)  # statements of the block around the save, roughly
        for item in walk(node):
            if isinstance(item, cst.WithItem) and item.asname is not None:
                handles |= assigned_names(item.asname.name)
    # with open(f"model-{score}.json", "w") as f: json.dump(state, f)   (`f` names a file)
    return derived - (handles - tracked)


def _names_a_file(node: cst.BaseExpression) -> bool:
    if isinstance(node, (cst.FormattedString, cst.ConcatenatedString)):
        return True
    if isinstance(node, cst.BinaryOperation) and isinstance(
        node.left, (cst.SimpleString, cst.FormattedString)
    ):
        return True  # "out_%s.json" % name
    if isinstance(node, cst.Call):
        text = callee_text(node.func)
        return text.endswith(catalogue.FILE_NAME_CALL_SUFFIXES) or text in catalogue.FILE_NAME_CALLS
    return False


def _over_settings(a: FileAnalysis, loop: cst.BaseStatement, function: Optional[cst.FunctionDef]) -> bool:
    """A loop over a handful of settings written in the code (``for name, prompt in
    PROMPTS.items()`` with ``PROMPTS = {...}``, ``for split in ("train", "test")``): each
    iteration runs the helper over a whole dataset, so the helper's loop is the unit."""
    return isinstance(loop, cst.For) and _settings_literal(a, loop.iter, function, 0)


def _settings_literal(
    a: FileAnalysis, iterable: cst.BaseExpression, function: Optional[cst.FunctionDef], depth: int
) -> bool:
    if depth > 6:
        return False
    if (
        isinstance(iterable, cst.Call)
        and isinstance(iterable.func, cst.Attribute)
        and iterable.func.attr.value in ("items", "keys", "values")  # the dict's own views
        and not iterable.args
    ):
        return _settings_literal(a, iterable.func.value, function, depth + 1)
    if (
        isinstance(iterable, cst.Call)
        and a.qualified(iterable.func) & a.checkpoint_calls
        and len(iterable.args) > 1
    ):
        # for name, prompt in ckpt:   with ckpt = checkpoint(id, PROMPTS.items(), ...)   (our own rewrite)
        return _settings_literal(a, iterable.args[1].value, function, depth + 1)
    if isinstance(iterable, cst.Name):
        bodies = [a.module.body] + ([body_of(function.body)] if function is not None else [])
        values = [
            stmt.body[0].value
            for body in bodies
            for stmt in body
            if isinstance(stmt, cst.SimpleStatementLine)
            and isinstance(stmt.body[0], cst.Assign)
            and len(stmt.body[0].targets) == 1
            and isinstance(stmt.body[0].targets[0].target, cst.Name)
            and stmt.body[0].targets[0].target.value == iterable.value
        ]
        return len(values) == 1 and _settings_literal(a, values[0], function, depth + 1)
    return isinstance(iterable, (cst.List, cst.Tuple, cst.Set, cst.Dict))


def _outer_owner(chain: Chain) -> Optional[cst.CSTNode]:
    """The compound statement whose block holds ``chain`` (past enclosing ``with`` blocks)."""
    while chain.parent is not None:
        chain = chain.parent
    return chain.owner


def _receivers(stmt: cst.BaseStatement, call: cst.Call) -> Set[str]:
    """Names the statement binds or grows with the call's result:
    ``preds = f(x)``, ``a, b = f(x)``, ``self.preds = f(x)``, ``results.append(f(x))``."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return set()
    small = stmt.body[0]
    if isinstance(small, (cst.Assign, cst.AnnAssign, cst.AugAssign)) and small.value is not None:
        if not _holds(small.value, call):
            return set()
        targets: List[cst.BaseExpression] = (
            [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
        )
        found: Set[str] = set()
        for target in targets:
            while isinstance(target, cst.Subscript):
                target = target.value
            found |= assigned_names(target)
        return found
    if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
        outer = small.value
        if isinstance(outer.func, cst.Attribute) and outer.func.attr.value in catalogue.KEEPING_METHODS:
            if any(_holds(arg.value, call) for arg in outer.args):
                return names_in(outer.func.value) & {callee_text(outer.func.value)}
    return set()


def _holds(node: cst.CSTNode, target: cst.CSTNode) -> bool:
    return any(n is target for n in walk(node, ()))


def _last_sink(a: FileAnalysis, chain: Chain, index: int, tracked: Set[str]) -> Optional[Sink]:
    """Of each tracked name's own save, the one that runs last (``complete`` goes after it)."""
    last: Optional[Sink] = None
    last_end = (0, 0)
    for name in sorted(tracked):
        sink = find_sink(a, chain, index, {name})
        if sink is None:
            continue
        end = a.positions[completion_anchor(sink)].end
        if last is None or (end.line, end.column) > last_end:
            last, last_end = sink, (end.line, end.column)
    return last


def _saved(
    a: FileAnalysis, index_: _Index, call: cst.Call, sink: Sink, place: _Place
) -> Optional[CallerSave]:
    """The caller's save found: complete after it, or after the caller's ``for`` loops
    around it (each call of the loop then resumes from its own log, not only the last)."""
    anchor = completion_anchor(sink)
    for loop in _enclosing_loops(index_, anchor):
        if _skips_done(loop):
            # for img in imgs: if img in done: continue; recs = annotate(img); write(recs)
            # (the caller resumes by item already: each call is a unit that is saved on its own)
            return None
        if _other_work(a, loop, call, sink):
            # for row in rows: text = generate(row); s = sentiment(text); save(df)
            # (the helper is one step of the caller's unit, which the caller saves per iteration)
            return None
        anchor = loop
    return CallerSave(call, sink, anchor, place.qualname)


def _other_work(a: FileAnalysis, loop: cst.For, call: cst.Call, sink: Sink) -> bool:
    """The caller's loop body does real work besides the helper's call and the save
    (reading local files does not count: a re-run reads them again in no time)."""
    parts: List[cst.CSTNode] = []
    for stmt in body_of(loop.body):
        if _holds(stmt, call) or _holds(stmt, sink.call):
            continue
        parts.append(stmt)
    return work_done(a, parts, set(), None) is Work.HEAVY and not only_reads_local_files(a, parts, set())


def _enclosing_loops(index_: _Index, stmt: cst.BaseStatement) -> Iterator[cst.For]:
    """The ``for`` loops of the same function around ``stmt``, innermost first, as long as
    nothing but ``for`` and ``with`` blocks lies between them."""
    current: cst.CSTNode = stmt
    while True:
        place = index_.places.get(id(current))
        if place is None:
            return
        owner = _outer_owner(place.chain)
        if not isinstance(owner, cst.For):
            return
        yield owner
        current = owner


def _skips_done(loop: cst.For) -> bool:
    """``if key in done: continue`` or ``if os.path.exists(out): continue`` in the body."""
    for stmt in body_of(loop.body):
        if not isinstance(stmt, cst.If):
            continue
        first = body_of(stmt.body)[:1] if isinstance(stmt.body, cst.IndentedBlock) else stmt.body.body[:1]
        skip = first and (
            isinstance(first[0], cst.Continue)
            or (isinstance(first[0], cst.SimpleStatementLine) and isinstance(first[0].body[0], cst.Continue))
        )
        if not skip:
            continue
        test = stmt.test
        if isinstance(test, cst.Comparison) and any(isinstance(t.operator, cst.In) for t in test.comparisons):
            return True
        if any(
            isinstance(n, cst.Call) and callee_text(n.func).endswith(catalogue.DONE_CHECK_SUFFIXES)
            for n in walk(test)
        ):
            return True
    return False
