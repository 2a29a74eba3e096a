"""The one narrow persistence interface every storage engine implements.

A backend stores three things: documents (id -> table, encoded value), index
entries (index number, key bytes -> document id; scanned in key order), and a
few named globals. It knows nothing of values, schemas or queries: it moves
bytes. Transactions, index maintenance, validation and retries live above it,
in :mod:`pyconvex.database`, once for every backend.

Concurrency contract: a read transaction sees one consistent snapshot; a write
transaction is serializable with every other write transaction, in this
process and in any other sharing the store. A backend that cannot guarantee
that for a transaction raises :class:`~pyconvex.errors.ConflictError` (from
``begin_write``, any statement, or ``commit``) and the caller retries the whole
transaction, ``exclusive`` this time: an exclusive writer runs alone, so it
cannot conflict again. A backend that cannot reach its store raises
:class:`~pyconvex.errors.StoreUnavailableError`.

Writers of several processes may run at once (PostgreSQL); then :meth:`WriteTransaction.lock`
and :meth:`WriteTransaction.claim` (``FOR UPDATE SKIP LOCKED``) let workers take
different jobs instead of colliding on the same ones.

Every call is ``async``: SQLite answers at once (its calls are cheap enough to make on
the event loop), PostgreSQL over the network without blocking the loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

# (key, document id, table, encoded document) for each entry of a scan, in key order.
ScanRow = tuple[bytes, str, str, bytes]


class ScanStatements:
    """The index range scan every SQL backend runs, in its driver's placeholder style.

    One B-tree range of ``index_entries``' primary key, joined to the documents by id.
    """

    def __init__(self, mark: str, *, claim_suffix: str = "") -> None:
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
        # The same scans, locking what they return and skipping what another writer holds.
        self._claim = {shape: sql + claim_suffix for shape, sql in self._sql.items()}

    def __call__(
        self, index_id: int, start: bytes, end: bytes | None, *, reverse: bool, limit: int
    ) -> tuple[str, tuple[object, ...]]:
        """The statement and its parameters for one scan."""
        return self._statement(self._sql, index_id, start, end, reverse, limit)

    def claim(
        self, index_id: int, start: bytes, end: bytes | None, *, reverse: bool, limit: int
    ) -> tuple[str, tuple[object, ...]]:
        """The statement and its parameters for one claiming scan."""
        return self._statement(self._claim, index_id, start, end, reverse, limit)

    @staticmethod
    def _statement(
        sql: dict[tuple[bool, bool], str],
        index_id: int,
        start: bytes,
        end: bytes | None,
        reverse: bool,
        limit: int,
    ) -> tuple[str, tuple[object, ...]]:
        if end is None:
            return sql[(False, reverse)], (index_id, start, limit)
        return sql[(True, reverse)], (index_id, start, end, limit)


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
    async def count(self, index_id: int) -> int:
        """How many entries one index has (a table's size, through its natural index)."""

    @abstractmethod
    async def get_global(self, name: str) -> bytes | None: ...

    @abstractmethod
    async def close(self) -> None:
        """End the transaction (a write transaction not yet committed rolls back)."""


class WriteTransaction(ReadTransaction):
    """A serializable read-write transaction: all of it commits, or none."""

    @abstractmethod
    async def put(self, doc_id: str, table: str, value: bytes) -> None:
        """Insert or overwrite one document."""

    @abstractmethod
    async def delete(self, doc_id: str) -> None: ...

    @abstractmethod
    async def put_index(self, index_id: int, key: bytes, doc_id: str) -> None: ...

    @abstractmethod
    async def delete_index(self, index_id: int, key: bytes) -> None: ...

    @abstractmethod
    async def drop_index(self, index_id: int) -> None:
        """Remove every entry of one index."""

    @abstractmethod
    async def set_global(self, name: str, value: bytes) -> None: ...

    async def notify(self, channel: str) -> None:
        """Wake this channel's listeners in every process once this transaction commits."""

    async def lock(self, doc_ids: list[str]) -> dict[str, tuple[str, bytes]]:
        """Lock these documents until this transaction ends, skipping any that another
        writer holds now (``FOR UPDATE SKIP LOCKED``); the ones locked, by id, as
        :meth:`get` returns them (those that exist).

        A worker that takes a job this way knows no other worker is running it; one that
        is skipped moves on instead of waiting for the other to finish. A backend whose
        writers run one at a time holds every document already.
        """
        found = {doc_id: await self.get(doc_id) for doc_id in doc_ids}
        return {doc_id: row for doc_id, row in found.items() if row is not None}

    async def claim(
        self, index_id: int, start: bytes, end: bytes | None, *, limit: int
    ) -> list[ScanRow]:
        """Like :meth:`scan` (forward), but every document returned is locked until this
        transaction ends, and documents another writer holds are skipped (not counted in
        ``limit``): how workers of several processes take different batches of one queue."""
        return await self.scan(index_id, start, end, reverse=False, limit=limit)

    @abstractmethod
    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A nested scope whose writes are undone if it raises (the outer transaction goes on)."""

    @abstractmethod
    async def commit(self) -> None:
        """Make every write durable and visible; may raise ConflictError."""


class Persistence(ABC):
    """A storage engine: SQLite (one machine) or PostgreSQL (many)."""

    @abstractmethod
    async def begin_read(self) -> ReadTransaction: ...

    @abstractmethod
    async def begin_write(self, *, exclusive: bool = False) -> WriteTransaction:
        """A write transaction; ``exclusive`` ones run while no other writer does (the
        retry after a conflict). Backends whose writers always run alone ignore it."""

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
