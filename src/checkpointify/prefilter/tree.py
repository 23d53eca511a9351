"""Stage 2: a walk of the standard ``ast`` tree (see :mod:`checkpointify.prefilter`)."""

from __future__ import annotations

import ast
import builtins
import functools
import gc
import io
import re
import sys
import tokenize
import unicodedata
from dataclasses import dataclass
from typing import (
    Any,
    Dict,
    FrozenSet,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from checkpointify import catalogue
from checkpointify.prefilter.names import (
    _PRUNE,
    _walk_all,
    assigned_names,
    callee_name,
    full_name,
    names_in,
    pruned_walk,
    target_name,
    walk,
)
from checkpointify.prefilter.text import Vocabulary, _last

_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class _Work:
    """``catalogue.HEAVY_QUALIFIED`` and ``HEAVY_VERBS``, and the module names the matcher tests."""

    heavy_qualified: Tuple[str, ...]
    heavy_verbs: "re.Pattern[str]"
    known_roots: FrozenSet[str]


@functools.lru_cache(maxsize=1)
def _work() -> _Work:
    roots = (
        [prefix.split(".")[0] for prefix in catalogue.HEAVY_QUALIFIED]
        + [name.split(".")[0] for name in catalogue.NOT_SINKS]
        + [name.split(".")[0] for name in catalogue.ACCUMULATOR_CALLS]
    )
    return _Work(catalogue.HEAVY_QUALIFIED, catalogue.HEAVY_VERBS, frozenset(roots))


_FOR = (ast.For, ast.AsyncFor)
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_WITH = (ast.With, ast.AsyncWith)
_BRANCHES = (ast.If, ast.Try)  # matcher._child_blocks: blocks looked through for what runs before
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp)
_Loop = Union[ast.For, ast.AsyncFor, ast.While]
_Function = Union[ast.FunctionDef, ast.AsyncFunctionDef]


def parse(source: bytes) -> Optional[ast.Module]:
    """``ast.parse`` of the bytes (encoding declaration and BOM honoured), or None if it fails."""
    collecting = gc.isenabled()
    gc.disable()  # an AST has no cycles; collections during the parse only cost time
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return None
    finally:
        if collecting:
            gc.enable()


def tree_may_match(tree: ast.Module, source: bytes, vocab: Vocabulary) -> bool:
    """Stage 2: can a statement of ``tree`` be a site? ``source`` is its text, as UTF-8.

    Never raises: on anything unexpected the answer is True (LibCST decides).
    """
    try:
        return next(_Module(tree, source, vocab).sites(), None) is not None
    except Exception:  # a construct or a depth this stage cannot handle: the matcher decides
        return True


def sites(tree: ast.Module, source: bytes, vocab: Vocabulary) -> List[ast.stmt]:
    """Every statement stage 2 lets through (for tests and debugging)."""
    return list(_Module(tree, source, vocab).sites())


# ----------------------------------------------------------------------------- module


@dataclass(frozen=True)
class _Link:
    """Where a ``with`` body (or a ``try`` body, an ``if`` branch: ``transparent`` False) sits:
    its parent block and the statement's index. ``analysis.Chain``: a ``with`` is looked
    through both ways, a ``try``/``if`` only for what runs before it."""

    block: Sequence[ast.stmt]
    index: int
    parent: Optional["_Link"]
    transparent: bool = True


@dataclass
class _Body:
    """What one walk of a loop body finds (``pruned``: outside nested functions, classes, lambdas)."""

    calls: List[ast.Call]
    pruned_calls: List[ast.Call]
    awaits: bool
    grown: Set[str]
    writes: bool
    frames: Set[str]  # names written through a frame indexer (``df.at[k] = v``)
    #: roots of stores and method calls into a subscript or attribute chain, with the chain's
    #: depth (``data[i]["k"] = v``: data, 2; ``item.update(d)``: item, 1): ``detect.items``
    item_roots: Dict[str, int]
    concats: Set[str]  # names grown by ``df = concat([df, part])`` (``detect.concat``)


@dataclass
class _Statement:
    """What one walk of a statement after a loop finds."""

    names: Set[str]
    calls: List[ast.Call]
    commits: bool


