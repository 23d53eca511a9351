"""The lines a rewrite inserts, laid out as the project's linters and formatter want them.

A post-step on the transformer's output (:func:`arrange`), so that a rewritten file passes
the project's own CI: ruff's import sorting (``I001``), its line length (``E501``) and
``ruff format --check``/``black --check``, with the project's settings
(:class:`checkpointify.types.Style`, read by :mod:`checkpointify.config`).

* The runtime import LibCST's ``AddImportsVisitor`` added is moved to where isort and
  ruff put it: its section (third-party, unless the project's settings or its source
  folders make it first-party), in sorted order, with a blank line between sections.
  The rest of the import block is not re-sorted: an unsorted block stays as it was.
* A ``ckpt = checkpoint(...)`` (or ``acknowledge_each(...)``) line longer than the line
  length is wrapped as black and ruff format wrap a call: the arguments on one indented
  line if they fit there, else one per line with a trailing comma. So is a call of a
  ``frame_concat`` handle's ``concat`` that the rewrite put in the loop body
  (``df = df_parts.concat([df, part], ignore_index=True)``, longer than the line it replaced).

Nothing else in the file moves; a line the rewrite did not insert or change is never touched. An
argument that spans lines, or is itself too long for a line, is left as it is (the
formatter, ``fix --format``, does the rest).
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
import sysconfig
import unicodedata
from typing import Any, FrozenSet, List, Optional, Sequence, Set, Tuple

import libcst as cst

from checkpointify.rewrite.imports import dotted
from checkpointify.types import Style

__all__ = ["arrange", "section_of"]

FUTURE, STDLIB, THIRD_PARTY, FIRST_PARTY, LOCAL_FOLDER = range(5)


def arrange(
    original: cst.Module, module: cst.Module, runtime_module: str, style: Style, imports: bool = True
) -> cst.Module:
    """``module`` (``original`` rewritten) with the inserted lines laid out in ``style``.

    ``imports=False`` leaves the runtime import where LibCST put it (a notebook, whose
    cells a moved line could cross). Returns ``module`` itself when nothing needs to move.
    """
    if module is original:
        return module
    if imports:
        module = _place_imports(original, module, runtime_module, style)
    functions = _runtime_functions(module, runtime_module)
    if functions:
        module = module.visit(_Wrapper(module, functions, style))
    return module


# ----------------------------------------------------------------------------- imports


def _place_imports(original: cst.Module, module: cst.Module, runtime_module: str, style: Style) -> cst.Module:
    existing = {_bare_code(original, s) for s in original.body if _is_runtime_import(s, runtime_module)}
    body: List[cst.BaseStatement] = list(module.body)
    added = [
        s for s in body if _is_runtime_import(s, runtime_module) and _bare_code(module, s) not in existing
    ]
    if not added:
        return module  # merged into the project's own import of the runtime: its place is the project's
    for statement in added:
        index = next(i for i, s in enumerate(body) if s is statement)
        assert isinstance(statement, cst.SimpleStatementLine)
        parts = _split(statement) if style.force_single_line else [statement]
        body[index : index + 1] = parts
        for part in parts:
            _move_into_place(body, next(i for i, s in enumerate(body) if s is part), style)
    return module.with_changes(body=body)


def _move_into_place(body: List[cst.BaseStatement], index: int, style: Style) -> None:
    """Move ``body[index]`` (an import) to its sorted place in the import block around it."""
    start = index
    while start > 0 and _is_import(body[start - 1]):
        start -= 1
    end = index + 1
    while end < len(body) and _is_import(body[end]):
        end += 1
    ours = body.pop(index)
    assert isinstance(ours, cst.SimpleStatementLine)
    block = body[start : end - 1]
    if not block:
        body.insert(index, ours)
        return
    key = _key(ours, style)
    position = next((i for i, s in enumerate(block) if _key(s, style) > key), len(block))
    section = _key(ours, style)[0]
    if position == len(block):
        previous = _key(block[-1], style)[0]
        ours = ours.with_changes(leading_lines=() if previous == section else (cst.EmptyLine(),))
        body.insert(start + position, ours)
        return
    following = block[position]
    assert isinstance(following, cst.SimpleStatementLine)
    blank, rest = _split_leading(following.leading_lines)
    previous_section = _key(block[position - 1], style)[0] if position else None
    if position and previous_section == section:
        # inside its section: no blank line above it; the next import keeps its own
        ours = ours.with_changes(leading_lines=())
        if _key(following, style)[0] != section and not blank:
            body[start + position] = following.with_changes(leading_lines=(cst.EmptyLine(), *rest))
    else:
        # first of its section (or of the block): it takes the blank lines above the next
        # import, which gets one blank line if it starts a later section
        ours = ours.with_changes(leading_lines=blank if not position or blank else (cst.EmptyLine(),))
        if _key(following, style)[0] != section:
            rest = (cst.EmptyLine(), *rest)
        body[start + position] = following.with_changes(leading_lines=rest)
    body.insert(start + position, ours)


def _split_leading(
    lines: Sequence[cst.EmptyLine],
) -> Tuple[Tuple[cst.EmptyLine, ...], Tuple[cst.EmptyLine, ...]]:
    """The blank lines above a statement before its first comment, and the rest (the comment
    belongs to the statement, as isort and ruff keep it)."""
    count = 0
    while count < len(lines) and lines[count].comment is None:
        count += 1
    return tuple(lines[:count]), tuple(lines[count:])


def _split(statement: cst.SimpleStatementLine) -> List[cst.SimpleStatementLine]:
    """``from m import a, b`` as ``from m import a`` and ``from m import b`` (force-single-line)."""
    node = statement.body[0]
    assert isinstance(node, cst.ImportFrom) and not isinstance(node.names, cst.ImportStar)
    if len(node.names) < 2:
        return [statement]
    return [
        statement.with_changes(
            body=[node.with_changes(names=[alias.with_changes(comma=cst.MaybeSentinel.DEFAULT)])],
            leading_lines=statement.leading_lines if i == 0 else (),
        )
        for i, alias in enumerate(node.names)
    ]


def _is_import(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in statement.body
    )


def _is_runtime_import(statement: cst.BaseStatement, runtime_module: str) -> bool:
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return False
    node = statement.body[0]
    return (
        isinstance(node, cst.ImportFrom)
        and not node.relative
        and node.module is not None
        and dotted(node.module) == runtime_module
    )


def _bare_code(module: cst.Module, statement: cst.BaseStatement) -> str:
    assert isinstance(statement, cst.SimpleStatementLine)
    return module.code_for_node(statement.with_changes(leading_lines=())).strip()


def _key(statement: cst.BaseStatement, style: Style) -> Tuple[Any, ...]:
    """Where isort/ruff sort an import statement: section, then (by default) ``import``
    before ``from``, then the module name (case-insensitive, natural), then the first name."""
    assert isinstance(statement, cst.SimpleStatementLine)
    node = statement.body[0]
    if isinstance(node, cst.Import):
        name, level, is_from = dotted(node.names[0].name), 0, False
        member = ""
    else:
        assert isinstance(node, cst.ImportFrom)
        name = dotted(node.module) if node.module is not None else ""
        level, is_from = len(node.relative), True
        member = "*" if isinstance(node.names, cst.ImportStar) else dotted(node.names[0].name)
    section = section_of(name, level, style)
    module_key = _natural(name if style.case_sensitive else name.lower())
    member_key = _natural(member if style.case_sensitive else member.lower())
    if style.force_sort_within_sections:
        return (section, module_key, name, is_from, member_key)
    kind = (0 if is_from else 1) if style.from_first else (1 if is_from else 0)
    return (section, kind, module_key, name, member_key)


def _natural(text: str) -> Tuple[Any, ...]:
    """Natural order (``a2`` before ``a10``), as ruff sorts module names."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def section_of(name: str, level: int, style: Style) -> int:
    """The isort section of module ``name`` (``level`` dots before it), in ruff's order of
    precedence: ``__future__``, relative, the project's known-* settings, the standard
    library, a module in the project's source folders, else third-party."""
    if name.split(".")[0] == "__future__":
        return FUTURE
    if level > 0:
        return LOCAL_FOLDER
    for patterns, section in (
        (style.known_local_folder, LOCAL_FOLDER),
        (style.known_first_party, FIRST_PARTY),
        (style.known_third_party, THIRD_PARTY),
    ):
        if any(_known(name, pattern) for pattern in patterns):
            return section
    if name.split(".")[0] in _stdlib():
        return STDLIB
    if any(_in_folder(root, name) for root in style.source_roots):
        return FIRST_PARTY
    return THIRD_PARTY


