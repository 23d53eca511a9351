"""Staged detection: cheap necessary conditions, so LibCST parses only files that can match.

LibCST with scope and qualified-name metadata, plus the matcher, costs about half a
millisecond per line; almost no file of a real repository holds a collect-then-save loop.
Two stages in front of the matcher throw away the files that *cannot* hold a finding:

1. :func:`text_may_match`, regular expressions over the bytes (gigabytes per second);
2. :func:`tree_may_match`, a walk of the standard ``ast`` tree (``ast.parse`` is about
   twenty times faster than LibCST plus metadata), run only on what stage 1 lets through.

Neither stage is a heuristic. Each condition is implied by what :mod:`checkpointify.matcher`
(and ``flow``, ``external``, ``work``, ``sinks``, which it calls) requires of a finding, so
a rejected file provably has no finding; a file let through may still have none, and the
matcher decides. When a stage cannot decide (``ast`` cannot parse the file, an unexpected
construct, a recursion limit), the file goes on to LibCST, which reports what it always
reported.

**Keep this module in step with the matcher.** A new sink, growth method, ack call, cheap
or heavy call or site shape in ``matcher``/``flow``/``external``/``sinks``/``work`` must be
admitted here too, and :data:`PREFILTER_VERSION` bumped. ``tests/test_prefilter.py`` runs
both paths over every fixture and the small corpus; ``pytest -m slow`` over the core corpus.

What a finding needs
--------------------

(``matcher._LoopSite.plan`` and ``matcher._comprehension_plan``; every loop site also needs
a body that ``work.does_work`` and that does not ``flow.persists_per_item``, in a function
that is not a generator.)

* CKP001 ``collect-loop``: a ``for``/``while`` loop; a name the body *grows*
  (``x.append/extend/add/update/setdefault(...)``, ``x[k] = v``, ``x += v``,
  ``x = x + v``; ``x`` a name or ``self.x``) whose nearest binding before the loop (in the
  block, or before an enclosing ``with``) is ``x = <literal, number, string or call>``; a
  body that ``work.is_job``; and after the loop, in the block or after the enclosing
  ``with`` blocks, a *sink* call whose arguments or receiver read ``x`` or a value derived
  from it (``flow.find_sink``).
* CKP001 ``collect-comprehension``: ``name = [...]``/``{...}`` comprehension whose per-item
  parts are a job, and such a sink after it.
* CKP002 ``db-commit``: a ``for`` loop that is a job, whose body calls
  ``X.execute/add/merge/...(...)``, and a later ``Y.commit()``.
* CKP003 ``queue-ack``: a ``for`` loop and, as the very next statement, a call
  ``ack/acknowledge/ack_messages/modify_ack_deadline/delete_message_batch`` reading a
  grown name, ``basic_ack(..., multiple=...)``, or a Kafka consumer's ``commit()``.

Stage 1, the text
-----------------

Required: the keyword ``for`` or ``while`` (every site is a loop or a comprehension), and
one of: a name that can make a sink; an ack name; ``commit`` with a database write method
or ``kafka``; ``print`` with ``file``. A sink (``flow.describe_sink``) is a call whose name,
or the last part of one of its qualified names, is a sink method (``to_csv``...), the last
part of a qualified sink (``json.dump`` -> ``dump``) or of a configured extra sink, starts
with a save verb (``sinks.name_says_sink``), or is ``print`` with ``file=``. That name is an
identifier written in the file: the callee itself, or the name an ``import`` binds an
alias to (qualified names are built only from the file's own identifiers). Identifiers
are never split by comments or line continuations, so a byte search with identifier
boundaries finds them; the left boundary admits a digit (``1for`` is two tokens) and
non-ASCII neighbours, so the search can only find more. Non-UTF-8 files are transcoded
first. Growth has no text condition: ``x[k] = v`` and ``x = x + v`` have no keyword.

Stage 2, the tree
-----------------

The shapes above, checked on ``ast`` with every predicate widened to a superset of the
matcher's: qualified names are computed from every ``import`` in the file, whatever its
scope (:meth:`_Module.qualified`); every statement list is a block (the matcher skips class
bodies and one-line suites); values derived from the accumulator are tracked to a fixed
point over a whole statement (:func:`_derived`); "is a job" means "awaits, or calls
something whose name or possible qualified name is heavy, or a same-module function that
may be (recursion counts as heavy), or, in a script, anything not surely cheap".

Three conditions *reject* loops, so they use the opposite: a call counts as a sink or as
cheap, a statement as binding a name, only when the matcher surely agrees. ``ast`` folds
identifiers to NFKC where LibCST keeps the raw text (``ｗrite`` is ``write`` for Python, not
for the matcher), so those decisions also require the names involved to be ASCII in the
source (:meth:`_Module.raw_ascii`); a local scope's qualified names get a prefix
(``f.<locals>.x``), which matters only when a top-level function or class is named like
one of the modules the matcher knows (``def json(): ...``): then nothing is rejected on
qualified names.
"""

