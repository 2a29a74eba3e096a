"""PostgreSQL persistence: the same three tables as SQLite, many processes on many hosts.

    store = PostgresPersistence("postgresql://user:pass@db.internal/app")

Reads are ``REPEATABLE READ READ ONLY`` transactions (one snapshot) and run in parallel,
in every process. Writes are ``SERIALIZABLE``; the writers of one process take turns (as
on SQLite: group commit batches them), the writers of different processes run at once.
Should two of them race, PostgreSQL fails one with 40001 (or 40P01); that becomes a
:class:`~pyconvex.errors.ConflictError` and the database layer runs the transaction again,
*exclusive*: every writer holds one advisory lock, shared, and an exclusive writer holds it
alone, so its retry cannot conflict again and a hot document costs one wasted attempt,
never a failed mutation. Workers take jobs with ``FOR UPDATE SKIP LOCKED``
(:meth:`~pyconvex.persistence.WriteTransaction.lock` and ``claim``), so two of them skip
past each other's jobs instead of colliding on them.

Index entries live in one table whose primary key ``(index_id, key)`` is a B-tree, so an
index range is one ordered range scan of it, as on SQLite (``bytea`` compares bytewise,
like SQLite's BLOBs).

Connections come from a psycopg-pool pool, opened on first use in the running event loop.
A lost connection (the server restarting, the network down) is a
:class:`~pyconvex.errors.StoreUnavailableError`; the pool replaces broken connections, so
service resumes by itself once the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

from ..errors import ConflictError, StoreUnavailableError
from ..tasks import cancel_and_wait
from .base import Persistence, ReadTransaction, ScanRow, ScanStatements, WriteTransaction

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
"""
_SCHEMA_LOCK = 0x70637800  # an advisory lock id: "pcx\\0"

