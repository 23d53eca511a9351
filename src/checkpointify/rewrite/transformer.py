"""Plans in, rewritten module out.

For each plan the rewrite is the smallest a reviewer can read: two lines before the loop
(open the checkpoint, restore the accumulators), the loop iterating the checkpoint instead
of the iterable (a ``while`` loop's test gains ``ckpt.advance() and``), and one line after
the save or commit (``ckpt.complete()``). A queue-ack rewrite (CKP003) wraps the iterable
in ``acknowledge_each`` and drops the batch ack after the loop. The loop body is not
re-indented and nothing else in the file moves; runtime imports are added once, as
LibCST's ``AddImportsVisitor`` adds them (:mod:`checkpointify.rewrite.imports`).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from itertools import chain, count
from typing import Dict, List, Optional, Sequence, Set, Tuple

import libcst as cst

from checkpointify.detect.concat import concat_growth
from checkpointify.detect.cstutil import for_clauses
from checkpointify.detect.matcher import Plan
from checkpointify.rewrite import asyncshared, items
from checkpointify.rewrite.imports import add_from_import

_CHECKPOINT = "checkpoint"
_ACKNOWLEDGE = "acknowledge_each"
_COMPLETE_DEFERRED = "complete_deferred"
_PARALLEL = "parallel"
_SHARED = asyncshared.FUNCTION
_ROWS = "checkpoint_rows"
_FRAME_WRITES = "frame_writes"
_ITEM_WRITES = items.FUNCTION
_FRAME_CONCAT = "frame_concat"
_INDEXERS = ("at", "loc", "iat", "iloc")  # catalogue.FRAME_INDEXERS, in a stable order


@dataclass(frozen=True)
class _Names:
    functions: Dict[str, str]  # runtime function -> how the rewritten code calls it
    variables: Dict[int, str]  # plan index -> checkpoint (or acks) variable
    writes: Dict[int, Dict[str, str]]  # plan index -> frame name -> its journal's variable
    parts: Dict[int, Dict[str, str]]  # plan index -> frame grown by concat -> its journal's variable

    @property
    def checkpoint(self) -> str:
        return self.functions[_CHECKPOINT]

    @property
    def acknowledge_each(self) -> str:
        return self.functions[_ACKNOWLEDGE]

    @property
    def complete_deferred(self) -> str:
        return self.functions[_COMPLETE_DEFERRED]

    @property
    def parallel(self) -> str:
        return self.functions[_PARALLEL]

    @property
    def checkpoint_rows(self) -> str:
        return self.functions[_ROWS]


def apply_plans(
    module: cst.Module,
    plans: Sequence[Plan],
    used_names: Set[str],
    runtime_module: str,
    directory: Optional[str] = None,
) -> cst.Module:
    """Rewrite every plan into ``module``; returns the new module (``module`` itself if ``plans`` is empty)."""
    if not plans:
        return module
    names = _choose_names(plans, used_names)
    rewritten = module.visit(_Rewriter(module, plans, names, directory))
    assert isinstance(rewritten, cst.Module)
    needed = {
        _ACKNOWLEDGE
        if plan.ack
        else _PARALLEL
        if plan.kind == "parallel"
        else _SHARED
        if plan.kind == "shared"
        else _ROWS
        if plan.rows is not None
        else _CHECKPOINT
        for plan in plans
    }
    if any(plan.deferred for plan in plans):
        needed.add(_COMPLETE_DEFERRED)
    if any(plan.frames for plan in plans):
        needed.add(_FRAME_WRITES)
    if any(plan.items for plan in plans):
        needed.add(_ITEM_WRITES)
    if any(plan.concats for plan in plans):
        needed.add(_FRAME_CONCAT)
    imported = []
    for function in sorted(needed):
        local = names.functions[function]
        imported.append((function, local if local != function else None))
    return add_from_import(rewritten, runtime_module, imported)


def _choose_names(plans: Sequence[Plan], used: Set[str]) -> _Names:
    """Names for the runtime functions and the checkpoint variables that collide with nothing."""
    taken = set(used)
    functions: Dict[str, str] = {}
    for function in (
        _CHECKPOINT,
        _ACKNOWLEDGE,
        _COMPLETE_DEFERRED,
        _PARALLEL,
        _SHARED,
        _ROWS,
        _FRAME_WRITES,
        _ITEM_WRITES,
        _FRAME_CONCAT,
    ):
        functions[function] = function if function not in used else "checkpointify_" + function
        taken.add(functions[function])
    variables: Dict[int, str] = {}
    for index, plan in enumerate(plans):
        base = plan.finding.accumulators[0].replace(".", "_") if plan.finding.accumulators else "loop"
        first = (
            "acks"
            if plan.ack
            else "par"
            if plan.kind in ("parallel", "shared")
            else "rows"
            if plan.rows is not None
            else "ckpt"
        )
        # without a limit: a file may hold any number of loops over the same name
        candidates = chain([first, "%s_%s" % (base, first)], ("%s_%s%d" % (base, first, n) for n in count(2)))
        name = next(c for c in candidates if c not in taken)
        taken.add(name)
        variables[index] = name
    writes: Dict[int, Dict[str, str]] = {}
    for index, plan in enumerate(plans):
        for frame in plan.frames + ((plan.items.name,) if plan.items else ()):
            base = "%s_writes" % frame
            journal = next(c for c in chain([base], ("%s%d" % (base, n) for n in count(2))) if c not in taken)
            taken.add(journal)
            writes.setdefault(index, {})[frame] = journal
    parts: Dict[int, Dict[str, str]] = {}
    for index, plan in enumerate(plans):
        for frame, _ in plan.concats:
            base = "%s_parts" % frame
            journal = next(c for c in chain([base], ("%s%d" % (base, n) for n in count(2))) if c not in taken)
            taken.add(journal)
            parts.setdefault(index, {})[frame] = journal
    return _Names(functions, variables, writes, parts)


class _Rewriter(cst.CSTTransformer):
    """Inserts the checkpoint lines around each planned loop, matched by node identity."""

    def __init__(
        self, module: cst.Module, plans: Sequence[Plan], names: _Names, directory: Optional[str]
    ) -> None:
        super().__init__()
        self.module = module
        self.directory = directory
        self.names = names
        self.loops: Dict[int, int] = {}
        self.comprehensions: Dict[int, int] = {}
        self.rows: Dict[int, int] = {}
        self.completions: Dict[int, List[int]] = {}
        self.deferred: Dict[int, List[int]] = {}  # the callers' saves of helper-return plans
        self.removed: Set[int] = set()
        self.anchors: Dict[int, List[int]] = {}
        self.wraps: Dict[int, Tuple[int, str]] = {}
        self.plans = list(plans)
        for index, plan in enumerate(plans):
            if plan.kind in ("parallel", "shared"):
                assert plan.anchor is not None
                self.anchors.setdefault(id(plan.anchor), []).append(index)
                for call, form in plan.wraps:
                    self.wraps[id(call)] = (index, form)
            elif plan.rows is not None:
                self.rows[id(plan.statement)] = index
            elif plan.comprehension is None:
                self.loops[id(plan.statement)] = index
            else:
                self.comprehensions[id(plan.statement)] = index
            if plan.complete_after is not None:
                self.completions.setdefault(id(plan.complete_after), []).append(index)
            for anchor in plan.deferred:
                if index not in self.deferred.setdefault(id(anchor), []):
                    self.deferred[id(anchor)].append(index)
            if plan.removed is not None:
                self.removed.add(id(plan.removed))

    # -- statements -------------------------------------------------------------------

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        """A parallel plan's call: ``ex.submit(f, x)`` -> ``par.submit(ex, f, x)``,
        ``pool.imap(f, xs)`` -> ``par.map(pool, "imap", f, xs)``, ``fetch(x)`` -> ``par.acall(fetch, x)``."""
        wrapped = self.wraps.get(id(original_node))
        if wrapped is None:
            return updated_node
        index, form = wrapped
        if asyncshared.is_shared_form(form):
            return asyncshared.wrap(self.names.variables[index], form, updated_node)
        var = cst.Name(self.names.variables[index])
        func = updated_node.func
        comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        if form == "acall":
            lead = [cst.Arg(func, comma=comma if updated_node.args else cst.MaybeSentinel.DEFAULT)]
            return cst.Call(cst.Attribute(var, cst.Name("acall")), args=[*lead, *updated_node.args])
        if form == "joblib":
            # Parallel(n_jobs=4)(tasks) -> par.joblib(Parallel(n_jobs=4), tasks)
            args = list(updated_node.args)
            tasks = args[0].value
            if isinstance(tasks, cst.GeneratorExp) and not tasks.lpar:
                # f(x for x in xs) -> g(f, (x for x in xs)): a second argument needs the parentheses
                tasks = tasks.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
                args[0] = args[0].with_changes(value=tasks)
            return updated_node.with_changes(
                func=cst.Attribute(var, cst.Name("joblib")), args=[cst.Arg(func, comma=comma), *args]
            )
        assert isinstance(func, cst.Attribute)
        lead = [cst.Arg(func.value, comma=comma)]
        if form == "map":
            lead.append(cst.Arg(cst.SimpleString('"%s"' % func.attr.value), comma=comma))
        return updated_node.with_changes(
            func=cst.Attribute(var, cst.Name("map" if form == "map" else form)),
            args=[*lead, *updated_node.args],
        )

    def leave_For(self, original_node: cst.For, updated_node: cst.For) -> cst.For:
        index = self.loops.get(id(original_node))
        if index is None:
            return updated_node
        body = updated_node.body
        plan = self.plans[index]
        for frame, journal in self.names.writes.get(index, {}).items():
            if plan.items is not None and frame == plan.items.name:
                visited = body.visit(items.JournalItemWrites(plan.items, journal))
            else:
                visited = body.visit(_JournalWrites(frame, journal))
            assert isinstance(visited, cst.BaseSuite)
            body = visited
        for frame, journal in self.names.parts.get(index, {}).items():
            visited = body.visit(_JournalConcat(frame, journal))
            assert isinstance(visited, cst.BaseSuite)
            body = visited
        return updated_node.with_changes(
            iter=cst.Name(self.names.variables[index]), body=body, leading_lines=()
        )

    def leave_While(self, original_node: cst.While, updated_node: cst.While) -> cst.While:
        """``while cond:`` -> ``while ckpt.advance() and cond:`` (``while True:`` -> ``while ckpt.advance():``)."""
        index = self.loops.get(id(original_node))
        if index is None:
            return updated_node
        advance = "%s.advance()" % self.names.variables[index]
        test = updated_node.test
        if isinstance(test, cst.Name) and test.value == "True":
            code = advance
        else:
            condition = self._code(test)
            code = "%s and %s" % (advance, condition if _binds_tighter_than_and(test) else "(%s)" % condition)
        return updated_node.with_changes(test=cst.parse_expression(code), leading_lines=())

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        return updated_node.with_changes(body=self._rebuild(original_node.body, updated_node.body))

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        return updated_node.with_changes(body=self._rebuild(original_node.body, updated_node.body))

    def _rebuild(
        self,
        original: Sequence[cst.BaseStatement],
        updated: Sequence[cst.BaseStatement],
    ) -> List[cst.BaseStatement]:
        body: List[cst.BaseStatement] = []
        for orig, new in zip(original, updated):
            key = id(orig)
            for index in self.anchors.get(key, ()):
                handle = self._parallel_prelude(index)
                lines = getattr(new, "leading_lines", ())
                body.append(handle.with_changes(leading_lines=lines))
                if lines:
                    new = new.with_changes(leading_lines=())
            if key in self.loops:
                index = self.loops[key]
                assert isinstance(orig, (cst.For, cst.While))
                prelude = self._prelude(index)
                prelude[0] = prelude[0].with_changes(leading_lines=orig.leading_lines)
                body.extend(prelude)
                body.append(new)
            elif key in self.comprehensions:
                body.extend(self._unrolled(self.comprehensions[key], orig))
            elif key in self.rows:
                body.extend(self._row_wise(self.rows[key], orig))
            elif key in self.removed:
                pass  # the batch ack after the loop: each unit acknowledges its own messages now
            else:
                body.append(new)
            for index in self.completions.get(key, ()):
                body.append(self._statement("%s.complete()" % self.names.variables[index]))
            for index in self.deferred.get(key, ()):
                loop_id = self._literal(self.plans[index].loop_id)
                body.append(self._statement("%s(%s)" % (self.names.complete_deferred, loop_id)))
        return body

    # -- generated code ---------------------------------------------------------------

    def _statement(self, code: str) -> cst.BaseStatement:
        return cst.parse_statement(code, config=self.module.config_for_parsing)

    def _parallel_prelude(self, index: int) -> cst.BaseStatement:
        """``par = parallel("job.py::<module>::rows", key=(...))``."""
        plan = self.plans[index]
        arguments = [self._literal(plan.loop_id)]
        if plan.key:
            arguments.append("key=%s" % _tuple(plan.key))
        if self.directory:
            arguments.append("directory=%s" % self._literal(self.directory))
        function = self.names.functions[_SHARED if plan.kind == "shared" else _PARALLEL]
        return self._statement("%s = %s(%s)" % (self.names.variables[index], function, ", ".join(arguments)))

    def _prelude(self, index: int) -> List[cst.BaseStatement]:
        """``ckpt = checkpoint(...)`` and ``[acc, ...] = ckpt.restore()`` (awaited for ``async for``)."""
        plan = self.plans[index]
        var = self.names.variables[index]
        if plan.ack is not None:
            assert plan.iterable is not None
            arguments = [self._code(plan.iterable), plan.ack]
            if plan.ack_grown:
                arguments.append("grown=lambda: %s" % plan.ack_grown)
            if plan.ack_latest:
                arguments.append("latest=lambda: %s" % plan.ack_latest)
            return [self._statement("%s = %s(%s)" % (var, self.names.acknowledge_each, ", ".join(arguments)))]
        arguments = [self._literal(plan.loop_id)]
        writes = self.names.writes.get(index, {})
        parts = self.names.parts.get(index, {})
        journals = {**writes, **parts}
        state_names = [("%s.journal" % journals[n]) if n in journals else n for n in plan.state]
        state = "lambda: %s" % _tuple(state_names) if plan.state else None
        if plan.iterable is not None:
            arguments.append(self._code(plan.iterable))
            if state:
                arguments.append(state)
        elif state:
            arguments.append("state=" + state)  # a while loop: no iterable
        if plan.key:
            arguments.append("key=%s" % _tuple(plan.key))
        constants = ["%s: %s" % (json.dumps(n), n) for n in plan.constants]
        if plan.items is not None:
            constants.append(items.loaded_constant(plan.items, writes[plan.items.name]))
        if constants:
            arguments.append("constants={%s}" % ", ".join(constants))
        if plan.resume:
            arguments.append("resume=%s" % json.dumps(plan.resume))
        if plan.transaction:
            arguments.append("transaction=%s" % plan.transaction)
        if plan.deferred:
            arguments.append("deferred=True")
        if self.directory:
            arguments.append("directory=%s" % self._literal(self.directory))
        restore = "await %s.arestore()" % var if plan.asynchronous else "%s.restore()" % var
        if plan.state:
            restore = "[%s] = %s" % (", ".join(state_names), restore)
        return [
            *(
                self._statement(
                    "%s = %s(%s)"
                    % (
                        journal,
                        self.names.functions[
                            _ITEM_WRITES if plan.items and frame == plan.items.name else _FRAME_WRITES
                        ],
                        frame,
                    )
                )
                for frame, journal in writes.items()
            ),
            *(
                self._statement(
                    "%s = %s(%s, %s)" % (journal, self.names.functions[_FRAME_CONCAT], frame, callee)
                )
                for (frame, callee), journal in zip(plan.concats, parts.values())
            ),
            self._statement("%s = %s(%s)" % (var, self.names.checkpoint, ", ".join(arguments))),
            self._statement(restore),
            *(self._statement("%s.replay()" % journal) for journal in writes.values()),
            *(self._statement("%s = %s.replay()" % (frame, journal)) for frame, journal in parts.items()),
        ]

    def _row_wise(self, index: int, statement: cst.BaseStatement) -> List[cst.BaseStatement]:
        """``rows = checkpoint_rows(...)``, then the statement with its receiver wrapped:
        ``df["x"] = rows(df["text"]).apply(f)``."""
        plan = self.plans[index]
        assert plan.rows is not None
        var = self.names.variables[index]
        arguments = [self._literal(plan.loop_id)]
        if plan.key:
            arguments.append("key=%s" % _tuple(plan.key))
        if self.directory:
            arguments.append("directory=%s" % self._literal(self.directory))
        opening = self._statement("%s = %s(%s)" % (var, self.names.checkpoint_rows, ", ".join(arguments)))
        wrapped = cst.Call(func=cst.Name(var), args=[cst.Arg(plan.rows)])
        assert isinstance(statement, cst.SimpleStatementLine)
        rewritten = statement.visit(_Replace(plan.rows, wrapped))
        assert isinstance(rewritten, cst.SimpleStatementLine)
        return [
            opening.with_changes(leading_lines=statement.leading_lines),
            rewritten.with_changes(leading_lines=()),
        ]

    def _code(self, node: cst.CSTNode) -> str:
        """An expression's code, stripped; parenthesised when it spans lines, so it can move."""
        text = self.module.code_for_node(node).strip()
        if "\n" in text or "\r" in text:
            return "(%s)" % text
        return text

    def _literal(self, text: str) -> str:
        literal = json.dumps(text, ensure_ascii=False)
        try:
            literal.encode(self.module.encoding)
        except UnicodeEncodeError:
            literal = json.dumps(text)
        if text.count('"') > text.count("'"):
            # black and ruff format prefer the quotes that need fewer escapes: df["label"]
            single = "'%s'" % literal[1:-1].replace('\\"', '"').replace("'", "\\'")
            try:
                if ast.literal_eval(single) == text:
                    return single
            except (SyntaxError, ValueError):
                pass
        return literal

    def _unrolled(self, index: int, statement: cst.BaseStatement) -> List[cst.BaseStatement]:
        """``name = [f(x) for x in xs if p(x)]`` as an initialised, checkpointed loop."""
        plan = self.plans[index]
        comp = plan.comprehension
        assert comp is not None and isinstance(statement, cst.SimpleStatementLine)
        name = plan.finding.accumulators[0]
        small = statement.body[0]
        empty = {"list": "[]", "set": "set()", "dict": "{}"}[comp.kind]
        if isinstance(small, cst.AnnAssign):
            init = "%s: %s = %s" % (
                name,
                self._code(small.annotation.annotation),
                empty,
            )
        else:
            init = "%s = %s" % (name, empty)
        node = comp.node
        if isinstance(node, cst.DictComp):
            action = "%s[%s] = %s" % (
                name,
                self._code(node.key),
                self._code(node.value),
            )
        else:
            action = "%s.%s(%s)" % (
                name,
                "append" if comp.kind == "list" else "add",
                self._code(node.elt),
            )
        clauses = for_clauses(node.for_in)
        indent = self.module.default_indent
        lines = [action]
        for depth, clause in reversed(list(enumerate(clauses))):
            for test in reversed(clause.ifs):
                lines = ["if %s:" % self._code(test.test)] + [indent + line for line in lines]
            if depth > 0:
                lines = ["for %s in %s:" % (self._code(clause.target), self._code(clause.iter))] + [
                    indent + line for line in lines
                ]
        var = self.names.variables[index]
        loop_code = "for %s in %s:%s" % (
            self._code(clauses[0].target),
            var,
            self.module.default_newline,
        )
        loop_code += "".join(indent + line + self.module.default_newline for line in lines)
        first = self._statement(init).with_changes(leading_lines=statement.leading_lines)
        return [
            first,
            *self._prelude(index),
            cst.parse_statement(loop_code, config=self.module.config_for_parsing),
        ]