def _helper_key(node: ast.expr) -> Optional[str]:
    """``name`` for a bare name, ``self.name`` for an attribute of ``self``, else None (the
    keys ``detect.helper`` indexes calls and references by)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return "self." + node.attr
    return None


#: a helper's call under one of these is one call per item (``helper._per_item``) or, under a
#: lambda, never indexed by ``helper._Index``: either way detect rejects the helper
_PER_ITEM = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Lambda)
_STATEMENT_LISTS = frozenset(["body", "orelse", "finalbody"])


@dataclass(frozen=True)
class _Frame:
    """A statement's place: its block, its index there, and the frame of the statement
    holding that block (None at the top of a function, or of the module)."""

    block: Sequence[ast.stmt]
    index: int
    parent: Optional["_Frame"]

    def after(self, bodies: Sequence[Sequence[ast.stmt]]) -> Iterator[ast.stmt]:
        """A superset of where ``helper._caller_save`` looks for the save: the rest of the
        statement's block, then the rest of each enclosing block up to the function, but not
        out of a ``while`` loop, nor of a ``for`` loop unless it may run over a handful of
        settings (``helper._over_settings``)."""
        frame: Optional[_Frame] = self
        while frame is not None:
            yield from frame.block[frame.index + 1 :]
            parent = frame.parent
            if parent is not None:
                owner = parent.block[parent.index]
                if isinstance(owner, ast.While) or (
                    isinstance(owner, _FOR) and not _may_be_settings(owner.iter, bodies)
                ):
                    return  # for text in data: r = helper(text); out.append(r)   then   save(out)
            frame = parent


@dataclass(frozen=True)
class _HelperCall:
    statement: ast.stmt  # the innermost statement holding the call
    frame: _Frame
    scope: Optional[_Function]  # the innermost function holding it (None: the module)


class _HelperCalls:
    """One pass over the module for ``detect.helper``'s twin: each function's key (``name``,
    or ``self.name`` for a method; none for a function local to another), the calls of each
    key, and the keys ``detect.helper`` surely rejects (``spoiled``)."""

    def __init__(self, tree: ast.Module) -> None:
        self.keys: Dict[int, str] = {}
        self.calls: Dict[str, List[_HelperCall]] = {}
        #: used otherwise than called, or called under a comprehension or a lambda
        self.spoiled: Set[str] = set()
        # (block, the frame holding it, innermost function, owner: "module", "def" or "class")
        stack: List[Tuple[Sequence[ast.stmt], Optional[_Frame], Optional[_Function], str]] = [
            (tree.body, None, None, "module")
        ]
        while stack:
            block, parent, scope, owner = stack.pop()
            for index, stmt in enumerate(block):
                frame = _Frame(block, index, parent)
                inner_scope, inner_owner = scope, owner
                inner_frame: Optional[_Frame] = frame
                if isinstance(stmt, _FUNCTIONS):
                    if owner != "def":  # matcher._child_blocks: a def in a def is `outer.<locals>.name`
                        self.keys[id(stmt)] = "self." + stmt.name if owner == "class" else stmt.name
                    inner_scope, inner_owner, inner_frame = stmt, "def", None
                elif isinstance(stmt, ast.ClassDef):
                    inner_owner, inner_frame = "class", None  # helper._caller_save stops at a class
                for field in stmt._fields:
                    value = getattr(stmt, field, None)
                    if field in _STATEMENT_LISTS and value.__class__ is list:
                        stack.append((value, inner_frame, inner_scope, inner_owner))
                    elif field == "handlers" or field == "cases":
                        for part in value or ():  # except clauses, match cases: their head, then their body
                            for sub in part._fields:
                                if sub == "body":
                                    stack.append((part.body, inner_frame, inner_scope, inner_owner))
                                else:
                                    self._expression(getattr(part, sub, None), stmt, frame, scope)
                    else:
                        self._expression(value, stmt, frame, scope)

    def _expression(self, value: Any, stmt: ast.stmt, frame: _Frame, scope: Optional[_Function]) -> None:
        """The calls and names of one part of ``stmt`` that is not a statement list."""
        if value.__class__ is list:
            for item in value:
                self._expression(item, stmt, frame, scope)
            return
        if not isinstance(value, ast.AST):
            return
        funcs: Set[int] = set()
        per_item: List[ast.AST] = []
        for node in walk(value):  # a parent is always visited before its children
            if isinstance(node, ast.Call):
                key = _helper_key(node.func)
                if key is not None:
                    funcs.add(id(node.func))
                    self.calls.setdefault(key, []).append(_HelperCall(stmt, frame, scope))
            elif isinstance(node, (ast.Name, ast.Attribute)):
                if id(node) not in funcs:
                    key = _helper_key(node)
                    if key is not None:
                        self.spoiled.add(key)
            elif isinstance(node, _PER_ITEM):
                per_item.append(node)
        for part in per_item:
            for node in walk(part):
                if isinstance(node, ast.Call):
                    key = _helper_key(node.func)
                    if key is not None:
                        self.spoiled.add(key)


def _identifiers_normalized(text: str) -> bool:
    """Whether every identifier of ``text`` is written in NFKC form (a text that is not may
    still be: ``ﬁ`` or full-width letters only in comments and strings)."""
    try:
        return all(
            token.string.isascii() or unicodedata.is_normalized("NFKC", token.string)
            for token in tokenize.generate_tokens(io.StringIO(text).readline)
            if token.type == tokenize.NAME
        )
    except (tokenize.TokenError, SyntaxError):
        return False


def _may_be_settings(iterable: ast.AST, bodies: Sequence[Sequence[ast.stmt]], depth: int = 0) -> bool:
    """A superset of ``helper._settings_literal``: a literal, ``x.items()`` (``keys``,
    ``values``) of one, a call with more than one argument of which one is one (our own
    ``checkpoint(id, SETTINGS.items(), ...)``), or a name assigned one in ``bodies`` (the
    module's and the function's own statements)."""
    if depth > 6:
        return False
    if isinstance(iterable, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
        return True
    if isinstance(iterable, ast.Name):
        return any(
            _may_be_settings(stmt.value, bodies, depth + 1)
            for body in bodies
            for stmt in body
            if isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == iterable.id
        )
    if not isinstance(iterable, ast.Call):
        return False
    func = iterable.func
    if isinstance(func, ast.Attribute) and _is_dict_view(func.attr) and not iterable.args:
        if not iterable.keywords and _may_be_settings(func.value, bodies, depth + 1):
            return True
    arguments = [*iterable.args, *(k.value for k in iterable.keywords)]
    return len(arguments) > 1 and any(_may_be_settings(a, bodies, depth + 1) for a in arguments)


def _is_dict_view(name: str) -> bool:
    """``helper._settings_literal``'s dict views (``x.items()``, ``x.keys()``, ``x.values()``)."""
    return name == "items" or name == "keys" or name == "values"


def _receivers(stmt: ast.stmt) -> Set[str]:
    """A superset of ``helper._receivers``: what an assignment binds (subscripts stripped), or
    the receiver of ``xs.append(...)``; empty for any other statement."""
    targets: List[ast.AST] = []
    if isinstance(stmt, ast.Assign):
        targets = list(stmt.targets)
    elif isinstance(stmt, ast.AugAssign) or (isinstance(stmt, ast.AnnAssign) and stmt.value is not None):
        targets = [stmt.target]
    elif (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Attribute)
        and stmt.value.func.attr in catalogue.KEEPING_METHODS
    ):
        name = target_name(stmt.value.func.value)
        return {name} if name else set()
    found: Set[str] = set()
    for target in targets:
        while isinstance(target, ast.Subscript):
            target = target.value
        found |= assigned_names(target)
    return found


def _module_walk(node: ast.AST) -> Iterator[ast.AST]:
    """``walk`` without entering functions (class bodies and lambdas included); ``node`` is
    never a function itself (its callers pass module-level statements that are not)."""
    return pruned_walk(node, _FUNCTIONS)