from __future__ import annotations

import ast
import builtins
import functools
import gc
import re
import sys
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
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

from checkpointify import sinks

#: bump when a stage changes what it lets through (part of the cache key)
PREFILTER_VERSION = 1

#: methods that grow an accumulator (matcher._GROWING)
GROWING = frozenset({"append", "extend", "add", "update", "setdefault"})
#: methods that make a value derived from their arguments (flow._GROWING_METHODS)
DERIVING = frozenset({"append", "extend", "update", "add", "insert"})
#: per-item database writes (external._WRITE_METHODS)
WRITE_METHODS = frozenset(
    {"execute", "executemany", "add", "add_all", "merge", "bulk_save_objects", "bulk_insert_mappings"}
    | {"bulk_update_mappings", "delete", "insert_one", "insert_many"}
)
#: acks of a batch that read the grown name (external.find_queue_ack)
BATCH_ACKS = frozenset({"delete_message_batch", "acknowledge", "ack", "ack_messages", "modify_ack_deadline"})
#: the Kafka consumers whose commit() is an ack (external._KAFKA_CONSUMERS); all contain "kafka"
KAFKA_TEXT = b"kafka"
#: flow._PRINT_LIKE
PRINT_LIKE = frozenset({"tqdm.write", "pbar.write", "console.print"})
_LOGGING_ATTRS = frozenset({"stdout", "stderr", "logger", "log"})
_SELF_LOGGING = frozenset({"log", "debug", "info", "warning", "error"})
_SAVE_VERBS = "|".join("[%s%s]%s" % (v[0], v[0].upper(), v[1:]) for v in sinks.SINK_VERBS)
_BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class _Work:
    """``work.HEAVY_QUALIFIED`` and ``work.HEAVY_VERBS``, and the module names the matcher tests.

    Read from :mod:`checkpointify.work` on first use: that module imports LibCST, which
    the text stage (run in the main process, where a warm run must not load LibCST) never
    needs.
    """

    heavy_qualified: Tuple[str, ...]
    heavy_verbs: "re.Pattern[str]"
    known_roots: FrozenSet[str]


@functools.lru_cache(maxsize=1)
def _work() -> _Work:
    from checkpointify import work

    roots = (
        [prefix.split(".")[0] for prefix in work.HEAVY_QUALIFIED]
        + [name.split(".")[0] for name in sinks.NOT_SINKS]
        + ["builtins", "collections"]
    )
    return _Work(tuple(work.HEAVY_QUALIFIED), work.HEAVY_VERBS, frozenset(roots))


_ACCUMULATOR_CALLS = frozenset(
    {"builtins.list", "builtins.dict", "builtins.set", "collections.OrderedDict", "collections.Counter"}
    | {"collections.defaultdict", "collections.deque"}
)
_FOR = (ast.For, ast.AsyncFor)
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_WITH = (ast.With, ast.AsyncWith)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
#: cstutil.PRUNE: nodes whose bodies run elsewhere
_PRUNE = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp)
_Loop = Union[ast.For, ast.AsyncFor, ast.While]


def _last(name: str) -> str:
    return name.rsplit(".", 1)[-1]


# ------------------------------------------------------------------------------- text