def _known(name: str, pattern: str) -> bool:
    return (
        name == pattern or name.startswith(pattern + ".") or fnmatch.fnmatchcase(name.split(".")[0], pattern)
    )


def _in_folder(root: str, name: str) -> bool:
    """Whether module ``name`` lives under ``root`` (a package folder or a ``.py`` file), as
    ruff decides first-party from its ``src`` folders."""
    path = os.path.join(root, *name.split("."))
    return os.path.isdir(path) or os.path.isfile(path + ".py")


_STDLIB: Set[str] = set()


def _stdlib() -> FrozenSet[str]:
    names = getattr(sys, "stdlib_module_names", None)
    if names is not None:
        return frozenset(names)
    if not _STDLIB:  # Python 3.9: the standard library's folder, and the built-in modules
        folder = sysconfig.get_paths()["stdlib"]
        _STDLIB.update(sys.builtin_module_names)
        for entry in os.listdir(folder):
            stem = entry[:-3] if entry.endswith(".py") else entry
            if stem.isidentifier() and entry != "site-packages":
                _STDLIB.add(stem)
    return frozenset(_STDLIB)


# ------------------------------------------------------------------------- long lines


def _runtime_functions(module: cst.Module, runtime_module: str) -> FrozenSet[str]:
    """The names the module calls the runtime's functions by (``checkpoint``, or its alias)."""
    names: Set[str] = set()
    for statement in module.body:
        if _is_runtime_import(statement, runtime_module):
            assert isinstance(statement, cst.SimpleStatementLine)
            node = statement.body[0]
            assert isinstance(node, cst.ImportFrom)
            if isinstance(node.names, cst.ImportStar):
                continue
            for alias in node.names:
                local = alias.asname.name if alias.asname is not None else alias.name
                if isinstance(local, cst.Name):
                    names.add(local.value)
    return frozenset(names)


