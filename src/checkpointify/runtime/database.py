"""``transaction=conn``: the loop's records in the connection's own database (:class:`DatabaseStore`).

Imported only when a checkpoint has ``transaction=``."""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
import time
from pathlib import Path

from .errors import (
    CheckpointError,
    CheckpointLockedError,
    CheckpointWriteError,
    CorruptCheckpointError,
    UntrustedCheckpointError,
    _describe_connection,
)
from .frames import _header_frame, _Scan, _scan
from .lite import TYPE_CHECKING
from .settings import _crash, _hostname

if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

    from .lock import _Lock

# ``checkpoint(..., transaction=conn)`` (CKP002: rows written per item, one commit after
# the loop) keeps the loop's records in the connection's own database, in the transaction
# that holds the units' writes, and commits it per unit (or per batch of cheap units): a
# unit's rows and its record become durable together or not at all, so a re-run skips
# exactly the committed units. The table holds the same frames as a log file, one a row.

_TABLE = "checkpointify_log"
_HEADER_SEQ = -1  # the row holding the header frame
_OPEN_SEQ = -2  # the "open transaction" marker (see _Database)
_SAVEPOINT = "checkpointify_record"  # taken before each insert of ours (see _Database.insert)
_PARAMSTYLES = ("qmark", "numeric", "named", "format", "pyformat")
_PLACEHOLDER = re.compile(r":([a-z_]+)")


def _bind(sql: str, paramstyle: str, params: Dict[str, Any]) -> Tuple[str, Any]:
    """``sql`` written with ``:name`` placeholders, in the driver's ``paramstyle``."""
    if paramstyle == "named":
        return sql, params
    names = _PLACEHOLDER.findall(sql)
    if paramstyle == "qmark":
        text = _PLACEHOLDER.sub("?", sql)
    elif paramstyle == "numeric":
        numbers = iter(range(1, len(names) + 1))
        text = _PLACEHOLDER.sub(lambda _m: ":%d" % next(numbers), sql)
    else:  # format, pyformat (%s is valid in both)
        text = _PLACEHOLDER.sub("%s", sql)
    return text, tuple(params[name] for name in names)


def _dbapi_module(conn: Any) -> Any:
    """The DB-API 2 module of ``conn`` (the first module of its class, or of a base class,
    or a parent package of one, that declares a ``paramstyle``), or ``None``."""
    if not (callable(getattr(conn, "cursor", None)) and callable(getattr(conn, "commit", None))):
        return None
    for cls in type(conn).__mro__:
        parts = (getattr(cls, "__module__", "") or "").split(".")
        for n in range(1, len(parts) + 1):
            module = sys.modules.get(".".join(parts[:n]))
            if getattr(module, "paramstyle", None) in _PARAMSTYLES:
                return module
    return None


def _autocommits(conn: Any) -> bool:
    """Whether ``conn`` commits every statement by itself (then a unit's writes and its record
    cannot share a transaction): sqlite3 with ``isolation_level=None`` or ``autocommit=True``,
    ``conn.autocommit = True`` (psycopg, pyodbc, mysql-connector), PyMySQL's ``get_autocommit()``."""
    sqlite = sys.modules.get("sqlite3")
    if sqlite is not None and isinstance(conn, sqlite.Connection):
        mode = getattr(conn, "autocommit", -1)  # Python >= 3.12; -1 is LEGACY_TRANSACTION_CONTROL
        if mode is True or mode is False:
            return mode
        return conn.isolation_level is None
    flag = getattr(conn, "autocommit", None)
    if isinstance(flag, bool):
        return flag
    getter = getattr(conn, "get_autocommit", None)
    if callable(getter):
        try:
            return bool(getter())
        except Exception:
            return False
    return False


