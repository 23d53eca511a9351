"""LibCST codemod commands shipped with checkpointify (list ``checkpointify.codemods`` under
``modules:`` in ``.libcst.codemod.yaml``)."""
