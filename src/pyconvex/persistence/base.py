"""The one narrow persistence interface every storage engine implements.

A backend stores four things: documents (id -> table, encoded value), index
entries (index number, key bytes -> document id; scanned in key order), the
commit log (commit timestamp -> what that commit wrote), and a few named
globals. It knows nothing of values, schemas, queries or conflicts: it moves
bytes. Transactions, read sets, conflict checks, index maintenance and retries
live above it, in :mod:`pyconvex.database`, once for every backend.

Concurrency contract:

- a read transaction sees one consistent snapshot, and :meth:`ReadTransaction.head`
  is the timestamp of the newest commit in it;
- a write transaction is the store's *only* writer while it lasts, in this process and
  in every other process sharing the store (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an
  advisory lock). It runs no user code: the database's committer opens it, checks the
  waiting transactions against the commit log, writes what passed in one
  :meth:`WriteTransaction.write` and commits. That is what gives every commit a timestamp
  that is strictly increasing across processes.

A backend that cannot reach its store raises :class:`~pyconvex.errors.StoreUnavailableError`;
one whose writer could not get the store's write lock in time raises
:class:`~pyconvex.errors.ConflictError`.

Every call is ``async``: SQLite answers at once (its calls are cheap enough to make on
the event loop), PostgreSQL over the network without blocking the loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

# (key, document id, table, encoded document) for each entry of a scan, in key order.
ScanRow = tuple[bytes, str, str, bytes]


class ScanStatements:
    """The index range scan every SQL backend runs, in its driver's placeholder style.

    One B-tree range of ``index_entries``' primary key, joined to the documents by id.
    """

    def __init__(self, mark: str) -> None:
        base = (
            "SELECT e.key, e.doc_id, d.tbl, d.value FROM index_entries e "
            "JOIN documents d ON d.id = e.doc_id "
            f"WHERE e.index_id = {mark} AND e.key >= {mark}{{upper}} "
            f"ORDER BY e.key{{desc}} LIMIT {mark}"
        )
        self._sql = {
            (bounded, reverse): base.format(
                upper=f" AND e.key < {mark}" if bounded else "", desc=" DESC" if reverse else ""
            )
            for bounded in (True, False)
            for reverse in (True, False)
        }

    def __call__(
        self, index_id: int, start: bytes, end: bytes | None, *, reverse: bool, limit: int
    ) -> tuple[str, tuple[object, ...]]:
        """The statement and its parameters for one scan."""
        if end is None:
            return self._sql[(False, reverse)], (index_id, start, limit)
        return self._sql[(True, reverse)], (index_id, start, end, limit)


def count_statement(
    mark: str, index_id: int, start: bytes, end: bytes | None, limit: int | None
) -> tuple[str, tuple[object, ...]]:
    """:meth:`ReadTransaction.count`'s statement and parameters, in a driver's placeholder
    style: one B-tree range of ``index_entries``' primary key."""
    where = f"index_id = {mark} AND key >= {mark}"
    params: tuple[object, ...] = (index_id, start)
    if end is not None:
        where, params = f"{where} AND key < {mark}", (*params, end)
    if limit is None:
        return f"SELECT COUNT(*) FROM index_entries WHERE {where}", params
    inner = f"SELECT 1 FROM index_entries WHERE {where} LIMIT {mark}"
    return f"SELECT COUNT(*) FROM ({inner}) AS counted", (*params, limit)


@dataclass(slots=True)
class WriteBatch:
    """Everything one batch of transactions writes, applied by :meth:`WriteTransaction.write`
    with one statement per kind of change (not one per document or per index entry)."""

    #: The commit log's entries, one per transaction committed: (timestamp, ``writes`` for
    #: conflict checks and subscriptions, ``undo``: the documents as they were, for reads
    #: at an earlier timestamp).
    commits: list[tuple[int, bytes, bytes | None]] = field(default_factory=list)
    documents: list[tuple[str, str, bytes]] = field(default_factory=list)  # (id, table, value)
    deleted: list[str] = field(default_factory=list)
    index_puts: list[tuple[int, bytes, str]] = field(default_factory=list)  # (index, key, id)
    index_deletes: list[tuple[int, bytes]] = field(default_factory=list)


