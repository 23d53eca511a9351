"""Unified diffs that ``git apply`` accepts, computed on bytes.

Working on bytes keeps CRLF line endings and non-UTF-8 encodings intact in the patch, and
a last line without a newline gets git's ``\\ No newline at end of file`` marker (which
``difflib.unified_diff`` never writes).

A notebook has two diffs. On a terminal (``diff`` on a TTY, ``fix -i``) it is of the cells'
sources, one ``--- a/nb.ipynb:cell N`` section per changed cell (N counts every cell from
1), as nbdime and Ruff show them: readable, not JSON noise, and not for ``git apply``.
Written to a file or a pipe (``diff --output``, ``diff > fix.patch``) it is the unified
diff of the ``.ipynb`` JSON text, which ``git apply`` accepts; it is minimal because
``fix`` changes nothing but the ``source`` values of the changed cells (see
:func:`checkpointify.notebook.splice`), so only those JSON lines appear in it.
"""

from __future__ import annotations

import difflib
import re
from typing import List

from checkpointify import notebook
from checkpointify.fileio import SourceError

_LINE = re.compile(rb"[^\n]*\n|[^\n]+")
_NO_NEWLINE = b"\\ No newline at end of file\n"


def split_lines(data: bytes) -> List[bytes]:
    """Lines with their endings, split on ``\\n`` only, as git does."""
    return _LINE.findall(data)


def _range(start: int, length: int) -> str:
    if length == 1:
        return "%d" % (start + 1)
    if length == 0:
        return "%d,0" % start
    return "%d,%d" % (start + 1, length)


def unified_diff(old: bytes, new: bytes, path: str, context: int = 3) -> bytes:
    """A ``--- a/path`` / ``+++ b/path`` diff of two versions of one file (empty if equal)."""
    if old == new:
        return b""
    a, b = split_lines(old), split_lines(new)
    out = [
        b"--- a/" + path.encode("utf-8", "surrogateescape") + b"\n",
        b"+++ b/" + path.encode("utf-8", "surrogateescape") + b"\n",
    ]
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(("@@ -%s +%s @@\n" % (_range(i1, i2 - i1), _range(j1, j2 - j1))).encode("ascii"))
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                out.extend(_lines(b" ", a[a1:a2]))
                continue
            if tag in ("replace", "delete"):
                out.extend(_lines(b"-", a[a1:a2]))
            if tag in ("replace", "insert"):
                out.extend(_lines(b"+", b[b1:b2]))
    return b"".join(out)


def _lines(prefix: bytes, lines: List[bytes]) -> List[bytes]:
    out = []
    for line in lines:
        if line.endswith(b"\n"):
            out.append(prefix + line)
        else:
            out.append(prefix + line + b"\n" + _NO_NEWLINE)
    return out


#: git's default diff colours: meta bold, hunk headers cyan, removed red, added green
_COLORS = (
    (b"--- ", b"\x1b[1m"),
    (b"+++ ", b"\x1b[1m"),
    (b"@@", b"\x1b[36m"),
    (b"-", b"\x1b[31m"),
    (b"+", b"\x1b[32m"),
)
_RESET = b"\x1b[m"


def colorize(patch: bytes) -> bytes:
    """``patch`` coloured for a terminal as ``git diff`` colours it; each escape ends before
    the line's own ending, so the text between them is exactly the patch."""
    out = []
    for line in split_lines(patch):
        body = line.rstrip(b"\r\n")
        ending = line[len(body) :]
        color = next((c for prefix, c in _COLORS if body.startswith(prefix)), None)
        out.append(color + body + _RESET + ending if color and body else line)
    return b"".join(out)


def file_diff(old: bytes, new: bytes, path: str, context: int = 3, readable: bool = False) -> bytes:
    """:func:`unified_diff` of the file's bytes (what ``git apply`` takes), or, with
    ``readable`` (a terminal), a notebook's per-cell :func:`notebook_diff`."""
    if readable and notebook.is_notebook(path):
        return notebook_diff(old, new, path, context)
    return unified_diff(old, new, path, context)


def notebook_diff(old: bytes, new: bytes, path: str, context: int = 3) -> bytes:
    """Per-cell unified diffs of the sources of two versions of a notebook (cells are
    matched by index: a rewrite never adds or removes a cell). Falls back to a diff of the
    JSON text when either version cannot be read as a notebook."""
    if old == new:
        return b""
    try:
        before, after = notebook.read(old), notebook.read(new)
    except SourceError:
        return unified_diff(old, new, path, context)
    if len(before.cells) != len(after.cells):
        return unified_diff(old, new, path, context)
    out: List[bytes] = []
    for a, b in zip(before.cells, after.cells):
        if a.text != b.text:
            name = "%s:cell %d" % (path, a.index + 1)
            out.append(unified_diff(_with_newline(a.text), _with_newline(b.text), name, context))
    return b"".join(out)


def _with_newline(text: str) -> bytes:
    """A cell's source as diff lines: its last line gets the newline nbformat omits."""
    return (text if text.endswith("\n") or not text else text + "\n").encode("utf-8")
