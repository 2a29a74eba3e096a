"""PostgreSQL persistence: the same tables as SQLite, many processes on many hosts.

    store = PostgresPersistence("postgresql://user:pass@db.internal/app")

Reads are ``REPEATABLE READ READ ONLY`` transactions (one snapshot) and run in parallel,
in every process. The write transaction is the database's committer at work (see
:mod:`pyconvex.database.committer`): it holds one transaction-level advisory lock, so the
committers of all processes take turns, and everything it does is decided before it
begins (which transactions commit, and what they write). So it needs no ``SERIALIZABLE``
isolation and PostgreSQL's predicate locks never fail it: it runs ``READ COMMITTED``, and
since every statement after the lock sees every commit before it, the commit log it reads
is complete. Commits are ``synchronous_commit = on``: acknowledged once durable.

Index entries live in one table whose primary key ``(index_id, key)`` is a B-tree, so an
index range is one ordered range scan of it, as on SQLite (``bytea`` compares bytewise,
like SQLite's BLOBs). A commit writes all its documents, index entries and its commit log
entry with one statement per kind (arrays through ``unnest``), in pipeline mode: the
whole commit is one round trip after the lock.

Connections come from a psycopg-pool pool, opened on first use in the running event loop.
A lost connection (the server restarting, the network down) is a
:class:`~pyconvex.errors.StoreUnavailableError`; the pool replaces broken connections, so
service resumes by itself once the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

from ..errors import ConflictError, StoreUnavailableError
from ..tasks import cancel_and_wait
from .base import (
    Persistence,
    ReadTransaction,
    ScanRow,
    ScanStatements,
    WriteBatch,
    WriteTransaction,
    count_statement,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    tbl TEXT NOT NULL,
    value BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS index_entries (
    index_id INTEGER NOT NULL,
    key BYTEA NOT NULL,
    doc_id TEXT NOT NULL,
    PRIMARY KEY (index_id, key)
);
CREATE TABLE IF NOT EXISTS globals (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS commit_log (
    ts BIGINT PRIMARY KEY,
    writes BYTEA NOT NULL,
    undo BYTEA
);
"""
_SCHEMA_LOCK = 0x70637800  # an advisory lock id: "pcx\\0"
# The committers' lock: one write transaction at a time, across every process.
_WRITER_LOCK = "SELECT pg_advisory_xact_lock(1885567489)"  # 0x70637801

_SCAN = ScanStatements("%s")
_HEAD = "SELECT max(ts) FROM commit_log"
_COMMITS = {
    column: f"SELECT ts, {column} FROM commit_log WHERE ts > %s" for column in ("writes", "undo")
}
# Pages of the commit log: with a LIMIT the planner walks the primary key even when its
# statistics say the table is empty (a prepared statement's generic plan would otherwise
# stay a sequential scan while the table grows).
_COMMIT_PAGE = 1000
_WRITE = """
WITH index_deletes AS (
    DELETE FROM index_entries WHERE (index_id, key) IN
        (SELECT * FROM unnest(%b::integer[], %b::bytea[]))
), index_puts AS (
    INSERT INTO index_entries (index_id, key, doc_id)
    SELECT * FROM unnest(%b::integer[], %b::bytea[], %b::text[])
    ON CONFLICT (index_id, key) DO UPDATE SET doc_id = excluded.doc_id
), puts AS (
    INSERT INTO documents (id, tbl, value)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::bytea[])
    ON CONFLICT (id) DO UPDATE SET tbl = excluded.tbl, value = excluded.value
), deletes AS (
    DELETE FROM documents WHERE id = ANY(%b::text[])
)
INSERT INTO commit_log (ts, writes, undo)
SELECT * FROM unnest(%b::bigint[], %b::bytea[], %b::bytea[])
"""
_CONFLICTS = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
_DOOMED = (pg_errors.PipelineAborted, pg_errors.InFailedSqlTransaction)
_LEASES = 0x70637802  # the namespace (first key) of lease locks
CONNECT_TIMEOUT = 2.0  # how long a request waits for a connection before a 503
FAIL_FAST = 1.0  # after a failure, requests get their 503 at once for this long