class ReadTransaction(ABC):
    """A consistent snapshot. Call :meth:`close` when done."""

    @abstractmethod
    async def get(self, doc_id: str) -> tuple[str, bytes] | None:
        """The (table, encoded document) stored under ``doc_id``, or None."""

    @abstractmethod
    async def scan(
        self, index_id: int, start: bytes, end: bytes | None, *, reverse: bool, limit: int
    ) -> list[ScanRow]:
        """Entries of one index with ``start <= key < end`` (no upper bound for None)."""

    @abstractmethod
    async def count(
        self, index_id: int, start: bytes = b"", end: bytes | None = None, limit: int | None = None
    ) -> int:
        """How many entries one index has with ``start <= key < end`` (by default all: a
        table's size, through its natural index), counted without reading the documents;
        at most ``limit`` (a count's cost grows with what it counts)."""

    @abstractmethod
    async def get_global(self, name: str) -> bytes | None: ...

    @abstractmethod
    async def head(self) -> int:
        """The timestamp of the newest commit this snapshot sees (0 before the first)."""

    @abstractmethod
    async def commits(
        self, after: int, upto: int | None = None, *, undo: bool = False
    ) -> list[tuple[int, bytes]]:
        """The commit log's entries with ``after < ts <= upto``, oldest first: each
        commit's ``writes``, or with ``undo`` its ``undo`` (empty bytes when it had none)."""

    @abstractmethod
    async def close(self) -> None:
        """End the transaction (a write transaction not yet committed rolls back)."""


class WriteTransaction(ReadTransaction):
    """The store's only writer while it lasts: all of it commits, or none."""

    @abstractmethod
    async def write(self, batch: WriteBatch) -> None:
        """Apply one commit's documents, index entries and commit log entry."""

    @abstractmethod
    async def drop_index(self, index_id: int) -> None:
        """Remove every entry of one index."""

    @abstractmethod
    async def set_global(self, name: str, value: bytes) -> None: ...

    @abstractmethod
    async def prune_commits(self, before: int) -> None:
        """Forget the commit log's entries older than ``before`` (never the newest)."""

    async def notify(self, channel: str) -> None:
        """Wake this channel's listeners in every process once this transaction commits."""

    @abstractmethod
    async def commit(self) -> None:
        """Make every write durable (fsynced) and visible."""


class Persistence(ABC):
    """A storage engine: SQLite (one machine) or PostgreSQL (many)."""

    @abstractmethod
    async def begin_read(self) -> ReadTransaction: ...

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[ReadTransaction]:
        """A read snapshot for the duration of the block (closed after it)."""
        snapshot = await self.begin_read()
        try:
            yield snapshot
        finally:
            await snapshot.close()

    @abstractmethod
    async def begin_write(self) -> WriteTransaction:
        """The store's write transaction: waits until no other writer, in any process,
        holds it."""

    @abstractmethod
    async def close(self) -> None: ...

    async def listen(self, channel: str, callback: Callable[[], None]) -> None:  # noqa: B027
        """Call ``callback`` whenever a transaction that notified ``channel`` commits, in any
        process. Stores without cross-process notifications do nothing: their users poll."""

    @abstractmethod
    async def hold_lease(self, name: str) -> None:
        """Hold the lease ``name`` for as long as this process (and this store) lives.

        What a worker claims (a running action, say) is tagged with its lease, so that
        other processes can tell a crashed worker's claims from a live one's.
        """

    @abstractmethod
    async def lease_alive(self, name: str) -> bool:
        """Whether a live process (this one included) holds the lease ``name``."""

    def describe(self) -> str:
        return type(self).__name__
