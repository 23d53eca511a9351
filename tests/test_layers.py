"""The architecture, checked: which layer may import which, and one copy of every word list.

The layers and what each may import are written down in CONTRIBUTING.md; this test is the
part of that table a linter cannot express (ruff's TID253 bans LibCST and the worker layers
at module level in the main-process layers; see pyproject.toml). A change that needs a
new edge must change the table here and in CONTRIBUTING.md, on purpose.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

import checkpointify
from checkpointify import catalogue

PACKAGE = Path(checkpointify.__file__).parent

LEAVES = {"__init__", "types", "rules", "catalogue", "config", "fileio", "notebook"}

#: layer -> layers it may import at module level
ALLOWED: Dict[str, Set[str]] = {
    "leaf": {"leaf"},
    "prefilter": {"leaf", "prefilter"},
    "detect": {"leaf", "detect"},
    "rewrite": {"leaf", "prefilter", "detect", "rewrite"},
    "engine": {"leaf", "prefilter", "engine"},
    "output": {"leaf", "output"},
    "api": {"leaf", "engine", "api"},
    "cli": {"leaf", "engine", "output", "cli", "api", "runtime"},
    "codemods": {"leaf", "api", "codemods"},
    "runtime": set(),  # relative imports only: a vendored copy is a folder copy
}
#: imports inside a function (loaded on first use, in a worker or on demand)
LAZY: Dict[str, Set[str]] = {
    "engine": {"rewrite"},  # the worker's task
    "output": {"rewrite"},  # SARIF's per-finding fixes
    "api": {"rewrite"},
    "cli": {"rewrite"},
}
#: layers that may import LibCST at module level (they run in workers)
LIBCST = {"detect", "rewrite", "codemods"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "checkpointify", module
    if len(parts) == 1:
        return "leaf"
    head = parts[1]
    if head == "__main__":
        return "cli"  # `python -m checkpointify`
    return "leaf" if head in LEAVES else head


def modules() -> Iterator[Tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def imports(path: Path, module: str) -> Iterator[Tuple[str, bool, int]]:
    """(imported module, at module level?, line) for every import in the file."""
    tree = ast.parse(path.read_bytes())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    top = {id(node) for node in tree.body}
    nested_top: Set[int] = set()
    for statement in tree.body:  # `if TYPE_CHECKING:` / try-except imports count as module level
        if isinstance(statement, (ast.If, ast.Try)):
            nested_top.update(id(n) for n in ast.walk(statement))
    for node in ast.walk(tree):
        level = id(node) in top or id(node) in nested_top
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, level, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield name, level, node.lineno
            if name == "checkpointify":  # `from checkpointify import prefilter`
                for alias in node.names:
                    if alias.name != "__version__":
                        yield "checkpointify." + alias.name, level, node.lineno


def _type_checking_only(path: Path, line: int) -> bool:
    tree = ast.parse(path.read_bytes())
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            if node.lineno <= line <= (node.end_lineno or node.lineno):
                return True
    return False


def violations() -> List[str]:
    found = []
    for module, path in modules():
        layer = layer_of(module)
        for name, top, line in imports(path, module):
            where = "%s:%d" % (path.relative_to(PACKAGE.parent), line)
            if _type_checking_only(path, line):
                continue
            if name.split(".")[0] == "libcst":
                if top and layer not in LIBCST:
                    found.append("%s: %s imports LibCST at module level" % (where, layer))
                continue
            if layer == "runtime":
                if name.split(".")[0] == "checkpointify" and not name.startswith("checkpointify.runtime"):
                    found.append("%s: the runtime imports %s" % (where, name))
                continue
            if name.split(".")[0] != "checkpointify":
                continue
            target = layer_of(name)
            allowed = ALLOWED[layer] | (set() if top else LAZY.get(layer, set()))
            if target not in allowed:
                found.append(
                    "%s: %s imports %s (%s)" % (where, layer, name, "module level" if top else "lazily")
                )
    return found


def test_every_module_belongs_to_a_known_layer() -> None:
    unknown = sorted({layer_of(m) for m, _ in modules()} - set(ALLOWED))
    assert unknown == [], "new layer(s) %s: add them to ALLOWED and to CONTRIBUTING.md" % unknown


def test_layers_import_only_what_the_table_allows() -> None:
    assert violations() == []


def test_the_runtime_uses_relative_imports_only() -> None:
    for module, path in modules():
        if layer_of(module) != "runtime":
            continue
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert (node.module or "").split(".")[0] != "checkpointify", "%s:%d" % (path, node.lineno)
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] != "checkpointify" for a in node.names), path


def test_the_main_process_layers_do_not_load_libcst() -> None:
    """Importing the CLI (and so the engine, the output and the prefilter) loads no LibCST."""
    code = (
        "import sys, checkpointify.cli, checkpointify.api, checkpointify.prefilter\n"
        "print(sorted(m for m in sys.modules if m.startswith(('libcst', 'checkpointify.detect',"
        " 'checkpointify.rewrite'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_violation_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself can fail: an engine module importing the matcher is reported."""
    module = tmp_path / "checkpointify" / "engine" / "bad.py"
    module.parent.mkdir(parents=True)
    module.write_text("from checkpointify.detect.matcher import find_plans\n")
    found = list(imports(module, "checkpointify.engine.bad"))
    assert ("checkpointify.detect.matcher", True, 1) in found
    assert "detect" not in ALLOWED["engine"] | LAZY["engine"]