class _JournalWrites(cst.CSTTransformer):
    """``df.at[k] = v`` -> ``df_writes.at[k] = v`` in store targets (reads stay on the frame)."""

    def __init__(self, frame: str, journal: str) -> None:
        super().__init__()
        self.frame = frame
        self.journal = journal

    def _target(self, target: cst.BaseAssignTargetExpression) -> cst.BaseAssignTargetExpression:
        if (
            isinstance(target, cst.Subscript)
            and isinstance(target.value, cst.Attribute)
            and target.value.attr.value in _INDEXERS
            and isinstance(target.value.value, cst.Name)
            and target.value.value.value == self.frame
        ):
            return target.with_changes(value=target.value.with_changes(value=cst.Name(self.journal)))
        return target

    def leave_AssignTarget(
        self, original_node: cst.AssignTarget, updated_node: cst.AssignTarget
    ) -> cst.AssignTarget:
        return updated_node.with_changes(target=self._target(updated_node.target))

    def leave_AugAssign(self, original_node: cst.AugAssign, updated_node: cst.AugAssign) -> cst.AugAssign:
        return updated_node.with_changes(target=self._target(updated_node.target))


class _JournalConcat(cst.CSTTransformer):
    """``df = pd.concat([df, part], ...)`` -> ``df = df_parts.concat([df, part], ...)``
    (detect/concat.py: the calls the plan found, by shape)."""

    def __init__(self, frame: str, journal: str) -> None:
        super().__init__()
        self.frame = frame
        self.journal = journal

    def leave_Assign(self, original_node: cst.Assign, updated_node: cst.Assign) -> cst.Assign:
        value = updated_node.value
        if (
            len(updated_node.targets) == 1
            and isinstance(updated_node.targets[0].target, cst.Name)
            and updated_node.targets[0].target.value == self.frame
            and isinstance(value, cst.Call)
            and concat_growth(self.frame, value)
        ):
            func = cst.Attribute(cst.Name(self.journal), cst.Name("concat"))
            return updated_node.with_changes(value=value.with_changes(func=func))
        return updated_node


class _Replace(cst.CSTTransformer):
    """Replaces one node, matched by identity."""

    def __init__(self, old: cst.CSTNode, new: cst.CSTNode) -> None:
        super().__init__()
        self.old = old
        self.new = new

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> cst.CSTNode:  # type: ignore[override]
        return self.new if original_node is self.old else updated_node


def _tuple(names: Sequence[str]) -> str:
    """``(a,)`` or ``(a, b)``: a tuple display of names."""
    return "(%s,)" % names[0] if len(names) == 1 else "(%s)" % ", ".join(names)


_TIGHT = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Comparison, cst.UnaryOperation, cst.Integer)


def _binds_tighter_than_and(test: cst.BaseExpression) -> bool:
    """Whether ``advance() and <test>`` parses as intended without parentheses."""
    if isinstance(test, cst.BooleanOperation):
        return (
            isinstance(test.operator, cst.And)
            and _binds_tighter_than_and(test.left)
            and _binds_tighter_than_and(test.right)
        )
    return isinstance(test, _TIGHT) and not test.lpar
