"""Files whose syntax is newer than the running Python, checked with LibCST's parser.

CPython 3.11 rejects a PEP 701 f-string (Python 3.12) that reuses its quote inside a
replacement field, ``f"{row["text"]}"``; LibCST's parser accepts it. Such a file is not
broken, and reporting it as a syntax error would hide the loops it holds (notebooks written
on a newer kernel are full of them). But LibCST's grammar is more lenient than CPython's in
other ways too, so "LibCST parses it" alone must never make a broken file look fine.

The check here is sound in one direction: :func:`check` desugars every f-string of the
LibCST tree into ``""`` (a plain literal, valid on every Python) and hands the result to the
running Python's own compiler; every expression an f-string holds is parsed by CPython on
its own too. If all of that is accepted, the only thing the running Python objected to was
the f-strings' own quoting, which is newer syntax, not an error. Anything else (a real
syntax error, an error inside a replacement field, newer syntax other than f-strings such
as PEP 695 type parameters) stays rejected with CPython's own message.

The same check verifies a rewrite of such a file: the output must parse with LibCST and its
desugared form must compile, so a fix can add no error the running Python would have
caught. Findings of such a file carry :data:`NOTE`.
"""

from __future__ import annotations

import ast
import sys
from typing import List, Optional

import libcst as cst

__all__ = ["NOTE", "check"]

#: said of every finding in a file this Python rejects and LibCST's parser accepts
NOTE = (
    "checked with LibCST's parser only: this Python (%d.%d) rejects the file's syntax" % sys.version_info[:2]
)


class _Desugar(cst.CSTTransformer):
    """Every f-string becomes ``""``; the code of each replacement field is kept aside."""

    def __init__(self, module: cst.Module) -> None:
        super().__init__()
        self.module = module
        self.fields: List[str] = []

    def leave_FormattedString(
        self, original_node: cst.FormattedString, updated_node: cst.FormattedString
    ) -> cst.BaseExpression:
        self._collect(updated_node.parts)
        return cst.SimpleString('""', lpar=updated_node.lpar, rpar=updated_node.rpar)

    def _collect(self, parts: "object") -> None:
        for part in parts:  # type: ignore[attr-defined]
            if isinstance(part, cst.FormattedStringExpression):
                # inner f-strings were desugared already (leave_ runs bottom-up)
                self.fields.append(self.module.code_for_node(part.expression))
                if part.format_spec:
                    self._collect(part.format_spec)


def check(source: bytes, flags: int = 0) -> Optional[cst.Module]:
    """The LibCST tree of ``source`` when the running Python rejects it only for its
    f-strings (see the module docstring), else None. ``flags`` are ``compile``'s (a
    notebook's top-level ``await``). Never raises.

    LibCST is only asked when CPython's first objection is about an f-string: its parser can
    crash on what CPython rejects for other reasons (thousands of nested brackets).
    """
    try:
        ast.parse(source)
    except SyntaxError as error:
        if not str(error.msg or "").startswith("f-string"):
            return None
    except Exception:  # a NUL byte, too deep for CPython: not newer syntax
        return None
    else:
        return None  # CPython parses it: whatever it rejects (compile) is not newer syntax
    try:
        module = cst.parse_module(source)
        desugar = _Desugar(module)
        desugared = module.visit(desugar)
        if not isinstance(desugared, cst.Module) or not desugar.fields and desugared.code == module.code:
            return None  # no f-string: CPython's objection is something else
        compile(desugared.bytes, "<desugared>", "exec", flags=flags, dont_inherit=True)
        for field in desugar.fields:
            ast.parse("(\n%s\n)" % field, mode="eval")
    except Exception:  # LibCST rejects it, or CPython rejects more than the f-strings
        return None
    return module
