"""``python -m libcst.tool codemod checkpoint_loops.CheckpointLoopsCommand PATH``.

The LibCST codemod command, shipped in the package. LibCST finds it once
``.libcst.codemod.yaml`` lists this package (or, in a checkout of this repository, the
top-level ``codemods`` folder, whose module only imports this one)::

    modules:
      - 'checkpointify.codemods'

A thin command over checkpointify's own rewrite: the same matcher, the same transformer
and the same safety checks as ``checkpointify fix``, so both give byte-identical results.
Findings without an applicable fix are reported as LibCST warnings.

**Python files only.** LibCST's runner reads ``.py`` files (``.pyi`` with
``--include-stubs``) and passes over every other file without a word, notebooks
included. So that a notebook is never silently left unchecked, the command names the
``.ipynb`` files under the paths it was given as *not looked at* (one line on stderr,
once, before the run). Use ``checkpointify fix`` for notebooks: it reads their code cells
and edits only their ``source`` values.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import libcst as cst
from libcst.codemod import CodemodContext, SkipFile, VisitorBasedCodemodCommand

from checkpointify import api


def notebooks_under(paths: Sequence[str]) -> List[str]:
    """The ``.ipynb`` files at or under ``paths`` (hidden folders such as
    ``.ipynb_checkpoints`` skipped, as checkpointify's own walk does), sorted."""
    found: List[str] = []
    for path in paths:
        if os.path.isfile(path) and path.endswith(".ipynb"):
            found.append(path)
        elif os.path.isdir(path):
            for folder, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found.extend(os.path.join(folder, f) for f in files if f.endswith(".ipynb"))
    return sorted(set(found))


def report_notebooks(argv: Sequence[str]) -> None:
    """Name the notebooks among ``argv``'s paths on stderr: the LibCST runner skips them."""
    notebooks = notebooks_under([a for a in argv if not a.startswith("-") and os.path.exists(a)])
    if notebooks:
        shown = ", ".join(notebooks[:5]) + (
            " and %d more" % (len(notebooks) - 5) if len(notebooks) > 5 else ""
        )
        print(
            "checkpoint_loops: %d notebook%s not looked at: %s (the LibCST command reads Python files only; "
            "run `checkpointify fix` on notebooks)"
            % (len(notebooks), "" if len(notebooks) == 1 else "s", shown),
            file=sys.stderr,
        )


class CheckpointLoopsCommand(VisitorBasedCodemodCommand):
    DESCRIPTION = (
        "Checkpoint collect-then-save loops so that a re-run resumes (checkpointify). Python files only: "
        "notebooks (.ipynb) under the paths are named as not looked at; use `checkpointify fix` for them."
    )

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
        if sys.argv and os.path.basename(os.path.dirname(sys.argv[0])) == "libcst":
            # made once, in the main process of `python -m libcst.tool codemod ... PATHS`
            report_notebooks(sys.argv[1:])

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
