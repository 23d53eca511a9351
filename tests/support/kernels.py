"""Running a notebook in a real Jupyter kernel and killing that kernel in the middle.

The notebooks of these tests write the kernel's pid to ``kernel.pid`` and one line per unit
of work to ``work.log`` in their folder.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, List


def client(path: Path) -> Any:
    """A client that runs the notebook at ``path`` in its own folder (nbclient and nbformat
    are imported here: the tests that call this skip first when they are missing)."""
    import nbclient
    import nbformat

    book = nbformat.read(str(path), as_version=4)
    return nbclient.NotebookClient(
        book, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(path.parent)}}
    )


def work_lines(where: Path) -> List[str]:
    log = where / "work.log"
    return log.read_text().split() if log.exists() else []


def kill_kernel_after(path: Path, units: int, what: str = "the loop") -> None:
    """Run the notebook at ``path``; SIGKILL its kernel once ``units`` units of work were
    logged; assert the run did not finish."""
    where = path.parent
    failure: List[BaseException] = []

    def run_until_killed() -> None:
        try:
            client(path).execute()
        except BaseException as exc:  # the kernel dies under it: DeadKernelError
            failure.append(exc)

    runner = threading.Thread(target=run_until_killed)
    runner.start()
    deadline = time.monotonic() + 120
    while len(work_lines(where)) < units:
        assert runner.is_alive() and time.monotonic() < deadline, "%s never got going" % what
        time.sleep(0.02)
    os.kill(int((where / "kernel.pid").read_text()), signal.SIGKILL)
    runner.join(120)
    assert failure, "the killed kernel's run finished anyway"
