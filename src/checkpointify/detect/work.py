"""What counts as real per-item work: the difference between a job and a reshaping loop.

A loop is worth checkpointing only if its body does something a crash would make us redo.
Every call in the body is classified:

* **cheap**: reshaping data already in memory (string, container and path helpers,
  conversions such as ``to_bytes``, constructors such as ``Record(...)``, logging), see the
  catalogue in :mod:`checkpointify.catalogue`, or a function of the same module whose body
  makes only cheap calls;
* **heavy**: evidence of real work (network, processes, file reads, sleeps, awaits,
  database queries, model-style verbs such as ``predict``/``embed``/``fetch``), or a
  function of the same module whose body does heavy work;
* **opaque**: anything else (a function defined elsewhere, a method of some object).

A loop with heavy work is a job wherever it is. A loop whose work is only opaque is a job
in a *script* (a module with a ``__main__`` guard or top-level calls or loops), where
``results.append(expensive_operation(item))`` is the norm; in library modules (only
imports, definitions and constants) opaque calls are usually cheap helpers, so they do not
count: that is what keeps the precision on library code high.
"""

from __future__ import annotations

import enum
from typing import Optional, Sequence, Set

import libcst as cst

from checkpointify import catalogue
from checkpointify.detect.analysis import FileAnalysis
from checkpointify.detect.cstutil import PRUNE, target_name, walk


class Work(enum.IntEnum):
    NONE = 0
    OPAQUE = 1
    HEAVY = 2


HEAVY_VERBS = catalogue.HEAVY_VERBS
HEAVY_QUALIFIED = catalogue.HEAVY_QUALIFIED


def work_done(
    a: FileAnalysis, parts: Sequence[cst.CSTNode], accumulators: Set[str], cls: Optional[str]
) -> Work:
    """The strongest work any call (or ``await``) in ``parts`` does."""
    level = Work.NONE
    for part in parts:
        for node in walk(part):
            if isinstance(node, cst.Await):
                return Work.HEAVY
            if isinstance(node, cst.Call):
                level = max(level, call_work(a, node, accumulators, cls, 0))
                if level is Work.HEAVY:
                    return level
    return level


def is_job(a: FileAnalysis, parts: Sequence[cst.CSTNode], accumulators: Set[str], cls: Optional[str]) -> bool:
    """Heavy work anywhere, or opaque work in a script (see the module docstring)."""
    level = work_done(a, parts, accumulators, cls)
    return level is Work.HEAVY or (level is Work.OPAQUE and a.is_script)


def call_work(
    a: FileAnalysis, call: cst.Call, accumulators: Set[str], cls: Optional[str], depth: int
) -> Work:
    func = call.func
    qualified = a.qualified(func)
    if _grows_accumulator(call, accumulators):
        return Work.NONE
    if _heavy_qualified(qualified) or _runs_model(a, call):
        return Work.HEAVY
    if is_cheap_call(a, call, accumulators):
        return Work.NONE
    name = (
        func.value
        if isinstance(func, cst.Name)
        else func.attr.value
        if isinstance(func, cst.Attribute)
        else ""
    )
    local = _local_function(a, func, cls)
    if local is not None and depth < 3:
        body = _function_work(a, local, cls, depth + 1)
        if body is not Work.OPAQUE:
            # what the body does outranks what the name says: a same-module
            # `def classify_correctness(row): return set(row["a"]) == set(row["b"])` is cheap
            return body
    if name and HEAVY_VERBS.match(name):
        return Work.HEAVY
    return Work.OPAQUE


def _heavy_qualified(qualified: Set[str]) -> bool:
    """A qualified name under ``HEAVY_QUALIFIED`` (``json.load``, not ``json.loads``)."""
    return any(q.startswith(HEAVY_QUALIFIED) and q not in catalogue.IN_MEMORY_PARSES for q in qualified)


def _runs_model(a: FileAnalysis, call: cst.Call) -> bool:
    """``model.encode(batch)`` where ``model = SentenceTransformer(...)`` (``a.model_objects()``)."""
    func = call.func
    return (
        isinstance(func, cst.Attribute)
        and isinstance(func.value, cst.Name)
        and func.value.value in a.model_objects()
    )


def _local_function(
    a: FileAnalysis, func: cst.BaseExpression, cls: Optional[str]
) -> Optional[cst.FunctionDef]:
    """The definition of ``f(...)`` or ``self.m(...)`` when it is in this module."""
    if isinstance(func, cst.Name):
        return a.functions.get(func.value)
    if (
        isinstance(func, cst.Attribute)
        and isinstance(func.value, cst.Name)
        and func.value.value in {"self", "cls"}
    ):
        return a.functions.get("%s.%s" % (cls, func.attr.value)) if cls else None
    return None


