"""Loops whose effect lives outside the program: a database commit or a queue ack after the loop.

CKP002: rows are written per item (``cur.execute``, ``session.add``) and committed once
after the loop. The rewrite commits each unit with its progress record.

CKP003: messages are processed per item and acknowledged together after the loop
(``delete_message_batch``, ``acknowledge``, ``basic_ack(multiple=True)``, a Kafka
``commit()``). The rewrite acknowledges each message as soon as its unit completes; the
broker is the progress marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Set

import libcst as cst

from checkpointify import catalogue
from checkpointify.detect.analysis import Chain, FileAnalysis
from checkpointify.detect.cstutil import (
    assigned_names,
    bound_in,
    callee_text,
    code_of,
    escapes_block,
    loads,
    names_in,
    single_assignment,
    target_name,
    walk,
)

#: connect functions of DB-API drivers: the runtime stores progress in the same transaction
DBAPI_CONNECT = frozenset(
    {"sqlite3.connect", "psycopg2.connect", "psycopg.connect", "pymysql.connect", "MySQLdb.connect"}
    | {"mysql.connector.connect", "pyodbc.connect", "oracledb.connect", "cx_Oracle.connect", "duckdb.connect"}
)
#: SQLAlchemy sessions: the runtime stores progress through session.execute(text(...))
SQLALCHEMY_SESSIONS = frozenset({"sqlalchemy.orm.Session", "sqlalchemy.orm.session.Session"})
_HARMLESS_SQL = re.compile(
    r"^\s*(SELECT|PRAGMA|BEGIN|CREATE\s+(TABLE|INDEX|UNIQUE\s+INDEX)\s+IF\s+NOT\s+EXISTS)\b", re.I
)


@dataclass
class DbCommit:
    connection: str  # the committed object's code (`conn`, `self.conn`, `session`)
    statement: cst.BaseStatement  # the block-level statement holding the commit
    call: cst.Call
    chain: Chain
    transactional: Optional[bool]  # True: DB-API/SQLAlchemy known statically; None: decided at run time
    writes_before: Optional[str]  # a statement before the loop that changes the database, as code
    handles: Set[str]  # the connection and the cursors the loop writes through


def find_db_commit(
    a: FileAnalysis, chain: Chain, index: int, loop: cst.For, before: Sequence[cst.BaseStatement]
) -> Optional[DbCommit]:
    """``for ...: cur.execute(...)`` followed by ``conn.commit()`` (or ``session.add`` / ``session.commit()``)."""
    writers = _writers(loop.body)
    if not writers:
        return None
    cursors = _cursor_owners(before)  # cur = conn.cursor()  ->  {"cur": "conn"}
    connections = {cursors.get(w, w) for w in writers}
    for level, start in chain.levels(index):
        for stmt in level.body[start:]:
            call = _commit_call(stmt, connections)
            if call is not None:
                assert isinstance(call.func, cst.Attribute)
                connection = code_of(call.func.value).strip()
                handles = {connection} | {c for c, o in cursors.items() if o == connection} | writers
                return DbCommit(
                    connection=connection,
                    statement=stmt,
                    call=call,
                    chain=level,
                    transactional=_transactional(a, connection, before),
                    writes_before=_writes_before(before, handles),
                    handles=handles,
                )
            if escapes_block(stmt) or any(isinstance(n, (cst.Return, cst.Raise)) for n in walk(stmt)):
                return None
    return None


def _writers(body: cst.CSTNode) -> Set[str]:
    """Objects the body writes through: ``cur`` in ``cur.execute(...)``, ``session`` in ``session.add(x)``."""
    found: Set[str] = set()
    for node in walk(body):
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in catalogue.DB_WRITE_METHODS
        ):
            owner = target_name(node.func.value)
            if owner is not None and node.args:
                found.add(owner)
    return found


def _cursor_owners(before: Sequence[cst.BaseStatement]) -> dict:  # type: ignore[type-arg]
    owners = {}
    for stmt in before:
        assigned = single_assignment(stmt)
        if assigned and isinstance(assigned[1], cst.Call) and isinstance(assigned[1].func, cst.Attribute):
            if assigned[1].func.attr.value == "cursor":
                owner = target_name(assigned[1].func.value)
                if owner:
                    owners[assigned[0]] = owner
    return owners


def _commit_call(stmt: cst.BaseStatement, connections: Set[str]) -> Optional[cst.Call]:
    """``conn.commit()`` as a statement of its own."""
    if (
        not isinstance(stmt, cst.SimpleStatementLine)
        or len(stmt.body) != 1
        or not isinstance(stmt.body[0], cst.Expr)
    ):
        return None
    call = stmt.body[0].value
    if (
        isinstance(call, cst.Call)
        and isinstance(call.func, cst.Attribute)
        and call.func.attr.value == "commit"
        and not call.args
        and target_name(call.func.value) in connections
    ):
        return call
    return None


def _transactional(a: FileAnalysis, connection: str, before: Sequence[cst.BaseStatement]) -> Optional[bool]:
    """True when ``connection`` is bound to a DB-API connect() or a SQLAlchemy Session before the loop."""
    for stmt in reversed(before):
        assigned = single_assignment(stmt)
        if assigned and assigned[0] == connection:
            value = assigned[1]
            if isinstance(value, cst.Call) and a.qualified(value.func) & (
                DBAPI_CONNECT | SQLALCHEMY_SESSIONS
            ):
                return True
            return None
        if isinstance(stmt, cst.With):
            for item in stmt.items:
                if item.asname is not None and connection in assigned_names(item.asname.name):
                    value = item.item
                    if isinstance(value, cst.Call) and a.qualified(value.func) & (
                        DBAPI_CONNECT | SQLALCHEMY_SESSIONS
                    ):
                        return True
    return None


def _writes_before(before: Sequence[cst.BaseStatement], objects: Set[str]) -> Optional[str]:
    """A statement before the loop that changes the database through ``objects`` (run again on resume)."""
    for stmt in before:
        for node in walk(stmt):
            if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)):
                continue
            if (
                node.func.attr.value not in catalogue.DB_WRITE_METHODS
                or target_name(node.func.value) not in objects
            ):
                continue
            first = node.args[0].value if node.args else None
            if isinstance(first, cst.SimpleString) and _HARMLESS_SQL.match(str(first.evaluated_value or "")):
                continue
            return code_of(node).strip().split("\n")[0]
    return None


# ------------------------------------------------------------------------------ queues


@dataclass
class QueueAck:
    statement: cst.BaseStatement  # the after-loop ack statement, removed by the rewrite
    call: cst.Call
    ack: str  # the per-unit ack callback's code
    grown: Optional[str] = None  # the accumulator whose per-unit additions the callback receives
    latest: Optional[str] = None  # the variable holding the latest delivery tag, acked when it changes
    problem: Optional[str] = None  # why no fix is offered


def find_queue_ack(
    a: FileAnalysis, chain: Chain, index: int, loop: cst.For, grown: Sequence[str]
) -> Optional[QueueAck]:
    """An ack of the whole batch right after the loop, in the same block."""
    after = chain.body[index + 1 : index + 2]
    if not after or not isinstance(after[0], cst.SimpleStatementLine) or len(after[0].body) != 1:
        return None
    small = after[0].body[0]
    if not isinstance(small, cst.Expr) or not isinstance(small.value, cst.Call):
        return None
    call = small.value
    shown = callee_text(call.func)
    method = call.func.attr.value if isinstance(call.func, cst.Attribute) else shown
    used = names_in(call)
    if method in catalogue.BATCH_ACK_METHODS:
        batch = [g for g in grown if g in used]
        if len(batch) != 1:
            return None
        return QueueAck(
            after[0], call, "lambda new: %s" % _replace_name(call, batch[0], "new"), grown=batch[0]
        )
    if method == catalogue.BASIC_ACK and any(_keyword(arg, "multiple") == "True" for arg in call.args):
        # channel.basic_ack(delivery_tag=last_tag, multiple=True): ack up to each new tag, once
        tag = next((arg.value for arg in call.args if _keyword(arg, "delivery_tag") is not None), None)
        if tag is None and call.args and call.args[0].keyword is None:
            tag = call.args[0].value
        if isinstance(tag, cst.Name) and tag.value in bound_in(loop.body):
            ack = "lambda tag: %s" % _replace_name(call, tag.value, "tag")
            return QueueAck(after[0], call, ack, latest=tag.value)
        return None
    if method == catalogue.KAFKA_COMMIT and not call.args and isinstance(call.func, cst.Attribute):
        owner = target_name(call.func.value)
        if owner is not None and _kafka_consumer(a, owner, chain.before(index)):
            return QueueAck(
                after[0],
                call,
                "",
                problem="a Kafka consumer's per-message commit depends on the client (error and partition-EOF "
                "messages must not be committed): commit each message's offset after processing it by hand",
            )
    return None


def _keyword(arg: cst.Arg, name: str) -> Optional[str]:
    """The code of a keyword argument's value when the keyword is ``name``."""
    if arg.keyword is not None and arg.keyword.value == name:
        return code_of(arg.value).strip()
    return None


def _replace_name(call: cst.Call, old: str, new: str) -> str:
    """The call's code with every *read* of ``old`` replaced by ``new`` (keywords untouched)."""
    reads = {id(n) for n in loads(call) if n.value == old}

    class _Rename(cst.CSTTransformer):
        def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
            return updated_node.with_changes(value=new) if id(original_node) in reads else updated_node

    renamed = call.visit(_Rename())
    assert isinstance(renamed, cst.Call)
    return code_of(renamed).strip()


def _kafka_consumer(a: FileAnalysis, name: str, before: List[cst.BaseStatement]) -> bool:
    for stmt in reversed(before):
        assigned = single_assignment(stmt)
        if assigned and assigned[0] == name:
            value = assigned[1]
            return isinstance(value, cst.Call) and bool(a.qualified(value.func) & catalogue.KAFKA_CONSUMERS)
    return False