class _Database:
    """A loop's records in table ``checkpointify_log`` of the connection's own database.

    Columns: ``log_id`` (the log file's name without ``.ckpt``: loop id and key), ``seq``
    (the header is row -1; a record's row is the seq of its first unit) and ``record``
    (base64 of the frame a log file would hold, CRC included). The primary key
    ``(log_id, seq)`` is what keeps two processes from recording the same unit: the second
    insert fails, its unit is rolled back and :class:`CheckpointLockedError` raised.

    The *open marker* (row -2) is inserted with the first unit of every transaction the
    loop opens, and deleted just before the loop's own commit, so a transaction the loop
    commits never holds it. Found committed on restore, it means that someone else
    committed while a unit was in flight: the ``commit()`` after a loop that ended with
    ``break`` (or a commit after an exception), with a crash before ``complete()``. That
    unit's writes are durable but it has no record, so the re-run must not run it again:
    the loop ends there, as it did.
    """

    def __init__(self, conn: Any, kind: str, paramstyle: str, log_id: str, text: Any, conflict: Any) -> None:
        self.conn = conn
        self.kind = kind  # "dbapi" | "sqlalchemy"
        self.paramstyle = paramstyle
        self.log_id = log_id
        self._text = text  # sqlalchemy.text
        self._conflict = conflict  # the driver's IntegrityError (a class, or None)
        self._cursor: Any = None
        self.failed: Optional[str] = None
        self.closed = False

    @property
    def shown(self) -> str:
        return "table %s (log %s) of %s" % (_TABLE, self.log_id, _describe_connection(self.conn))

    def _run(self, sql: str, params: Dict[str, Any], fetch: bool) -> List[Any]:
        if self.kind == "sqlalchemy":
            result = self.conn.execute(self._text(sql), params)
            return list(result.fetchall()) if fetch else []
        if self._cursor is None:
            self._cursor = self.conn.cursor()
        statement, args = _bind(sql, self.paramstyle, params)
        self._cursor.execute(statement, args)
        return list(self._cursor.fetchall()) if fetch else []

    def run(self, what: str, sql: str, fetch: bool = False, **params: Any) -> List[Any]:
        """One statement of ours; a failure poisons the store and is raised as
        :class:`CheckpointWriteError` naming the table and what was being done."""
        self.check()
        try:
            return self._run(sql, params, fetch)
        except Exception as exc:
            self.failed = "cannot %s in %s: %s: %s" % (what, self.shown, type(exc).__name__, exc)
            raise CheckpointWriteError(self.failed) from exc

    def check(self) -> None:
        if self.failed is not None:
            raise CheckpointWriteError("checkpoint in %s failed earlier: %s" % (self.shown, self.failed))
        if self.closed:
            raise CheckpointError("checkpoint in %s was closed; it records no more units" % self.shown)

    def setup(self) -> None:
        """Create the table if it is missing, in the current transaction (nothing is committed;
        sqlite3 runs DDL outside a transaction when none is open, and MySQL commits on DDL)."""
        self.run(
            "create the checkpoint table",
            "CREATE TABLE IF NOT EXISTS %s (log_id VARCHAR(100) NOT NULL, seq BIGINT NOT NULL, "
            "record TEXT NOT NULL, PRIMARY KEY (log_id, seq))" % _TABLE,
        )

    def read(self) -> List[Tuple[int, str]]:
        rows = self.run(
            "read the records",
            "SELECT seq, record FROM %s WHERE log_id = :log_id ORDER BY seq" % _TABLE,
            fetch=True,
            log_id=self.log_id,
        )
        return [(int(seq), str(record)) for seq, record in rows]

    def insert(self, seq: int, frame: bytes, loop_id: str) -> None:
        """Add a row in the open transaction. A row that exists already (another process
        recorded this unit meanwhile, on another host: see :class:`DatabaseStore`) undoes
        only this insert (``ROLLBACK TO SAVEPOINT``): the unit's own writes stay in the open
        transaction, for the program's own commit, and :class:`CheckpointLockedError` is
        raised (the loop then runs on unchecked, as the original program would)."""
        self.check()
        params = {"log_id": self.log_id, "seq": seq, "record": base64.b64encode(frame).decode("ascii")}
        saved = self._savepoint("SAVEPOINT %s" % _SAVEPOINT)
        try:
            self._run(
                "INSERT INTO %s (log_id, seq, record) VALUES (:log_id, :seq, :record)" % _TABLE, params, False
            )
        except Exception as exc:
            if self._conflict is None or not isinstance(exc, self._conflict):
                self.failed = (
                    "cannot write a record in %s: %s: %s (a second process running the same loop on this "
                    "database fails this way too: it waits for the first one's lock, or finds the table "
                    "gone once that one completed; only one process at a time can run a loop)"
                    % (self.shown, type(exc).__name__, exc)
                )
                raise CheckpointWriteError(self.failed) from exc
            if seq == _HEADER_SEQ:
                what = "started the loop in this table first"
            elif seq == _OPEN_SEQ:
                what = "has a unit of it in flight"
            else:
                what = "recorded unit #%d first" % seq
            self.failed = "another process %s" % what
            kept = saved and self._savepoint("ROLLBACK TO SAVEPOINT %s" % _SAVEPOINT)
            if not kept:
                try:
                    self.conn.rollback()
                except Exception:
                    pass
            raise CheckpointLockedError(
                "%s: another process is running loop %r on the same database and %s. Only one process "
                "at a time can run a loop; %s (%s: %s)"
                % (
                    self.shown,
                    loop_id,
                    what,
                    "this process's open unit keeps its writes, which its own commit makes durable"
                    if kept
                    else "this process's open unit was rolled back (the database has no savepoints)",
                    type(exc).__name__,
                    exc,
                ),
                {},
            ) from exc

    def _savepoint(self, sql: str) -> bool:
        """Run a savepoint statement; ``False`` if the database refuses it. A savepoint is
        never released: releasing the outermost one commits in SQLite when it opened the
        transaction, and the program's commit releases them all."""
        try:
            self._run(sql, {}, False)
        except Exception:
            return False
        return True

    def delete(self, seq: int) -> None:
        self.run(
            "delete a row",
            "DELETE FROM %s WHERE log_id = :log_id AND seq = :seq" % _TABLE,
            log_id=self.log_id,
            seq=seq,
        )

    def delete_all(self) -> None:
        self.run("delete the records", "DELETE FROM %s WHERE log_id = :log_id" % _TABLE, log_id=self.log_id)

    def commit(self) -> None:
        """The connection's own commit: the user's writes and ours. Its failure (which may
        be the user's data: a deferred constraint) is raised as it is, and poisons the store."""
        self.check()
        try:
            self.conn.commit()
        except Exception as exc:
            self.failed = "the commit failed (%s: %s)" % (type(exc).__name__, exc)
            raise

    def remove(self) -> None:
        """Delete the loop's rows, drop the table if no other loop has rows in it, and commit."""
        self.delete_all()
        [(count,)] = self.run("count the records", "SELECT COUNT(*) FROM %s" % _TABLE, fetch=True)
        if not count:
            self.run("drop the empty checkpoint table", "DROP TABLE %s" % _TABLE)
        self.commit()
        self.close()

    def close(self) -> None:
        self.closed = True
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            try:
                cursor.close()
            except Exception:
                pass


