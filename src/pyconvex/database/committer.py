"""The committer: checks transactions against what committed since they read, and
commits many at once.

    ts = await committer.commit(txn)           # ConflictError if its reads went stale

Transactions run without holding any lock (see :mod:`.transaction`) and queue
here when their function returns. The committer takes every queued transaction
as one batch and, inside one write transaction of the store (the store's only
writer, across processes):

1. learns the commits other processes made since it last looked (the store's
   commit log) and adds them to the in-memory :class:`~.commit_log.CommitLog`;
2. checks each transaction of the batch, in order, against the commits after its
   snapshot and against the batch members before it: one whose read set overlaps
   their writes conflicts (and its caller runs it again); the others are
   serializable in batch order;
3. writes the survivors' documents and index entries, and a commit log entry for
   each, with its own timestamp (strictly increasing in batch order: above the
   store's newest commit, and nanoseconds since the epoch when the clock allows);
4. commits (fsynced), then answers each caller with the timestamp.

A commit costs about the same for one transaction or a hundred, so under load
the cost per transaction falls with the batch size; a transaction that failed
or timed out never reaches the committer, so it cannot fail its neighbours.

:meth:`Committer.exclusive` holds the store's write transaction while a function
runs (a retry after a conflict: nothing else can commit meanwhile, so it cannot
conflict again), and :meth:`Committer.ddl` runs index changes under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ..errors import ConflictError, StoreUnavailableError
from ..persistence import Persistence, ReadTransaction, WriteBatch, WriteTransaction
from . import keys
from .catalog import Catalog
from .commit_log import WINDOW_NS, CommitLog
from .indexes import CREATION_INDEX, IndexInfo
from .readset import REGISTRY, Writes, encode_undo
from .transaction import Transaction

T = TypeVar("T")
MAX_BATCH = 256  # bounds the time one batch holds the store's write lock
# The store's commit log keeps twice what the in-memory one does: other processes
# catching up, and reads at an earlier timestamp, never find it shorter than theirs.
RETENTION_NS = 2 * WINDOW_NS
PRUNE_EVERY_NS = 10_000_000_000
COMMITS = "pyconvex_commits"  # notified with every commit (PostgreSQL: on commit)

_log = logging.getLogger("pyconvex.database")
_Pending = tuple[Transaction, "asyncio.Future[int]"]


def conflict_error(writes: Writes) -> ConflictError:
    """Convex's words for a transaction that lost a race."""
    table = f'the "{min(writes.tables)}" table' if writes.tables else "some table"
    return ConflictError(
        f"Documents read from or written to {table} changed while this mutation was being run"
    )