class _Module:
    """Module-wide facts (imports, local functions, script-ness) and the site checks."""

    def __init__(self, tree: ast.Module, source: bytes, vocab: Vocabulary) -> None:
        self.tree = tree
        self.source = source
        self.vocab = vocab
        self.ascii = source.isascii()
        self._lines: Optional[List[bytes]] = None
        #: bound name -> (name as bound, real dotted name), for every import anywhere
        self.imports: Dict[str, List[Tuple[str, str]]] = {}
        #: names some import binds outside the module scope (in a function or class)
        self._nested_imports: Set[str] = set()
        #: module-level functions by name; methods of module-level classes by method name
        self.functions: Dict[str, List[ast.AST]] = {}
        self.methods: Dict[str, List[ast.AST]] = {}
        top_level: Set[str] = set()
        self._collect(top_level)
        self.is_script = self._is_script()
        #: the twin of ``FileAnalysis.model_objects()``, coarser: with a model library imported,
        #: any method called on a plain name may run a model (``model.encode(batch)``)
        self.model_imports = any(
            (real + ".").startswith(catalogue.MODEL_OBJECT_PREFIXES)
            for bindings in self.imports.values()
            for _, real in bindings
        )
        #: a local qualified name can start with a module name the matcher knows
        self.work = _work()
        self.prefix_risk = bool(top_level & self.work.known_roots)
        self._rebound: Optional[Set[str]] = None
        self._heavy_memo: Dict[int, bool] = {}
        self._sink_memo: Dict[int, bool] = {}
        self._statements: Dict[int, _Statement] = {}
        self._generators: Dict[int, bool] = {}
        self._helpers: Optional[_HelperCalls] = None
        self._scope_sinks: Dict[int, bool] = {}
        self._parallel_aliases: Optional[bool] = None
        self._pools: Optional[FrozenSet[str]] = None
        self._nfkc: Optional[bool] = None
        self._handles: Optional[bool] = None

    def _collect(self, top_level: Set[str]) -> None:
        for stmt, module_level in _all_statements(self.tree.body):
            if isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if alias.asname:  # import a.b as c: c.x is a.b.x
                        self._bind(alias.asname, alias.asname, alias.name, module_level)
                    else:  # import a.b: a.x is a.x, a.b.x is a.b.x
                        root = alias.name.split(".")[0]
                        self._bind(root, root, root, module_level)
            elif isinstance(stmt, ast.ImportFrom):
                module = "." * (stmt.level or 0) + (stmt.module or "")
                for alias in stmt.names:
                    if alias.name == "*":
                        continue  # LibCST resolves nothing through a star import
                    real = module + alias.name if module.endswith(".") else "%s.%s" % (module, alias.name)
                    bound = alias.asname or alias.name
                    self._bind(bound, bound, real, module_level)
        for stmt in self.tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                top_level.add(stmt.name)
            if isinstance(stmt, _FUNCTIONS):
                self.functions.setdefault(stmt.name, []).append(stmt)
            elif isinstance(stmt, ast.ClassDef):
                for sub in stmt.body:
                    if isinstance(sub, _FUNCTIONS):
                        self.methods.setdefault(sub.name, []).append(sub)

    def _bind(self, bound: str, as_name: str, real: str, module_level: bool) -> None:
        self.imports.setdefault(bound, []).append((as_name, real))
        if not module_level:
            self._nested_imports.add(bound)

    def _is_script(self) -> bool:
        """A superset of ``analysis._is_script``."""
        mentions_main = b"__main__" in self.source
        for stmt in self.tree.body:
            if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)):
                return True
            if isinstance(stmt, ast.If) and mentions_main:
                return True  # `if __name__ == "__main__":` (the test's own text is not checked)
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, (ast.Call, ast.Await)):
                return True
        return False

    def raw_ascii(self, node: ast.AST) -> bool:
        """Whether ``node``'s source text is ASCII, so its identifiers are as LibCST reads them."""
        return self.ascii or self.raw_text(node).isascii()

    def raw_text(self, node: ast.AST) -> bytes:
        """``node``'s source text (UTF-8), or a non-ASCII marker when unknown."""
        lineno, end_lineno = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
        col, end_col = getattr(node, "col_offset", None), getattr(node, "end_col_offset", None)
        if lineno is None or end_lineno is None or col is None or end_col is None:
            return b"\xff"
        if self._lines is None:
            self._lines = self.source.splitlines()
        lines = self._lines[lineno - 1 : end_lineno]
        if len(lines) != end_lineno - lineno + 1:
            return b"\xff"
        if len(lines) == 1:
            return lines[0][col:end_col]
        return b"\n".join([lines[0][col:]] + lines[1:-1] + [lines[-1][:end_col]])

    # ------------------------------------------------------------------- qualified names

    def _rebound_names(self) -> Set[str]:
        """Names bound anywhere other than by a module-level import (computed once, lazily)."""
        if self._rebound is None:
            found = set(self._nested_imports)
            for node in walk(self.tree):
                if isinstance(node, ast.Name):
                    if not isinstance(node.ctx, ast.Load):
                        found.add(node.id)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    found.add(node.name)
                elif isinstance(node, ast.arg):
                    found.add(node.arg)
                elif isinstance(node, (ast.Global, ast.Nonlocal)):
                    found.update(node.names)
                elif isinstance(node, ast.ExceptHandler) and node.name:
                    found.add(node.name)
                else:
                    for attr in ("name", "rest"):  # match captures, type parameters
                        value = getattr(node, attr, None)
                        if isinstance(value, str) and not isinstance(node, (ast.alias, ast.ImportFrom)):
                            found.add(value)
            self._rebound = found
        return self._rebound

    def qualified(self, func: ast.AST) -> Set[str]:
        """A superset of the qualified names LibCST's QualifiedNameProvider gives ``func``.

        Every import's reading of the name, the name itself and its builtin; not the
        scope-prefixed names of locals (``f.<locals>.x``): see :attr:`prefix_risk`.
        """
        full = full_name(func)
        if full is None:
            return set()
        root = full.split(".", 1)[0]
        found = self._imported(full, root)
        found.add(full)
        if root in _BUILTINS:
            found.add("builtins.%s" % root)
        return found

    def exact_qualified(self, func: ast.AST) -> Optional[Set[str]]:
        """LibCST's qualified names of ``func`` exactly, or None when they cannot be known here.

        They are known when the name ``func`` starts with is bound only by module-level
        imports (then they are the imports' readings), or not bound at all (then it is a
        builtin, or nothing). Finding out costs a walk of the whole tree, once per file.
        """
        full = full_name(func)
        if full is None:
            return set()
        root = full.split(".", 1)[0]
        found = self._imported(full, root)
        if not found:
            found = {"builtins.%s" % root} if root in _BUILTINS else set()
        return found if root not in self._rebound_names() else None

    def _imported(self, full: str, root: str) -> Set[str]:
        found: Set[str] = set()
        for as_name, real in self.imports.get(root, ()):
            if full == as_name or full.startswith(as_name + "."):
                found.add(real + full[len(as_name) :])
            else:
                found.add(real + full[len(root) :])
        return found

    def may_be_sink(self, call: ast.Call) -> bool:
        """A superset of ``flow.describe_sink(call) is not None``."""
        key = id(call)
        if key not in self._sink_memo:
            name = callee_name(call.func)
            if name == "print" and any(k.arg == "file" for k in call.keywords):
                self._sink_memo[key] = True
            else:
                candidates = {_last(q) for q in self.qualified(call.func)}
                if name:
                    candidates.add(name)
                self._sink_memo[key] = any(
                    c in self.vocab.sink_names
                    or catalogue.name_says_sink(c)
                    or c in catalogue.DB_BULK_WRITE_METHODS  # flow._bulk_write_committed
                    for c in candidates
                ) and not (isinstance(call.func, ast.Attribute) and self._surely_not_sink(call.func))
        return self._sink_memo[key]

    def _surely_not_sink(self, func: ast.Attribute) -> bool:
        """``flow.describe_sink`` surely says no: logging, ``tqdm.write``, ``.update``/``.add``
        (``self.stdout.write(out)``, ``sys.stderr.write(err)``), and no qualified name of the
        callee is a known sink."""
        if self.prefix_risk or not self.raw_ascii(func):
            return False
        if not (
            _is_logging(func)
            or _callee_text(func) in catalogue.PRINT_LIKE_CALLS
            or func.attr in catalogue.NEVER_SINK_METHODS
        ):
            return False
        return not self.qualified(func) & (catalogue.QUALIFIED_SINKS | self.vocab.extra_sinks)

    def surely_persists(self, call: ast.Call) -> bool:
        """A subset of ``flow.persists_per_item`` for one call: a sink or a commit, flush, ack..."""
        func = call.func
        if not isinstance(func, (ast.Name, ast.Attribute)) or not self.raw_ascii(func):
            return False
        if self.prefix_risk or self.qualified(func) & catalogue.NOT_SINKS:
            return False
        if isinstance(func, ast.Name):
            name = func.id
            return name != "print" and (name in self.vocab.extra_sinks or catalogue.name_says_sink(name))
        if _is_logging(func):
            return False
        method = func.attr
        if method in catalogue.PER_ITEM_PERSIST_METHODS:
            return True
        if method in catalogue.NEVER_SINK_METHODS or _callee_text(func) in catalogue.PRINT_LIKE_CALLS:
            return False
        return (
            method in catalogue.METHOD_SINKS
            or method in self.vocab.extra_sinks
            or catalogue.name_says_sink(method)
        )

    def may_be_heavy(self, call: ast.Call) -> bool:
        """A superset of ``work.call_work(...) is Work.HEAVY``."""
        if self.prefix_risk or any(
            q.startswith(self.work.heavy_qualified) for q in self.qualified(call.func)
        ):
            return True
        name = callee_name(call.func)
        if name and self.work.heavy_verbs.match(name):
            return True
        func = call.func
        if self.model_imports and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return True  # work._runs_model
        local: List[ast.AST] = []
        if isinstance(func, ast.Name):
            local = self.functions.get(func.id, [])
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id in {"self", "cls"}:
                local = self.methods.get(func.attr, [])
        return any(self._function_may_be_heavy(fn) for fn in local)

    def _function_may_be_heavy(self, fn: ast.AST) -> bool:
        key = id(fn)
        if key in self._heavy_memo:
            return self._heavy_memo[key]
        self._heavy_memo[key] = True  # a recursive call: assume heavy (a superset)
        facts = _body(getattr(fn, "body", []))
        heavy = facts.awaits or any(self.may_be_heavy(call) for call in facts.pruned_calls)
        self._heavy_memo[key] = heavy
        return heavy

    def surely_cheap(self, call: ast.Call) -> bool:
        """A subset of ``work.is_cheap_call`` (whatever the accumulators are)."""
        func = call.func
        if self.prefix_risk or not self.raw_ascii(func):
            return False
        names = self.qualified(func)
        if any(q.startswith(self.work.heavy_qualified) for q in names):
            return False
        if self.model_imports and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return False  # work._runs_model: model.encode(batch)
        if isinstance(func, ast.Name):
            name = func.id
            if (
                name in catalogue.CHEAP_BUILTINS
                or name in catalogue.CHEAP_NAMES
                or name.startswith(catalogue.CHEAP_NAME_PREFIXES)
                or name[:1].isupper()
            ):
                return True
        elif isinstance(func, ast.Attribute):
            if func.attr in catalogue.CHEAP_METHODS or func.attr[:1].isupper() or _is_logging(func):
                return True
        # every qualified name under a cheap prefix (``time.time``): needs them exactly
        if not any(q.startswith(catalogue.CHEAP_QUALIFIED_PREFIXES) for q in names):
            return False
        exact = self.exact_qualified(func)
        return bool(exact) and all(q.startswith(catalogue.CHEAP_QUALIFIED_PREFIXES) for q in exact or ())

    def may_be_job(self, calls: Iterable[ast.Call], awaits: bool) -> bool:
        """A superset of ``work.is_job``: an await, a heavy call, or in a script anything not surely cheap."""
        return awaits or any(
            self.may_be_heavy(call) or (self.is_script and not self.surely_cheap(call)) for call in calls
        )

    def may_be_accumulator(self, value: ast.AST) -> bool:
        """A superset of ``matcher.accumulator_kind(value) is not None``."""
        if isinstance(value, (ast.List, ast.Dict, ast.Set, ast.Constant)):
            return True
        if isinstance(value, ast.UnaryOp) and isinstance(value.operand, ast.Constant):
            return True
        if isinstance(value, ast.Call):
            return self.prefix_risk or bool(self.qualified(value.func) & catalogue.ACCUMULATOR_CALLS)
        return False

    def surely_tiny(self, iterable: ast.AST) -> bool:
        """A subset of ``matcher._tiny_literal``: a literal of at most five plain constants."""
        if (
            not isinstance(iterable, (ast.Tuple, ast.List, ast.Set))
            or len(iterable.elts) > catalogue.TINY_LITERAL_LOOP
        ):
            return False
        return all(self._plain_element(e) for e in iterable.elts)

    def _plain_element(self, node: ast.AST) -> bool:
        """A SimpleString, Integer, Float, Name, Attribute or Tuple for LibCST."""
        if isinstance(node, (ast.Name, ast.Attribute, ast.Tuple)):
            return True
        if isinstance(node, ast.Constant):
            return bool(_PLAIN_CONSTANT.match(self.raw_text(node)))
        return False

    # -------------------------------------------------------------------------- sites

    def sites(self) -> Iterator[ast.stmt]:
        """The statements that may be sites: loops, and comprehensions' assignments."""
        for block, link, function in _blocks(self.tree.body):
            for index, stmt in enumerate(block):
                if isinstance(stmt, _LOOPS):
                    site = self._loop_may_match(block, index, stmt, link, function)
                elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                    site = (
                        self._comprehension_may_match(block, index, stmt, link, function)
                        or self._parallel_may_match(block, index, stmt, link)
                        or self._row_apply_may_match(block, index, stmt, link)
                    )
                else:
                    continue
                if site and not self._generator(function):
                    yield stmt  # matcher._scan_block: nothing in a generator function is a site
        yield from self._async_shared_sites()

    def _async_shared_sites(self) -> Iterator[ast.stmt]:
        """The twin of ``detect.asyncshared``: a superset of its sites. In a file with an
        ``async def`` and an ``append``: every statement in a function that calls
        ``gather``/``wait``/``as_completed`` (a loop: in its iterable) or opens a
        ``TaskGroup``; in a file that names ``asyncio``: every module-level ``asyncio.run(...)``."""
        shared = b"async" in self.source and b"append" in self.source
        handoff = b"asyncio" in self.source
        if not shared and not handoff:
            return
        for stmt, module_level in _all_statements(self.tree.body):
            if module_level:
                if (
                    handoff
                    and isinstance(stmt, ast.Expr)
                    and isinstance(stmt.value, ast.Call)
                    and self.qualified(stmt.value.func) & catalogue.ASYNC_RUNNERS
                ):
                    yield stmt
                continue
            if not shared:
                continue
            if isinstance(stmt, _FOR):
                parts: List[ast.AST] = [stmt.iter]
            elif isinstance(stmt, _WITH):
                parts = [item.context_expr for item in stmt.items]
            elif isinstance(stmt, _FUNCTIONS + (ast.ClassDef, ast.While, ast.If, ast.Try)):
                continue
            else:
                parts = [stmt]
            if any(
                isinstance(n, ast.Call) and self._waits_for_calls(n, isinstance(stmt, _WITH))
                for n in _walk_all(parts)
            ):
                yield stmt

    def _waits_for_calls(self, call: ast.Call, opens: bool) -> bool:
        name = callee_name(call.func)
        if opens:
            return name == catalogue.TASK_GROUP
        return name in catalogue.ASYNC_WAIT_NAMES or bool(self.qualified(call.func) & catalogue.ASYNC_WAITS)

    def _generator(self, function: Optional[ast.AST]) -> bool:
        """``FileAnalysis.is_generator``: a ``yield`` in the body, outside nested scopes."""
        if function is None or b"yield" not in self.source:
            return False
        key = id(function)
        if key not in self._generators:
            body: List[ast.stmt] = getattr(function, "body", [])
            self._generators[key] = any(
                isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _walk_all(body, pruned_walk)
            )
        return self._generators[key]

    def _loop_may_match(
        self,
        block: Sequence[ast.stmt],
        index: int,
        loop: _Loop,
        link: Optional[_Link],
        function: Optional[ast.AST] = None,
    ) -> bool:
        is_for = isinstance(loop, _FOR)
        following = block[index + 1] if is_for and index + 1 < len(block) else None
        ack = following is not None and _ack_shaped(following)
        body = _body(loop.body)
        if not body.grown and not body.writes and not body.frames and not body.item_roots and not ack:
            return False  # nothing to collect, write or acknowledge
        # the shapes, most selective first; each one still needs the checks below
        acks = ack and following is not None and self._acks(following, body.grown)
        collects = commits = False
        # detect.parallel.loop_plan: the work runs in a pool, not in the body
        parallel: Optional[bool] = None if is_for else False  # computed only when it decides
        if not acks:
            after = list(_after(block, index, link))
            accumulators = {name for name in body.grown if self._accumulator_before(name, block, index, link)}
            accumulators |= body.frames  # a frame filled through .at/.loc: bound to any value
            accumulators |= _item_lists(loop, body.item_roots)  # a list whose items are written: any value
            accumulators |= body.concats  # a frame grown by pd.concat: bound to any value
            collects = bool(accumulators) and (
                self._sink_after(after, accumulators)
                or self._returned_and_called(after, accumulators, function)
            )
            commits = (
                not collects and body.writes and is_for and any(self._statement(s).commits for s in after)
            )
            if not collects and not commits:
                return False
            if not self.may_be_job(body.pruned_calls, body.awaits):
                parallel = self._may_be_parallel_loop(loop) if parallel is None else parallel
                if not parallel:
                    return False  # not work.is_job (CKP001, CKP002)
        if is_for and self.surely_tiny(loop.iter):  # type: ignore[union-attr]
            return False  # matcher._tiny_literal
        if any(self.surely_persists(call) for call in body.pruned_calls):
            return False  # flow.persists_per_item
        if not body.awaits and all(self.surely_cheap(call) for call in body.pruned_calls):
            parallel = self._may_be_parallel_loop(loop) if parallel is None else parallel
            if not parallel:
                return False  # not work.does_work
        return True

    def _acks(self, stmt: ast.stmt, grown: Set[str]) -> bool:
        """A superset of ``external.find_queue_ack`` finding an ack in ``stmt``."""
        assert isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
        call = stmt.value
        name = callee_name(call.func)
        if name in catalogue.BATCH_ACK_METHODS:
            return bool(names_in(call) & grown)
        if name == catalogue.BASIC_ACK:
            return any(k.arg == "multiple" for k in call.keywords)
        return (
            name == "commit" and isinstance(call.func, ast.Attribute) and catalogue.KAFKA_TEXT in self.source
        )

    def _accumulator_before(
        self, name: str, block: Sequence[ast.stmt], index: int, link: Optional[_Link]
    ) -> bool:
        """A superset of ``matcher._find_accumulators`` accepting ``name``.

        The matcher looks back for the nearest statement that binds ``name``
        (``cstutil.bound_in``) and requires it to be ``name = <accumulator value>``. Here a
        statement stops the search only when it surely binds ``name`` that way.
        """
        for stmt in _before_reversed(block, index, link):
            value = _single_value(stmt, name)
            if value is not None:
                if self.may_be_accumulator(value):
                    return True
                if self.raw_ascii(stmt):
                    return False
                continue
            if isinstance(stmt, ast.If) and any(
                value is not None and self.may_be_accumulator(value)
                for value in (_single_value(sub, name) for sub in stmt.body)
            ):
                return True  # matcher._conditional_init: `if save_dir: results = []`
            if self._surely_binds(stmt, name):
                return False
        return False

    def _surely_binds(self, stmt: ast.stmt, name: str) -> bool:
        """A subset of ``name in cstutil.bound_in(stmt)``."""
        for node in pruned_walk(stmt):
            targets: List[ast.AST] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor, ast.NamedExpr)):
                targets = [node.target]
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                targets = [node.optional_vars]
            for target in targets:
                if name in assigned_names(target) and self.raw_ascii(target):
                    return True
        return False

    def _comprehension_may_match(
        self,
        block: Sequence[ast.stmt],
        index: int,
        stmt: Union[ast.Assign, ast.AnnAssign],
        link: Optional[_Link],
        function: Optional[ast.AST] = None,
    ) -> bool:
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1:
                return False
            target, value = stmt.targets[0], stmt.value
        else:
            if stmt.value is None:
                return False
            target, value = stmt.target, stmt.value
        if not isinstance(target, ast.Name) or not isinstance(value, _COMPREHENSIONS):
            return False
        parts = _body(_per_item_parts(value))
        if not self.may_be_job(parts.pruned_calls, parts.awaits):
            return False
        after = list(_after(block, index, link))
        return self._sink_after(after, {target.id}) or self._returned_and_called(after, {target.id}, function)

    def _returned_and_called(
        self, after: Sequence[ast.stmt], accumulators: Set[str], function: Optional[ast.AST]
    ) -> bool:
        """A superset of ``helper.find_returned``: in a function that is not local to another
        one, a ``return`` after the site reads a tracked value, and every caller may save
        what the function returns (:meth:`_callers_may_save`)."""
        if not isinstance(function, _FUNCTIONS):
            return False
        tracked = set(accumulators)
        for stmt in after:
            if isinstance(stmt, ast.Return):
                return (
                    stmt.value is not None
                    and bool(names_in(stmt.value) & tracked)
                    and self._callers_may_save(function)
                )
            tracked = _derived(stmt, tracked)
        return False

    def _callers_may_save(self, function: ast.AST) -> bool:
        """A superset of ``detect.helper`` accepting the callers of ``function``:

        * it is not defined inside another function (its qualified name has no ``<locals>``);
        * it is called, as ``name(...)`` (``self.name(...)`` for a method), and its name is
          never used otherwise (``pool.map(name, xs)``: unseen callers, ``_calls_of``);
        * no call sits in a comprehension of its statement (``_per_item``) or under a lambda
          (``_Index`` never indexes it);
        * the function (or module code) around each call holds a possible sink, and the
          call's statement holds one, or keeps the result (``x = f()``, ``xs.append(f())``:
          ``_receivers``) and a possible sink reads it later in the function (``_caller_save``).
        """
        if not self._names_as_written():
            return True  # `ｆoo` and `foo` are one name here, two for detect: it decides
        if self._helpers is None:
            self._helpers = _HelperCalls(self.tree)
        helpers = self._helpers
        key = helpers.keys.get(id(function))
        if key is None or key in helpers.spoiled:
            return False
        calls = helpers.calls.get(key, [])
        return bool(calls) and all(self._caller_may_save(call) for call in calls)

    def _caller_may_save(self, call: _HelperCall) -> bool:
        if not self._scope_may_save(call.scope):
            return False
        if self._holds_sink(call.statement):
            return True  # json.dump(run_model(data), f)
        received = _receivers(call.statement)
        bodies = [self.tree.body] + ([call.scope.body] if call.scope is not None else [])
        return bool(received) and self._sink_after(list(call.frame.after(bodies)), received)

    def _names_as_written(self) -> bool:
        """Whether every identifier reads here as in the source. ``ast`` folds identifiers to
        NFKC (``ｆoo`` is ``foo``), LibCST keeps them as written; in an NFKC-normalized text
        (every ASCII one) each identifier already is its folded form."""
        if self._nfkc is None:
            text = self.source.decode("utf-8", "replace")
            self._nfkc = (
                self.ascii or unicodedata.is_normalized("NFKC", text) or _identifiers_normalized(text)
            )
        return self._nfkc

    def _holds_sink(self, stmt: ast.stmt) -> bool:
        return any(self.may_be_sink(call) for call in self._statement(stmt).calls)

    def _scope_may_save(self, scope: Optional[ast.AST]) -> bool:
        """A possible sink in the function ``scope`` (None: in the module's code outside functions)."""
        key = id(scope)
        if key not in self._scope_sinks:
            if scope is None:
                nodes: Iterator[ast.AST] = _walk_all(
                    [s for s in self.tree.body if not isinstance(s, _FUNCTIONS)], _module_walk
                )
            else:
                nodes = walk(scope)
            self._scope_sinks[key] = any(isinstance(n, ast.Call) and self.may_be_sink(n) for n in nodes)
        return self._scope_sinks[key]

    def _parallel_may_match(
        self,
        block: Sequence[ast.stmt],
        index: int,
        stmt: Union[ast.Assign, ast.AnnAssign],
        link: Optional[_Link],
    ) -> bool:
        """A superset of ``detect.parallel.statement_plan``: ``name = <a pool's map, a gather,
        or a comprehension waiting for handles>`` and a sink of ``name`` after it."""
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None
        if isinstance(stmt, ast.AnnAssign):
            target = stmt.target
        if not isinstance(target, ast.Name) or stmt.value is None:
            return False
        if not any(self._parallel_value(inner) for inner in _unwrapped(stmt.value)):
            return False
        return self._sink_after(list(_after(block, index, link)), {target.id})

    def _parallel_value(self, inner: ast.AST) -> bool:
        """A superset of the shapes ``detect.parallel.statement_plan`` takes (after ``_unwrap``):
        a pool's map, a joblib ``Parallel(...)(comprehension)``, ``gather(*coros)``, or a list
        comprehension waiting on the handles it iterates (``[f.result() for f in futures]``) in a
        module that makes handles (``pool.submit``, ``create_task``)."""
        if isinstance(inner, ast.ListComp):
            if len(inner.generators) != 1:
                return False
            targets = assigned_names(inner.generators[0].target)
            return (
                any(
                    isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Attribute)
                    and n.func.attr in catalogue.PARALLEL_RESULT_METHODS
                    and target_name(n.func.value) in targets
                    for n in walk(inner.elt)
                )
                and self._makes_handles()
            )
        if not isinstance(inner, ast.Call):
            return False
        if self._pool_call(inner, catalogue.PARALLEL_MAP_METHODS):
            return True
        if isinstance(inner.func, ast.Call):  # Parallel(n_jobs=4)(delayed(f)(x) for x in xs)
            arguments = [*inner.args, *(k.value for k in inner.keywords)]  # LibCST's args: both kinds
            return (
                len(arguments) == 1
                and isinstance(arguments[0], (ast.GeneratorExp, ast.ListComp))
                and self._may_name(inner.func.func, catalogue.JOBLIB_PARALLEL)
            )
        starred = [arg for arg in inner.args if isinstance(arg, ast.Starred)]
        return len(starred) == 1 and self._may_name(inner.func, catalogue.GATHER_CALLS)

    def _may_name(self, func: ast.AST, qualified: FrozenSet[str]) -> bool:
        """A superset of ``a.qualified(func) & qualified`` (for the parallel shapes' modules)."""
        if callee_name(func) in {_last(q) for q in qualified}:
            return True
        # an alias (`from asyncio import gather as g`) only where such a module is imported at all
        return self._may_alias_parallel() and bool(self.qualified(func) & qualified)

    def _pool_call(self, node: ast.AST, methods: FrozenSet[str]) -> bool:
        """``parallel._pool_method``: ``pool.<method>(...)`` on a name bound to a pool constructor."""
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in methods
            and target_name(node.func.value) in self._pool_names()
        )

    def _pool_names(self) -> FrozenSet[str]:
        """A superset of ``parallel._bindings(a)[0]``: names bound to a call whose callee's last
        part is a pool constructor (``x = Pool(...)``, ``with ThreadPoolExecutor() as x``)."""
        if self._pools is None:
            found: Set[str] = set()
            if any(word.encode() in self.source for word in catalogue.POOL_CONSTRUCTORS):
                for node in walk(self.tree):
                    targets: List[ast.AST] = []
                    value: Optional[ast.AST] = None
                    if isinstance(node, ast.Assign):
                        targets, value = list(node.targets), node.value
                    elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                        targets, value = [node.optional_vars], node.context_expr
                    if (
                        isinstance(value, ast.Call)
                        and _callee_text(value.func).rsplit(".", 1)[-1] in catalogue.POOL_CONSTRUCTORS
                    ):
                        found |= {name for name in map(target_name, targets) if name}
            self._pools = frozenset(found)
        return self._pools

    def _makes_handles(self) -> bool:
        """A superset of ``parallel._producers`` finding a producer anywhere: a pool's
        ``submit``/``apply_async``, or a ``create_task``/``ensure_future``."""
        if self._handles is None:
            self._handles = any(
                isinstance(n, ast.Call)
                and (
                    self._pool_call(n, catalogue.PARALLEL_SUBMIT_METHODS)
                    or callee_name(n.func) in catalogue.TASK_METHODS
                )
                for n in walk(self.tree)
            )
        return self._handles

    def _may_alias_parallel(self) -> bool:
        if self._parallel_aliases is None:
            self._parallel_aliases = any(
                real.split(".", 1)[0] in _PARALLEL_ROOTS
                for pairs in self.imports.values()
                for _, real in pairs
            )
        return self._parallel_aliases

    def _may_be_parallel_loop(self, loop: ast.stmt) -> bool:
        """A superset of ``detect.parallel.loop_plan`` taking a ``for`` loop: a pool's map as
        its iterable (after ``_unwrap``), an ``as_completed`` in its iterable, or a handle the
        loop binds waited on in its body (``fut.result()``)."""
        assert isinstance(loop, _FOR)
        if any(self._pool_call(inner, catalogue.PARALLEL_MAP_METHODS) for inner in _unwrapped(loop.iter)):
            return True
        if any(
            isinstance(n, ast.Call) and self._may_name(n.func, catalogue.FUTURES_ITERABLES)
            for n in walk(loop.iter)
        ):
            return True
        targets = assigned_names(loop.target)
        return any(
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr in catalogue.FUTURE_RESULT_METHODS
            and target_name(n.func.value) in targets
            for part in loop.body
            for n in walk(part)
        )

    def _row_apply_may_match(
        self,
        block: Sequence[ast.stmt],
        index: int,
        stmt: Union[ast.Assign, ast.AnnAssign],
        link: Optional[_Link],
    ) -> bool:
        """A superset of ``detect.rows.row_apply_site``: ``t = r.apply(f, ...)`` whose ``f``
        may be heavy, and a possible sink of ``t``'s root name after it."""
        if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
            return False
        call = stmt.value
        if (
            not isinstance(call, ast.Call)
            or not isinstance(call.func, ast.Attribute)
            or call.func.attr not in catalogue.ROW_APPLY_METHODS
            or not call.args
            or isinstance(call.args[0], ast.Starred)
        ):
            return False
        root = stmt.targets[0]
        while isinstance(root, (ast.Subscript, ast.Attribute)):
            root = root.value
        if not isinstance(root, ast.Name):
            return False
        func = call.args[0]
        if isinstance(func, ast.Lambda):
            heavy = any(self.may_be_heavy(c) for c in _body([func.body]).pruned_calls)
        elif isinstance(func, (ast.Name, ast.Attribute)):
            heavy = self.may_be_heavy(ast.Call(func=func, args=[], keywords=[]))
        else:
            heavy = False
        return heavy and self._sink_after(list(_after(block, index, link)), {root.id})

    def _statement(self, stmt: ast.stmt) -> _Statement:
        key = id(stmt)
        facts = self._statements.get(key)
        if facts is None:
            names: Set[str] = set()
            calls: List[ast.Call] = []
            commits = False
            for node in walk(stmt):
                if isinstance(node, ast.Call):
                    calls.append(node)
                    commits = commits or (isinstance(node.func, ast.Attribute) and node.func.attr == "commit")
                name = target_name(node)
                if name is not None:
                    names.add(name)
            facts = self._statements[key] = _Statement(names, calls, commits)
        return facts

    def _sink_after(self, after: Sequence[ast.stmt], accumulators: Set[str]) -> bool:
        """A superset of ``flow.find_sink``: a possible sink whose arguments read a tracked value."""
        tracked = set(accumulators)
        for stmt in after:
            facts = self._statement(stmt)
            if not facts.names & tracked:
                continue  # nothing in it reads a tracked value: no sink, nothing derived
            sinky = [call for call in facts.calls if self.may_be_sink(call)]
            tracked = _derived(stmt, tracked)
            if any(_call_uses(call, tracked) for call in sinky):
                return True
        return False


