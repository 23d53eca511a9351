"""The baseline of ``benchmarks/scale.py``: a LibCST codemod that parses every file and changes nothing.

``python -m libcst.tool codemod -x noop_codemod.NoopCommand --no-format -j N PATH`` (run from
this folder, or with it on ``PYTHONPATH``) costs what any LibCST-based tool pays at least:
reading, parsing and printing every file, with no metadata at all.
"""

from __future__ import annotations

import libcst as cst
from libcst.codemod import VisitorBasedCodemodCommand


class NoopCommand(VisitorBasedCodemodCommand):
    DESCRIPTION = "Parse every file and change nothing (the LibCST baseline of benchmarks/scale.py)."

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        return tree