@dataclass(frozen=True)
class Vocabulary:
    """The names the stages look for under one configuration (extra sinks included).

    ``names`` finds a sink, ack or commit name followed by a call, a subscript or ``as``.
    Only a name of ``qualified_lasts`` (the last part of a qualified or extra sink:
    ``json.dump`` -> ``dump``) counts in the last two forms: ``flow.describe_sink`` knows it
    through a qualified name, which can come through an import alias
    (``from numpy import save as sv; sv(...)``) or a subscripted callee. A sink method
    (``to_csv``) or an ack is known by the callee's own name, so it must be called.
    ``verbs`` finds a called name that starts with a save verb (``sinks.name_says_sink``).
    Neither checks the boundary before the name (that keeps them fast): :func:`_found` does.
    """

    sink_names: FrozenSet[str]
    extra_sinks: FrozenSet[str]
    names: "re.Pattern[bytes]"
    verbs: "re.Pattern[bytes]"
    other: Optional["re.Pattern[bytes]"]
    qualified_lasts: FrozenSet[bytes]


#: what may separate two tokens: blanks, newlines (inside brackets), continuations, comments
_GAP = rb"(?:[ \t\f\r\n]|\\\r?\n|\\\r|#[^\r\n]*)*"
#: after a callee's last name: closing brackets (``(obj.save)(x)``), then the call's ``(``.
#: A sink, an ack or a commit is always a call, and its name reaches it this way.
_CALL = rb"(?:" + _GAP + rb"[)\]])*" + _GAP + rb"\("
#: also ``save[0](x)`` (its qualified name is ``save``'s) and ``import save as s``
_SUFFIX = rb"(?:(?:" + _GAP + rb"[)\]])*" + _GAP + rb"[(\[]|" + _GAP + rb"as(?![A-Za-z0-9_]))"
_IDENTIFIER_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_ALNUM_BYTES = _IDENTIFIER_BYTES - {ord("_")}
#: ``sys.stdout.write(`` / ``logger.write(``: work.is_logging, so flow.describe_sink says no
_LOGGING_ATTRIBUTE = re.compile(rb"\.[ \t]*(?:stdout|stderr|logger|log)[ \t]*\.[ \t]*\Z")
_LOGGING_ROOT = re.compile(
    rb"(?<![A-Za-z0-9_.\x80-\xff])(?:"
    + b"|".join(n.encode() for n in sorted(sinks.LOGGER_NAMES))
    + rb")[ \t]*\.[ \t]*\Z"
)
#: ``tqdm.write(...)`` (flow._PRINT_LIKE; pbar and console are logger names already)
_TQDM = re.compile(rb"(?<![A-Za-z0-9_.\x80-\xff])tqdm[ \t]*\.[ \t]*\Z")


def _trie(words: Iterable[str]) -> bytes:
    """One alternation for ``words``, factored by prefix (much faster than a flat one)."""
    tree: Dict[str, Dict[str, Any]] = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: Dict[str, Dict[str, Any]]) -> bytes:
        options = [
            b"" if char == "" else re.escape(char.encode("utf-8")) + emit(rest)
            for char, rest in sorted(node.items())
        ]
        return options[0] if len(options) == 1 else b"(?:" + b"|".join(options) + b")"

    return emit(tree)


def _identifier(word: str) -> bytes:
    """``word`` as a whole identifier; the boundary before it is a lookbehind placed after
    it, so the expression starts with a literal the engine can skip to. A digit may precede
    a keyword (``1for`` is two tokens), and a non-ASCII neighbour is allowed: that can only
    find more."""
    raw = re.escape(word.encode("utf-8"))
    return raw + rb"(?<![A-Za-z_]" + raw + rb")(?![A-Za-z0-9_])"


def _words(words: Iterable[str], then: bytes = b"") -> "re.Pattern[bytes]":
    return re.compile(b"|".join(_identifier(w) + then for w in sorted(set(words))))


_LOOP_KEYWORD = _words(["for", "while"])
_COMMIT = _words(["commit"], _CALL)
_WRITES = _words(WRITE_METHODS, _CALL)
_PRINT = _words(["print"], _CALL)
_FILE = _words(["file"])


