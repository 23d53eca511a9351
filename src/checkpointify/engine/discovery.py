"""File selection: which files a run reads, in a stable order, as a stream.

Folders are walked depth first in sorted order and files come out as they are found, so
a tree of any size starts producing results at once and discovery never holds the whole
list. A walk reads ``.py`` files and ``.ipynb`` notebooks and skips :data:`DEFAULT_EXCLUDED_DIRS`, hidden folders, ``*.egg-info``, ``.pyi``
stubs, symbolic links (a link inside the tree points at something scanned at its own path
or at something outside the tree), ``exclude`` globs and what ``.gitignore`` files
ignore. Files named on the command line are always read, except for ``exclude`` globs and
stubs. ``--shard K/N`` keeps the files whose path hashes to shard K.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Sequence, Tuple

if TYPE_CHECKING:  # pathspec is imported only when a .gitignore file is found
    from pathspec import GitIgnoreSpec

#: directories never entered when a folder is walked (explicitly named files are always read)
DEFAULT_EXCLUDED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "__pycache__",
        "node_modules",
        ".eggs",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".checkpointify",
        ".checkpointify_cache",
        "build",
        "dist",
        "site-packages",
    }
)


#: what a folder walk reads: Python files and Jupyter notebooks (see checkpointify.notebook)
SUFFIXES = (".py", ".ipynb")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``: ``--shard 2/4``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``K/N`` with 1 <= K <= N; raises ValueError with a readable message otherwise."""
        head, sep, tail = text.partition("/")
        if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
            raise ValueError("expected K/N, for example 1/4 (shard K of N, K from 1 to N)")
        index, count = int(head), int(tail)
        if count < 1 or not 1 <= index <= count:
            raise ValueError("%s: K must be between 1 and N" % text)
        return cls(index, count)

    def holds(self, display: str) -> bool:
        """Whether the file shown as ``display`` (relative, forward slashes) is in this shard.

        The hash is of the path only, so every machine of a CI matrix (run from the same
        directory) agrees on the split, whatever else the tree holds.
        """
        digest = hashlib.blake2b(display.encode("utf-8", "surrogateescape"), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index - 1

    def __str__(self) -> str:
        return "%d/%d" % (self.index, self.count)


@dataclass(frozen=True)
class Selection:
    """How files are chosen besides the paths given."""

    exclude: Tuple[str, ...] = ()
    gitignore: bool = True
    shard: Optional[Shard] = None


@dataclass(frozen=True)
class Candidate:
    """A file to read: where it is and how it is shown (relative to the working directory).

    ``error`` set: the path is not read at all and is reported with this reason (a folder
    that cannot be listed, a named FIFO or device, a symbolic link loop, a notebook)."""

    path: Path
    display: str
    error: Optional[str] = None


#: files named on the command line that are not read yet, and why (one place, so that
#: adding support is removing a line)
UNSUPPORTED: Dict[str, str] = {}  # notebooks (.ipynb) were here until they were supported


def named_file(path: Path, shown: str) -> Candidate:
    """A path named on the command line that is not a folder: read only if it is a
    regular file (a FIFO would block the run forever, a device never ends)."""
    reason = UNSUPPORTED.get(path.suffix.lower())
    if reason is not None:
        return Candidate(path, shown, reason)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Candidate(path, shown)  # reported as missing when it is read
    except OSError as exc:
        return Candidate(path, shown, "cannot read: %s" % (exc.strerror or exc))
    if not stat.S_ISREG(st.st_mode):
        return Candidate(path, shown, "not a regular file (%s); not read" % _kind(st.st_mode))
    return Candidate(path, shown)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when inside it, with forward slashes."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symbolic link loop (< 3.13)
        return path.as_posix()


def excluded(path: Path, patterns: Sequence[str]) -> bool:
    """Whether ``path`` (relative to the working directory) or one of its folders matches a glob.

    ``tests/*``, ``build``, ``*_pb2.py`` and ``legacy/**/*.py`` all work: a pattern is
    tried against the whole relative path, against the file or folder name, and against
    every leading folder of the path.
    """
    return bool(patterns) and excluded_display(display_path(path), patterns)


def excluded_display(rel: str, patterns: Sequence[str]) -> bool:
    """:func:`excluded` for a path already shown relative to the working directory."""
    if not patterns:
        return False
    parts = rel.split("/")
    candidates = [rel, parts[-1]] + ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)] + parts[:-1]
    return any(fnmatch.fnmatchcase(c, p.rstrip("/")) for p in patterns for c in candidates)


