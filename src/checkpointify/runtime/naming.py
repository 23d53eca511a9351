"""The file part of a loop's identity, derived at run time.

A rewritten program names its loop ``"job.py::main::results"``. That literal travels with
every copy of the file, so two copies (``job.py`` and ``job_v2.py``, or ``a/run.py`` and
``b/run.py`` run from one folder) would share one log and resume each other's units. The
runtime therefore replaces the file part with the path of the file that really calls
:func:`~.checkpoint.checkpoint`: relative to its project root when it has one (so moving
the whole project keeps its logs valid), else absolute.
"""

from __future__ import annotations

import os

from .lite import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Dict, Optional

# a folder holding one of these is a project root
_ROOT_MARKERS = (".git", ".hg", "pyproject.toml", "setup.py", "setup.cfg")
# a notebook's id keeps the path the rewrite wrote: its cells run from a kernel's temporary
# file (/tmp/ipykernel_<pid>/<hash>.py), which changes with every kernel
_SOURCE_SUFFIXES = (".py", ".pyw")
_CACHE: Dict[str, str] = {}  # filename -> its file part (a loop called per outer item asks often)


def run_time_id(loop_id: str, filename: str) -> str:
    """``loop_id`` with its file part (up to the first ``::``) replaced by ``filename``'s
    path relative to its project root (else absolute), in ``/`` form. An id without a file
    part (no ``::``, or a first part that is not a Python file) is the user's own name and
    is kept, and so is every id called from code without a real file (``<stdin>``, a
    notebook cell, ``python -c``) and every notebook's id (``nb.ipynb::...``)."""
    head, sep, rest = loop_id.partition("::")
    if not sep or not head.endswith(_SOURCE_SUFFIXES) or filename.startswith("<"):
        return loop_id
    part = _CACHE.get(filename)
    if part is None:
        part = _file_part(filename)
        _CACHE[filename] = part
    return part + "::" + rest


def _file_part(filename: str) -> str:
    path = os.path.abspath(filename)
    root = _project_root(os.path.dirname(path))
    shown = os.path.relpath(path, root) if root is not None else path
    return shown.replace(os.sep, "/")


def _project_root(directory: str) -> Optional[str]:
    """The nearest folder at or above ``directory`` that holds a project marker."""
    current = directory
    while True:
        if any(os.path.exists(os.path.join(current, marker)) for marker in _ROOT_MARKERS):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent
