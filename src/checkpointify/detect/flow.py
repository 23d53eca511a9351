"""Where the collected data goes after the loop: derived values, the sink, the completion point.

After the loop the accumulators are *tracked*; a statement that builds a value from a
tracked name (``payload = {"results": results}``, ``df["col"] = acc``, ``with open(...) as
f`` wrapping it) tracks that name too. The first call that persists (see
:mod:`checkpointify.catalogue`) a tracked value is the sink.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Set, Tuple

import libcst as cst

from checkpointify import catalogue
from checkpointify.detect.analysis import Chain, FileAnalysis
from checkpointify.detect.cstutil import (
    assigned_names,
    body_of,
    callee_text,
    is_std_stream,
    names_in,
    single_assignment,
    statement_blocks,
    target_name,
    walk,
)
from checkpointify.detect.work import is_cheap_call, is_logging


@dataclass
class Sink:
    call: cst.Call
    description: str
    statement: cst.BaseStatement  # the block-level statement holding the call
    chain: Chain  # the block holding `statement`
    path: List[cst.CSTNode] = field(default_factory=list)  # statements from `statement` down to the call
    #: a bulk database write (``cur.executemany(sql, rows)``) made durable by a later ``commit()``:
    #: ``statement`` is then the commit's, and this the write's text
    bulk_write: str = ""


def describe_sink(a: FileAnalysis, call: cst.Call) -> Optional[str]:
    """A readable name for the sink when ``call`` persists something, else None."""
    func = call.func
    qualified = a.qualified(func)
    if qualified & catalogue.NOT_SINKS:
        return None
    known = qualified & (catalogue.QUALIFIED_SINKS | a.extra_sinks)
    if known:
        return sorted(known)[0]
    if isinstance(func, cst.Name):
        if func.value == "print":
            to_file = any(
                arg.keyword is not None and arg.keyword.value == "file" and not is_std_stream(arg.value)
                for arg in call.args
            )
            return "print(file=...)" if to_file else None
        if func.value in a.extra_sinks or catalogue.name_says_sink(func.value):
            return func.value
        return None
    if isinstance(func, cst.Attribute):
        method = func.attr.value
        if (
            is_logging(func)
            or callee_text(func) in catalogue.PRINT_LIKE_CALLS
            or method in catalogue.NEVER_SINK_METHODS
        ):
            return None  # self.stdout.write(...), sys.stdout.buffer.write(...), logger.info(...)
        if method in catalogue.METHOD_SINKS or method in a.extra_sinks or catalogue.name_says_sink(method):
            text = callee_text(func)
            return text if len(text) <= 60 else "...%s" % text[-57:]
    return None


def persists_per_item(a: FileAnalysis, body: cst.CSTNode) -> bool:
    """The body already saves, writes, commits, flushes or acks (``f.write``, ``conn.commit()``)."""
    for node in walk(body):
        if not isinstance(node, cst.Call):
            continue
        if describe_sink(a, node) is not None:
            return True
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in catalogue.PER_ITEM_PERSIST_METHODS:
            if not (a.qualified(func) & catalogue.NOT_SINKS) and not is_logging(func):
                return True
        if a.qualified(func) & a.checkpoint_calls or callee_text(func) in a.checkpoint_calls:
            return True  # a configured "already checkpointed" call
    return False


def call_uses(call: cst.Call, tracked: Set[str]) -> bool:
    """The call's arguments, or the receiver of a method call, read a tracked name."""
    used: Set[str] = set()
    for arg in call.args:
        used |= names_in(arg.value)
    if isinstance(call.func, cst.Attribute):
        used |= names_in(call.func.value)
    return bool(used & tracked)


