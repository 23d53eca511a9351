"""LibCST codemod commands (see .libcst.codemod.yaml)."""
