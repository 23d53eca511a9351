"""``add_from_import`` gives exactly what LibCST's ``AddImportsVisitor`` gives.

Its fast path (no import at the top of the file names the runtime module) builds the
statement itself; everything else goes to ``AddImportsVisitor``. Both are run here on the
same modules and their code compared byte for byte: hand-written layouts aimed at each
rule of the visitor's placement, and (``-m slow``) every fixture's input.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import libcst as cst
import pytest
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from checkpointify.rewrite import imports
from checkpointify.rewrite.imports import add_from_import
from tests.support.fixture_cases import cases

RUNTIME = "checkpointify.runtime"
NAMES: List[Sequence[Tuple[str, Optional[str]]]] = [
    [("checkpoint", None)],
    [("checkpoint", "checkpoint_1"), ("complete_deferred", None)],
    [("parallel", None), ("frame_concat", "fc"), ("acknowledge_each", None)],
]

LAYOUTS = {
    "empty": "",
    "code only": "x = 1\n",
    "docstring": '"""Doc."""\nx = 1\n',
    "docstring then imports": '"""Doc."""\nimport os\nfrom json import dump\n\nx = 1\n',
    "f-string first is not a docstring": 'f"{x}"\nimport os\n',
    "concatenated string first": '"a" "b"\nimport os\n',
    "strict flag": "__strict__ = True\nimport os\nx = 1\n",
    "two targets are not the flag": "__strict__ = y = True\nimport os\n",
    "future import": "from __future__ import annotations\nimport os\nx = 1\n",
    "comment before code": "import os\n# a comment\nx = 1\n",
    "blank before code": "import os\n\n\nx = 1\n",
    "comment then blank": "import os\n# c\n\nx = 1\n",
    "imports on one line end the block": "import os; import sys\nimport json\nx = 1\n",
    "import after code": "x = 1\nimport os\n",
    "import block then more imports": "import os\nx = 1\nimport sys\n",
    "header comment": "#!/usr/bin/env python\n# -*- coding: utf-8 -*-\nimport os\nx = 1\n",
    "only imports": "import os\nimport sys\n",
    "try import": "import os\ntry:\n    import ujson as json\nexcept ImportError:\n    import json\n",
    "crlf": "import os\r\nx = 1\r\n",
    "tabs": "import os\nif x:\n\ty = 1\n",
    "runtime imported": "from checkpointify.runtime import checkpoint\nx = 1\n",
    "runtime imported with alias": "from checkpointify.runtime import checkpoint as cp\nx = 1\n",
    "runtime star": "from checkpointify.runtime import *\nx = 1\n",
    "runtime as a module": "import checkpointify.runtime\nx = 1\n",
    "runtime below code": "x = 1\nfrom checkpointify.runtime import checkpoint\n",
    "relative import": "from . import sibling\nx = 1\n",
    "parent package": "from checkpointify import runtime\nx = 1\n",
}


def visitor(module: cst.Module, names: Sequence[Tuple[str, Optional[str]]]) -> cst.Module:
    context = CodemodContext()
    for name, alias in names:
        AddImportsVisitor.add_needed_import(context, RUNTIME, name, asname=alias)
    return AddImportsVisitor(context).transform_module(module)


@pytest.mark.parametrize("names", NAMES, ids=lambda n: ",".join(name for name, _ in n))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layouts_equal_add_imports_visitor(layout: str, names: Sequence[Tuple[str, Optional[str]]]) -> None:
    module = cst.parse_module(LAYOUTS[layout])
    assert add_from_import(module, RUNTIME, names).code == visitor(module, names).code


def test_the_fast_path_is_taken_where_nothing_at_the_top_names_the_runtime(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So the comparison above covers the fast path and not only the hand-over."""
    handed_over: List[str] = []
    real = imports._add_imports_visitor

    def spy(module: cst.Module, source: str, names: Sequence[Tuple[str, Optional[str]]]) -> cst.Module:
        handed_over.append(module.code)
        return real(module, source, names)

    monkeypatch.setattr(imports, "_add_imports_visitor", spy)
    for code in LAYOUTS.values():
        add_from_import(cst.parse_module(code), RUNTIME, NAMES[0])
    assert sorted(handed_over) == sorted(
        LAYOUTS[k]
        for k in (
            "runtime imported",
            "runtime imported with alias",
            "runtime star",
            "runtime as a module",
            "relative import",
        )
    )


FIXTURE_INPUTS = [c for c in cases() if c.suffix == ".py"]


# -m slow: by default the fixtures show it already, their expected.py files having been
# written by AddImportsVisitor and compared byte for byte with every fix (test_fixtures.py)
@pytest.mark.slow
@pytest.mark.parametrize("case", FIXTURE_INPUTS, ids=lambda c: c.id)
def test_every_fixture_input_equals_add_imports_visitor(case: object) -> None:
    module = cst.parse_module(case.source)  # type: ignore[attr-defined]
    names = NAMES[1]  # one plain name and one alias: the layouts above vary the rest
    assert add_from_import(module, RUNTIME, names).code == visitor(module, names).code
