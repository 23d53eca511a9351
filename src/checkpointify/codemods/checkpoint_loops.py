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
        # the project's configuration and style, found from where libcst.tool runs (its
        # repo_root), as `checkpointify fix` finds them: both write the same bytes
        try:
            self.options = api.load_options(Path.cwd(), unsafe_fixes=unsafe_fixes)
        except api.ConfigError as exc:
            raise SystemExit("checkpointify: error: %s" % exc) from exc

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        path = self.context.filename or "<stdin>"
        outcome = api.rewrite_checked(tree, path, self.options)
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
