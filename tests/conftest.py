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