def discover(paths: Sequence[str], selection: Selection = Selection()) -> Iterator[Candidate]:
    """The files to process under ``paths``, each once, as a stream (see the module doc).

    A missing path is yielded as is, so processing reports it.
    """
    seen = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates: Iterator[Candidate] = _walk_root(path, selection)
        else:
            shown = display_path(path)
            if path.suffix == ".pyi" or excluded_display(shown, selection.exclude):
                continue
            candidates = iter([named_file(path, shown)])
        for candidate in candidates:
            if selection.shard is not None and not selection.shard.holds(candidate.display):
                continue
            key = os.path.normcase(os.path.abspath(candidate.path))
            if key not in seen:
                seen.add(key)
                yield candidate


# ------------------------------------------------------------------------------- walk


@dataclass
class _Ignore:
    """One .gitignore file: patterns relative to ``base`` (an absolute folder, with a trailing /)."""

    base: str
    spec: "GitIgnoreSpec"


@dataclass
class _Ignores:
    """The .gitignore files that apply to a folder, outermost first."""

    stack: List[_Ignore] = field(default_factory=list)

    def ignored(self, absolute: str, is_dir: bool) -> bool:
        """Git's answer: the deepest file with a matching pattern decides; its last match wins."""
        for ignore in reversed(self.stack):
            if not absolute.startswith(ignore.base):
                continue
            rel = absolute[len(ignore.base) :].replace(os.sep, "/") + ("/" if is_dir else "")
            verdict = ignore.spec.check_file(rel).include
            if verdict is not None:
                return bool(verdict)
        return False

    def with_file(self, folder: str, gitignore: str) -> "_Ignores":
        spec = _load(gitignore)
        if spec is None:
            return self
        return _Ignores(self.stack + [_Ignore(folder.rstrip(os.sep) + os.sep, spec)])


def _load(path: str) -> Optional["GitIgnoreSpec"]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    if not any(line.strip() and not line.startswith("#") for line in lines):
        return None
    from pathspec import GitIgnoreSpec

    return GitIgnoreSpec.from_lines(lines)


def _outer_ignores(root: str) -> _Ignores:
    """The .gitignore files of the folders above ``root``, up to the repository's top.

    Outside a git repository (no ``.git`` above), only the tree's own files count.
    """
    folders: List[str] = []
    current = os.path.dirname(root)
    top = None
    while True:
        folders.append(current)
        if os.path.exists(os.path.join(current, ".git")):
            top = current
            break
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if os.path.exists(os.path.join(root, ".git")):
        top, folders = root, []
    ignores = _Ignores()
    if top is None:
        return ignores
    exclude = os.path.join(top, ".git", "info", "exclude")
    if os.path.isfile(exclude):
        ignores = ignores.with_file(top, exclude)
    for folder in reversed(folders):
        candidate = os.path.join(folder, ".gitignore")
        if os.path.isfile(candidate):
            ignores = ignores.with_file(folder, candidate)
    return ignores


def _walk_root(root: Path, selection: Selection) -> Iterator[Candidate]:
    shown = display_path(root)
    absolute = os.path.abspath(root)
    ignores = _outer_ignores(absolute) if selection.gitignore else _Ignores()
    if selection.gitignore and ignores.ignored(absolute, True):
        return
    yield from _walk(root, "" if shown == "." else shown + "/", absolute, ignores, selection)


def _walk(
    folder: Path, prefix: str, absolute: str, ignores: _Ignores, selection: Selection
) -> Iterator[Candidate]:
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        shown = prefix.rstrip("/") or "."
        yield Candidate(
            folder, shown, "cannot read folder: %s; its files were not checked" % (exc.strerror or exc)
        )
        return
    if selection.gitignore and any(e.name == ".gitignore" for e in entries):
        ignores = ignores.with_file(absolute, os.path.join(absolute, ".gitignore"))
    for entry in entries:
        name = entry.name
        shown = prefix + name
        try:
            if entry.is_symlink():
                continue  # never followed: see the module doc
            is_dir = entry.is_dir(follow_symlinks=False)
            is_file = not is_dir and entry.is_file(follow_symlinks=False)
        except OSError:
            continue
        if is_dir:
            if name in DEFAULT_EXCLUDED_DIRS or name.startswith(".") or name.endswith(".egg-info"):
                continue
            if excluded_display(shown, selection.exclude):
                continue
            child = os.path.join(absolute, name)
            if ignores.stack and ignores.ignored(child, True):
                continue
            yield from _walk(Path(entry.path), shown + "/", child, ignores, selection)
        elif is_file and name.endswith(SUFFIXES):
            if excluded_display(shown, selection.exclude):
                continue
            if ignores.stack and ignores.ignored(os.path.join(absolute, name), False):
                continue
            yield Candidate(Path(entry.path), shown)
