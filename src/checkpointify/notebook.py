"""Jupyter notebooks as one Python module, and rewritten cells spliced back into the JSON.

A notebook's code cells are analysed as the kernel runs them, top to bottom, as one
module: each Python cell is preceded by a marker comment line (``# checkpointify-cell N``),
IPython syntax (``%time``, ``!pip install``, ``x = !ls``, ``obj?``, a ``%%capture`` or
``%%time`` header) is masked line for line by a placeholder (``pass`` or ``x = ...``) that
carries a comment naming the original, so line numbers map back and the rewrite never
touches it. Cells that are not Python (markdown, raw, ``%%bash`` and other cell magics,
a notebook whose kernel is not Python) are left out of the module and never changed.

:func:`splice` puts a rewritten module back: the module is cut at the markers, the masks
are undone, and only the ``source`` values of cells whose text changed are replaced in the
original JSON text, in the style they were written in (a list of lines, or one string),
so outputs, execution counts, metadata, cell ids, indentation, key order and the trailing
newline stay byte for byte.

Stdlib only at module level; :func:`validate` loads ``nbformat`` (in a worker).
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from checkpointify.fileio import SourceError

SUFFIX = ".ipynb"
#: cell magics whose body is Python run in the user namespace: the body is analysed
PYTHON_CELL_MAGICS = frozenset({"time", "capture"})
_MARKER = "# checkpointify-cell %d"
_MASK_TAG = "  # checkpointify-magic %d"
_MASKED = re.compile(r"^.*  # checkpointify-magic (\d+)$")
_ASSIGN_MAGIC = re.compile(r"^(\s*)([A-Za-z_][\w.]*(?:\s*,\s*[A-Za-z_][\w.]*)*)\s*=\s*[%!]")
_BOM = "\ufeff"


def is_notebook(path: str) -> bool:
    """Whether ``path`` names a notebook (by its suffix, as Jupyter, Ruff and nbQA decide)."""
    return path.lower().endswith(SUFFIX)


@dataclass(frozen=True)
class Cell:
    """One cell: its index among all cells, whether it is analysed, its source text, where
    its ``source`` value lies in the JSON text, and the file line of each source line."""

    index: int
    python: bool
    text: str
    span: Tuple[int, int]
    file_lines: Tuple[int, ...]
    as_list: bool


@dataclass(frozen=True)
class Notebook:
    """A notebook read for analysis. ``source`` is the module (UTF-8); ``lines[n]`` says
    where line ``n + 1`` of the module comes from: ``(cell index, line in the cell)``, the
    cell line 0 for a marker."""

    text: str
    bom: bool
    cells: Tuple[Cell, ...]
    source: bytes
    lines: Tuple[Tuple[int, int], ...]
    masks: Tuple[str, ...]

    def position(self, line: int) -> Tuple[int, int]:
        """``(cell index, line in the cell)`` of module line ``line`` (1-based)."""
        cell, cell_line = self.lines[min(max(line, 1), len(self.lines)) - 1]
        return cell, max(cell_line, 1)

    def file_line(self, cell: int, line: int) -> int:
        """The line of the notebook file (the JSON text) that holds ``line`` of ``cell``."""
        lines = self.cells[cell].file_lines
        return lines[min(max(line, 1), len(lines)) - 1] if lines else 1


# ------------------------------------------------------------------------------ reading


def read(data: bytes) -> Notebook:
    """The notebook in ``data`` as one module; raises SourceError (one line) when it is not
    UTF-8 JSON, not an nbformat 4 notebook, or its cells are malformed."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError("not a notebook: not valid UTF-8 (%s)" % exc) from exc
    bom = text.startswith(_BOM)
    if bom:
        text = text[1:]
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise SourceError("not a notebook: not valid JSON (%s)" % exc) from exc
    if not isinstance(document, dict) or not isinstance(document.get("cells"), list):
        raise SourceError("not a notebook: no list of cells (an nbformat 4 notebook is expected)")
    version = document.get("nbformat")
    if version != 4:
        raise SourceError(
            "not a notebook in nbformat 4 (it says nbformat %r); convert it with nbconvert" % version
        )
    python = _python_kernel(document.get("metadata"))
    cells = tuple(_cells(text, document["cells"], python))
    return _assemble(text, bom, cells)