# --------------------------------------------------------------------------- helpers


#: a literal LibCST reads as one SimpleString, Integer or Float, or a name (True, None)
_PLAIN_CONSTANT = re.compile(
    rb"""\A(?:[rRuUbB]{0,2}(?:'[^'\\\r\n]*'|"[^"\\\r\n]*")|[0-9][0-9_]*|[0-9]*\.[0-9]+|True|False|None)\Z"""
)


def _all_statements(body: Sequence[ast.stmt]) -> Iterator[Tuple[ast.stmt, bool]]:
    """Every statement, and whether it is in the module's scope (not in a function or class)."""
    stack: List[Tuple[Sequence[ast.stmt], bool]] = [(body, True)]
    while stack:
        block, module_level = stack.pop()
        for stmt in block:
            yield stmt, module_level
            inner = module_level and not isinstance(
                stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            )
            for child in _child_blocks(stmt):
                stack.append((child, inner))


_BLOCK_FIELDS: Dict[type, Tuple[str, ...]] = {
    ast.FunctionDef: ("body",),
    ast.AsyncFunctionDef: ("body",),
    ast.ClassDef: ("body",),
    ast.For: ("body", "orelse"),
    ast.AsyncFor: ("body", "orelse"),
    ast.While: ("body", "orelse"),
    ast.If: ("body", "orelse"),
    ast.With: ("body",),
    ast.AsyncWith: ("body",),
    ast.Try: ("body", "orelse", "finalbody"),
}
if sys.version_info >= (3, 11):
    _BLOCK_FIELDS[ast.TryStar] = ("body", "orelse", "finalbody")


