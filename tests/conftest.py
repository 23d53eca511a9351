import os
from pathlib import Path
from typing import Callable

import pytest


@pytest.fixture()
def runtime_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """For the runtime tests: ``runtime_sandbox(CHECKPOINTIFY_X="v", ...)`` runs the test in
    ``tmp_path`` with no ``CHECKPOINTIFY_*`` variable from the caller's environment, only
    the ones given."""

    def enter(**env: str) -> None:
        monkeypatch.chdir(tmp_path)
        for name in list(os.environ):
            if name.startswith("CHECKPOINTIFY_"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return enter


@pytest.fixture()
def strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime's strict mode (``CHECKPOINTIFY_STRICT=1``): a checkpoint that cannot help
    raises instead of stepping aside. Tests that assert a raised error are strict twins of
    the default-mode tests in ``tests/runtime/test_runtime_degrade.py``."""
    monkeypatch.setenv("CHECKPOINTIFY_STRICT", "1")