def _columns(rows: list[Any], width: int) -> list[list[Any]]:
    """Rows as columns (arrays for ``unnest``): ``[(1, "a"), (2, "b")]`` -> ``[[1, 2], ["a", "b"]]``."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _channel(name: str) -> str:
    if not name.isidentifier() or not name.isascii() or len(name) > 63:
        raise ValueError(f"Invalid notification channel {name!r}")
    return name


def _translated(exc: psycopg.Error) -> Exception:
    if isinstance(exc, _CONFLICTS):
        return ConflictError(f"PostgreSQL: {exc.sqlstate} {str(exc).strip()}")
    if isinstance(exc, _DOOMED):
        # An earlier statement of this transaction failed (its error was raised then): the
        # transaction is lost, and the way out is to run it again from the top.
        return ConflictError(f"PostgreSQL: the transaction failed earlier ({exc.sqlstate})")
    if isinstance(exc, psycopg.OperationalError):
        return StoreUnavailableError(f"PostgreSQL is unavailable: {str(exc).strip()}")
    return exc


class _PgRead(ReadTransaction):
    """A transaction in pipeline mode until it ends: a statement whose answer is not
    needed yet is sent at once and answered together with the next one that is. Its
    connection and its ``BEGIN`` wait for its first statement: one that is never used (a
    mutation that only inserts) costs neither a pooled connection nor a round trip."""

    def __init__(self, store: PostgresPersistence, begin: list[str]) -> None:
        self._store = store
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._ended = False
        self._begin = begin  # statements not sent yet (the transaction has not begun)
        self._pipeline: contextlib.AsyncExitStack | None = None
        self._head: int | None = None
        self._head_cursor: Any = None

    async def _open_conn(self) -> psycopg.AsyncConnection[Any]:
        if self._ended:
            raise RuntimeError("This transaction has already ended")
        if self._conn is None:
            self._conn = await self._store._connection()
        conn = self._conn
        if self._begin:
            statements, self._begin = self._begin, []
            pipeline = contextlib.AsyncExitStack()
            await pipeline.enter_async_context(conn.pipeline())
            self._pipeline = pipeline
            for statement in statements:
                await conn.execute(statement)
            # The snapshot's timestamp rides along with its first read: no round trip of its
            # own (see head()).
            self._head_cursor = await conn.execute(_HEAD)
        return conn

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Run a SELECT and wait for its rows (with every statement sent before it)."""
        try:
            conn = await self._open_conn()
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()
        except psycopg.Error as exc:
            raise self._store._failed(exc) from exc

    async def get(self, doc_id: str) -> tuple[str, bytes] | None:
        rows = await self._rows("SELECT tbl, value FROM documents WHERE id = %s", (doc_id,))
        return None if not rows else (rows[0][0], bytes(rows[0][1]))

    async def scan(
        self, index_id: int, start: bytes, end: bytes | None, *, reverse: bool, limit: int
    ) -> list[ScanRow]:
        sql, params = _SCAN(index_id, start, end, reverse=reverse, limit=limit)
        rows = await self._rows(sql, params)
        return [(bytes(key), doc_id, table, bytes(value)) for key, doc_id, table, value in rows]

    async def count(
        self, index_id: int, start: bytes = b"", end: bytes | None = None, limit: int | None = None
    ) -> int:
        sql, params = count_statement("%s", index_id, start, end, limit)
        rows = await self._rows(sql, params)
        return int(rows[0][0])

    async def get_global(self, name: str) -> bytes | None:
        rows = await self._rows("SELECT value FROM globals WHERE name = %s", (name,))
        return None if not rows else bytes(rows[0][0])

    async def head(self) -> int:
        if self._head is None:
            if self._head_cursor is None:
                await self._rows("SELECT 1", ())  # begins the transaction
            try:
                row = await self._head_cursor.fetchone()
            except psycopg.Error as exc:
                raise self._store._failed(exc) from exc
            self._head = int(row[0] or 0) if row else 0
        return self._head

    async def commits(
        self, after: int, upto: int | None = None, *, undo: bool = False
    ) -> list[tuple[int, bytes]]:
        sql = _COMMITS["undo" if undo else "writes"]
        if upto is not None:
            sql += f" AND ts <= {int(upto)}"
        sql += f" ORDER BY ts LIMIT {_COMMIT_PAGE}"
        found: list[tuple[int, bytes]] = []
        while True:
            rows = await self._rows(sql, (after,))
            found += [(int(ts), bytes(data or b"")) for ts, data in rows]
            if len(rows) < _COMMIT_PAGE:
                return found
            after = found[-1][0]

    async def close(self) -> None:
        self._ended = True
        conn, self._conn = self._conn, None
        if conn is None:
            return  # never used: no connection was taken
        pipeline, self._pipeline = self._pipeline, None
        try:
            if self._begin:  # never begun: nothing to end
                return
            if pipeline is not None and await _ended(conn, pipeline):
                return
            # Committed already, or the pipeline failed: end what is left (a ROLLBACK outside
            # a transaction only warns).
            if (
                not conn.closed
                and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
            ):
                await conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # a broken connection: the pool throws it away, and its lock is gone with it
        finally:
            await self._store._release(conn)