def find_sink(a: FileAnalysis, chain: Chain, index: int, accumulators: Set[str]) -> Optional[Sink]:
    """The first statement after ``chain.body[index]`` (then after enclosing ``with`` blocks) that saves."""
    tracked = set(accumulators)
    for level, start in chain.levels(index):
        for position, stmt in enumerate(level.body[start:], start):
            bulk = _bulk_write_committed(stmt, level.body[position + 1 :], tracked)
            if bulk is not None:
                write, commit, committer = bulk
                text = callee_text(write.func)
                description = "%s() + %s" % (text, callee_text(committer.func))
                return Sink(write, description, commit, level, [commit], bulk_write=text)
            found = _search(a, stmt, set(tracked), [stmt])
            if found is not None:
                call, path = found
                return Sink(call, describe_sink(a, call) or callee_text(call.func), stmt, level, path)
            assigned = single_assignment(stmt)
            if assigned and assigned[0] in tracked and not (names_in(assigned[1]) & tracked):
                # results = [] again: the collected value is dropped, unless a name derived
                # from it still holds it (df["score"] = results; results = []; ... df.to_csv())
                tracked.discard(assigned[0])
                if not tracked:
                    return None
                continue
            track_derived(a, stmt, tracked)
    return None


def _bulk_write_committed(
    stmt: cst.BaseStatement, rest: Sequence[cst.BaseStatement], tracked: Set[str]
) -> Optional[Tuple[cst.Call, cst.BaseStatement, cst.Call]]:
    """``cur.executemany(sql, rows)`` (a ``catalogue.DB_BULK_WRITE_METHODS`` call on a line of
    its own, reading a tracked name) and the first later ``x.commit()`` line of the same
    block: the rows are saved when the commit returns. Without a commit in the block the
    write is not taken for the save (it may be rolled back)."""
    call = _statement_call(stmt.body[0]) if isinstance(stmt, cst.SimpleStatementLine) and stmt.body else None
    if (
        call is None
        or not isinstance(call.func, cst.Attribute)
        or call.func.attr.value not in catalogue.DB_BULK_WRITE_METHODS
        or not any(names_in(arg.value) & tracked for arg in call.args)
    ):
        return None
    for later in rest:
        commit = (
            _statement_call(later.body[0])
            if isinstance(later, cst.SimpleStatementLine) and later.body
            else None
        )
        if (
            commit is not None
            and isinstance(commit.func, cst.Attribute)
            and commit.func.attr.value == "commit"
        ):
            return call, later, commit
    return None


def _not_data(a: FileAnalysis, call: cst.Call) -> bool:
    qualified = a.qualified(call.func)
    if qualified & a.checkpoint_calls:
        # ckpt = checkpoint(id, tasks, ...)   (our own rewrite: the log of a loop, not data built from
        # `tasks`; tracking through it would flag the loop that built `tasks` on a second pass)
        return True
    return any(q.startswith(catalogue.NOT_DERIVING_PREFIXES) for q in qualified)


def track_derived(a: FileAnalysis, stmt: cst.CSTNode, tracked: Set[str]) -> None:
    """``payload = {"results": results}``, ``df["col"] = acc``: names now holding tracked data."""
    for node in walk(stmt):
        if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call) and _not_data(a, node.value):
            continue  # p = subprocess.Popen(cmd): a process, not data built from cmd
        if isinstance(node, cst.Assign) and names_in(node.value) & tracked:
            for t in node.targets:
                target: cst.BaseExpression = t.target
                while isinstance(target, (cst.Subscript, cst.Attribute)) and target_name(target) is None:
                    target = target.value
                tracked |= assigned_names(target)
        elif isinstance(node, cst.AugAssign) and names_in(node.value) & tracked:
            tracked |= assigned_names(node.target)
        elif isinstance(node, cst.WithItem) and node.asname is not None and names_in(node.item) & tracked:
            tracked |= assigned_names(node.asname.name)
        elif isinstance(node, cst.For) and names_in(node.iter) & tracked and _only_moves(a, node):
            # for a in answers: p["text"] = a["text"]; out.append(p)   (out now holds the answers;
            # a loop that works per item, `for t in tasks: out.append(score(t))`, is a job of its own)
            tracked |= assigned_names(node.target)
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            owner = target_name(node.func.value)
            if owner and node.func.attr.value in catalogue.DERIVING_METHODS and call_uses(node, tracked):
                tracked.add(owner)  # summary.update(results=results)