# ------------------------------------------------------------------- the vocabulary


def _string_collections(tree: ast.AST) -> Iterator[Tuple[int, Set[str]]]:
    """Every set, list or tuple literal (also inside ``frozenset(...)``) with two or more
    string constants, as (line, strings)."""
    exports = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    }
    for node in ast.walk(tree):
        if id(node) in exports:
            continue
        if isinstance(node, (ast.Set, ast.List, ast.Tuple)):
            words = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if len(words) >= 2:
                yield node.lineno, words


def _catalogue_tables() -> Dict[str, Set[str]]:
    tables = {}
    for name in dir(catalogue):
        value = getattr(catalogue, name)
        if (
            name.isupper()
            and isinstance(value, (frozenset, tuple))
            and all(isinstance(v, str) for v in value)
        ):
            tables[name] = set(value)
    return tables


#: literals a stage may spell out itself because they are Python, not vocabulary: keywords,
#: encodings, ``ast`` field names, the implicit first parameters
_NOT_VOCABULARY = [
    {"for", "while"},
    {"ascii", "utf-8", "utf-8-sig"},
    {"name", "rest"},
    {"cls", "self"},
    {"body", "orelse", "finalbody"},
    {"body", "handlers", "orelse", "finalbody"},
]


def _syntax(words: Set[str]) -> bool:
    return any(words <= s for s in _NOT_VOCABULARY)


def test_the_prefilter_has_no_word_list_of_its_own() -> None:
    """Every word the screening stages look for comes from the catalogue (one copy): a list
    of their own could drift from the matcher's and silently drop findings."""
    own = []
    for module, path in modules():
        if layer_of(module) != "prefilter":
            continue
        for line, words in _string_collections(ast.parse(path.read_bytes())):
            if not _syntax(words):
                own.append("%s:%d %s" % (path.name, line, sorted(words)))
    assert own == []


def _copies(words: Set[str], table: Set[str]) -> bool:
    """``words`` re-declare ``table``: all of it, or most of a table of three or more."""
    if _syntax(words):
        return False
    shared = len(words & table)
    return table <= words or (len(table) >= 3 and shared >= max(3, (len(table) + 1) // 2))


def test_detection_does_not_copy_a_catalogue_table() -> None:
    """A detect module's literal that re-declares a catalogue table is a copy the prefilter
    would not see change: use the catalogue's table. (Smaller overlaps are allowed: the
    hazards have word lists of their own that no screening stage mirrors.)"""
    tables = _catalogue_tables()
    copies = []
    for module, path in modules():
        if layer_of(module) != "detect":
            continue
        for line, words in _string_collections(ast.parse(path.read_bytes())):
            for name, table in tables.items():
                if _copies(words, table):
                    copies.append("%s:%d re-declares catalogue.%s" % (path.name, line, name))
    assert copies == []


def test_the_vocabulary_checks_can_fail() -> None:
    """A prefilter-style private copy of a catalogue table is caught by both checks."""
    tree = ast.parse("GROWING = frozenset({'append', 'extend', 'add', 'update', 'setdefault'})\n")
    [(line, words)] = list(_string_collections(tree))
    assert line == 1 and not _syntax(words)
    assert _copies(words, set(catalogue.GROWING_METHODS))
