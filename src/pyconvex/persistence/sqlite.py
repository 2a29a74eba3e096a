"""SQLite persistence: one file, WAL mode, many readers, one writer at a time.

The write transaction uses ``BEGIN IMMEDIATE`` so that two processes sharing the
file serialize at the start instead of failing with "database is locked" at
commit. Inside one process the writer queues on an ``asyncio.Lock`` first, so the
event loop never blocks on SQLite's lock: the first attempt is non-blocking,
and only when another process holds the lock do we wait for it in a thread.
Reads run on a pool of connections, each inside a deferred transaction (one
WAL snapshot). Calls are synchronous on the event loop: a point read or an
index step costs microseconds, far less than a thread hop. The one exception is
``COMMIT``: with ``synchronous=FULL`` (the default) it waits for the disk, so it
runs in a thread and the event loop serves requests meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from ..errors import ConflictError
from ..owner_only import open_private, private_dir, tighten_file
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
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS index_entries (
    index_id INTEGER NOT NULL,
    key BLOB NOT NULL,
    doc_id TEXT NOT NULL,
    PRIMARY KEY (index_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS globals (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commit_log (
    ts INTEGER PRIMARY KEY,
    writes BLOB NOT NULL,
    undo BLOB
);
"""

_SCAN = ScanStatements("?")

_LEASE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")

# How long a writer waits for another process to release the write lock before
# the transaction is retried from the top (each retry waits again).
LOCK_WAIT_MS = 5000


class _SqliteRead(ReadTransaction):
    """A WAL snapshot. Its ``BEGIN`` waits for its first statement, so a transaction that
    never reads (a mutation that only inserts) costs no statement at all."""

    def __init__(self, conn: sqlite3.Connection, release: object, begin: str = "BEGIN") -> None:
        self._conn = conn
        self._release = release
        self._open = True
        self._begin = begin

    def _c(self) -> sqlite3.Connection:
        if not self._open:
            raise RuntimeError("This transaction has already ended")
        if self._begin:
            begin, self._begin = self._begin, ""
            self._conn.execute(begin)
        return self._conn

    async def get(self, doc_id: str) -> tuple[str, bytes] | None:
        row = (
            self._c().execute("SELECT tbl, value FROM documents WHERE id = ?", (doc_id,)).fetchone()
        )
        return None if row is None else (row[0], row[1])

    async def scan(
        self, index_id: int, start: bytes, end: bytes | None, *, reverse: bool, limit: int
    ) -> list[ScanRow]:
        sql, params = _SCAN(index_id, start, end, reverse=reverse, limit=limit)
        return self._c().execute(sql, params).fetchall()

    async def count(
        self, index_id: int, start: bytes = b"", end: bytes | None = None, limit: int | None = None
    ) -> int:
        sql, params = count_statement("?", index_id, start, end, limit)
        return int(self._c().execute(sql, params).fetchone()[0])

    async def get_global(self, name: str) -> bytes | None:
        row = self._c().execute("SELECT value FROM globals WHERE name = ?", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    async def head(self) -> int:
        # The same WAL snapshot as every other read of this transaction, whenever it is asked.
        row = self._c().execute("SELECT max(ts) FROM commit_log").fetchone()
        return int(row[0] or 0)

    async def commits(
        self, after: int, upto: int | None = None, *, undo: bool = False
    ) -> list[tuple[int, bytes]]:
        sql = _COMMITS["undo" if undo else "writes"]
        params: tuple[int, ...] = (after,)
        if upto is not None:
            sql, params = sql + " AND ts <= ?", (after, upto)
        sql += " ORDER BY ts"
        return [(ts, data or b"") for ts, data in self._c().execute(sql, params).fetchall()]

    async def close(self) -> None:
        self._end()

    def _end(self) -> None:
        if self._open:
            self._open = False
            try:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            finally:
                self._release(self._conn)  # type: ignore[operator]


_COMMITS = {
    column: f"SELECT ts, {column} FROM commit_log WHERE ts > ?" for column in ("writes", "undo")
}


class _SqliteWrite(_SqliteRead, WriteTransaction):
    async def write(self, batch: WriteBatch) -> None:
        conn = self._c()
        if batch.index_deletes:
            conn.executemany(
                "DELETE FROM index_entries WHERE index_id = ? AND key = ?", batch.index_deletes
            )
        if batch.index_puts:
            conn.executemany(
                "INSERT OR REPLACE INTO index_entries (index_id, key, doc_id) VALUES (?, ?, ?)",
                batch.index_puts,
            )
        if batch.documents:
            conn.executemany(
                "INSERT INTO documents (id, tbl, value) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET tbl = excluded.tbl, value = excluded.value",
                batch.documents,
            )
        if batch.deleted:
            conn.executemany("DELETE FROM documents WHERE id = ?", [(d,) for d in batch.deleted])
        conn.executemany(
            "INSERT INTO commit_log (ts, writes, undo) VALUES (?, ?, ?)", batch.commits
        )

    async def drop_index(self, index_id: int) -> None:
        self._c().execute("DELETE FROM index_entries WHERE index_id = ?", (index_id,))

    async def set_global(self, name: str, value: bytes) -> None:
        self._c().execute(
            "INSERT INTO globals (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    async def prune_commits(self, before: int) -> None:
        self._c().execute(
            "DELETE FROM commit_log WHERE ts < ? AND ts < (SELECT max(ts) FROM commit_log)",
            (before,),
        )

    async def commit(self) -> None:
        conn = self._c()
        # The fsync (synchronous=FULL) is the slow part of a commit: wait for it off the
        # event loop, which meanwhile runs the handlers whose writes make the next batch.
        done = asyncio.get_running_loop().run_in_executor(_COMMITTER, conn.execute, "COMMIT")
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            # The COMMIT goes on in its thread: the connection is not touched until it ends.
            with contextlib.suppress(Exception):
                await done
            raise
        except sqlite3.OperationalError as exc:
            raise ConflictError(f"SQLite commit failed: {exc}") from exc
        finally:
            self._end()


# One thread: there is one writer connection, and one commit at a time.
_COMMITTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyconvex-sqlite-commit")


def _wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL mode. Two processes opening a new file at once (``serve --workers``) can
    get "database is locked" here without SQLite's busy handler being asked: try again."""
    for _ in range(100):
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.05)
    return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])