def _search(
    a: FileAnalysis, node: cst.CSTNode, tracked: Set[str], path: List[cst.CSTNode]
) -> Optional[Tuple[cst.Call, List[cst.CSTNode]]]:
    """A sink call in ``node`` (statements in order, depth first) and the statement path to it."""
    if isinstance(node, cst.SimpleStatementLine):
        for small in node.body:
            call = _sink_call(a, small, tracked)
            if call is not None:
                return call, path
        track_derived(a, node, tracked)
        return None
    if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
        return None
    if isinstance(node, cst.For) and names_in(node.iter) & tracked and _only_writes(a, node):
        tracked |= assigned_names(node.target)  # for r in results: f.write(json.dumps(r) + "\n")
    if isinstance(node, cst.With):
        for item in node.items:
            call = _sink_call(a, item, tracked)
            if call is not None:
                return call, path
    if isinstance(node, cst.BaseCompoundStatement):
        for block in statement_blocks(node):
            for child in block:
                found = _search(a, child, tracked, path + [child])
                if found is not None:
                    return found
    return None


def _only_moves(a: FileAnalysis, loop: cst.For) -> bool:
    """A loop that only copies or reshapes what it iterates: every call in it is cheap."""
    return all(is_cheap_call(a, node, set()) for node in walk(loop.body) if isinstance(node, cst.Call))


def _only_writes(a: FileAnalysis, loop: cst.For) -> bool:
    """A loop that only writes out what it iterates (the JSONL idiom): every call in its
    body persists or is cheap formatting. A loop that works per item and writes as it goes
    (``for q in questions: out.write(generate(q))``) is a job of its own, not the save."""
    return all(
        describe_sink(a, node) is not None or is_cheap_call(a, node, set())
        for node in walk(loop.body)
        if isinstance(node, cst.Call)
    )


def _sink_call(a: FileAnalysis, node: cst.CSTNode, tracked: Set[str]) -> Optional[cst.Call]:
    statement_call = _statement_call(node)
    for sub in walk(node):
        if isinstance(sub, cst.Call) and describe_sink(a, sub) is not None and call_uses(sub, tracked):
            if sub.args or sub is statement_call:
                return sub
            # 'before': repo.dump()   (no arguments and the result is used: it returns the data)
    return None


def _statement_call(node: cst.CSTNode) -> Optional[cst.Call]:
    """The call a small statement consists of (``save(x)`` or ``await save(x)``), if any."""
    value = node.value if isinstance(node, cst.Expr) else None
    if isinstance(value, cst.Await):
        value = value.expression
    return value if isinstance(value, cst.Call) else None


def statements_between(chain: Chain, index: int, sink: Sink) -> Iterator[cst.BaseStatement]:
    """Block-level statements after the loop and before the sink's statement."""
    for stmt in chain.after(index):
        if stmt is sink.statement:
            return
        yield stmt


def completion_anchor(sink: Sink) -> cst.BaseStatement:
    """The statement after which ``complete()`` goes: the save must have returned and its file closed.

    From the block-level statement holding the sink, go down through ``try`` bodies (so a
    save whose failure is caught keeps the checkpoint), and up out of a ``with`` whose
    resources the sink writes to (so the file is closed first).
    """
    anchor: cst.CSTNode = sink.statement
    for parent, child in zip(sink.path, sink.path[1:]):
        if isinstance(parent, (cst.Try, cst.TryStar)) and child in body_of(parent.body):
            anchor = child
            continue
        break
    chain = sink.chain
    if anchor is sink.statement:
        while (
            isinstance(chain.owner, cst.With)
            and chain.parent is not None
            and _writes_to(chain.owner, sink.call)
        ):
            anchor = chain.owner
            chain = chain.parent
    assert isinstance(anchor, cst.BaseStatement)
    return anchor


def _writes_to(with_node: cst.With, call: cst.Call) -> bool:
    bound: Set[str] = set()
    for item in with_node.items:
        if item.asname is not None:
            bound |= assigned_names(item.asname.name)
    return bool(bound & names_in(call))