class Committer:
    """The one committer of a :class:`~pyconvex.database.Database` in this process."""

    def __init__(self, persistence: Persistence, catalog: Catalog) -> None:
        self._persistence = persistence
        self._catalog = catalog
        self.log = CommitLog()
        self._queue: list[_Pending] = []
        self._draining: asyncio.Task[None] | None = None
        # One store write transaction at a time in this process (the store makes it one
        # across processes): a batch, an exclusive transaction or a schema change.
        self._gate = asyncio.Lock()
        self._pruned = 0
        self._closed = False
        self._committing = False  # a store write transaction is open
        self._listeners: list[Callable[[list[tuple[int, Writes]]], None]] = []
        self._woken = asyncio.Event()

    @property
    def head(self) -> int | None:
        """The newest commit this process knows of."""
        return self.log.head

    @property
    def settled_head(self) -> int | None:
        """The newest commit, if no commit of this process is under way (then a snapshot
        opened now sees exactly the commits up to it, unless another process committed
        since); None while one is, since a snapshot may or may not see it yet."""
        return None if self._committing else self.log.head

    def on_commits(self, callback: Callable[[list[tuple[int, Writes]]], None]) -> None:
        """Call ``callback(commits)`` with every commit this process learns of, in timestamp
        order, its own (before their callers hear back) and other processes'."""
        self._listeners.append(callback)

    def _tell(self, commits: list[tuple[int, Writes]]) -> None:
        for callback in self._listeners:
            try:
                callback(commits)
            except Exception:
                _log.exception("A commit listener failed")

    async def refresh(self) -> None:
        """Learn the commits other processes made since we last looked (the store's commit
        log, read under this process's gate so that no commit of ours lands between)."""
        async with self._gate, self._persistence.reading() as snapshot:
            await self._catch_up(snapshot)

    async def follow(self, poll_seconds: float) -> None:
        """Learn other processes' commits as they happen, until cancelled: at once when the
        store wakes us (PostgreSQL's NOTIFY), else every ``poll_seconds``."""
        await self._persistence.listen(COMMITS, self._woken.set)
        while True:
            try:
                async with asyncio.timeout(poll_seconds):
                    await self._woken.wait()
            except TimeoutError:
                pass
            self._woken.clear()
            try:
                await self.refresh()
            except Exception:  # the store may be away for a moment: look again later
                _log.warning("Could not read the commit log", exc_info=True)

    async def commit(self, txn: Transaction) -> int:
        """Commit ``txn`` with the next batch; its commit timestamp.

        Raises :class:`~pyconvex.errors.ConflictError` if a commit since its snapshot
        wrote something it read. A transaction that wrote nothing commits at once, at its
        snapshot.
        """
        await txn.release()
        if not txn.writes:
            _run_hooks(txn)
            return txn._ts if txn._ts is not None else (self.log.head or 0)
        if self._closed:
            raise StoreUnavailableError("The database is closing")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((txn, future))
        if self._draining is None:
            # A task of its own: a caller that goes away must not take the batch with it.
            self._draining = asyncio.get_running_loop().create_task(self._drain())
        # Not shielded: a caller that stops waiting cancels only its wait; the committer
        # commits the transaction all the same (it was complete), and skips the answer.
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                async with self._gate:
                    batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                    await self._commit(batch, None)
        finally:
            self._draining = None

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[Transaction]:
        """A transaction that reads the store's newest state under its write lock; commit it
        with :meth:`commit_exclusive` inside the block. Nothing else commits meanwhile."""
        async with self._gate:
            store = await self._persistence.begin_write()
            try:
                await self._catch_up(store)
                head = self.log.head
                yield Transaction(
                    self._persistence, self._catalog.registry, snapshot=store, ts=head
                )
            finally:
                await store.close()

    async def commit_exclusive(self, txn: Transaction) -> int:
        """Commit a transaction of :meth:`exclusive` (inside its block)."""
        await txn.release()
        if not txn.writes:
            _run_hooks(txn)
            return txn._ts or 0
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        store = await txn.snapshot()
        assert isinstance(store, WriteTransaction)
        await self._commit([(txn, future)], store)
        return await future

    async def ddl(self, change: Callable[[WriteTransaction], Awaitable[T]]) -> T:
        """Run ``change`` (index numbers, builds and drops) in the store's write
        transaction and commit it as a commit that every running transaction conflicts
        with: what they read through an index may not mean the same any more."""
        async with self._gate:
            store = await self._persistence.begin_write()
            try:
                await self._catch_up(store)
                result = await change(store)
                writes = Writes({REGISTRY}, everything=True)
                ts = self._next_ts()
                await store.write(WriteBatch([(ts, writes.encode(), None)]))
                await store.notify(COMMITS)
                await store.commit()
            except BaseException:
                await store.close()
                self._catalog.registry.invalidate()
                raise
            self._made(ts, writes)
            return result

    async def close(self) -> None:
        """Let the queued transactions commit, then refuse new ones."""
        self._closed = True
        draining = self._draining
        if draining is not None:
            await asyncio.shield(draining)

    # -- one batch ---------------------------------------------------------------------

    def _next_ts(self) -> int:
        return max((self.log.head or 0) + 1, time.time_ns())

    async def _catch_up(self, store: ReadTransaction) -> None:
        """Add the commits other processes made since we last looked to the log (and tell
        the listeners of them)."""
        if self.log.head is None:
            self.log.start(await store.head())
            return
        self._learn(await store.commits(self.log.head))

    def _made(self, ts: int, writes: Writes) -> None:
        """A commit of this process: into the log, and to the listeners."""
        self.log.extend([(ts, writes)])
        self._tell([(ts, writes)])

    def _learn(self, found: list[tuple[int, bytes]]) -> None:
        """Add other processes' commits (from the store's log) to ours, and tell listeners."""
        if not found:
            return
        learned = [(ts, Writes.decode(data)) for ts, data in found]
        if any(writes.everything or REGISTRY in writes.docs for _, writes in learned):
            self._catalog.registry.invalidate()  # another process changed the indexes
        head = self.log.head or 0
        self.log.extend(learned)
        self._tell([(ts, writes) for ts, writes in learned if ts > head])

    async def _commit(self, batch: list[_Pending], store: WriteTransaction | None) -> None:
        """Commit what passes its checks in ``batch``; answer every future. Each transaction
        committed gets a timestamp of its own, in batch order (its serial order)."""
        accepted: list[tuple[Transaction, asyncio.Future[int], int]] = []
        # Index entries and encodings are worked out before the store's write lock is
        # taken: held, it stops every other process's commits.
        registry = self._catalog.registry
        staged = [_stage(txn, registry.table_indexes, registry.generation) for txn, _ in batch]
        self._committing = True
        try:
            if store is None:
                store = await self._persistence.begin_write()
                await self._catch_up(store)
            ts = self._next_ts()
            batch_write = WriteBatch()
            written = Writes()  # by the transactions of this batch accepted so far
            for (txn, future), ready in zip(batch, staged, strict=True):
                reads = txn.reads
                if reads:
                    clash = self.log.conflict(reads, txn._ts or 0)
                    if clash is None and written.overlaps(reads):
                        clash = written  # an earlier transaction of this batch wrote it
                    if clash is not None:
                        if not future.done():
                            future.set_exception(conflict_error(clash))
                        continue
                if ready is None or ready.generation != registry.generation:
                    ready = await self._stage_locked(store, txn)
                ready.add_to(batch_write, ts)
                written.merge(ready.writes)
                accepted.append((txn, future, ts))
                ts += 1
            if not accepted:
                await store.close()
                return
            await store.write(batch_write)
            for channel in sorted({COMMITS, *(c for txn, *_ in accepted for c in txn.channels)}):
                await store.notify(channel)
            if ts - self._pruned > PRUNE_EVERY_NS:
                await store.prune_commits(ts - RETENTION_NS)
                self._pruned = ts
            await store.commit()
        except BaseException as exc:
            if store is not None:
                with contextlib.suppress(Exception):
                    await store.close()
            registry.invalidate()  # numbers it allocated were rolled back
            for _txn, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConflictError())
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._committing = False
        # One log entry for the batch, at its last timestamp: no snapshot sees a part of it.
        self._made(ts - 1, written)
        for txn, future, stamp in accepted:
            if not future.done():  # (a caller that stopped waiting: committed all the same)
                future.set_result(stamp)
            if txn.hooks:
                _run_hooks(txn)

    async def _stage_locked(self, store: WriteTransaction, txn: Transaction) -> _Staged:
        """:func:`_stage` under the write lock: indexes a table lacks are numbered now."""
        registry = self._catalog.registry
        created = False
        for table in {change.table for change in txn.writes.values()}:
            if table not in registry.table_indexes:
                created = await self._indexes(store, table) or created
        ready = _stage(txn, registry.table_indexes, registry.generation)
        assert ready is not None  # every table's indexes are known now
        if created:
            ready.writes.docs.add(REGISTRY)
            ready.encoded = ready.writes.encode()
        return ready

    async def _indexes(self, store: WriteTransaction, table: str) -> bool:
        """Learn every index of ``table``, numbering any that is new (a new table's); whether
        one was."""
        registry = self._catalog.registry
        out = []
        created = False
        declared = {CREATION_INDEX: (), **self._catalog.declared_indexes(table)}
        for name, fields in declared.items():
            info, new = await registry.ensure(store, table, name, fields)
            created = created or new
            out.append(info)
        registry.table_indexes[table] = out
        return created


