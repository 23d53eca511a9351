"""Plans in, rewritten module out.

For each plan the rewrite is the smallest a reviewer can read: two lines before the loop
(open the checkpoint, restore the accumulators), the loop iterating the checkpoint instead
of the iterable, and one line after the save (``ckpt.complete()``). The loop body is not
re-indented and nothing else in the file moves; the runtime import is added once through
LibCST's ``AddImportsVisitor``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Dict, List, Sequence, Set

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from checkpointify.cstutil import for_clauses
from checkpointify.matcher import Plan

_IMPORT_NAME = "checkpoint"
_IMPORT_ALIAS = "checkpointify_checkpoint"


@dataclass(frozen=True)
class _Names:
    function: str  # how the rewritten code calls the runtime's `checkpoint`
    variables: Dict[int, str]  # plan index -> checkpoint variable


def apply_plans(
    module: cst.Module, plans: Sequence[Plan], used_names: Set[str], runtime_module: str
) -> cst.Module:
    """Rewrite every plan into ``module``; returns the new module (``module`` itself if ``plans`` is empty)."""
    if not plans:
        return module
    names = _choose_names(plans, used_names)
    rewritten = module.visit(_Rewriter(module, plans, names))
    assert isinstance(rewritten, cst.Module)
    context = CodemodContext()
    asname = names.function if names.function != _IMPORT_NAME else None
    AddImportsVisitor.add_needed_import(context, runtime_module, _IMPORT_NAME, asname=asname)
    return AddImportsVisitor(context).transform_module(rewritten)


def _choose_names(plans: Sequence[Plan], used: Set[str]) -> _Names:
    taken = set(used)
    function = _IMPORT_NAME if _IMPORT_NAME not in used else _IMPORT_ALIAS
    taken.add(function)
    variables: Dict[int, str] = {}
    for index, plan in enumerate(plans):
        base = plan.finding.accumulators[0].replace(".", "_") if plan.finding.accumulators else "loop"
        candidates = ["ckpt", "%s_ckpt" % base]
        candidates += ["%s_ckpt%d" % (base, n) for n in range(2, 100)]
        name = next(c for c in candidates if c not in taken)
        taken.add(name)
        variables[index] = name
    return _Names(function, variables)


class _Rewriter(cst.CSTTransformer):
    """Inserts the checkpoint lines around each planned loop, matched by node identity."""

    def __init__(self, module: cst.Module, plans: Sequence[Plan], names: _Names) -> None:
        super().__init__()
        self.module = module
        self.names = names
        self.loops: Dict[int, int] = {}
        self.comprehensions: Dict[int, int] = {}
        self.completions: Dict[int, List[int]] = {}
        self.plans = list(plans)
        for index, plan in enumerate(plans):
            if plan.comprehension is None:
                self.loops[id(plan.statement)] = index
            else:
                self.comprehensions[id(plan.statement)] = index
            self.completions.setdefault(id(plan.complete_after), []).append(index)

    # -- statements -------------------------------------------------------------------

    def leave_For(self, original_node: cst.For, updated_node: cst.For) -> cst.For:
        index = self.loops.get(id(original_node))
        if index is None:
            return updated_node
        return updated_node.with_changes(iter=cst.Name(self.names.variables[index]), leading_lines=())

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
            if key in self.loops:
                index = self.loops[key]
                assert isinstance(orig, cst.For)
                prelude = self._prelude(index)
                prelude[0] = prelude[0].with_changes(leading_lines=orig.leading_lines)
                body.extend(prelude)
                body.append(new)
            elif key in self.comprehensions:
                body.extend(self._unrolled(self.comprehensions[key], orig))
            else:
                body.append(new)
            for index in self.completions.get(key, ()):
                body.append(self._statement("%s.complete()" % self.names.variables[index]))
        return body

    # -- generated code ---------------------------------------------------------------

    def _statement(self, code: str) -> cst.BaseStatement:
        return cst.parse_statement(code, config=self.module.config_for_parsing)

    def _prelude(self, index: int) -> List[cst.BaseStatement]:
        plan = self.plans[index]
        var = self.names.variables[index]
        state = ", ".join(plan.state)
        packed = _tuple(plan.state)
        key = ", key=%s" % _tuple(plan.key) if plan.key else ""
        iterable = self._code(plan.iterable)
        return [
            self._statement(
                "%s = %s(%s, %s, lambda: %s%s)"
                % (
                    var,
                    self.names.function,
                    self._literal(plan.loop_id),
                    iterable,
                    packed,
                    key,
                )
            ),
            self._statement("[%s] = %s.restore()" % (state, var)),
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


def _tuple(names: Sequence[str]) -> str:
    """``(a,)`` or ``(a, b)``: a tuple display of names."""
    return "(%s,)" % names[0] if len(names) == 1 else "(%s)" % ", ".join(names)
