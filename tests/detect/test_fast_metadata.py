"""The detector's own, faster readings of LibCST trees agree with LibCST on every node.

``cstutil.children`` reads a node's fields instead of rebuilding the node, ``Positions``
replaces ``PositionProvider``, ``cstutil.bound_calls`` visits statements only, and
``FileAnalysis.may_qualify`` rules out a library from the scopes' tables. Each is checked
here against what LibCST itself computes, on every node of real files: the fixtures' inputs,
the detector's own source, and a source written to exercise rare syntax.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, List

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from checkpointify import catalogue
from checkpointify.detect import cstutil
from checkpointify.detect.analysis import FileAnalysis
from checkpointify.detect.positions import Positions
from checkpointify.detect.suppression import suppression_comments
from checkpointify.types import Options

ROOT = Path(__file__).resolve().parents[2]

#: syntax the fixtures may not hold: every compound statement, one-line suites, f-string
#: format specs, star imports, decorators, walrus, match, try/except*, CRLF and CR newlines
RARE = """\
from __future__ import annotations
import os.path as p, sys
from . import sibling
from .pkg import (a as b,
    c)
from mod import *
@decorator(arg)
@other
class C(Base, metaclass=M):
    x: int = 1
    def m(self, /, a, *args, b=2, **kw) -> "C":
        return f"{a!r:>{b}} {self.x=}" if (y := a) else rb"raw"
async def g():
    async with a as (b, c), d:
        async for i in aiter():
            await x
    return [i async for i in y if i]
for i in range(3): print(i); continue
else: pass
while x: break
else: y = 1
if a: b = 1
elif c: d = 2
elif e:
    f = 3
else: g = 4
try:
    pass
except* ValueError as err:
    raise
else:
    pass
finally:
    del z
with open(p) as f, open(q): pass
match command.split():
    case [action, *rest] if rest:
        pass
    case {"k": v, **others}:
        pass
    case Point(x=0) | None:
        pass
    case _:
        pass
lambda x=1, *a, **k: (yield)
global gg
x = {**a, 'b': [*c], 1: {2, 3}}[1:2:3]
assert x, "msg"
s = 'a' 'b' f'{c}'
v = not -a ** b @ c // d
"""


def _sources() -> Iterator[str]:
    paths: List[Path] = sorted((ROOT / "tests" / "fixtures").glob("*/*/input.py"))
    paths += sorted((ROOT / "src" / "checkpointify" / "detect").glob("*.py"))
    for path in paths:
        yield path.read_text(encoding="utf-8")
    yield RARE
    yield RARE.replace("\n", "\r\n")
    yield RARE.replace("\n", "\r")


def _nodes(module: cst.CSTNode) -> Iterator[cst.CSTNode]:
    stack = [module]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)


def test_children_and_walks_match_libcst_on_every_node() -> None:
    checked = 0
    for source in _sources():
        module = cst.parse_module(source)
        cstutil.forget_children()
        for node in _nodes(module):
            mine, theirs = cstutil.children(node), node.children
            assert len(mine) == len(theirs) and all(a is b for a, b in zip(mine, theirs)), type(node)
            checked += 1
        walked = [id(n) for n in cstutil.walk(module, ())]
        assert walked == [id(n) for n in _nodes_in_order(module)]
    assert checked > 100_000  # the fixtures and the detector's source: far more nodes than a toy


def _nodes_in_order(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    yield node
    for child in node.children:
        yield from _nodes_in_order(child)


def test_positions_match_position_provider_on_every_node() -> None:
    for source in _sources():
        module = cst.parse_module(source)
        expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        mine = Positions(module)
        assert len(mine) == len(expected)
        for node, position in expected.items():
            assert node in mine and mine[node] == position, (type(node), position, mine.get(node))
        assert mine.code == module.code
        assert mine.get(cst.Name("elsewhere")) is None


def test_bound_calls_finds_every_binding_a_full_walk_finds() -> None:
    for source in _sources():
        module = cst.parse_module(source)
        expected = []
        for node in cstutil.walk(module, ()):
            if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
                expected.append((node.value, [t.target for t in node.targets]))
            elif (
                isinstance(node, cst.WithItem) and node.asname is not None and isinstance(node.item, cst.Call)
            ):
                expected.append((node.item, [node.asname.name]))
        found = cstutil.bound_calls(module)
        assert [(id(c), [id(t) for t in ts]) for c, ts in found] == [
            (id(c), [id(t) for t in ts]) for c, ts in expected
        ]


@pytest.mark.parametrize(
    "source, imported",
    [
        ("import json\nm = json.load(f)\n", False),
        ("from sentence_transformers import SentenceTransformer\n", True),
        ("def f():\n    import sentence_transformers as st\n    return st\n", True),
        ("import FlagEmbedding.flag_models\n", True),
        ("from FlagEmbedding import BGEM3FlagModel as M\n", True),
        ("from .sentence_transformers import X\n", False),  # relative: `.sentence_transformers.X`
        ("sentence_transformers = load()\nm = sentence_transformers.Model()\n", True),  # a name it binds
    ],
)
def test_may_qualify_agrees_with_the_qualified_names(source: str, imported: bool) -> None:
    module = cst.parse_module(source)
    analysis = FileAnalysis(MetadataWrapper(module, unsafe_skip_copy=True), "x.py", Options())
    assert analysis.may_qualify(catalogue.MODEL_OBJECT_PREFIXES) is imported
    qualified = {
        q
        for node in cstutil.walk(module, ())
        if isinstance(node, (cst.Name, cst.Attribute))
        for q in analysis.qualified(node)
    }
    # never False where a qualified name starts with the prefix (the gate must be a superset)
    if any(q.startswith(catalogue.MODEL_OBJECT_PREFIXES) for q in qualified):
        assert imported


def test_suppression_lines_only_skip_tokenizing_when_no_line_can_hold_a_comment() -> None:
    code = "x = 1\nfor a in b:  # noqa: CKP001\n    pass\ns = '# checkpointify: ignore'\n"
    everything = suppression_comments(code)
    assert everything == {2: frozenset({"CKP001"})}
    assert suppression_comments(code, {2}) == everything
    assert suppression_comments(code, {1, 3}) == {}
    assert 4 not in suppression_comments(code, {4})  # in a string: not a comment