@dataclass(slots=True)
class _Staged:
    """What one transaction writes to the store, worked out ahead of its commit."""

    writes: Writes
    encoded: bytes  # ``writes`` as the commit log keeps them
    undo: bytes | None
    generation: int  # of the index registry it was worked out with
    documents: list[tuple[str, str, bytes]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    index_puts: list[tuple[int, bytes, str]] = field(default_factory=list)
    index_deletes: list[tuple[int, bytes]] = field(default_factory=list)

    def add_to(self, batch: WriteBatch, ts: int) -> None:
        batch.documents += self.documents
        batch.deleted += self.deleted
        batch.index_puts += self.index_puts
        batch.index_deletes += self.index_deletes
        batch.commits.append((ts, self.encoded, self.undo))


def _stage(
    txn: Transaction, table_indexes: dict[str, list[IndexInfo]], generation: int
) -> _Staged | None:
    """``txn``'s documents, index entries and commit log entry; None if a table it wrote
    has indexes not known yet (they may need numbers: that waits for the write lock)."""
    mine = Writes()
    ready = _Staged(mine, b"", None, generation)
    undo: dict[str, tuple[str, bytes | None]] = {}
    for doc_id, change in txn.writes.items():
        doc, old, table = change.doc, change.old, change.table
        if doc is None and old is None:
            continue  # made and deleted in this transaction: nothing to store
        indexes = table_indexes.get(table)
        if indexes is None:
            return None
        mine.docs.add(doc_id)
        mine.tables.add(table)
        if change.before is not None:
            undo[doc_id] = (table, change.before)
        # The key's tail (creation time, id) is the same for every index, old or new.
        tail = keys.identity_key(doc if doc is not None else old)  # type: ignore[arg-type]
        for index in indexes:
            fields = index.fields
            if old is None:
                old_key = None
            elif fields or doc is None:
                old_key = keys.fields_key(old, fields) + tail
            else:  # an update's creation-time index key: it cannot change
                mine.add_key(index.id, tail)  # but what a reader of that range saw did
                continue
            new_key = None if doc is None else keys.fields_key(doc, fields) + tail
            if new_key == old_key:
                # The entry stays; the document it leads to changed under it, so a reader
                # of a range holding that key read something this commit changes.
                mine.add_key(index.id, new_key)  # type: ignore[arg-type]
                continue
            if old_key is not None:
                ready.index_deletes.append((index.id, old_key))
                mine.add_key(index.id, old_key)
            if new_key is not None:
                ready.index_puts.append((index.id, new_key, doc_id))
                mine.add_key(index.id, new_key)
        if doc is None:
            ready.deleted.append(doc_id)
        else:
            ready.documents.append((doc_id, table, change.encoded))  # type: ignore[arg-type]
    ready.encoded = mine.encode()
    ready.undo = encode_undo(undo) if undo else None
    return ready


def _run_hooks(txn: Transaction) -> None:
    for hook in txn.hooks:
        try:
            hook()
        except Exception:
            _log.exception("An after-commit hook failed")
