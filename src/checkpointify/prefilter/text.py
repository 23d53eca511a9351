"""Stage 1: regular expressions over the bytes (see :mod:`checkpointify.prefilter`)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import (
    Any,
    Dict,
    FrozenSet,
    Iterable,
    Optional,
    Tuple,
)

from checkpointify import catalogue

_SAVE_VERBS = "|".join("[%s%s]%s" % (v[0], v[0].upper(), v[1:]) for v in catalogue.SINK_VERBS)


def _last(name: str) -> str:
    return name.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Vocabulary:
    """The names the stages look for under one configuration (extra sinks included).

    ``names`` finds a sink, ack or commit name followed by a call, a subscript or ``as``.
    Only a name of ``qualified_lasts`` (the last part of a qualified or extra sink:
    ``json.dump`` -> ``dump``) counts in the last two forms: ``flow.describe_sink`` knows it
    through a qualified name, which can come through an import alias
    (``from numpy import save as sv; sv(...)``) or a subscripted callee. A sink method
    (``to_csv``) or an ack is known by the callee's own name, so it must be called.
    ``verbs`` finds a called name that starts with a save verb (``catalogue.name_says_sink``).
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
    + b"|".join(n.encode() for n in sorted(catalogue.LOGGER_NAMES))
    + rb")[ \t]*\.[ \t]*\Z"
)
#: ``tqdm.write(...)`` (catalogue.PRINT_LIKE_CALLS; pbar and console are logger names already)
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
# a parallel site (detect/parallel.py) may have no loop keyword: `rows = list(pool.map(f, xs))`
_PARALLEL_WORDS = _words([w.decode() for w in catalogue.PARALLEL_TEXT_WORDS])
_ROW_APPLY = _words(sorted(catalogue.ROW_APPLY_METHODS), _CALL)
_COMMIT = _words(["commit"], _CALL)
_WRITES = _words(catalogue.DB_WRITE_METHODS, _CALL)
_PRINT = _words(["print"], _CALL)
_FILE = _words(["file"])


@functools.lru_cache(maxsize=16)
def vocabulary(extra_sinks: Tuple[str, ...] = ()) -> Vocabulary:
    """The vocabulary for ``Options.extra_sinks`` (built once per process)."""
    extra = {_last(e) for e in extra_sinks if e}
    lasts = {_last(q) for q in catalogue.QUALIFIED_SINKS} | extra
    names = set(catalogue.METHOD_SINKS) | lasts
    searched = {n for n in names | catalogue.BATCH_ACK_METHODS | {catalogue.BASIC_ACK} if n.isascii()}
    name_pattern = re.compile(rb"(?:" + _trie(searched) + rb")(?![A-Za-z0-9_])" + _SUFFIX)
    verbs = [v for verb in catalogue.SINK_VERBS for v in (verb, verb[0].upper() + verb[1:])]
    # catalogue.name_says_sink: the verb, then the end of the name or [_0-9A-Z] and the rest of it
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
    (``work.is_logging``), or is ``tqdm.write`` (``catalogue.PRINT_LIKE_CALLS``): ``flow.describe_sink``
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
    if (
        _LOOP_KEYWORD.search(source) is None
        and _PARALLEL_WORDS.search(source) is None
        and _ROW_APPLY.search(source) is None
    ):
        return False  # every site is a loop, a comprehension, a parallel site or a row-wise apply
    if _found(vocab.names, source, _IDENTIFIER_BYTES, vocab):
        return True
    # a verb may follow underscores (`_save(`): only a letter or digit before it rules it out
    if _found(vocab.verbs, source, _ALNUM_BYTES, vocab):
        return True
    if vocab.other is not None and vocab.other.search(source) is not None:
        return True
    if _COMMIT.search(source) is not None and (
        catalogue.KAFKA_TEXT in source or _WRITES.search(source) is not None
    ):
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