@functools.lru_cache(maxsize=16)
def vocabulary(extra_sinks: Tuple[str, ...] = ()) -> Vocabulary:
    """The vocabulary for ``Options.extra_sinks`` (built once per process)."""
    extra = {_last(e) for e in extra_sinks if e}
    lasts = {_last(q) for q in sinks.QUALIFIED_SINKS} | extra
    names = set(sinks.METHOD_SINKS) | lasts
    searched = {n for n in names | BATCH_ACKS | {"basic_ack"} if n.isascii()}
    name_pattern = re.compile(rb"(?:" + _trie(searched) + rb")(?![A-Za-z0-9_])" + _SUFFIX)
    verbs = [v for verb in sinks.SINK_VERBS for v in (verb, verb[0].upper() + verb[1:])]
    # sinks.name_says_sink: the verb, then the end of the name or [_0-9A-Z] and the rest of it
    rest = rb"(?:[_0-9A-Z](?:[A-Za-z0-9_]|[\x80-\xff])*)?"
    verb_pattern = re.compile(rb"(?:" + _trie(verbs) + rb")" + rest + _CALL)
    # a non-ASCII extra sink: its neighbours may be non-ASCII identifier characters
    other = [re.escape(n.encode("utf-8")) for n in sorted(n for n in extra if not n.isascii())]
    return Vocabulary(
        frozenset(names),
        frozenset(extra_sinks),
        name_pattern,
        verb_pattern,
        re.compile(b"(?:" + b"|".join(other) + b")" + _SUFFIX) if other else None,
        frozenset(n.encode("utf-8") for n in lasts),
    )


def _found(pattern: "re.Pattern[bytes]", source: bytes, before: FrozenSet[int], vocab: Vocabulary) -> bool:
    """A match of ``pattern`` that can be a sink, ack or commit call (see :class:`Vocabulary`):
    it starts a name (it is not preceded by a byte of ``before``), it is called unless the
    name is one of ``vocab.qualified_lasts``, and it is not a method of a logging receiver.

    A match that is ruled out ends where its name's suffix ends (blanks, comments, brackets
    and a ``(``, ``[`` or ``as``), so skipping past it cannot skip a match that counts.
    """
    for match in pattern.finditer(source):
        start = match.start()
        if start and source[start - 1] in before:
            continue
        name = _NAME.match(source, start)
        word = name.group(0) if name is not None else b""
        if not match.group(0).endswith(b"(") and word not in vocab.qualified_lasts:
            continue  # `x.write[0]`, `import write as w`: only a qualified name could make them sinks
        if start and word not in vocab.qualified_lasts and _logging_receiver(source, start, word):
            continue
        return True
    return False


_NAME = re.compile(rb"[A-Za-z0-9_]+")


def _logging_receiver(source: bytes, start: int, word: bytes) -> bool:
    """``word`` at ``start`` is a method of ``sys.stdout``, ``self.stderr``, ``logger``...
    (``work.is_logging``), or is ``tqdm.write`` (``flow._PRINT_LIKE``): ``flow.describe_sink``
    rules such a call out, unless its qualified name is a known sink (the caller checks
    that it cannot be)."""
    head = source[max(0, start - 40) : start]
    if _LOGGING_ATTRIBUTE.search(head) is not None or _LOGGING_ROOT.search(head) is not None:
        return True
    return word == b"write" and _TQDM.search(head) is not None


def utf8(source: bytes, encoding: str) -> bytes:
    """``source`` as UTF-8 without a BOM, the text ``ast`` positions count in (it is UTF-8
    already, unless its encoding declaration says otherwise)."""
    if source.startswith(b"\xef\xbb\xbf"):
        source = source[3:]
    if encoding.replace("_", "-").lower() in ("utf-8", "utf-8-sig", "ascii"):
        return source
    return source.decode(encoding).encode("utf-8")


def text_may_match(source: bytes, vocab: Vocabulary) -> bool:
    """Stage 1 over UTF-8 bytes (see :func:`utf8`): can this text hold a finding at all?"""
    if _LOOP_KEYWORD.search(source) is None:
        return False
    if _found(vocab.names, source, _IDENTIFIER_BYTES, vocab):
        return True
    # a verb may follow underscores (`_save(`): only a letter or digit before it rules it out
    if _found(vocab.verbs, source, _ALNUM_BYTES, vocab):
        return True
    if vocab.other is not None and vocab.other.search(source) is not None:
        return True
    if _COMMIT.search(source) is not None and (KAFKA_TEXT in source or _WRITES.search(source) is not None):
        return True
    # print(..., file=out) when `print` is not the builtin (flow.describe_sink)
    return _PRINT.search(source) is not None and _FILE.search(source) is not None


