"""``python -m libcst.tool codemod checkpoint_loops.CheckpointLoopsCommand PATH``.

The LibCST codemod command, shipped in the package. LibCST finds it once
``.libcst.codemod.yaml`` lists this package (or, in a checkout of this repository, the
top-level ``codemods`` folder, whose module only imports this one)::

    modules:
      - 'checkpointify.codemods'

A thin command over checkpointify's own rewrite: the same matcher, the same transformer
and the same safety checks as ``checkpointify fix``, so both give byte-identical results.
Findings without an applicable fix are reported as LibCST warnings.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict

import libcst as cst
from libcst.codemod import CodemodContext, SkipFile, VisitorBasedCodemodCommand

from checkpointify import api


class CheckpointLoopsCommand(VisitorBasedCodemodCommand):
    DESCRIPTION = "Checkpoint collect-then-save loops so that a re-run resumes (checkpointify)."

    @staticmethod
    def add_args(arg_parser: argparse.ArgumentParser) -> None:
        arg_parser.add_argument(
            "--unsafe-fixes",
            dest="unsafe_fixes",
            action="store_true",
            help="Also apply fixes whose resume may differ (see `checkpointify scan`).",
        )

    def __init__(self, context: CodemodContext, unsafe_fixes: bool = False) -> None:
        super().__init__(context)
        self.unsafe_fixes = unsafe_fixes
        self.by_folder: Dict[Path, api.Options] = {}

    def _options(self, path: str) -> api.Options:
        """The configuration and style of the project ``path`` is in, found from its folder as
        ``checkpointify fix PATH`` finds them, so both write the same bytes. A bad
        configuration raises ConfigError: LibCST reports that file as failed."""
        folder = Path(path).parent if path != "<stdin>" else Path.cwd()
        if folder not in self.by_folder:
            self.by_folder[folder] = api.load_options(
                folder, unsafe_fixes=True if self.unsafe_fixes else None
            )
        return self.by_folder[folder]

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        path = self.context.filename or "<stdin>"
        outcome = api.rewrite_checked(tree, path, self._options(path))
        for finding in outcome.findings:
            if finding not in outcome.applied:
                self.warn(
                    "%s:%d: %s %s (not rewritten: fix %s)"
                    % (
                        path,
                        finding.line,
                        finding.code,
                        finding.message,
                        finding.fix.value if finding.fix else "none",
                    )
                )
        if outcome.error is not None:
            raise SkipFile(outcome.error)
        return outcome.module