def _owner_only(path: str) -> None:
    """The database file 0600 before SQLite opens it: it gives the WAL and SHM files it
    makes the database's own mode (they hold the same data). One made by an older version
    with the umask's mode is tightened, with the WAL and SHM a crash left beside it."""
    if not os.path.exists(path):
        os.close(open_private(path, os.O_RDWR))
    for name in (path, path + "-wal", path + "-shm"):
        tighten_file(name)


class SqlitePersistence(Persistence):
    """Documents, indexes and globals in one SQLite file.

    store = SqlitePersistence("/tmp/app.sqlite3")
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        self.path = os.fspath(path)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self._synchronous = synchronous.upper()
        parent = os.path.dirname(os.path.abspath(self.path))
        private_dir(parent)
        _owner_only(self.path)
        self._readers: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._writer = self._connect()
        self._write_lock: asyncio.Lock | None = None
        self._closed = False
        self._leases: dict[str, IO[bytes]] = {}
        self._writer.executescript(_SCHEMA)  # idempotent; other processes may race us here
        self._writer.execute("PRAGMA busy_timeout = 0")

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
        mode = _wal(conn)
        if mode != "wal":
            raise RuntimeError(f"SQLite at {self.path} refused WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.text_factory = str
        with self._guard:
            self._all.append(conn)
        return conn

    def _return_reader(self, conn: sqlite3.Connection) -> None:
        with self._guard:
            if self._closed:
                conn.close()
            else:
                self._readers.append(conn)

    async def begin_read(self) -> ReadTransaction:
        with self._guard:
            conn = self._readers.pop() if self._readers else None
        if conn is None:
            conn = self._connect()
        return _SqliteRead(conn, self._return_reader)

    async def begin_write(self) -> WriteTransaction:
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        lock = self._write_lock
        await lock.acquire()
        conn = self._writer
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                # Another process holds the write lock: wait for it off the event loop.
                await asyncio.to_thread(self._begin_waiting, conn)
        except BaseException:
            lock.release()
            raise
        return _SqliteWrite(conn, lambda _conn: lock.release(), begin="")

    @staticmethod
    def _begin_waiting(conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise ConflictError(f"SQLite write lock not granted: {exc}") from exc
        finally:
            conn.execute("PRAGMA busy_timeout = 0")

    def explain_scan(self, *, bounded: bool = True, reverse: bool = False) -> list[str]:
        """SQLite's query plan for an index range scan (for tests and the curious)."""
        sql, params = _SCAN(1, b"", b"\xff" if bounded else None, reverse=reverse, limit=10)
        return [row[3] for row in self._writer.execute("EXPLAIN QUERY PLAN " + sql, params)]

    # Leases are advisory locks on files beside the database: the kernel drops a dead
    # process's locks at once, however it died.

    def _lease_path(self, name: str) -> Path:
        if not _LEASE.match(name):
            raise ValueError(f"Invalid lease name {name!r}")
        folder = Path(self.path + ".leases")
        private_dir(folder)
        return folder / name

    async def hold_lease(self, name: str) -> None:
        if name in self._leases:
            return
        handle = os.fdopen(open_private(self._lease_path(name), os.O_RDWR | os.O_APPEND), "a+b")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RuntimeError(f"The lease {name!r} is held by another process") from None
        self._leases[name] = handle

    async def lease_alive(self, name: str) -> bool:
        if name in self._leases:
            return True
        try:
            with open(self._lease_path(name), "rb") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(handle, fcntl.LOCK_UN)
        except FileNotFoundError:
            return False
        # Nobody holds it: its holder is gone for good (names are never reused).
        with contextlib.suppress(OSError):
            self._lease_path(name).unlink()
        return False

    async def close(self) -> None:
        self.close_now()

    def close_now(self) -> None:
        """Close every connection (sync: also used where no event loop runs)."""
        leases, self._leases = self._leases, {}
        for name, handle in leases.items():
            handle.close()
            with contextlib.suppress(OSError):
                self._lease_path(name).unlink()
        with self._guard:
            self._closed = True
            conns, self._all, self._readers = self._all, [], []
        for conn in conns:
            with contextlib.suppress(sqlite3.ProgrammingError):
                conn.close()
