"""Per-file context the matcher's parts share: metadata lookups, identities, block chains."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterator, List, Optional, Sequence, Set, Tuple

import libcst as cst
from libcst.metadata import MetadataWrapper, ScopeProvider
from libcst.metadata.scope_provider import ImportAssignment

from checkpointify import catalogue
from checkpointify.detect.cstutil import Block, body_of, bound_calls, statement_blocks, walk
from checkpointify.detect.positions import Positions
from checkpointify.types import Options

_ROOT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg")


@dataclass
class Chain:
    """A block, and, when it is a ``with`` body, where that ``with`` statement sits.

    A loop's accumulator may be bound before an enclosing ``with`` and saved after it
    (``with open(src) as f: for line in f: ...``), so the matcher looks through this chain.
    """

    body: Block
    owner: Optional[cst.CSTNode]
    parent: Optional["Chain"] = None
    index_in_parent: int = -1
    #: a ``try`` body or an ``if``/``else`` branch: the block holding that statement, looked
    #: through for what runs *before* (an accumulator bound before the ``try``), never for
    #: what runs after (the save, and so the completion, must be in the branch itself)
    enclosing: Optional["Chain"] = None

    def before(self, index: int) -> List[cst.BaseStatement]:
        """Statements that run before ``body[index]``, here, in the enclosing ``with`` blocks
        and before an enclosing ``try`` or ``if`` (see ``enclosing``)."""
        out: List[cst.BaseStatement] = []
        chain: Optional[Chain] = self
        limit = index
        while chain is not None:
            out[:0] = list(chain.body[:limit])
            limit = chain.index_in_parent
            chain = chain.parent if chain.parent is not None else chain.enclosing
        return out

    def after(self, index: int) -> Iterator[cst.BaseStatement]:
        """Statements that run after ``body[index]``, then after the enclosing ``with`` blocks."""
        for chain, start in self.levels(index):
            yield from chain.body[start:]

    def after_all(self, index: int) -> Iterator[cst.BaseStatement]:
        """:meth:`after`, then what follows an enclosing ``try`` or ``if`` (for the hazards:
        a name the loop binds may be read there)."""
        chain: Optional[Chain] = self
        while chain is not None:
            outer_index = index
            for level, start in chain.levels(index):
                yield from level.body[start:]
                outer_index = level.index_in_parent
                top = level
            chain = top.enclosing
            index = outer_index

    def levels(self, index: int) -> Iterator[Tuple["Chain", int]]:
        """(block, first index after us) for this block and each enclosing ``with`` block."""
        chain: Optional[Chain] = self
        start = index + 1
        while chain is not None:
            yield chain, start
            start = chain.index_in_parent + 1
            chain = chain.parent


class FileAnalysis:
    """Metadata and module-wide facts shared by every site of one file."""

    def __init__(self, wrapper: MetadataWrapper, path: str, options: Options) -> None:
        self.module = wrapper.module
        self.path = path
        self.options = options
        self.scopes = wrapper.resolve(ScopeProvider)
        #: what PositionProvider gives, computed about three times faster (see .positions)
        self.positions = Positions(wrapper.module)
        #: qualified names, computed on demand from the scopes exactly as QualifiedNameProvider
        #: does (``scope.get_qualified_names_for(node)``), without its visit of every node
        self._qnames: Dict[cst.CSTNode, Set[str]] = {}
        self.extra_sinks: FrozenSet[str] = frozenset(options.extra_sinks)
        self.checkpoint_calls: FrozenSet[str] = frozenset(options.extra_checkpoint_calls) | {
            options.runtime_module + ".checkpoint"
        }
        self._generators: Dict[int, bool] = {}
        self._ids: Dict[str, int] = {}
        #: module-level functions and methods (``Class.method``) by name, for a look inside
        self.functions: Dict[str, cst.FunctionDef] = _definitions(self.module)
        #: the work a local function does (see checkpointify.detect.work), by id of its node
        self.work_memo: Dict[int, Any] = {}
        self.is_script = _is_script(self.module)
        self._model_objects: Optional[FrozenSet[str]] = None
        #: (names bound to a pool, names bound to runtime.parallel()), computed by detect.parallel on demand
        self.parallel_bindings: Optional[Tuple[FrozenSet[str], FrozenSet[str]]] = None

    # Module-wide facts below are computed on first use: a file the prefilter sends here
    # usually has a few candidate lines, most rejected before anyone needs them.

    @cached_property
    def pool_tasks(self) -> FrozenSet[str]:
        """Names of functions this module hands to a pool or thread per task (``executor.submit(f, x)``)."""
        return _pool_tasks(self.module)

    @cached_property
    def bound_calls(self) -> List[Tuple[cst.Call, List[cst.BaseExpression]]]:
        """Every call bound to names (``x = f(...)``, ``with f(...) as x``), one walk for all readers."""
        return bound_calls(self.module)

    @cached_property
    def name_heads(self) -> FrozenSet[str]:
        """What a qualified name in this module can start with: each import's module (``from
        m import x``) or dotted name (``import a.b``), and every name any scope binds.

        LibCST builds a qualified name from an import (``real module name.rest``), from a
        binding (``name.rest``, under a prefix such as ``f.<locals>`` for a local one) or as
        ``builtins.name``, so a qualified name starting with ``sentence_transformers.`` needs
        one of these to start with ``sentence_transformers``. Found from the scopes' own
        tables, without a walk of the tree.
        """
        heads: Set[str] = set()
        for scope in {id(s): s for s in self.scopes.values() if s is not None}.values():
            for assignment in scope.assignments:
                heads.add(assignment.name)
                if isinstance(assignment, ImportAssignment):
                    node = assignment.node
                    if isinstance(node, cst.ImportFrom):
                        heads.add(assignment.get_module_name_for_import())
                    elif isinstance(node, cst.Import):
                        heads.update(_EMPTY.code_for_node(alias.name) for alias in node.names)
        return frozenset(heads)

    def may_qualify(self, prefixes: Tuple[str, ...]) -> bool:
        """Whether a qualified name in this module can start with one of ``prefixes``
        (``("tqdm.", ...)``): False means none can, so no walk needs to look for one."""
        roots = tuple(p.split(".", 1)[0] for p in prefixes)
        return any(head.startswith(roots) for head in self.name_heads)

    @cached_property
    def progress_bars(self) -> FrozenSet[str]:
        """Names bound to a progress bar (``pbar = tqdm(total=n)``, ``with tqdm(...) as bar``)."""
        found: Set[str] = set()
        if not self.may_qualify(catalogue.PROGRESS_BAR_PREFIXES):
            return frozenset()  # no import of a progress-bar library: no walk of the module
        for value, targets in self.bound_calls:
            if any(q.startswith(catalogue.PROGRESS_BAR_PREFIXES) for q in self.qualified(value.func)):
                found |= {t.value for t in targets if isinstance(t, cst.Name)}
        return frozenset(found)

    def model_objects(self) -> FrozenSet[str]:
        """Names bound to a model object (``model = SentenceTransformer(name)``, see
        ``catalogue.MODEL_OBJECT_PREFIXES``): calling one of its methods runs the model."""
        if self._model_objects is None and not self.may_qualify(catalogue.MODEL_OBJECT_PREFIXES):
            self._model_objects = frozenset()  # no embedding library imported: no walk of the module
        if self._model_objects is None:
            found: Set[str] = set()
            for value, targets in self.bound_calls:
                if any(q.startswith(catalogue.MODEL_OBJECT_PREFIXES) for q in self.qualified(value.func)):
                    found |= {t.value for t in targets if isinstance(t, cst.Name)}
            self._model_objects = frozenset(found)
        return self._model_objects

    def qualified(self, node: cst.CSTNode) -> Set[str]:
        """Qualified names of an expression (``json.dump`` for ``j.dump`` after ``import json as j``)."""
        found = self._qnames.get(node)
        if found is None:
            scope = self.scopes.get(node)
            found = {q.name for q in scope.get_qualified_names_for(node)} if scope is not None else set()
            self._qnames[node] = found
        return set(found)

    def line(self, node: cst.CSTNode) -> int:
        return int(self.positions[node].start.line)

    def end_line(self, node: cst.CSTNode) -> int:
        return int(self.positions[node].end.line)

    def is_generator(self, fn: cst.FunctionDef) -> bool:
        key = id(fn)
        if key not in self._generators:
            self._generators[key] = any(isinstance(n, cst.Yield) for n in walk(fn.body))
        return self._generators[key]

    def module_generator(self, name: str) -> bool:
        """Whether ``name`` is a generator function defined at module level."""
        return any(
            isinstance(n, cst.FunctionDef) and n.name.value == name and self.is_generator(n)
            for n in self.module.body
        )

    def loop_identity(self, qualname: str, names: Sequence[str]) -> str:
        """``path::qualname::names`` (with ``#2``... for repeats): stable across unrelated edits."""
        base = "%s::%s::%s" % (self.relative_path(), qualname, ",".join(names))
        count = self._ids.get(base, 0) + 1
        self._ids[base] = count
        return base if count == 1 else "%s#%d" % (base, count)

    def relative_path(self) -> str:
        path = Path(self.path)
        root = self.options.root if self.options.root is not None else project_root(path)
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return path.name


def _definitions(module: cst.Module) -> Dict[str, cst.FunctionDef]:
    """Module-level functions, methods as ``Class.method``, and nested functions whose name is unique."""
    found: Dict[str, cst.FunctionDef] = {}
    for stmt in module.body:
        if isinstance(stmt, cst.FunctionDef):
            found[stmt.name.value] = stmt
        elif isinstance(stmt, cst.ClassDef):
            for sub in body_of(stmt.body):
                if isinstance(sub, cst.FunctionDef):
                    found["%s.%s" % (stmt.name.value, sub.name.value)] = sub
    nested: Dict[str, List[cst.FunctionDef]] = {}
    for top in found.values():
        for node in _nested_definitions(top):
            nested.setdefault(node.name.value, []).append(node)
    for name, defs in nested.items():
        if name not in found and len(defs) == 1:
            found[name] = defs[0]  # a closure such as `def matcher(line): ...` used by a loop beside it
    return found


def _nested_definitions(function: cst.FunctionDef) -> Iterator[cst.FunctionDef]:
    """Every function defined anywhere inside ``function``. A ``def`` is always a statement
    of a block, so only statements are visited (not expressions: it stays cheap)."""
    stack: List[Block] = [body_of(function.body)]
    while stack:
        for stmt in stack.pop():
            if isinstance(stmt, cst.FunctionDef):
                yield stmt
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef, cst.With)):
                stack.append(body_of(stmt.body))
            else:
                stack.extend(statement_blocks(stmt))


