"""A command on a real pseudo-terminal: what it shows, and answers typed like a person would."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import List

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


class Terminal:
    """A command running on a pseudo-terminal: read what it shows, type answers."""

    def __init__(self, args: List[str], cwd: Path, stdout_tty: bool = True) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
        env = {
            k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES")
        }
        env["TERM"] = "xterm-256color"
        self.stderr_path = cwd / ".stderr"
        self.stdout_path = cwd / ".stdout"
        with self.stderr_path.open("wb") as err, self.stdout_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "checkpointify", *args],
                stdin=slave,
                stdout=slave if stdout_tty else out,
                stderr=err,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        os.close(slave)
        self.master = master
        self.raw = ""
        self.seen = 0  # how much of the screen text earlier expects consumed
        self.hung_up = False

    @property
    def screen(self) -> str:
        return ANSI.sub("", self.raw).replace("\r\n", "\n")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the other side is closed
            return False
        if not chunk:
            return False
        self.raw += chunk.decode("utf-8", errors="replace")
        return True

    def expect(self, text: str, timeout: float = 60) -> str:
        """Wait until ``text`` appears after what earlier calls consumed; return the text up to it."""
        deadline = time.monotonic() + timeout
        while True:
            index = self.screen.find(text, self.seen)
            if index >= 0:
                shown = self.screen[self.seen : index + len(text)]
                self.seen = index + len(text)
                return shown
            if time.monotonic() > deadline or not self._read(0.2) and self.proc.poll() is not None:
                raise AssertionError("%r not shown; screen so far:\n%s" % (text, self.screen[self.seen :]))

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def finish(self, timeout: float = 60) -> int:
        """Wait for the command to end, then hang up. :attr:`hung_up` says whether it was
        still running when the terminal closed (it ended on the hang-up, not by itself)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        self.hung_up = self.proc.poll() is None
        while self._read(0.05) and select.select([self.master], [], [], 0)[0]:
            pass
        os.close(self.master)
        return self.proc.wait(timeout=5)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()
