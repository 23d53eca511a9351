"""Staged detection: cheap necessary conditions, so LibCST parses only files that can match.

LibCST with scope and qualified-name metadata, plus the matcher, costs about half a
millisecond per line; almost no file of a real repository holds a collect-then-save loop.
Two stages in front of the matcher throw away the files that *cannot* hold a finding:

1. :func:`text_may_match`, regular expressions over the bytes (gigabytes per second);
2. :func:`tree_may_match`, a walk of the standard ``ast`` tree (``ast.parse`` is about
   twenty times faster than LibCST plus metadata), run only on what stage 1 lets through.

Neither stage is a heuristic. Each condition is implied by what :mod:`checkpointify.detect.matcher`
(and ``flow``, ``external``, ``work``, which it calls) requires of a finding, so
a rejected file provably has no finding; a file let through may still have none, and the
matcher decides. When a stage cannot decide (``ast`` cannot parse the file, an unexpected
construct, a recursion limit), the file goes on to LibCST, which reports what it always
reported.

**Keep this module in step with the matcher.** A new sink, growth method, ack call, cheap
or heavy call or site shape in ``matcher``/``flow``/``external``/``work`` must be
admitted here too, and :data:`PREFILTER_VERSION` bumped. Words live in one place,
:mod:`checkpointify.catalogue`, which both sides read (``tests/test_layers.py`` fails when
a stage keeps a list of its own); shapes have an ``ast`` twin here. ``tests/prefilter/test_prefilter.py`` runs
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
  from it (``flow.find_sink``). A frame written through an indexer in the body
  (``df.at[k] = v``, ``df.loc[...] = ...``, ``iat``, ``iloc``) counts as an accumulator
  whatever it is bound to (its writes are journaled).
* CKP001 ``collect-comprehension``: ``name = [...]``/``{...}`` comprehension whose per-item
  parts are a job, and such a sink after it.
* CKP001 ``helper-return``: such a loop or comprehension in a function (not local to another)
  whose ``return`` reads the accumulator, where that name is only ever *called*, never under a
  comprehension or a lambda, and each call's statement saves the result or keeps it
  (``x = f()``, ``xs.append(f())``) for a sink later in the caller (not out of a loop, unless
  it runs over a handful of settings).
* CKP001 ``collect-parallel``: ``name = <a pool's map on a name bound to a pool constructor,
  joblib's Parallel(...)(comprehension), gather(*coros), or [h.result() for h in handles] in a
  module that submits or creates tasks>`` (through ``await``, ``list()``, ``tqdm()``), or a
  ``for`` loop over such a map, over ``as_completed``, or waiting on the handles it iterates;
  and a sink of the results after it.
* CKP001 ``row-apply``: ``target = receiver.apply/progress_apply/map(func, ...)`` whose
  ``func`` (a lambda's calls, or a name or attribute called) is heavy, and a sink of the
  target's root name after it.
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
with a save verb (``catalogue.name_says_sink``), or is ``print`` with ``file=``. That name is an
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

from typing import FrozenSet, Optional, Tuple

from checkpointify import catalogue
from checkpointify.prefilter.text import Vocabulary, text_may_match, text_stage, utf8, vocabulary
from checkpointify.prefilter.tree import _Module, parse, sites, tree_may_match

#: bump when a stage changes what it lets through (part of the cache key)
PREFILTER_VERSION = 10  # 2: helper-return, block structure; 3: collect-parallel; 4: row-apply, frames;
# 5: collect-async-shared; 6: None-grown accumulators, bulk database writes, copy loops;
# 7: tighter helper-return and parallel twins; 8: item writes into a loaded list;
# 9: its twin asks for the list in the iterable and a mutating method; 10: frames grown by pd.concat


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


def has_loop_keyword(source: bytes) -> bool:
    """The reference (unstaged) path's only test: every site is a ``for``/``while`` loop, a
    comprehension, a row-wise ``apply``/``map``, or a parallel site whose pool call or ``gather``
    is named by ``catalogue.PARALLEL_TEXT_WORDS``, so a file without any of these words holds no
    finding."""
    return (
        b"for" in source
        or b"while" in source
        or b"apply" in source
        or b"map" in source
        or any(w in source for w in catalogue.PARALLEL_TEXT_WORDS)
    )


def may_match(source: bytes, encoding: str, extra_sinks: Tuple[str, ...]) -> bool:
    """Both stages: False only when the file provably holds no finding."""
    return candidate_lines(source, encoding, extra_sinks) != frozenset()


__all__ = [
    "PREFILTER_VERSION",
    "Vocabulary",
    "candidate_lines",
    "has_loop_keyword",
    "may_match",
    "parse",
    "sites",
    "text_may_match",
    "text_stage",
    "tree_may_match",
    "utf8",
    "vocabulary",
]