def text_stage(source: bytes, encoding: str, extra_sinks: Tuple[str, ...]) -> bool:
    """Stage 1 for a file's bytes in their declared ``encoding`` (see :func:`text_may_match`)."""
    try:
        text = utf8(source, encoding)
    except (UnicodeError, LookupError):
        return True  # cannot tell: the full path decides
    return text_may_match(text, vocabulary(tuple(extra_sinks)))


def candidate_lines(
    source: bytes, encoding: str, extra_sinks: Tuple[str, ...], text_kept: bool = False
) -> Optional[FrozenSet[int]]:
    """Both stages: the lines where a site may start; empty when the file provably holds no
    finding; None when the tree stage cannot tell (then every line may). With
    ``text_kept``, the caller's :func:`text_stage` already kept the file: only the tree
    stage runs.

    ``source`` must decode in ``encoding`` (``fileio.check_encoding`` says so). A site's
    line is where its statement starts, as LibCST's PositionProvider and ``ast`` both
    count it: the ``for``/``while``/``async`` keyword, or the assignment's first token.
    """
    try:
        text = utf8(source, encoding)
    except (UnicodeError, LookupError):
        return None
    vocab = vocabulary(tuple(extra_sinks))
    if not text_kept and not text_may_match(text, vocab):
        return frozenset()
    tree = parse(source)
    if tree is None:
        return None
    try:
        return frozenset(stmt.lineno for stmt in _Module(tree, text, vocab).sites())
    except Exception:  # a construct or a depth this stage cannot handle: the matcher decides
        return None


def may_match(source: bytes, encoding: str, extra_sinks: Tuple[str, ...]) -> bool:
    """Both stages: False only when the file provably holds no finding."""
    return candidate_lines(source, encoding, extra_sinks) != frozenset()


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


# ------------------------------------------------------------------------------ names


def full_name(node: ast.AST) -> Optional[str]:
    """``libcst.helpers.get_full_name_for_node`` over ``ast``: ``a.b`` for ``a.b(x)``, ``a[0]``...

    Like LibCST, an attribute of an unsupported value gives ``None.attr``.
    """
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return "%s.%s" % (full_name(node.value), node.attr)
    if isinstance(node, ast.Call):
        return full_name(node.func)
    if isinstance(node, ast.Subscript):
        return full_name(node.value)
    return None


def target_name(node: ast.AST) -> Optional[str]:
    """``cstutil.target_name``: ``x`` for a name, ``self.x`` for an attribute of self."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return "self.%s" % node.attr
    return None


def assigned_names(target: ast.AST) -> Set[str]:
    """``cstutil.assigned_names``: names a target binds (``a, (b, c)`` -> a, b, c)."""
    if isinstance(target, (ast.Name, ast.Attribute)):
        name = target_name(target)
        return {name} if name else set()
    if isinstance(target, (ast.Tuple, ast.List)):
        out: Set[str] = set()
        for element in target.elts:
            out |= assigned_names(element)
        return out
    if isinstance(target, ast.Starred):
        return assigned_names(target.value)
    return set()


def names_in(node: ast.AST) -> Set[str]:
    """Every name and ``self.x`` under ``node`` (a superset of ``cstutil.names_in``)."""
    found: Set[str] = set()
    for sub in walk(node):
        name = target_name(sub)
        if name is not None:
            found.add(name)
    return found


def callee_name(func: ast.AST) -> str:
    """The called name: ``f`` of ``f(x)``, ``m`` of ``obj.m(x)``, else ``""``."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def walk(node: ast.AST) -> Iterator[ast.AST]:
    """``ast.walk``, about twice as fast (no generator per node; no ``Load``/``Store`` context)."""
    stack: List[Any] = [node]
    while stack:
        current = stack.pop()
        if not isinstance(current, ast.AST):
            continue  # a None in a list (a dict's ** key), or a string (Global.names)
        yield current
        for field in current._fields:
            if field == "ctx":
                continue
            value = getattr(current, field, None)
            if value.__class__ is list:
                stack.extend(value)
            elif isinstance(value, ast.AST):
                stack.append(value)