def validate(data: bytes) -> None:
    """Check ``data`` against the nbformat 4 schema; raises SourceError naming the problem."""
    import nbformat

    try:
        text = data.decode("utf-8-sig")
        notebook = nbformat.reads(text, as_version=nbformat.NO_CONVERT)  # type: ignore[no-untyped-call]
        nbformat.validate(notebook)
    except Exception as exc:  # nbformat raises ValidationError, NotJSONError, ValueError...
        first = str(exc).strip().splitlines()
        raise SourceError(
            "not a valid nbformat 4 notebook: %s" % (first[0] if first else type(exc).__name__)
        ) from exc


def _python_kernel(metadata: object) -> bool:
    """Whether the notebook runs Python (no language recorded: assume it does)."""
    if not isinstance(metadata, dict):
        return True
    for key, field in (("language_info", "name"), ("kernelspec", "language")):
        section = metadata.get(key)
        if isinstance(section, dict) and isinstance(section.get(field), str):
            return str(section[field]).lower() == "python"
    return True


def _cells(text: str, raw_cells: List[object], python: bool) -> List[Cell]:
    spans = _source_spans(text)
    if len(spans) != len(raw_cells):
        raise SourceError("not a notebook: a cell without a source")
    newlines = [m.start() for m in re.finditer("\n", text)]
    cells = []
    for index, (raw, (span, elements)) in enumerate(zip(raw_cells, spans)):
        if not isinstance(raw, dict):
            raise SourceError("not a notebook: cell %d is not an object" % (index + 1))
        source = raw.get("source")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            parts = list(source)
        elif isinstance(source, str):
            parts, elements = [source], [span[0]]
        else:
            raise SourceError("not a notebook: cell %d has a source that is not text" % (index + 1))
        joined = "".join(parts)
        is_code = raw.get("cell_type") == "code" and python and not _foreign_cell(joined)
        lines = _file_lines(newlines, parts, elements or [span[0]])
        cells.append(Cell(index, is_code, joined, span, lines, isinstance(source, list)))
    return cells


def _foreign_cell(text: str) -> bool:
    """A cell magic that runs something other than Python (``%%bash``, ``%%writefile``...)."""
    first = text.lstrip("\n").split("\n", 1)[0].strip()
    if not first.startswith("%%"):
        return False
    name = first[2:].split(None, 1)[0] if first[2:].strip() else ""
    return name not in PYTHON_CELL_MAGICS


def _file_lines(newlines: Sequence[int], parts: Sequence[str], starts: Sequence[int]) -> Tuple[int, ...]:
    """The file line holding each source line: the line where the string holding it starts
    (nbformat writes one string per line; a source written as one string has all its
    lines on the line where it starts). ``newlines`` are the offsets of the file's ``\\n``."""
    lines: List[int] = []
    for part, start in zip(parts, starts):
        line = bisect.bisect_left(newlines, start) + 1
        lines.extend([line] * (part.count("\n") + (0 if part.endswith("\n") or not part else 1)))
    return tuple(lines) or (bisect.bisect_left(newlines, starts[0]) + 1,)


# ---------------------------------------------------------------------- the JSON scanner