def width(text: str) -> int:
    """Columns ``text`` takes on a terminal, as ruff counts them (wide characters count 2)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


class _Wrapper(cst.CSTTransformer):
    """Wraps ``name = <runtime function>(...)`` statements longer than the line length."""

    def __init__(self, module: cst.Module, functions: FrozenSet[str], style: Style) -> None:
        super().__init__()
        self.module = module
        self.functions = functions
        self.style = style
        self.indents = [""]
        self.handles: Set[str] = set()  # names bound to a runtime function's result (ckpt, df_parts)
        step = module.default_indent
        self.step = step if step == "\t" else " " * style.indent_width

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        own = node.indent if node.indent is not None else self.module.default_indent
        self.indents.append(self.indents[-1] + own)

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        self.indents.pop()
        return updated_node

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine:
        if len(updated_node.body) != 1 or not isinstance(updated_node.body[0], cst.Assign):
            return updated_node
        assign = updated_node.body[0]
        call = assign.value
        if not isinstance(call, cst.Call):
            return updated_node
        func = call.func
        if isinstance(func, cst.Name) and func.value in self.functions:
            if len(assign.targets) == 1 and isinstance(assign.targets[0].target, cst.Name):
                self.handles.add(assign.targets[0].target.value)
        elif not (
            isinstance(func, cst.Attribute)
            and func.attr.value == "concat"  # df_parts.concat(...): what replaced pd.concat(...)
            and isinstance(func.value, cst.Name)
            and func.value.value in self.handles
        ):
            return updated_node
        code = self.module.code_for_node(updated_node.with_changes(leading_lines=())).rstrip("\r\n")
        indent = self.indents[-1]
        if "\n" in code or "\r" in code or self._fits(indent + code):
            return updated_node
        wrapped = self._wrapped(assign, call, indent)
        if wrapped is None:
            return updated_node
        statement = cst.parse_statement(
            wrapped + self.module.default_newline, config=self.module.config_for_parsing
        )
        assert isinstance(statement, cst.SimpleStatementLine)
        return updated_node.with_changes(body=statement.body)

    def _fits(self, line: str) -> bool:
        return width(line.replace("\t", " " * self.style.indent_width)) <= self.style.line_length

    def _wrapped(self, assign: cst.Assign, call: cst.Call, indent: str) -> Optional[str]:
        """The call as black wraps it: the arguments hugged on one line, else one per line."""
        targets = "".join(self.module.code_for_node(t) for t in assign.targets)
        head = "%s%s(" % (targets, self.module.code_for_node(call.func))
        arguments = [
            self.module.code_for_node(a.with_changes(comma=cst.MaybeSentinel.DEFAULT)).strip()
            for a in call.args
        ]
        if not arguments or any("\n" in a or "\r" in a for a in arguments):
            return None
        newline = self.module.default_newline
        hugged = ", ".join(arguments)
        # continuation lines are written relative to the statement: LibCST indents them
        # with the block the statement is in (ParenthesizedWhitespace.indent)
        if self._fits(indent + self.step + hugged):
            return "%s%s%s%s%s)" % (head, newline, self.step, hugged, newline)
        return "%s%s%s)" % (head, newline, "".join(self.step + a + "," + newline for a in arguments))