def pruned_walk(node: ast.AST) -> Iterator[ast.AST]:
    """``cstutil.walk``: ``node`` and everything under it, not entering functions, classes, lambdas."""
    stack: List[Any] = [node]
    while stack:
        current = stack.pop()
        if not isinstance(current, ast.AST):
            continue
        yield current
        for field in current._fields:
            if field == "ctx":
                continue
            value = getattr(current, field, None)
            if value.__class__ is list:
                stack.extend(v for v in value if not isinstance(v, _PRUNE))
            elif isinstance(value, ast.AST) and not isinstance(value, _PRUNE):
                stack.append(value)


def _walk_all(
    nodes: Iterable[ast.AST], walker: Callable[[ast.AST], Iterator[ast.AST]] = walk
) -> Iterator[ast.AST]:
    for node in nodes:
        yield from walker(node)


# ----------------------------------------------------------------------------- module


@dataclass(frozen=True)
class _Link:
    """Where a ``with`` body sits: its parent block and the ``with`` statement's index."""

    block: Sequence[ast.stmt]
    index: int
    parent: Optional["_Link"]


@dataclass
class _Body:
    """What one walk of a loop body finds (``pruned``: outside nested functions, classes, lambdas)."""

    calls: List[ast.Call]
    pruned_calls: List[ast.Call]
    awaits: bool
    grown: Set[str]
    writes: bool


@dataclass
class _Statement:
    """What one walk of a statement after a loop finds."""

    names: Set[str]
    calls: List[ast.Call]
    commits: bool


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
        #: a local qualified name can start with a module name the matcher knows
        self.work = _work()
        self.prefix_risk = bool(top_level & self.work.known_roots)
        self._rebound: Optional[Set[str]] = None
        self._heavy_memo: Dict[int, bool] = {}
        self._sink_memo: Dict[int, bool] = {}
        self._statements: Dict[int, _Statement] = {}
        self._generators: Dict[int, bool] = {}

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
                    c in self.vocab.sink_names or sinks.name_says_sink(c) for c in candidates
                )
        return self._sink_memo[key]

    def surely_persists(self, call: ast.Call) -> bool:
        """A subset of ``flow.persists_per_item`` for one call: a sink or a commit, flush, ack..."""
        func = call.func
        if not isinstance(func, (ast.Name, ast.Attribute)) or not self.raw_ascii(func):
            return False
        if self.prefix_risk or self.qualified(func) & sinks.NOT_SINKS:
            return False
        if isinstance(func, ast.Name):
            name = func.id
            return name != "print" and (name in self.vocab.extra_sinks or sinks.name_says_sink(name))
        if _is_logging(func):
            return False
        method = func.attr
        if method in sinks.PER_ITEM_PERSIST_METHODS:
            return True
        if method in {"update", "add"} or _callee_text(func) in PRINT_LIKE:
            return False
        return (
            method in sinks.METHOD_SINKS or method in self.vocab.extra_sinks or sinks.name_says_sink(method)
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
        if isinstance(func, ast.Name):
            name = func.id
            if (
                name in sinks.CHEAP_BUILTINS
                or name in sinks.CHEAP_NAMES
                or name.startswith(sinks.CHEAP_NAME_PREFIXES)
                or name[:1].isupper()
            ):
                return True
        elif isinstance(func, ast.Attribute):
            if func.attr in sinks.CHEAP_METHODS or func.attr[:1].isupper() or _is_logging(func):
                return True
        # every qualified name under a cheap prefix (``time.time``): needs them exactly
        if not any(q.startswith(sinks.CHEAP_QUALIFIED_PREFIXES) for q in names):
            return False
        exact = self.exact_qualified(func)
        return bool(exact) and all(q.startswith(sinks.CHEAP_QUALIFIED_PREFIXES) for q in exact or ())

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
            return self.prefix_risk or bool(self.qualified(value.func) & _ACCUMULATOR_CALLS)
        return False

    def surely_tiny(self, iterable: ast.AST) -> bool:
        """A subset of ``matcher._tiny_literal``: a literal of at most five plain constants."""
        if not isinstance(iterable, (ast.Tuple, ast.List, ast.Set)) or len(iterable.elts) > _TINY:
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
                    site = self._loop_may_match(block, index, stmt, link)
                elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                    site = self._comprehension_may_match(block, index, stmt, link)
                else:
                    continue
                if site and not self._generator(function):
                    yield stmt  # matcher._scan_block: nothing in a generator function is a site

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
        self, block: Sequence[ast.stmt], index: int, loop: _Loop, link: Optional[_Link]
    ) -> bool:
        is_for = isinstance(loop, _FOR)
        following = block[index + 1] if is_for and index + 1 < len(block) else None
        ack = following is not None and _ack_shaped(following)
        body = _body(loop.body)
        if not body.grown and not body.writes and not ack:
            return False  # nothing to collect, write or acknowledge
        # the shapes, most selective first; each one still needs the checks below
        acks = ack and following is not None and self._acks(following, body.grown)
        collects = commits = False
        if not acks:
            after = list(_after(block, index, link))
            accumulators = {name for name in body.grown if self._accumulator_before(name, block, index, link)}
            collects = bool(accumulators) and self._sink_after(after, accumulators)
            commits = (
                not collects and body.writes and is_for and any(self._statement(s).commits for s in after)
            )
            if not collects and not commits:
                return False
            if not self.may_be_job(body.pruned_calls, body.awaits):
                return False  # not work.is_job (CKP001, CKP002)
        if is_for and self.surely_tiny(loop.iter):  # type: ignore[union-attr]
            return False  # matcher._tiny_literal
        if any(self.surely_persists(call) for call in body.pruned_calls):
            return False  # flow.persists_per_item
        if not body.awaits and all(self.surely_cheap(call) for call in body.pruned_calls):
            return False  # not work.does_work
        return True

    def _acks(self, stmt: ast.stmt, grown: Set[str]) -> bool:
        """A superset of ``external.find_queue_ack`` finding an ack in ``stmt``."""
        assert isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
        call = stmt.value
        name = callee_name(call.func)
        if name in BATCH_ACKS:
            return bool(names_in(call) & grown)
        if name == "basic_ack":
            return any(k.arg == "multiple" for k in call.keywords)
        return name == "commit" and isinstance(call.func, ast.Attribute) and KAFKA_TEXT in self.source

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
        return self._sink_after(list(_after(block, index, link)), {target.id})

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


