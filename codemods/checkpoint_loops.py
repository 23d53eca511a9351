"""``python -m libcst.tool codemod checkpoint_loops.CheckpointLoopsCommand --no-format PATH``.

A thin entry for a checkout of this repository. The command ships in the package as
:mod:`checkpointify.codemods.checkpoint_loops`: wherever checkpointify is installed, list
``checkpointify.codemods`` under ``modules:`` in ``.libcst.codemod.yaml`` instead.
"""

from checkpointify.codemods.checkpoint_loops import CheckpointLoopsCommand

__all__ = ["CheckpointLoopsCommand"]