def _child_blocks(stmt: ast.stmt) -> Iterator[Sequence[ast.stmt]]:
    """The statement lists directly inside ``stmt`` (``cstutil.statement_blocks``, and bodies)."""
    kind = type(stmt)
    fields = _BLOCK_FIELDS.get(kind)
    if fields is None:
        if kind.__name__ == "Match":
            for case in getattr(stmt, "cases", ()):
                yield case.body
        return
    for field in fields:
        child = getattr(stmt, field)
        if child:
            yield child
    for handler in getattr(stmt, "handlers", ()):
        yield handler.body


def _body(parts: Sequence[ast.AST]) -> _Body:
    """One walk of a loop body (or a comprehension's per-item parts)."""
    facts = _Body([], [], False, set(), False, set(), {}, set())
    stack: List[Tuple[Any, bool]] = [(part, False) for part in parts]
    while stack:
        node, pruned = stack.pop()
        if not isinstance(node, ast.AST):
            continue
        if isinstance(node, ast.Call):
            facts.calls.append(node)
            if not pruned:
                facts.pruned_calls.append(node)
            func = node.func
            if isinstance(func, ast.Attribute):
                if func.attr in catalogue.ITEM_CHANGING_METHODS:
                    _add_item_root(facts.item_roots, func.value, 1)  # item.update(d), item["tags"].append(t)
                if func.attr in catalogue.GROWING_METHODS:
                    _add_owner(facts.grown, func.value)
                if func.attr in catalogue.DB_WRITE_METHODS:
                    facts.writes = True
        elif isinstance(node, ast.Await):
            facts.awaits = facts.awaits or not pruned
        elif isinstance(node, ast.AugAssign):
            _add_owner(facts.grown, node.target)
            _add_frame(facts.frames, node.target)
            _add_item_root(facts.item_roots, node.target, 0)
        elif isinstance(node, ast.AnnAssign):
            _add_item_root(facts.item_roots, node.target, 0)
        elif isinstance(node, ast.Delete):
            for target in node.targets:
                _add_item_root(facts.item_roots, target, 0)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                _add_item_root(facts.item_roots, target, 0)
                if isinstance(target, ast.Subscript):
                    _add_owner(facts.grown, target.value)
                    _add_frame(facts.frames, target)
                else:
                    name = target_name(target)
                    if name and (
                        (isinstance(node.value, ast.BinOp) and target_name(node.value.left) == name)
                        or _concat_grows(name, node.value)
                    ):
                        facts.grown.add(name)
                    if name and _frame_concat_grows(name, node.value):
                        facts.grown.add(name)
                        facts.concats.add(name)
        inner = pruned or isinstance(node, _PRUNE)
        for field in node._fields:
            if field == "ctx":
                continue
            child = getattr(node, field, None)
            if child.__class__ is list:
                stack.extend((item, inner) for item in child)
            elif isinstance(child, ast.AST):
                stack.append((child, inner))
    return facts