_TINY = 5
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
    facts = _Body([], [], False, set(), False)
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
                if func.attr in GROWING:
                    _add_owner(facts.grown, func.value)
                if func.attr in WRITE_METHODS:
                    facts.writes = True
        elif isinstance(node, ast.Await):
            facts.awaits = facts.awaits or not pruned
        elif isinstance(node, ast.AugAssign):
            _add_owner(facts.grown, node.target)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript):
                    _add_owner(facts.grown, target.value)
                else:
                    name = target_name(target)
                    if name and isinstance(node.value, ast.BinOp) and target_name(node.value.left) == name:
                        facts.grown.add(name)
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


def _ack_shaped(stmt: ast.stmt) -> bool:
    """A call statement named like an ack or a commit (``external.find_queue_ack``)."""
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and callee_name(stmt.value.func) in BATCH_ACKS | {"basic_ack", "commit"}
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
    while link is not None:
        yield from link.block[link.index + 1 :]
        link = link.parent


def _single_value(stmt: ast.stmt, name: str) -> Optional[ast.AST]:
    """The value of ``name = value`` / ``name: T = value`` (``cstutil.single_assignment``)."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and target_name(stmt.targets[0]) == name:
        return stmt.value
    if isinstance(stmt, ast.AnnAssign) and stmt.value is not None and target_name(stmt.target) == name:
        return stmt.value
    return None


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
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = target_name(node.func.value)
                if owner and node.func.attr in DERIVING and _call_uses(node, tracked):
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
        if receiver.attr in _LOGGING_ATTRS:
            return True
        receiver = receiver.value
    if isinstance(receiver, ast.Name):
        if receiver.id in sinks.LOGGER_NAMES:
            return True
        return receiver.id == "self" and func.attr in _SELF_LOGGING
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
