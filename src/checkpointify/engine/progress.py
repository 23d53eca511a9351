"""A progress bar on stderr for long runs: files done, findings, rate and time left.

It appears only when stderr is a terminal, ``--quiet`` is not given, and the run has
lasted more than :data:`DELAY` seconds (a short run, or a warm one, never shows it; rich
is not even imported). It is redrawn by the run's own loop at most ten times a second,
with no background thread (the run forks worker processes, which must not inherit a
thread holding the terminal's lock), and it disappears when the run ends. Output written
to stdout while it is shown goes through :meth:`Progress.pause`, so the two never mix.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator, Optional

DELAY = 1.0
_INTERVAL = 0.1


def wanted(quiet: bool) -> bool:
    """Whether a bar may be shown at all."""
    return not quiet and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


class Progress:
    """Counts what a run does; draws it once the run is long enough (see the module doc)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()
        self.done = 0
        self.findings = 0
        self.total: Optional[int] = None
        self._bar: Any = None
        self._task: Any = None
        self._drawn = 0.0

    def advance(self, findings: int = 0) -> None:
        self.done += 1
        self.findings += findings
        self.tick()

    def discovered(self, total: int) -> None:
        """Discovery has ended: ``total`` files in all (the bar can show the time left)."""
        self.total = total
        self.tick()

    def tick(self) -> None:
        """Redraw if it is time (called from the run's loop, also while it waits)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn < _INTERVAL:
            return
        if self._bar is None:
            if now - self.started < DELAY:
                return
            self._start()
        self._drawn = now
        self._bar.update(self._task, completed=self.done, total=self.total, findings=self.findings)
        self._bar.refresh()

    @contextmanager
    def pause(self) -> Iterator[None]:
        """Hide the bar while something is written to the terminal."""
        if self._bar is None:
            yield
            return
        self._bar.stop()
        try:
            yield
        finally:
            self._bar.start()
            self._drawn = 0.0
            self.tick()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task: Any) -> Text:
                speed = task.finished_speed or task.speed
                return Text("%.0f files/s" % speed if speed else "", style="progress.data.speed")

        self._bar = RichProgress(
            TextColumn("checkpointify"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[findings]} findings"),
            Rate(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=True,
            auto_refresh=False,
        )
        self._task = self._bar.add_task("files", total=self.total, findings=self.findings)
        self._bar.start()