_PARALLEL_QUALIFIED = catalogue.GATHER_CALLS | catalogue.FUTURES_ITERABLES | catalogue.JOBLIB_PARALLEL
_PARALLEL_LASTS = frozenset(_last(q) for q in _PARALLEL_QUALIFIED)
_PARALLEL_ROOTS = frozenset(q.split(".", 1)[0] for q in _PARALLEL_QUALIFIED)


def _unwrapped(value: ast.AST) -> Iterator[ast.AST]:
    """``value`` and what ``parallel._unwrap`` may strip it to: under ``await``, and the first
    positional argument of a call (``list(x)``, ``tqdm(x)``, whatever the callee: a superset)."""
    while True:
        yield value
        if isinstance(value, ast.Await):
            value = value.value
        elif isinstance(value, ast.Call) and value.args and not isinstance(value.args[0], ast.Starred):
            value = value.args[0]
        else:
            return


def _ack_shaped(stmt: ast.stmt) -> bool:
    """A call statement named like an ack or a commit (``external.find_queue_ack``)."""
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and callee_name(stmt.value.func) in catalogue.ACK_CALLS
    )


def _blocks(
    body: Sequence[ast.stmt],
) -> Iterator[Tuple[Sequence[ast.stmt], Optional[_Link], Optional[ast.AST]]]:
    """Every statement list, the ``with`` chain above it (``analysis.Chain``), and the
    function it is in (for ``FileAnalysis.is_generator``).

    Iterative, so deeply nested code cannot exhaust the Python stack here.
    """
    stack: List[Tuple[Sequence[ast.stmt], Optional[_Link], Optional[ast.AST]]] = [(body, None, None)]
    while stack:
        block, above, function = stack.pop()
        yield block, above, function
        for index, stmt in enumerate(block):
            if isinstance(stmt, _WITH):
                stack.append((stmt.body, _Link(block, index, above), function))
                continue
            inner: Optional[ast.AST] = function
            if isinstance(stmt, _FUNCTIONS):
                inner = stmt
            elif isinstance(stmt, ast.ClassDef):
                inner = None  # its methods are checked on their own; its body is never a site
            elif isinstance(stmt, _BRANCHES):
                for child in _child_blocks(stmt):
                    stack.append((child, _Link(block, index, above, False), function))
                continue
            for child in _child_blocks(stmt):
                stack.append((child, None, inner))