_DECODER = json.JSONDecoder()
_scanstring: Callable[[str, int], Tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_WS = re.compile(r"[ \t\n\r]*")


def _skip(text: str, i: int) -> int:
    match = _WS.match(text, i)
    return match.end() if match else i


def _source_spans(text: str) -> List[Tuple[Tuple[int, int], List[int]]]:
    """For each cell of the (already valid) JSON ``text``: the span of its ``source`` value
    and, when it is a list, the start offset of each element."""
    i = _skip(text, 0)
    assert text[i] == "{"
    i += 1
    found: List[Tuple[Tuple[int, int], List[int]]] = []
    while True:
        i = _skip(text, i)
        if text[i] == "}":
            return found
        if text[i] == ",":
            i = _skip(text, i + 1)
        key, i = _scanstring(text, i + 1)
        i = _skip(text, _skip(text, i) + 1)  # the colon
        if key == "cells":
            found, i = _cell_array(text, i)
        else:
            _, i = _DECODER.raw_decode(text, i)


def _cell_array(text: str, i: int) -> Tuple[List[Tuple[Tuple[int, int], List[int]]], int]:
    found: List[Tuple[Tuple[int, int], List[int]]] = []
    i = _skip(text, i + 1)  # past "["
    while text[i] != "]":
        if text[i] == ",":
            i = _skip(text, i + 1)
        if text[i] != "{":
            _, i = _DECODER.raw_decode(text, i)
            i = _skip(text, i)
            continue
        spans: List[Tuple[Tuple[int, int], List[int]]] = []
        i = _skip(text, i + 1)
        while text[i] != "}":
            if text[i] == ",":
                i = _skip(text, i + 1)
            key, i = _scanstring(text, i + 1)
            i = _skip(text, _skip(text, i) + 1)
            start = i
            if key == "source" and text[i] == "[":
                elements, i = _string_array(text, i)
                spans.append(((start, i), elements))
            else:
                _, i = _DECODER.raw_decode(text, i)
                if key == "source":
                    spans.append(((start, i), []))
            i = _skip(text, i)
        found.extend(spans[-1:])
        i = _skip(text, i + 1)
    return found, i + 1


def _string_array(text: str, i: int) -> Tuple[List[int], int]:
    starts: List[int] = []
    i = _skip(text, i + 1)
    while text[i] != "]":
        if text[i] == ",":
            i = _skip(text, i + 1)
        starts.append(i)
        _, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
    return starts, i + 1


# -------------------------------------------------------------------------- the module


def _assemble(text: str, bom: bool, cells: Sequence[Cell]) -> Notebook:
    out: List[str] = []
    where: List[Tuple[int, int]] = []
    masks: List[str] = []
    for cell in cells:
        if not cell.python:
            continue
        out.append(_MARKER % cell.index)
        where.append((cell.index, 0))
        for number, line in enumerate(_mask_cell(cell.text, masks), 1):
            out.append(line)
            where.append((cell.index, number))
    source = "".join(line + "\n" for line in out)
    return Notebook(text, bom, tuple(cells), source.encode("utf-8"), tuple(where), tuple(masks))


def _mask_cell(text: str, masks: List[str]) -> List[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the cell's last line ends with a newline
    out: List[str] = []
    continued = False
    first = next((n for n, line in enumerate(lines) if line.strip()), 0)
    for number, line in enumerate(lines):
        if continued or _is_magic(line, number == first):
            out.append(_mask(line, masks, continued))
            continued = line.rstrip().endswith("\\")
        else:
            out.append(line)
    return out


def _is_magic(line: str, first: bool) -> bool:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return False
    if stripped.startswith("%%"):
        return first
    if stripped[0] in "%!?" or _help(stripped):
        return True
    return bool(_ASSIGN_MAGIC.match(line))


def _help(stripped: str) -> bool:
    """``obj?`` / ``obj.attr??``: IPython's help syntax (a name, then question marks)."""
    return re.fullmatch(r"[A-Za-z_][\w.]*\?{1,2}", stripped) is not None


def _mask(line: str, masks: List[str], continued: bool) -> str:
    indent = line[: len(line) - len(line.lstrip())]
    assign = _ASSIGN_MAGIC.match(line)
    if continued:
        placeholder = "#"  # a continuation line of a masked magic: a comment
    elif assign is not None:
        placeholder = "%s = ..." % assign.group(2)
    else:
        placeholder = "pass"
    masked = "%s%s%s" % (indent, placeholder, _MASK_TAG % len(masks))
    masks.append(line)
    return masked


# -------------------------------------------------------------------------- splicing


def split_module(notebook: Notebook, module: str) -> Dict[int, str]:
    """The rewritten ``module`` cut back into cells: cell index -> its new source text (masks
    undone). Raises SourceError when the markers did not survive in order."""
    order = [c.index for c in notebook.cells if c.python]
    pieces: Dict[int, List[str]] = {}
    current: Optional[int] = None
    expected = iter(order)
    for line in module.split("\n")[:-1] if module.endswith("\n") else module.split("\n"):
        if line.startswith("# checkpointify-cell "):
            index = int(line.rsplit(" ", 1)[1])
            if index != next(expected, None):
                raise SourceError("internal error: the notebook's cells were reordered by the rewrite")
            current = index
            pieces[index] = []
            continue
        if current is None:
            raise SourceError("internal error: the rewrite put code before the notebook's first cell")
        pieces[current].append(_unmask(line, notebook.masks))
    if list(pieces) != order:
        raise SourceError("internal error: the rewrite lost a cell of the notebook")
    for index, lines in pieces.items():
        _keep_header_first(notebook.cells[index].text, lines)
    return {index: "\n".join(lines) for index, lines in pieces.items()}


def _keep_header_first(original: str, lines: List[str]) -> None:
    """Code the rewrite put at the top of a cell (the runtime import) goes below the cell's
    leading magics: a ``%%time``/``%%capture`` header must stay the first line (IPython
    reads a cell magic only there), and ``!pip install`` lines come before imports."""
    header = next((line for line in original.split("\n") if line.strip()), "")
    if not header.lstrip().startswith(("%", "!")) or header not in lines:
        return
    at = lines.index(header)
    if not any(line.strip() for line in lines[:at]):
        return
    end = at + 1
    while (
        end < len(lines)
        and lines[end].lstrip().startswith(("%", "!"))
        and not lines[end].lstrip().startswith("%%")
    ):
        end += 1
    added = lines[:at]
    if added and not added[-1].strip():
        added = added[:-1]  # the blank line that set the import apart goes before it instead
    lines[:] = lines[at:end] + ([""] if end < len(lines) and lines[end].strip() else []) + added + lines[end:]


def _unmask(line: str, masks: Sequence[str]) -> str:
    match = _MASKED.match(line)
    if match is None:
        return line
    number = int(match.group(1))
    return masks[number] if number < len(masks) else line


def splice(notebook: Notebook, module: bytes) -> bytes:
    """The notebook file with the cells of the rewritten ``module`` whose text changed
    replaced; everything else byte for byte."""
    new_texts = split_module(notebook, module.decode("utf-8"))
    text = notebook.text
    ascii_only = text.isascii() and "\\u" in text
    edits: List[Tuple[int, int, str]] = []
    for cell in notebook.cells:
        if not cell.python:
            continue
        # the cell keeps its own trailing newlines (a rewrite never adds blank lines there)
        new = new_texts[cell.index].rstrip("\n") + "\n" * (len(cell.text) - len(cell.text.rstrip("\n")))
        if new == cell.text:
            continue
        edits.append((cell.span[0], cell.span[1], _source_value(text, cell, new, ascii_only)))
    for start, end, value in reversed(edits):
        text = text[:start] + value + text[end:]
    return ((_BOM if notebook.bom else "") + text).encode("utf-8")


def _source_value(text: str, cell: Cell, new: str, ascii_only: bool) -> str:
    """``new`` as a JSON value written like the cell's current ``source``."""
    if not cell.as_list:
        return json.dumps(new, ensure_ascii=ascii_only)
    start, end = cell.span
    old = text[start:end]
    items = [json.dumps(line, ensure_ascii=ascii_only) for line in new.splitlines(keepends=True)]
    inner = old[1:-1]
    if inner.strip():
        opening = inner[: len(inner) - len(inner.lstrip())]
        closing = inner[len(inner.rstrip()) :]
        separator = "," + opening
    else:
        line_start = text.rfind("\n", 0, start) + 1
        indent = text[line_start : line_start + len(text[line_start:]) - len(text[line_start:].lstrip(" \t"))]
        opening, closing = "\n" + indent + " ", "\n" + indent
        separator = "," + opening
    if not items:
        return "[]"
    return "[" + opening + separator.join(items) + closing + "]"