def _function_work(a: FileAnalysis, fn: cst.FunctionDef, cls: Optional[str], depth: int) -> Work:
    key = id(fn)
    cached = a.work_memo.get(key)
    if isinstance(cached, Work):
        return cached
    a.work_memo[key] = Work.OPAQUE  # recursion guard
    level = Work.NONE
    for node in walk(fn.body, PRUNE):
        if isinstance(node, cst.Await):
            level = Work.HEAVY
            break
        if isinstance(node, cst.Call):
            level = max(level, call_work(a, node, set(), cls, depth))
            if level is Work.HEAVY:
                break
    a.work_memo[key] = level
    return level


def does_work(a: FileAnalysis, parts: Sequence[cst.CSTNode], accumulators: Set[str]) -> bool:
    """Whether any of ``parts`` awaits something or makes a call that is not cheap."""
    for part in parts:
        for node in walk(part):
            if isinstance(node, cst.Await):
                return True
            if isinstance(node, cst.Call) and not is_cheap_call(a, node, accumulators):
                return True
    return False


def _grows_accumulator(call: cst.Call, accumulators: Set[str]) -> bool:
    """``requests.append({...})`` on a list named ``requests``: growth, not the library of that name."""
    func = call.func
    return isinstance(func, cst.Attribute) and target_name(func.value) in accumulators


def is_cheap_call(a: FileAnalysis, call: cst.Call, accumulators: Set[str]) -> bool:
    func = call.func
    if _grows_accumulator(call, accumulators):
        return True  # the call's own arguments are walked separately
    qualified = a.qualified(func)
    if qualified & catalogue.IN_MEMORY_PARSES:
        return True  # json.loads(line): parsing a string, not reading a file
    if _heavy_qualified(qualified) or _runs_model(a, call):
        return False  # requests.get(url) is not dict.get; model.encode(batch) is not str.encode
    if isinstance(func, cst.Name):
        name = func.value
        if (
            name in catalogue.CHEAP_BUILTINS
            or name in catalogue.CHEAP_NAMES
            or name.startswith(catalogue.CHEAP_NAME_PREFIXES)
        ):
            return True
        if name[:1].isupper():
            return True  # Record(...), datetime(...): building a value
    elif isinstance(func, cst.Attribute):
        method = func.attr.value
        owner = target_name(func.value)
        if owner in accumulators or method in catalogue.CHEAP_METHODS or method[:1].isupper():
            return True  # acc.append(...), text.strip(), pd.DataFrame(...)
        if is_logging(func):
            return True
    return bool(qualified) and all(q.startswith(catalogue.CHEAP_QUALIFIED_PREFIXES) for q in qualified)


def is_logging(func: cst.Attribute) -> bool:
    """``logger.info``, ``display.warning``, ``self.stdout.write``, ``sys.stderr.write``."""
    receiver = func.value
    while isinstance(receiver, cst.Attribute):
        if receiver.attr.value in catalogue.LOGGING_RECEIVERS:
            return True
        receiver = receiver.value
    if isinstance(receiver, cst.Name):
        if receiver.value in catalogue.LOGGER_NAMES:
            return True
        return receiver.value == "self" and func.attr.value in catalogue.SELF_LOGGING_METHODS
    return False


def only_reads_local_files(a: FileAnalysis, parts: Sequence[cst.CSTNode], accumulators: Set[str]) -> bool:
    """Whether every call in ``parts`` that is not cheap reads a local file (and one does).

    ``with open(path) as f: rows.append(json.load(f))``: re-reading local files is what a
    re-run does anyway, in about the time it takes to read them, so such a loop is not a
    job worth a checkpoint, even though ``open`` and ``json.load`` count as work elsewhere.
    ``f.read()`` counts only on a handle the same parts open (``resp.read()`` may be a
    download).
    """
    handles: Set[str] = set()
    reads = 0
    for part in parts:
        for node in walk(part):
            if isinstance(node, cst.WithItem) and node.asname is not None and _opens(a, node.item):
                handles |= {n for n in [target_name(node.asname.name)] if n}
            elif isinstance(node, cst.Assign) and _opens(a, node.value):
                handles |= {n for t in node.targets for n in [target_name(t.target)] if n}
    for part in parts:
        for node in walk(part):
            if isinstance(node, cst.Await):
                return False
            if not isinstance(node, cst.Call):
                continue
            if a.qualified(node.func) & catalogue.LOCAL_READ_QUALIFIED or _reads_handle(node, handles):
                reads += 1
            elif not is_cheap_call(a, node, accumulators):
                return False
    return reads > 0


def _opens(a: FileAnalysis, value: Optional[cst.BaseExpression]) -> bool:
    return isinstance(value, cst.Call) and "builtins.open" in a.qualified(value.func)


def _reads_handle(call: cst.Call, handles: Set[str]) -> bool:
    func = call.func
    if not isinstance(func, cst.Attribute):
        return False
    method = func.attr.value
    if method in catalogue.PATH_READ_METHODS:
        return True
    return method in catalogue.HANDLE_READ_METHODS and target_name(func.value) in handles