def _database(conn: Any, log_id: str) -> Tuple[Optional[_Database], str]:
    """The store for ``transaction=conn``: a :class:`_Database` when ``conn`` can hold the
    records in its own transactions, else ``(None, why not)``: the records then go to the
    log file, each written after ``conn.commit()`` (at-least-once). Raises
    :class:`CheckpointError` for an object without ``commit()`` or an async session."""
    module = type(conn).__module__ or ""
    if module.startswith("sqlalchemy."):
        if module.startswith("sqlalchemy.ext.asyncio"):
            raise CheckpointError(
                "transaction= needs a synchronous SQLAlchemy Session or Connection; %s is asynchronous "
                "(its commit() must be awaited)" % _describe_connection(conn)
            )
        sqlalchemy = sys.modules.get("sqlalchemy")
        if (
            sqlalchemy is not None
            and callable(getattr(conn, "execute", None))
            and callable(getattr(conn, "commit", None))
        ):
            exc_module = sys.modules.get("sqlalchemy.exc")
            return (
                _Database(
                    conn,
                    "sqlalchemy",
                    "named",
                    log_id,
                    sqlalchemy.text,
                    getattr(exc_module, "IntegrityError", None),
                ),
                "",
            )
    dbapi = _dbapi_module(conn)
    if dbapi is not None:
        if _autocommits(conn):
            return (
                None,
                "it commits every statement by itself (autocommit), so no transaction can hold a unit",
            )
        return _Database(
            conn, "dbapi", dbapi.paramstyle, log_id, None, getattr(dbapi, "IntegrityError", None)
        ), ""
    if not callable(getattr(conn, "commit", None)):
        raise CheckpointError(
            "transaction= must be a DB-API connection, a SQLAlchemy Session or Connection, or an object with a "
            "commit() method; %s has no commit()" % _describe_connection(conn)
        )
    return None, "it is neither a DB-API connection nor a SQLAlchemy Session or Connection"