def _pool_tasks(module: cst.Module) -> FrozenSet[str]:
    """``executor.submit(task, x)``, ``pool.imap(task, xs)``, ``Thread(target=task)``: the task names.

    ``partial(task, ...)`` counts as ``task``.
    """
    found: Set[str] = set()
    for node in walk(module, ()):
        if not isinstance(node, cst.Call):
            continue
        func = node.func
        candidates: List[cst.BaseExpression] = [
            arg.value
            for arg in node.args
            if arg.keyword is not None and arg.keyword.value in catalogue.POOL_TASK_KEYWORDS
        ]
        if isinstance(func, cst.Attribute) and func.attr.value in catalogue.POOL_TASK_METHODS:
            positional = [arg.value for arg in node.args if arg.keyword is None and arg.star == ""]
            candidates += positional[:1]
        for value in candidates:
            if (
                isinstance(value, cst.Call)
                and value.args
                and _EMPTY.code_for_node(value.func).endswith("partial")
            ):
                value = value.args[0].value
            if isinstance(value, cst.Name):
                found.add(value.value)
            elif isinstance(value, cst.Attribute):
                found.add(value.attr.value)
    return frozenset(found)


def _is_script(module: cst.Module) -> bool:
    """A module that runs something: a ``__main__`` guard, or top-level calls, loops or ``with`` blocks.

    A library module is only imports, definitions, constants and docstrings (plus
    assignments from calls such as ``logger = logging.getLogger(__name__)``).
    """
    for stmt in module.body:
        if isinstance(stmt, (cst.For, cst.While, cst.With)):
            return True
        if isinstance(stmt, cst.If) and "__main__" in _EMPTY.code_for_node(stmt.test):
            return True
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                value = small.value if isinstance(small, cst.Expr) else None
                if isinstance(value, cst.Await) or isinstance(value, cst.Call):
                    return True
    return False


_EMPTY = cst.Module(body=[])


def project_root(path: Path) -> Path:
    """The nearest ancestor holding .git, pyproject.toml, setup.py or setup.cfg (else the file's folder)."""
    start = path.resolve().parent
    for candidate in (start, *start.parents):
        if any((candidate / marker).exists() for marker in _ROOT_MARKERS):
            return candidate
    return start