_SCAN = ScanStatements("%s", claim_suffix=" FOR UPDATE OF d SKIP LOCKED")
_CONFLICTS = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
_DOOMED = (pg_errors.PipelineAborted, pg_errors.InFailedSqlTransaction)
# Every writer of every process holds this session advisory lock for its transaction:
# shared, or alone for an exclusive writer. (lock, unlock) statements, by exclusive.
_WRITERS = 0x70637801
_WRITER_LOCKS = {
    False: (
        f"SELECT pg_advisory_lock_shared({_WRITERS})",
        f"SELECT pg_advisory_unlock_shared({_WRITERS})",
    ),
    True: (f"SELECT pg_advisory_lock({_WRITERS})", f"SELECT pg_advisory_unlock({_WRITERS})"),
}
_LEASES = 0x70637802  # the namespace (first key) of lease locks
CONNECT_TIMEOUT = 2.0  # how long a request waits for a connection before a 503
FAIL_FAST = 1.0  # after a failure, requests get their 503 at once for this long


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
    def __init__(
        self,
        store: PostgresPersistence,
        conn: psycopg.AsyncConnection[Any],
        pipeline: contextlib.AsyncExitStack,
        lock: asyncio.Lock | None = None,
        unlock: str = "",
    ) -> None:
        self._store = store
        self._conn: psycopg.AsyncConnection[Any] | None = conn
        self._lock = lock  # a writer's: released when the transaction ends
        self._unlock = unlock  # a writer's: lets go of its advisory lock
        self._unlocked = False  # a writer's advisory lock was let go with its COMMIT
        # Every transaction runs in pipeline mode (see _PgWrite), until it ends.
        self._pipeline: contextlib.AsyncExitStack | None = pipeline

    def _open_conn(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            raise RuntimeError("This transaction has already ended")
        return self._conn

    async def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Run a SELECT and wait for its rows (in a writer, with every write sent before it)."""
        conn = self._open_conn()
        try:
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

    async def count(self, index_id: int) -> int:
        rows = await self._rows(
            "SELECT COUNT(*) FROM index_entries WHERE index_id = %s", (index_id,)
        )
        return int(rows[0][0])

    async def get_global(self, name: str) -> bytes | None:
        rows = await self._rows("SELECT value FROM globals WHERE name = %s", (name,))
        return None if not rows else bytes(rows[0][0])

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        pipeline, self._pipeline = self._pipeline, None
        unlock = self._unlock if self._lock is not None and not self._unlocked else ""
        try:
            if pipeline is not None and await _ended(conn, pipeline, unlock):
                return
            # Committed already, or the pipeline failed: end what is left in one round trip
            # (a ROLLBACK outside a transaction only warns, and so does a second unlock).
            if not conn.closed:
                if unlock:
                    await conn.execute(f"ROLLBACK; {unlock}")
                elif conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    await conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # a broken connection: the pool throws it away, and its lock is gone with it
        finally:
            await self._store._release(conn)
            if self._lock is not None:
                self._lock.release()


async def _ended(
    conn: psycopg.AsyncConnection[Any], pipeline: contextlib.AsyncExitStack, unlock: str
) -> bool:
    """Roll back (and let go of the writers' lock) with the pipeline's last statements, in
    one round trip; False if that failed (an earlier statement did: it was raised then)."""
    try:
        await conn.execute("ROLLBACK")
        if unlock:
            await conn.execute(unlock)
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
    """A writer. In pipeline mode, a statement whose answer is not needed (every write, the
    savepoints, COMMIT) is sent at once and answered together with the next read, or with
    the COMMIT. A transaction then costs a round trip per read plus one, not one per
    statement. A failed write is raised by that next read or the COMMIT, and becomes the
    same ConflictError or StoreUnavailableError it would have been at once."""

    async def _send(self, sql: str, params: Sequence[Any]) -> None:
        conn = self._open_conn()
        try:
            await conn.execute(sql, params)
        except psycopg.Error as exc:
            raise self._store._failed(exc) from exc

    async def put(self, doc_id: str, table: str, value: bytes) -> None:
        await self._send(
            "INSERT INTO documents (id, tbl, value) VALUES (%s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET tbl = excluded.tbl, value = excluded.value",
            (doc_id, table, value),
        )

    async def delete(self, doc_id: str) -> None:
        await self._send("DELETE FROM documents WHERE id = %s", (doc_id,))

    async def put_index(self, index_id: int, key: bytes, doc_id: str) -> None:
        await self._send(
            "INSERT INTO index_entries (index_id, key, doc_id) VALUES (%s, %s, %s) "
            "ON CONFLICT (index_id, key) DO UPDATE SET doc_id = excluded.doc_id",
            (index_id, key, doc_id),
        )

    async def delete_index(self, index_id: int, key: bytes) -> None:
        await self._send(
            "DELETE FROM index_entries WHERE index_id = %s AND key = %s", (index_id, key)
        )

    async def drop_index(self, index_id: int) -> None:
        await self._send("DELETE FROM index_entries WHERE index_id = %s", (index_id,))

    async def set_global(self, name: str, value: bytes) -> None:
        await self._send(
            "INSERT INTO globals (name, value) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    async def notify(self, channel: str) -> None:
        # NOTIFY is transactional: delivered when (and only if) this transaction commits.
        await self._send(f"NOTIFY {_channel(channel)}", ())

    async def lock(self, doc_ids: list[str]) -> dict[str, tuple[str, bytes]]:
        rows = await self._rows(
            "SELECT id, tbl, value FROM documents WHERE id = ANY(%s) FOR UPDATE SKIP LOCKED",
            (doc_ids,),
        )
        return {doc_id: (table, bytes(value)) for doc_id, table, value in rows}

    async def claim(
        self, index_id: int, start: bytes, end: bytes | None, *, limit: int
    ) -> list[ScanRow]:
        sql, params = _SCAN.claim(index_id, start, end, reverse=False, limit=limit)
        rows = await self._rows(sql, params)
        return [(bytes(key), doc_id, table, bytes(value)) for key, doc_id, table, value in rows]

    @asynccontextmanager
    async def _savepoint(self) -> AsyncIterator[None]:
        await self._send("SAVEPOINT pcx", ())
        try:
            yield
        except (ConflictError, StoreUnavailableError, psycopg.Error):
            raise  # the transaction itself is lost: it will be rolled back, not this scope
        except BaseException:
            await self._send("ROLLBACK TO SAVEPOINT pcx", ())
            await self._send("RELEASE SAVEPOINT pcx", ())
            raise
        await self._send("RELEASE SAVEPOINT pcx", ())

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        return self._savepoint()

    async def commit(self) -> None:
        try:
            # COMMIT and the writers' unlock sent with the last writes, answered together
            # when the pipeline ends; if COMMIT fails, the unlock is skipped with it and
            # close() lets go.
            await self._send("COMMIT", ())
            await self._send(self._unlock, ())
            pipeline, self._pipeline = self._pipeline, None
            if pipeline is not None:
                try:
                    await pipeline.aclose()
                except psycopg.Error as exc:
                    raise self._store._failed(exc) from exc
            self._unlocked = True
        finally:
            await self.close()


class PostgresPersistence(Persistence):
    """Documents, indexes and globals in one PostgreSQL database, shared by every process."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._sizes = (min_size, max_size)
        self._pool: AsyncConnectionPool | None = None
        self._opening: asyncio.Lock | None = None
        self._write_lock: asyncio.Lock | None = None
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

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        # While the server is known to be away, say so at once instead of making every request
        # wait out the pool's timeout: one request per FAIL_FAST seconds tries again.
        now = time.monotonic()
        if now < self._down_until:
            raise StoreUnavailableError(self._down_because)
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

    async def _begin(
        self, statement: str, lock: str = "", unlock: str = ""
    ) -> tuple[psycopg.AsyncConnection[Any], contextlib.AsyncExitStack]:
        """A connection in pipeline mode with ``statement`` (a BEGIN) sent: it is answered
        together with the transaction's first query."""
        conn = await self._connection()
        pipeline = contextlib.AsyncExitStack()
        try:
            if lock:
                # The lock on its own, answered before anything else is sent: it must be
                # held before the transaction's first statement takes its snapshot.
                await conn.execute(lock)
            await pipeline.enter_async_context(conn.pipeline())
            await conn.execute(statement)
        except BaseException as exc:
            # Cancelled too (a request that gave up while waiting for the lock): the
            # connection goes back to the pool, without the lock, either way.
            with contextlib.suppress(psycopg.Error):
                await pipeline.aclose()
            with contextlib.suppress(psycopg.Error):
                if unlock and not conn.closed:
                    await conn.execute(f"ROLLBACK; {unlock}")
            await self._release(conn)
            if isinstance(exc, psycopg.Error):
                raise self._failed(exc) from exc
            raise
        return conn, pipeline

    async def begin_read(self) -> ReadTransaction:
        conn, pipeline = await self._begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return _PgRead(self, conn, pipeline)

    async def begin_write(self, *, exclusive: bool = False) -> WriteTransaction:
        # First the writers of this process take turns on an asyncio lock (a process would
        # mostly conflict with itself: its requests touch the same documents, and group
        # commit gathers its small writes anyway); then the advisory lock, shared with the
        # other processes' writers or, for an exclusive one, alone. It is taken *before* the
        # transaction so that an exclusive writer's snapshot follows every commit before it.
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        await self._write_lock.acquire()
        lock, unlock = _WRITER_LOCKS[exclusive]
        try:
            conn, pipeline = await self._begin("BEGIN ISOLATION LEVEL SERIALIZABLE", lock, unlock)
        except BaseException:
            self._write_lock.release()
            raise
        return _PgWrite(self, conn, pipeline, self._write_lock, unlock)

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


def _without_password(url: str) -> str:
    """The URL as it may be shown (logs, the CLI): no password in it."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