#: log path -> the store of this process that holds its lock (see DatabaseStore.open)
_HELD: "Dict[str, DatabaseStore]" = {}


class DatabaseStore:
    """The :class:`~.store.Store` of a ``transaction=`` loop whose connection holds the
    records: each unit's record is inserted in the transaction that holds its writes, and
    committed with them. No file and no lock: the transaction is the progress marker, and
    the table's primary key stops a second writer."""

    def __init__(
        self,
        db: _Database,
        path: Path,
        loop_id: str,
        header: Dict[str, Any],
        fault: Optional[Tuple[str, int]],
        default_dir: bool = False,
    ) -> None:
        self.db = db
        self.path = path  # what CorruptCheckpointError names: the log file it would be
        self.loop_id = loop_id
        self._header = header
        self._fault = fault
        self._header_written = False  # the database holds this log's header row
        self._marker = False  # the open marker is in the loop's open transaction (see _Database)
        self._default_dir = default_dir
        self._lock: Optional[_Lock] = None  # the log file's lock (see open())

    @property
    def where(self) -> str:
        return self.db.shown

    @property
    def closed(self) -> bool:
        return self.db.closed

    def open(self) -> None:
        """Take the lock a log file of this loop would have (``<name>.ckpt.lock`` in the
        checkpoint folder), then make the table. A second process of the same loop on this
        host then steps aside before it reads a row: rows committed by a process that is
        still running are not a run to resume. A folder where the lock cannot be made
        (read-only) is no reason to stop: the table's primary key still stops a second
        writer, at its first record."""
        self._take_lock()
        self.db.setup()

    def _take_lock(self) -> None:
        from .lock import _Lock, _lock_path
        from .trust import _make_folder

        key = os.path.abspath(str(self.path))
        older = _HELD.get(key)
        if older is not None and older._lock is not None:
            # another checkpoint of this loop in this process (a call retried after an
            # exception, or another thread): the lock guards against other processes only;
            # within one, the table's primary key decides, as before
            self._lock, older._lock = older._lock, None
            _HELD[key] = self
            return
        lock = _Lock(_lock_path(self.path))
        try:
            _make_folder(self.path.parent)
            lock.acquire(self.loop_id, self.path)
        except (OSError, UntrustedCheckpointError):
            return  # no lock here (a read-only or shared folder): the primary key still guards
        self._lock = lock
        _HELD[key] = self

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is None:
            return
        _HELD.pop(os.path.abspath(str(self.path)), None)
        lock.release()
        if self._default_dir:
            from .trust import _remove_folder

            _remove_folder(self.path.parent)  # only when no other loop's files are left

    def read(self) -> Tuple[bytes, _Scan, bool]:
        """The rows of this loop, and whether the open marker was found committed (the last
        run's loop ended at the next unit). A transaction is all or nothing, so there is no
        torn tail here: any frame that fails its checks is damage, and is raised."""
        db = self.db
        frames: List[bytes] = []
        ended_early = False
        for seq, text in db.read():
            if seq == _OPEN_SEQ:
                ended_early = True
                continue
            try:
                frames.append(base64.b64decode(text.encode("ascii"), validate=True))
            except (binascii.Error, ValueError, UnicodeError):
                frames.append(b"\0")  # fails the scan below
        data = b"".join(frames)
        scan = _scan(data)
        if scan.valid_end < scan.size:
            raise CorruptCheckpointError(
                "checkpoint %s is corrupt: the frame at byte %d of its rows fails its checksum (damage, or "
                "rows written by something else). Nothing was restored; %s"
                % (db.shown, scan.valid_end, self.how_to_start_over()),
                self.path,
                None,
            )
        self._header_written = bool(scan.frames)
        return data, scan, ended_early

    def resume(self, scan: _Scan) -> None:
        """Nothing to cut off: see :meth:`read`."""

    def check(self) -> None:
        self.db.check()

    def poison(self, message: str) -> None:
        self.db.failed = message

    def start_unit(self) -> None:
        """The first unit of a transaction opens it with the open marker (and the header
        row, the first time)."""
        if self._marker:
            return
        db = self.db
        if not self._header_written:
            header = dict(self._header, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), pid=os.getpid())
            header["host"] = _hostname()
            db.insert(_HEADER_SEQ, _header_frame(header), self.loop_id)
            self._header_written = True
        db.insert(_OPEN_SEQ, b"", self.loop_id)
        self._marker = True

    def write(self, frame: bytes, first: int, last: int) -> float:
        """Insert the record, take the open marker out and commit: the units' writes and
        their record become durable together. Honours the fault points before-write,
        after-write (the record inserted, not committed) and after-commit. Returns the
        seconds the commit took."""
        fault = self._fault
        point = fault[0] if fault is not None and first <= fault[1] <= last else ""
        if point == "before-write":
            _crash()
        self.db.insert(first, frame, self.loop_id)
        if point == "after-write":
            _crash()
        started = time.perf_counter()
        self._commit()
        if point == "after-commit":
            _crash()
        # Like an fsync of the log file, the commit is the storage's durability cost, not the
        # cost of encoding records that batching amortizes: a unit slower than 20 encodings is
        # committed before the next one starts, whatever the commit costs (as with
        # CHECKPOINTIFY_FSYNC=always). Only microsecond units share a transaction.
        return time.perf_counter() - started

    def _commit(self) -> None:
        if self._marker:
            self.db.delete(_OPEN_SEQ)
            self._marker = False
        self.db.commit()

    def end(self) -> None:
        if self._marker:
            self._commit()

    def discard(self, reason: str) -> None:
        """A stale log (the default, or ``CHECKPOINTIFY_ON_STALE=restart``): no archive in
        the user's database; the rows go, in the loop's first transaction."""
        self.db.delete_all()
        self._header_written = False
        print(
            "checkpointify: warning: %s: input changed (%s); deleted its records and starting from zero"
            % (self.db.shown, reason),
            file=sys.stderr,
        )

    def how_to_start_over(self) -> str:
        return "to start over, delete its rows (DELETE FROM %s WHERE log_id = '%s') and commit" % (
            _TABLE,
            self.db.log_id,
        )

    def remove(self) -> None:
        try:
            self.db.remove()
        finally:
            self._release_lock()

    def close(self) -> None:
        self.db.close()
        self._release_lock()