def _before_reversed(block: Sequence[ast.stmt], index: int, link: Optional[_Link]) -> Iterator[ast.stmt]:
    """``Chain.before`` backwards: nearest statement first, then before each enclosing ``with``."""
    yield from reversed(block[:index])
    while link is not None:
        yield from reversed(link.block[: link.index])
        link = link.parent


def _after(block: Sequence[ast.stmt], index: int, link: Optional[_Link]) -> Iterator[ast.stmt]:
    """``Chain.after``: statements after ``block[index]``, then after each enclosing ``with``."""
    yield from block[index + 1 :]
    while link is not None and link.transparent:
        yield from link.block[link.index + 1 :]
        link = link.parent


def _single_value(stmt: ast.stmt, name: str) -> Optional[ast.AST]:
    """The value of ``name = value`` / ``name: T = value`` (``cstutil.single_assignment``)."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and target_name(stmt.targets[0]) == name:
        return stmt.value
    if isinstance(stmt, ast.AnnAssign) and stmt.value is not None and target_name(stmt.target) == name:
        return stmt.value
    if (  # a, name = [], []   (cstutil.unpacked_value)
        isinstance(stmt, ast.Assign)
        and len(stmt.targets) == 1
        and isinstance(stmt.targets[0], (ast.Tuple, ast.List))
        and isinstance(stmt.value, (ast.Tuple, ast.List))
        and len(stmt.targets[0].elts) == len(stmt.value.elts)
    ):
        names = [target_name(e) for e in stmt.targets[0].elts]
        if names.count(name) == 1 and not any(
            isinstance(e, ast.Starred) for e in (*stmt.targets[0].elts, *stmt.value.elts)
        ):
            return stmt.value.elts[names.index(name)]
    return None


def _add_frame(frames: Set[str], target: ast.AST) -> None:
    """``df`` of a store to ``df.at[...]``/``df.loc[...]`` (``matcher.frame_written``)."""
    if (
        isinstance(target, ast.Subscript)
        and isinstance(target.value, ast.Attribute)
        and target.value.attr in catalogue.FRAME_INDEXERS
    ):
        name = target_name(target.value.value)
        if name is not None:
            frames.add(name)


def _add_item_root(roots: Dict[str, int], node: ast.AST, depth: int) -> None:
    """The root name of a subscript/attribute chain and its depth plus ``depth`` (a
    superset of the stores and receivers ``detect.items`` looks at)."""
    while isinstance(node, (ast.Subscript, ast.Attribute)):
        node = node.value
        depth += 1
    if isinstance(node, ast.Name) and depth:
        roots[node.id] = max(depth, roots.get(node.id, 0))


def _item_lists(loop: ast.AST, roots: Dict[str, int]) -> Set[str]:
    """A superset of ``detect.items.item_site(loop).name``: the list is named in the loop's
    iterable (``range(len(data))``, ``enumerate(data)``, ``data``), and the body writes into a
    loop-target name (``item["k"] = v``, ``item.update(d)``) or below an item of it
    (``data[i]["k"] = v``)."""
    if not isinstance(loop, _FOR):
        return set()  # item_site looks at for loops only
    iterated = names_in(loop.iter)
    aliases = assigned_names(loop.target)
    found = {name for name, depth in roots.items() if depth >= 2 and name in iterated}
    if aliases & set(roots):
        found |= iterated
    return found


def _add_owner(grown: Set[str], owner: ast.AST) -> None:
    """``x`` of ``x.append``/``x += ...``, or of ``x[k].append``/``x[k] += ...``."""
    name = target_name(owner)
    if name is None and isinstance(owner, ast.Subscript):
        name = target_name(owner.value)
    if name is not None:
        grown.add(name)


def _derived(stmt: ast.stmt, tracked: Set[str]) -> Set[str]:
    """A superset of what ``flow.track_derived`` tracks after ``stmt``, to a fixed point."""
    tracked = set(tracked)
    nodes = list(walk(stmt))
    while True:
        before = len(tracked)
        for node in nodes:
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                value = node.value
                if value is not None and names_in(value) & tracked:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        tracked |= assigned_names(_strip(target))
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                if names_in(node.context_expr) & tracked:
                    tracked |= assigned_names(node.optional_vars)
            elif isinstance(node, _FOR) and names_in(node.iter) & tracked:
                tracked |= assigned_names(node.target)  # flow._search: the JSONL idiom
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = target_name(node.func.value)
                if owner and node.func.attr in catalogue.DERIVING_METHODS and _call_uses(node, tracked):
                    tracked.add(owner)
        if len(tracked) == before:
            return tracked


def _strip(target: ast.AST) -> ast.AST:
    """``df`` of ``df["col"]``, ``self.x`` of ``self.x.y``: where a derived value is stored."""
    while isinstance(target, (ast.Subscript, ast.Attribute)) and target_name(target) is None:
        target = target.value
    return target


def _call_uses(call: ast.Call, tracked: Set[str]) -> bool:
    """A superset of ``flow.call_uses``: the arguments or the receiver read a tracked name."""
    parts: List[ast.AST] = [*call.args, *(k.value for k in call.keywords)]
    if isinstance(call.func, ast.Attribute):
        parts.append(call.func.value)
    return any(names_in(part) & tracked for part in parts)


def _is_logging(func: ast.Attribute) -> bool:
    """``work.is_logging`` (exactly: it is used both ways)."""
    receiver = func.value
    while isinstance(receiver, ast.Attribute):
        if receiver.attr in catalogue.LOGGING_RECEIVERS:
            return True
        receiver = receiver.value
    if isinstance(receiver, ast.Name):
        if receiver.id in catalogue.LOGGER_NAMES:
            return True
        return receiver.id == "self" and func.attr in catalogue.SELF_LOGGING_METHODS
    return False


def _callee_text(func: ast.AST) -> str:
    """``cstutil.callee_text``."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return "%s.%s" % (_callee_text(func.value), func.attr)
    if isinstance(func, ast.Call):
        return "%s(...)" % _callee_text(func.func)
    if isinstance(func, ast.Subscript):
        return "%s[...]" % _callee_text(func.value)
    return "<expression>"


