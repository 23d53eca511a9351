"""The rewrite's one import statement, added as LibCST's ``AddImportsVisitor`` adds it.

``AddImportsVisitor`` costs about as much as the rest of a file's fix together (measured on
the fixtures: 10.9 of 23.5 s), because it builds matcher-decorated visitors and walks the
whole module twice to learn about imports that live at the top of the file. In the common
case that walk finds nothing: no import at the top of the file names the runtime module.
Then its output is the new ``from <runtime> import ...`` statement after the leading import
block, and :func:`add_from_import` builds exactly that with no walk. In every other case
(the runtime module already imported at the top, so names merge into that statement or are
found there) it hands over to ``AddImportsVisitor`` itself. tests/rewrite/test_imports.py
checks the two give the same module on the layouts that matter and (``-m slow``) on every
fixture.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

__all__ = ["add_from_import", "dotted"]


def add_from_import(
    module: cst.Module, source: str, names: Sequence[Tuple[str, Optional[str]]]
) -> cst.Module:
    """``module`` with ``from source import name [as alias], ...`` as ``AddImportsVisitor`` adds it."""
    start = 1 if _docstring_or_strict_first(module) else 0
    end = start
    for statement in module.body[start:]:
        if not _is_top_import(statement):
            break
        assert isinstance(statement, cst.SimpleStatementLine)
        if _names_module(statement.body[0], source):
            return _add_imports_visitor(module, source, names)
        end += 1
    line = "from %s import %s" % (
        source,
        ", ".join(name if alias is None else "%s as %s" % (name, alias) for name, alias in sorted(names)),
    )
    rest = list(module.body[end:])
    if rest:
        first = rest[0]
        if not first.leading_lines:
            rest[0] = first.with_changes(leading_lines=(cst.EmptyLine(),))
        elif first.leading_lines[0].comment is not None:
            rest[0] = first.with_changes(leading_lines=(cst.EmptyLine(), *first.leading_lines))
    new = cst.parse_statement(line, config=module.config_for_parsing)
    return module.with_changes(body=[*module.body[:end], new, *rest])


def _add_imports_visitor(
    module: cst.Module, source: str, names: Sequence[Tuple[str, Optional[str]]]
) -> cst.Module:
    context = CodemodContext()
    for name, alias in names:
        AddImportsVisitor.add_needed_import(context, source, name, asname=alias)
    return AddImportsVisitor(context).transform_module(module)


def _is_top_import(statement: cst.BaseStatement) -> bool:
    """What ``AddImportsVisitor`` counts as part of the leading import block: a line holding
    one ``import`` or ``from ... import`` and nothing else."""
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], (cst.Import, cst.ImportFrom))
    )


def _names_module(node: cst.BaseSmallStatement, source: str) -> bool:
    """Whether an import of the leading block could concern ``source``: ``from source import``
    (merged into or already holding the names), any relative import (resolved against a
    package), or ``import source``. Erring towards True only costs the slower path."""
    if isinstance(node, cst.ImportFrom):
        if node.relative:
            return True
        return node.module is not None and dotted(node.module) == source
    assert isinstance(node, cst.Import)
    return any(dotted(alias.name) == source for alias in node.names)


def dotted(node: cst.BaseExpression) -> str:
    """An imported name as written (``a.b.c``); "" for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return "%s.%s" % (dotted(node.value), node.attr.value)
    return ""


def _docstring_or_strict_first(module: cst.Module) -> bool:
    """``AddImportsVisitor`` never inserts before a first line that is a docstring (one plain
    string, not an f-string or a concatenation) or a ``__strict__ = ...`` flag."""
    if not module.body:
        return False
    first = module.body[0]
    if not isinstance(first, cst.SimpleStatementLine) or len(first.body) != 1:
        return False
    small = first.body[0]
    if isinstance(small, cst.Expr):
        return isinstance(small.value, cst.SimpleString)
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target = small.targets[0].target
        return isinstance(target, cst.Name) and target.value == "__strict__"
    return False