async def _ended(conn: psycopg.AsyncConnection[Any], pipeline: contextlib.AsyncExitStack) -> bool:
    """Roll back with the pipeline's last statements, in one round trip; False if that
    failed (an earlier statement did: it was raised then)."""
    try:
        await conn.execute("ROLLBACK")
    except psycopg.Error:
        with contextlib.suppress(psycopg.Error):
            await pipeline.aclose()
        return False
    try:
        await pipeline.aclose()
    except psycopg.Error:
        return False
    return True


class _PgWrite(_PgRead, WriteTransaction):
    """The committers' transaction. Its writes are sent without waiting and answered
    together with the COMMIT: a failed write fails the commit, and nothing is kept. Arrays
    travel in binary (``%b``): as text, every element would be escaped on the way."""

    async def _send(self, sql: str, params: Sequence[Any]) -> None:
        try:
            conn = await self._open_conn()
            await conn.execute(sql, params)
        except psycopg.Error as exc:
            raise self._store._failed(exc) from exc

    async def _locked(self, query: str) -> list[Any]:
        """Begin, take the committers' lock and run ``query`` (no parameters) as one simple
        multi-statement query: one round trip, and one pass through the driver instead of
        three. Each statement sees the commits made before it ran, the lock's included."""
        if not self._begin:
            return await self._rows(query, ())
        statements, self._begin = self._begin, []
        try:
            if self._conn is None:
                self._conn = await self._store._connection()
            cursor = await self._conn.execute("; ".join([*statements, query]), prepare=False)
            while cursor.nextset():
                pass  # to the last statement's rows
            rows = await cursor.fetchall()
            pipeline = contextlib.AsyncExitStack()
            await pipeline.enter_async_context(self._conn.pipeline())
            self._pipeline = pipeline
            return rows
        except psycopg.Error as exc:
            raise self._store._failed(exc) from exc

    async def head(self) -> int:
        if self._head is None:
            rows = await self._locked(_HEAD)
            self._head = int(rows[0][0] or 0)
        return self._head

    async def commits(
        self, after: int, upto: int | None = None, *, undo: bool = False
    ) -> list[tuple[int, bytes]]:
        if self._begin and upto is None and not undo:
            query = f"{_COMMITS['writes']} ORDER BY ts LIMIT {_COMMIT_PAGE}" % int(after)
            rows = [(int(ts), bytes(data or b"")) for ts, data in await self._locked(query)]
            if len(rows) < _COMMIT_PAGE:
                return rows
            return rows + await super().commits(rows[-1][0])
        return await super().commits(after, upto, undo=undo)

    async def write(self, batch: WriteBatch) -> None:
        # One statement for all of it (data-modifying CTEs): each statement sent costs a
        # round of the driver's pipeline machinery, whatever it carries. No row is touched
        # twice: a document is written once per batch, and its old and new index keys differ.
        index_ids, keys = _columns(batch.index_deletes, 2)
        put_ids, put_keys, put_docs = _columns(batch.index_puts, 3)
        doc_ids, tables, encoded = _columns(batch.documents, 3)
        stamps, writes, undo = _columns(batch.commits, 3)
        params = [index_ids, keys, put_ids, put_keys, put_docs, doc_ids, tables, encoded]
        await self._send(_WRITE, [*params, batch.deleted, stamps, writes, undo])

    async def drop_index(self, index_id: int) -> None:
        await self._send("DELETE FROM index_entries WHERE index_id = %s", (index_id,))

    async def set_global(self, name: str, value: bytes) -> None:
        await self._send(
            "INSERT INTO globals (name, value) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    async def prune_commits(self, before: int) -> None:
        await self._send(
            "DELETE FROM commit_log WHERE ts < %s AND ts < (SELECT max(ts) FROM commit_log)",
            (before,),
        )

    async def notify(self, channel: str) -> None:
        # NOTIFY is transactional: delivered when (and only if) this transaction commits.
        await self._send(f"NOTIFY {_channel(channel)}", ())

    async def commit(self) -> None:
        try:
            # COMMIT is sent with the last writes and answered when the pipeline ends.
            await self._send("COMMIT", ())
            pipeline, self._pipeline = self._pipeline, None
            if pipeline is not None:
                try:
                    await pipeline.aclose()
                except psycopg.Error as exc:
                    raise self._store._failed(exc) from exc
        finally:
            await self.close()


class PostgresPersistence(Persistence):
    """Documents, indexes, the commit log and globals in one PostgreSQL database, shared
    by every process."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._sizes = (min_size, max_size)
        self._pool: AsyncConnectionPool | None = None
        self._opening: asyncio.Lock | None = None
        self._down_until = 0.0
        self._down_because = ""
        self._checking: asyncio.Task[None] | None = None
        self._lease_conn: psycopg.AsyncConnection[Any] | None = None
        self._leases: set[str] = set()
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._listening: asyncio.Task[None] | None = None
        #: Set while the notifications connection is listening (tests wait on it).
        self.listening = asyncio.Event()

    def describe(self) -> str:
        return _without_password(self.url)

    def _check_up(self) -> None:
        # While the server is known to be away, say so at once instead of making every request
        # wait out the pool's timeout: one request per FAIL_FAST seconds tries again.
        if time.monotonic() < self._down_until:
            raise StoreUnavailableError(self._down_because)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        self._check_up()
        try:
            return await self._checked_out()
        except StoreUnavailableError as exc:
            self._down_until, self._down_because = time.monotonic() + FAIL_FAST, str(exc)
            raise

    async def _checked_out(self) -> psycopg.AsyncConnection[Any]:
        if self._pool is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._pool is None:
                    self._pool = await self._open()
        try:
            conn: psycopg.AsyncConnection[Any] = await self._pool.getconn()
        except psycopg.Error as exc:
            raise _translated(exc) from exc
        except Exception as exc:  # the pool's own timeout: no connection could be made
            raise StoreUnavailableError(f"PostgreSQL is unavailable: {exc}") from exc
        return conn

    async def _open(self) -> AsyncConnectionPool:
        min_size, max_size = self._sizes
        pool = AsyncConnectionPool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},  # transactions are begun explicitly, with their level
            configure=_configure,
            timeout=CONNECT_TIMEOUT,
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
            async with pool.connection() as conn, conn.transaction():
                # Several processes may start at once: one creates the tables.
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                await conn.execute(_SCHEMA)
        except Exception as exc:
            await pool.close()
            if isinstance(exc, psycopg.Error):
                raise _translated(exc) from exc
            raise StoreUnavailableError(f"PostgreSQL is unavailable: {exc}") from exc
        return pool

    def _failed(self, exc: psycopg.Error) -> Exception:
        error = _translated(exc)
        if isinstance(error, StoreUnavailableError):
            self._down_until, self._down_because = time.monotonic() + FAIL_FAST, str(error)
            self.connections_lost()
        return error

    def connections_lost(self) -> None:
        """A connection broke: the server may have restarted, so check the pooled ones now
        rather than have each fail a request (connections are not checked at every checkout:
        that would cost a round trip per transaction)."""
        pool = self._pool
        if pool is not None and (self._checking is None or self._checking.done()):
            self._checking = asyncio.get_running_loop().create_task(pool.check())

    async def _release(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if self._pool is not None:
            await self._pool.putconn(conn)

    async def begin_read(self) -> ReadTransaction:
        # The connection is taken at the first statement; a server known to be away is
        # said at once, before the caller's code runs (a 503, not a time limit running out).
        self._check_up()
        return _PgRead(self, ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"])

    async def begin_write(self) -> WriteTransaction:
        # READ COMMITTED: each statement after the lock sees every commit made before it
        # (REPEATABLE READ would keep the snapshot of the lock statement itself).
        return _PgWrite(self, ["BEGIN ISOLATION LEVEL READ COMMITTED", _WRITER_LOCK])

    async def explain_scan(self, *, bounded: bool = True, reverse: bool = False) -> list[str]:
        """PostgreSQL's plan for an index range scan (for tests and the curious)."""
        sql, params = _SCAN(1, b"", b"\xff" if bounded else None, reverse=reverse, limit=10)
        conn = await self._connection()
        try:
            # Planner statistics of an empty table would favour a sequential scan; say how
            # the table looks once it holds data.
            await conn.execute("SET enable_seqscan = off")
            cursor = await conn.execute("EXPLAIN " + sql, params)
            return [row[0] for row in await cursor.fetchall()]
        finally:
            await conn.execute("RESET enable_seqscan")
            await self._release(conn)

    async def listen(self, channel: str, callback: Callable[[], None]) -> None:
        self._listeners.setdefault(_channel(channel), []).append(callback)
        if self._listening is None:
            self._listening = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        """LISTEN on a connection of its own, reconnecting after the server comes back."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    for channel in list(self._listeners):
                        await conn.execute(f"LISTEN {channel}")
                    self.listening.set()
                    self._wake_all()  # something may have been sent while we were away
                    async for note in conn.notifies():
                        for callback in self._listeners.get(note.channel, []):
                            callback()
            except (psycopg.Error, OSError):
                self.listening.clear()
                await asyncio.sleep(1.0)

    def _wake_all(self) -> None:
        for callbacks in self._listeners.values():
            for callback in callbacks:
                callback()

    # Leases are session advisory locks held on a connection of their own: PostgreSQL drops
    # them the moment that session ends, however the process died.

    async def hold_lease(self, name: str) -> None:
        if name in self._leases:
            return
        if self._lease_conn is None or self._lease_conn.closed:
            try:
                self._lease_conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            except psycopg.Error as exc:
                raise _translated(exc) from exc
            self._leases.clear()  # a new session holds none of them
        cursor = await self._lease_conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_LEASES, name)
        )
        row = await cursor.fetchone()
        if not row or not row[0]:
            raise RuntimeError(f"The lease {name!r} is held by another process")
        self._leases.add(name)

    async def lease_alive(self, name: str) -> bool:
        if name in self._leases and self._lease_conn is not None and not self._lease_conn.closed:
            return True
        conn = await self._connection()
        try:
            cursor = await conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_LEASES, name)
            )
            row = await cursor.fetchone()
            free = bool(row and row[0])
            if free:
                await conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_LEASES, name))
            return not free
        except psycopg.Error as exc:
            raise _translated(exc) from exc
        finally:
            await self._release(conn)

    async def close(self) -> None:
        checking, self._checking = self._checking, None
        listening, self._listening = self._listening, None
        await cancel_and_wait(checking, listening)
        lease_conn, self._lease_conn = self._lease_conn, None
        self._leases.clear()
        if lease_conn is not None:
            await lease_conn.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    # A commit is acknowledged once it is durable, whatever the server's default says.
    await conn.execute("SET synchronous_commit = on")


def _without_password(url: str) -> str:
    """The URL as it may be shown (logs, the CLI): no password in it."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