def _per_item_parts(value: Union[ast.ListComp, ast.SetComp, ast.DictComp]) -> List[ast.AST]:
    """``matcher._per_item_parts``: element, conditions, inner iterables."""
    parts: List[ast.AST] = [value.key, value.value] if isinstance(value, ast.DictComp) else [value.elt]
    for position, generator in enumerate(value.generators):
        parts.extend(generator.ifs)
        if position:
            parts.append(generator.iter)
    return parts


def _concat_grows(name: str, value: ast.AST) -> bool:
    """The twin of ``cstutil.is_concat_growth``: ``preds = torch.cat((preds, out))``."""
    if isinstance(value, ast.IfExp):
        return _concat_grows(name, value.body) or _concat_grows(name, value.orelse)
    if (
        not isinstance(value, ast.Call)
        or not isinstance(value.func, ast.Attribute)
        or value.func.attr not in catalogue.CONCAT_FUNCTIONS
        or not value.args
    ):
        return False
    first = value.args[0]
    if target_name(first) == name:
        return True
    return isinstance(first, (ast.List, ast.Tuple)) and any(target_name(e) == name for e in first.elts)


def _frame_concat_grows(name: str, value: ast.AST) -> bool:
    """The twin of ``detect.concat.concat_growth`` (any callee named ``concat``, not only
    pandas'): ``df = pd.concat([df, part], ignore_index=True)``."""
    if not isinstance(value, ast.Call) or not value.args:
        return False
    func = value.func
    callee = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if callee != "concat" or not isinstance(value.args[0], (ast.List, ast.Tuple)):
        return False
    return any(target_name(e) == name for e in value.args[0].elts)
