"""The resumable migration: ``fix`` records every file it has finished in an append-only journal.

A ``fix`` over a large tree can be interrupted (Ctrl-C, SIGKILL, a crash, a CI timeout).
Started again with the same arguments, it reads the journal and skips every file whose
current content is the content it left there, so no completed file is processed twice.

* The journal is ``fix-journal-<key>.log`` in the cache folder, where ``key`` hashes the
  arguments (paths, working directory, options, shard): another command line has its
  own journal and never skips anything because of this one.
* One line per finished file: the file's content hash *after* the run's work on it (the
  rewritten content for a rewritten file, which is written atomically first) and its
  path. Each line is one ``write`` to a file opened for appending, so a kill leaves
  whole lines; a torn or foreign line is ignored.
* A file is recorded only when it is done: rewritten and replaced on disk, or found to
  need nothing. Files that could not be processed are not recorded (a re-run tries them
  again).
* When a run completes, its journal is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Optional, Sequence

from checkpointify.types import Options

_HEADER = "checkpointify fix journal 1"


def journal_key(paths: Sequence[str], options: Options, extra: Sequence[str]) -> str:
    """What makes two ``fix`` command lines "the same arguments"."""
    parts = [os.getcwd(), repr(list(paths)), repr(options), repr(list(extra))]
    return hashlib.blake2b("\0".join(parts).encode("utf-8", "surrogateescape"), digest_size=10).hexdigest()


class Journal:
    """The journal of one ``fix`` command line (see the module doc)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: Dict[str, str] = self._read()
        self.skipped = 0
        #: why nothing is recorded any more (the folder is not writable...), else None
        self.problem: Optional[str] = None
        self._fd: Optional[int] = None

    @classmethod
    def open(cls, directory: Path, key: str) -> "Journal":
        return cls(directory / ("fix-journal-%s.log" % key))

    @property
    def resuming(self) -> bool:
        return bool(self.done)

    def is_done(self, path: str, content: str) -> bool:
        """Whether ``path`` was finished by an interrupted run and still has the content it left."""
        if self.done.get(path) == content:
            self.skipped += 1
            return True
        return False

    def record(self, path: str, content: str) -> None:
        """``path`` is finished and now has content hash ``content``.

        Never raises: if the journal cannot be written, :attr:`problem` says why and the
        run goes on without it (it just cannot be resumed).
        """
        if self.problem is not None:
            return
        line = json.dumps([content, path], ensure_ascii=False) + "\n"
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fresh = not self.path.exists()
                self._fd = os.open(str(self.path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                if fresh:
                    os.write(self._fd, (_HEADER + "\n").encode())
            os.write(self._fd, line.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            self.problem = "cannot write the fix journal %s: %s" % (self.path, exc.strerror or exc)

    def complete(self) -> None:
        """The run finished: the journal has served its purpose."""
        self.close()
        try:
            self.path.unlink()
        except OSError:
            pass

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _read(self) -> Dict[str, str]:
        try:
            text = self.path.read_bytes().decode("utf-8", "surrogateescape")
        except OSError:  # none yet, or no folder to hold one (then record() says why)
            return {}
        lines = text.split("\n")
        if not lines or lines[0] != _HEADER:
            return {}
        done: Dict[str, str] = {}
        for line in lines[1:]:
            try:
                content, path = json.loads(line)
            except ValueError:
                continue  # a torn last line, or the empty string after the final newline
            if isinstance(content, str) and isinstance(path, str):
                done[path] = content
        return done
