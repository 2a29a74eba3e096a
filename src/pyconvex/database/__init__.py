"""The document database: transactions over a persistence backend.

    db = Database(SqlitePersistence("app.sqlite3"), schema)
    await db.setup()
    doc_id = await db.transact(lambda w: w.insert("items", {"name": "x"}))

Transactions are Convex's: each runs against a snapshot without holding a lock,
records what it read, buffers what it writes, and is committed by the
:class:`~.committer.Committer` if nothing it read changed meanwhile (else it runs
again). Every commit has a timestamp; reads can be made at an earlier one.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from .. import values
from ..errors import ConflictError, InvalidTimestampError
from ..persistence import Persistence, WriteBatch, WriteTransaction
from ..schema import SchemaDefinition
from .catalog import Catalog
from .commit_log import WINDOW_NS
from .committer import Committer
from .documents import DatabaseReader, DatabaseWriter
from .indexes import CREATION_INDEX, IndexInfo, IndexRange, IndexRegistry
from .query import Query, QueryInitializer
from .system import SYSTEM_TABLES
from .transaction import Transaction

__all__ = [
    "Database",
    "DatabaseReader",
    "DatabaseWriter",
    "IndexRange",
    "Query",
    "QueryInitializer",
]

T = TypeVar("T")

# Convex runs a mutation at most 5 times (4 retries, backoff from 100 ms to 2 s with full
# jitter). Here the first retry is exclusive (it runs while nothing else can commit, so it
# cannot conflict again) and starts at once; the backoff is for a store that did not even
# grant that (another process holding SQLite's lock for too long).
MAX_ATTEMPTS = 5
_BACKOFF_START = 0.1
_BACKOFF_MAX = 2.0
_BUILD_CHUNK = 1000


class Database:
    """Documents, indexes and schema enforcement over one :class:`Persistence`."""

    def __init__(self, persistence: Persistence, schema: SchemaDefinition | None = None) -> None:
        self.persistence = persistence
        self.catalog = Catalog(schema)
        self.committer = Committer(persistence, self.catalog)

    @property
    def schema(self) -> SchemaDefinition | None:
        return self.catalog.schema

    @schema.setter
    def schema(self, schema: SchemaDefinition | None) -> None:
        self.catalog.schema = schema

    @property
    def registry(self) -> IndexRegistry:
        return self.catalog.registry

    def declared_indexes(self, table: str) -> dict[str, tuple[str, ...]]:
        return self.catalog.declared_indexes(table)

    def creation_time(self) -> float:
        """Milliseconds since the epoch, strictly increasing within this process."""
        return self.catalog.creation_time()

    # -- reading -------------------------------------------------------------------------

    @asynccontextmanager
    async def read(
        self, *, system: bool = False, ts: int | None = None
    ) -> AsyncIterator[DatabaseReader]:
        """A consistent snapshot for the duration of the block: the newest, or the one of
        the commit at ``ts`` (within the last minute)."""
        txn = Transaction(
            self.persistence,
            self.catalog.registry,
            floor=self.committer.settled_head,
        )
        try:
            # Opened before the caller's code runs, so that a store known to be down is
            # said at once (a 503), not inside a function's time limit.
            await txn.snapshot()
            if ts is not None:
                await self._rewind(txn, ts)
            yield DatabaseReader(self.catalog, txn, system=system)
        finally:
            await txn.release()

    async def _rewind(self, txn: Transaction, ts: int) -> None:
        head = await txn.exact_ts()
        if ts > head:
            raise InvalidTimestampError(
                f"Timestamp {ts} is newer than the newest commit ({head}): get one from query_ts"
            )
        if ts < head - WINDOW_NS:
            raise InvalidTimestampError(
                f"Timestamp {ts} is out of retention: reads can be made at most "
                f"{WINDOW_NS // 1_000_000_000} s in the past"
            )
        if ts < head:
            await txn.rewind(ts)

    async def head(self) -> int:
        """The timestamp of the newest commit, in any process (0 before the first)."""
        async with self.persistence.reading() as snapshot:
            return await snapshot.head()

    # -- writing ---------------------------------------------------------------------------

    def after_commit(self, writer: DatabaseWriter, fn: Callable[[], None]) -> None:
        """Call ``fn()`` once ``writer``'s transaction has committed (never if it does not)."""
        writer.after_commit(fn)

    async def transact(
        self, fn: Callable[[DatabaseWriter], Awaitable[T]], *, system: bool = False
    ) -> T:
        """Run ``fn`` in a transaction and commit it, running it again from the top if
        something it read changed before it could commit; ``fn``'s result."""
        result, _ts = await self.transact_at(fn, system=system)
        return result

    async def transact_at(
        self, fn: Callable[[DatabaseWriter], Awaitable[T]], *, system: bool = False
    ) -> tuple[T, int]:
        """:meth:`transact`, and the timestamp of the commit that includes its writes."""
        delay = _BACKOFF_START
        for attempt in range(MAX_ATTEMPTS):
            try:
                if attempt == 0:
                    return await self._optimistic(fn, system)
                return await self._exclusive(fn, system)
            except ConflictError as exc:
                if attempt == MAX_ATTEMPTS - 1:
                    raise ConflictError(
                        f"{exc} and on every subsequent retry. See https://docs.convex.dev/error#1"
                    ) from None
                if attempt > 0:
                    await asyncio.sleep(min(delay, _BACKOFF_MAX) * random.random())
                    delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def _optimistic(
        self, fn: Callable[[DatabaseWriter], Awaitable[T]], system: bool
    ) -> tuple[T, int]:
        txn = Transaction(
            self.persistence, self.catalog.registry, floor=self.committer.settled_head
        )
        try:
            await txn.snapshot()  # see read()
            result = await fn(DatabaseWriter(self.catalog, txn, system=system))
        except BaseException:
            await txn.release()
            raise
        return result, await self.committer.commit(txn)

    async def _exclusive(
        self, fn: Callable[[DatabaseWriter], Awaitable[T]], system: bool
    ) -> tuple[T, int]:
        async with self.committer.exclusive() as txn:
            result = await fn(DatabaseWriter(self.catalog, txn, system=system))
            return result, await self.committer.commit_exclusive(txn)

    # -- the schema ------------------------------------------------------------------------

    def _wanted(self, system_only: bool) -> Wanted:
        user_tables = [] if system_only or self.schema is None else list(self.schema.tables)
        return {
            (table, name, fields)
            for table in [*SYSTEM_TABLES, *user_tables]
            for name, fields in self.declared_indexes(table).items()
        }

    async def setup(self, *, system_only: bool = False) -> None:
        """Build and drop indexes so the store matches the schema.

        ``system_only`` makes sure the system tables' indexes exist and leaves
        the user's alone (for tools that open the database without the app).
        A schema change is a commit that every running transaction conflicts with;
        when nothing changes, nothing is committed.
        """
        wanted = self._wanted(system_only)
        async with self.persistence.reading() as snapshot:
            stored = await self.registry.all(snapshot)
        drop, missing = _changes(stored, wanted, system_only)
        if not drop and not missing:
            return

        async def apply(store: WriteTransaction) -> None:
            registry = self.registry
            stored = await registry.all(store)
            for info in _changes(stored, wanted, system_only)[0]:
                await registry.remove(store, info)
            for table, name, fields in sorted(wanted):
                info, created = await registry.ensure(store, table, name, fields)
                if created:
                    await self._build(store, info)

        await self.committer.ddl(apply)

    async def _build(self, store: WriteTransaction, index: IndexInfo) -> None:
        """Fill a new index from the documents of its table."""
        natural = await self.registry.find(store, index.table, CREATION_INDEX, ())
        if natural is None:
            return
        start = b""
        while True:
            rows = await store.scan(natural.id, start, None, reverse=False, limit=_BUILD_CHUNK)
            if rows:
                entries = [
                    (index.id, index.key(values.decode(raw)), doc_id) for _, doc_id, _, raw in rows
                ]
                await store.write(WriteBatch(index_puts=entries))
            if len(rows) < _BUILD_CHUNK:
                return
            start = rows[-1][0] + b"\x00"

    async def tables(self) -> dict[str, int]:
        """Every table that has ever held a document, with its current document count."""
        async with self.persistence.reading() as snapshot:
            counts: dict[str, int] = {}
            for info in await self.registry.all(snapshot):
                if info.name == CREATION_INDEX:
                    counts[info.table] = await snapshot.count(info.id)
            return dict(sorted(counts.items()))

    async def close(self) -> None:
        await self.committer.close()
        await self.persistence.close()


Wanted = set[tuple[str, str, tuple[str, ...]]]


def _changes(
    stored: list[IndexInfo], wanted: Wanted, system_only: bool
) -> tuple[list[IndexInfo], Wanted]:
    """(stored indexes to drop, wanted ones that are missing)."""
    drop = [
        info
        for info in stored
        if not system_only
        and info.name != CREATION_INDEX
        and (info.table, info.name, info.fields) not in wanted
    ]
    return drop, wanted - {(info.table, info.name, info.fields) for info in stored}
