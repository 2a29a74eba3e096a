"""The document database: transactions over a persistence backend.

db = Database(SqlitePersistence("app.sqlite3"), schema)
await db.setup()
doc_id = await db.transact(lambda w: w.insert("items", {"name": "x"}))
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from ..errors import ConflictError
from ..persistence import Persistence, WriteTransaction
from ..schema import SchemaDefinition
from .group import GroupCommit
from .indexes import CREATION_INDEX, IndexRange, IndexRegistry
from .query import Query, QueryInitializer
from .system import SYSTEM_TABLES
from .transaction import DatabaseReader, DatabaseWriter

__all__ = [
    "Database",
    "DatabaseReader",
    "DatabaseWriter",
    "IndexRange",
    "Query",
    "QueryInitializer",
]

T = TypeVar("T")

# Convex retries a conflicting mutation 4 times with 100 ms to 2 s of backoff. Here the
# first retry is exclusive (it runs alone, see Persistence.begin_write) and starts at once;
# the backoff is for a store that did not even grant that (SQLite's lock held too long).
MAX_ATTEMPTS = 5
_BACKOFF_START = 0.1
_BACKOFF_MAX = 2.0


class Database:
    """Documents, indexes and schema enforcement over one :class:`Persistence`."""

    def __init__(self, persistence: Persistence, schema: SchemaDefinition | None = None) -> None:
        self.persistence = persistence
        self.registry = IndexRegistry()
        self._schema = schema
        self._last_creation_time = 0.0
        self._clock = threading.Lock()
        self._registry_dirty: set[int] = set()
        self._after_commit: dict[int, list[Callable[[], None]]] = {}
        self._group = GroupCommit(self)

    @property
    def schema(self) -> SchemaDefinition | None:
        return self._schema

    @schema.setter
    def schema(self, schema: SchemaDefinition | None) -> None:
        self._schema = schema
        self.registry.table_indexes = {}  # the declared indexes may differ now

    def declared_indexes(self, table: str) -> dict[str, tuple[str, ...]]:
        if table.startswith("_"):
            definition = SYSTEM_TABLES.get(table)
            return definition.indexes if definition is not None else {}
        return self.schema.indexes(table) if self.schema is not None else {}

    def creation_time(self) -> float:
        """Milliseconds since the epoch, strictly increasing within this process."""
        with self._clock:
            now = max(time.time() * 1000.0, self._last_creation_time + 0.001)
            self._last_creation_time = now
            return now

    def note_registry_change(self, txn: WriteTransaction) -> None:
        self._registry_dirty.add(id(txn))

    def registry_changed(self, txn: WriteTransaction) -> bool:
        return id(txn) in self._registry_dirty

    @asynccontextmanager
    async def read(self, *, system: bool = False) -> AsyncIterator[DatabaseReader]:
        """A consistent snapshot for the duration of the block."""
        txn = await self.persistence.begin_read()
        try:
            yield DatabaseReader(self, txn, system=system)
        finally:
            await txn.close()

    def after_commit(self, writer: DatabaseWriter, fn: Callable[[], None]) -> None:
        """Call ``fn()`` once ``writer``'s transaction has committed (never if it does not).

        Hooks must tolerate running after a savepoint that was rolled back:
        they are for wake-ups and clean-ups that re-check what they act on.
        """
        self._after_commit.setdefault(id(writer._txn), []).append(fn)

    @asynccontextmanager
    async def write(
        self, *, system: bool = False, exclusive: bool = False
    ) -> AsyncIterator[DatabaseWriter]:
        """A serializable transaction that commits when the block ends without an exception
        (``exclusive``: while no other writer runs; for a retry after a conflict)."""
        txn = await self.persistence.begin_write(exclusive=exclusive)
        committed = False
        try:
            yield DatabaseWriter(self, txn, system=system)
            await txn.commit()
            committed = True
        finally:
            if not committed:
                await txn.close()
                if id(txn) in self._registry_dirty:
                    self.registry.invalidate()
            self._registry_dirty.discard(id(txn))
            hooks = self._after_commit.pop(id(txn), ())
        if committed:
            for hook in hooks:
                try:
                    hook()
                except Exception:
                    logging.getLogger("pyconvex").exception("An after-commit hook failed")

    async def transact(
        self, fn: Callable[[DatabaseWriter], Awaitable[T]], *, system: bool = False
    ) -> T:
        """Run ``fn`` in a write transaction, retrying it from the top on a conflict.

        The first attempt runs alongside other processes' writers; a retry runs alone.
        """
        delay = _BACKOFF_START
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self.write(system=system, exclusive=attempt > 0) as writer:
                    return await fn(writer)
            except ConflictError:
                if attempt == MAX_ATTEMPTS - 1:
                    raise
            if attempt > 0:
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, _BACKOFF_MAX)
        raise AssertionError("unreachable")  # pragma: no cover

    async def transact_batched(
        self, fn: Callable[[DatabaseWriter], Awaitable[T]], *, system: bool = False
    ) -> T:
        """Like :meth:`transact`, but committed together with the transactions queued
        alongside it (group commit, see :mod:`pyconvex.database.group`): for many small,
        independent writes under load, such as recording webhook deliveries."""
        result: T = await self._group.run(fn, system=system)
        return result

    async def setup(self, *, system_only: bool = False) -> None:
        """Create, backfill and drop indexes so the store matches the schema.

        ``system_only`` makes sure the system tables' indexes exist and leaves
        the user's alone (for tools that open the database without the app).
        """
        user_tables = [] if system_only or self.schema is None else list(self.schema.tables)

        async def apply(writer: DatabaseWriter) -> None:
            txn = writer._txn
            wanted = {
                (table, name, fields)
                for table in [*SYSTEM_TABLES, *user_tables]
                for name, fields in self.declared_indexes(table).items()
            }
            for info in await self.registry.all(txn):
                if (
                    not system_only
                    and info.name != CREATION_INDEX
                    and (info.table, info.name, info.fields) not in wanted
                ):
                    await self.registry.remove(txn, info)
                    self.note_registry_change(txn)
            for table, name, fields in sorted(wanted):
                info, created = await self.registry.ensure(txn, table, name, fields)
                if not created:
                    continue
                self.note_registry_change(txn)
                natural = await self.registry.find(txn, table, CREATION_INDEX, ())
                if natural is None:
                    continue
                start: bytes = b""
                while True:
                    rows = await txn.scan(natural.id, start, None, reverse=False, limit=1000)
                    for _key, doc_id, _table, raw in rows:
                        await txn.put_index(info.id, info.key(writer._decode(raw)), doc_id)
                    if len(rows) < 1000:
                        break
                    start = rows[-1][0] + b"\x00"

        await self.transact(apply, system=True)

    async def tables(self) -> dict[str, int]:
        """Every table that has ever held a document, with its current document count."""
        async with self.read(system=True) as reader:
            counts: dict[str, int] = {}
            for info in await self.registry.all(reader._txn):
                if info.name == CREATION_INDEX:
                    counts[info.table] = await reader._txn.count(info.id)
            return dict(sorted(counts.items()))

    async def close(self) -> None:
        await self.persistence.close()
