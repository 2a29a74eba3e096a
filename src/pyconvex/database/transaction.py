"""One transaction: a snapshot to read, a record of what was read, and buffered writes.

A transaction holds no lock while its function runs. It reads one snapshot of
the store (opened at its first read), sees its own writes on top of it, and
records every document it read by id and every index range it scanned (the
read set). Its writes stay in memory until the committer checks the read set
against the commits made since the snapshot and, if none overlaps, writes them
with a batch of other transactions in one store transaction (see
:mod:`pyconvex.database.committer`).

    txn = Transaction(persistence, registry)
    found = await txn.load(doc_id)          # (table, document, its encoding) or None
    async for key, doc in txn.scan("items", info, (), start, end, reverse=False, batch=64): ...
    txn.put("items", doc_id, doc, encoded, old=None, before=None)
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from .. import values
from ..persistence import Persistence, ReadTransaction
from . import keys
from .indexes import IndexInfo, IndexRegistry
from .readset import REGISTRY, ReadSet, Writes, decode_undo

_MAX_BATCH = 1024
# Documents a transaction keeps of what it read from its snapshot (see ``_seen``), in
# encoded bytes: enough for the batches of a queue, never a large scan's worth.
_SEEN_MAX_BYTES = 1 << 20


@dataclass(slots=True)
class Change:
    """A document this transaction wrote: its new state (None: deleted) and the committed
    state it replaces (None: it is new), decoded for index keys and encoded for the log."""

    table: str
    doc: dict[str, Any] | None
    encoded: bytes | None
    old: dict[str, Any] | None
    before: bytes | None


_MISSING = object()


class Transaction:
    """A snapshot, the reads made of it, and the writes waiting to commit."""

    __slots__ = (
        "_floor",
        "_owns_snapshot",
        "_past",
        "_persistence",
        "_seen",
        "_seen_bytes",
        "_snapshot",
        "_ts",
        "_undo",
        "channels",
        "hooks",
        "journal",
        "journal_out",
        "paginated",
        "reads",
        "registry",
        "writes",
    )

    def __init__(
        self,
        persistence: Persistence,
        registry: IndexRegistry,
        *,
        snapshot: ReadTransaction | None = None,
        ts: int | None = None,
        floor: int | None = None,
    ) -> None:
        self._persistence = persistence
        self.registry = registry
        self._snapshot = snapshot
        self._owns_snapshot = snapshot is None  # an exclusive one's belongs to the committer
        # The timestamp reads are checked from: the snapshot's own, or a lower bound of it
        # (``floor``: the newest commit known to have happened before the snapshot opens).
        # A lower bound can only add conflicts (with commits the transaction in fact saw),
        # never miss one, and it saves asking the store.
        self._ts = ts
        self._floor = floor
        self.reads = ReadSet()
        self.writes: dict[str, Change] = {}
        # (doc id, what it replaced) for each write, so a savepoint can undo its own
        self._undo: list[tuple[str, Change | object]] = []
        self.hooks: list[Callable[[], None]] = []
        self.channels: set[str] = set()
        # Documents as they were at an earlier timestamp (reads at that timestamp)
        self._past: dict[str, tuple[str, dict[str, Any] | None]] = {}
        # Documents read from the snapshot, by id: (table, encoding). The snapshot does not
        # change, so reading one again (a queue batch patches the items its scan took; a
        # mutation gets what its query found) needs no second trip to the store, which on
        # PostgreSQL is a round trip per document.
        self._seen: dict[str, tuple[str, bytes]] = {}
        self._seen_bytes = 0
        #: A query's journal: where its paginated read ended last time it ran (a cursor), so
        #: that running it again reads as far; and where it ends this time.
        self.journal: str | None = None
        self.journal_out: str | None = None
        self.paginated = False

    # -- the snapshot --------------------------------------------------------------------

    async def snapshot(self) -> ReadTransaction:
        if self._snapshot is None:
            if self._ts is None:
                self._ts = self._floor
            self._snapshot = await self._persistence.begin_read()
        return self._snapshot

    async def exact_ts(self) -> int:
        """The timestamp of the newest commit this transaction's snapshot sees."""
        return await (await self.snapshot()).head()

    @property
    def opened(self) -> bool:
        """Whether the snapshot was opened (a transaction that only inserts never opens it)."""
        return self._snapshot is not None

    async def release(self) -> None:
        """End the snapshot (its timestamp stays known). Idempotent; an exclusive
        transaction's snapshot is the committer's to end."""
        if not self._owns_snapshot:
            return
        snapshot, self._snapshot = self._snapshot, None
        if snapshot is not None:
            try:
                if self._ts is None and self.reads:  # only what was read needs its time
                    self._ts = await snapshot.head()
            finally:
                await snapshot.close()

    async def rewind(self, ts: int) -> None:
        """Read as of the commit at ``ts`` (older than the snapshot): every document a later
        commit changed is seen as it was, from the store's commit log."""
        snapshot = await self.snapshot()
        head = await snapshot.head()
        written = await snapshot.commits(ts, head)
        undone = await snapshot.commits(ts, head, undo=True)
        for (_, data), (_, undo) in zip(written, undone, strict=True):
            before = {doc_id: (table, raw) for doc_id, table, raw in decode_undo(undo)}
            for doc_id in Writes.decode(data).docs:
                if doc_id not in self._past:  # the earliest later commit had it as it was
                    table, raw = before.get(doc_id, ("", None))  # absent: made after ``ts``
                    self._past[doc_id] = (table, None if raw is None else values.decode(raw))
        self._ts = ts

    # -- reading -------------------------------------------------------------------------

    async def load(self, doc_id: str) -> tuple[str, dict[str, Any], bytes | None] | None:
        """(table, document, its committed encoding or None if this transaction made it)."""
        change = self.writes.get(doc_id)
        if change is not None:
            if change.doc is None:
                return None
            return change.table, change.doc, change.before if change.old is not None else None
        past = self._past.get(doc_id)
        if past is not None:
            self.reads.add_doc(doc_id)  # what was read in the past is read all the same
            return None if past[1] is None else (past[0], past[1], None)
        seen = self._seen.get(doc_id)
        if seen is not None:
            self.reads.add_doc(doc_id)
            return seen[0], values.decode(seen[1]), seen[1]
        row = await (await self.snapshot()).get(doc_id)
        self.reads.add_doc(doc_id)
        if row is None:
            return None
        self._keep(doc_id, row[0], row[1])
        return row[0], values.decode(row[1]), row[1]

    def _keep(self, doc_id: str, table: str, raw: bytes) -> None:
        if doc_id not in self._seen and self._seen_bytes + len(raw) <= _SEEN_MAX_BYTES:
            self._seen[doc_id] = (table, raw)
            self._seen_bytes += len(raw)

    async def find_index(self, table: str, name: str, fields: tuple[str, ...]) -> IndexInfo | None:
        """The stored index, or None while the table has never had a document."""
        info = await self.registry.find(await self.snapshot(), table, name, fields)
        if info is None:
            self.reads.add_doc(REGISTRY)  # a commit that creates it changes what we saw
        return info

    async def scan(
        self,
        table: str,
        index: IndexInfo | None,
        fields: tuple[str, ...],
        start: bytes,
        end: bytes | None,
        *,
        reverse: bool,
        batch: int,
        only_rows: bool = False,
    ) -> AsyncGenerator[tuple[bytes, dict[str, Any]], None]:
        """(key, document) in key order (reversed: descending) with ``start <= key < end``,
        this transaction's own writes included. The range read is recorded as it is read,
        batch by batch, so a query that stops early only read as far as it went;
        ``only_rows`` records the documents read instead (see ``Query.claim``)."""
        mine = self._overlay(table, fields, start, end, reverse)
        if index is None:
            for row in mine:
                yield row
            return
        snapshot = await self.snapshot()
        shadowed = self._shadowed(table)
        taken = 0
        lo, hi = start, end
        while hi is None or lo < hi:
            rows = await snapshot.scan(index.id, lo, hi, reverse=reverse, limit=batch)
            done = len(rows) < batch
            if only_rows:
                for _key, doc_id, _table, _raw in rows:
                    self.reads.add_doc(doc_id)
            elif done:
                self.reads.add_range(index.id, lo, hi)
            elif reverse:
                self.reads.add_range(index.id, rows[-1][0], hi)
            else:
                self.reads.add_range(index.id, lo, rows[-1][0] + b"\x00")
            for key, doc_id, in_table, raw in rows:
                if doc_id in shadowed:
                    continue  # this transaction's version (if any) comes from ``mine``
                if self._seen_bytes < _SEEN_MAX_BYTES:
                    self._keep(doc_id, in_table, raw)
                while taken < len(mine) and (
                    mine[taken][0] > key if reverse else mine[taken][0] < key
                ):
                    yield mine[taken]
                    taken += 1
                yield key, values.decode(raw)
            if done:
                break
            if reverse:
                hi = rows[-1][0]
            else:
                lo = rows[-1][0] + b"\x00"
            batch = min(batch * 2, _MAX_BATCH)
        for row in mine[taken:]:
            yield row

    def _shadowed(self, table: str) -> set[str] | dict[str, Any]:
        """Ids whose stored version this transaction does not see."""
        if not self.writes:
            return self._past
        ids = {doc_id for doc_id, change in self.writes.items() if change.table == table}
        return ids | self._past.keys() if self._past else ids

    def _overlay(
        self, table: str, fields: tuple[str, ...], start: bytes, end: bytes | None, reverse: bool
    ) -> list[tuple[bytes, dict[str, Any]]]:
        """This transaction's version of the documents in the range (and, reading in the
        past, their versions then), in key order."""
        if not self.writes and not self._past:
            return []
        rows = []
        seen: dict[str, tuple[str, dict[str, Any] | None]] = {
            doc_id: (change.table, change.doc) for doc_id, change in self.writes.items()
        }
        for doc_id, past in self._past.items():
            seen.setdefault(doc_id, past)
        for in_table, doc in seen.values():
            if in_table != table or doc is None:
                continue
            key = keys.index_key(doc, fields)
            if start <= key and (end is None or key < end):
                rows.append((key, doc))
        rows.sort(key=lambda row: row[0], reverse=reverse)
        return rows

    async def count(self, index_id: int) -> int:
        return await (await self.snapshot()).count(index_id)

    # -- writing ---------------------------------------------------------------------------

    def put(
        self,
        table: str,
        doc_id: str,
        doc: dict[str, Any] | None,
        encoded: bytes | None,
        *,
        old: dict[str, Any] | None,
        before: bytes | None,
    ) -> None:
        """Buffer a document's new state (``doc`` None: deleted). ``old`` and ``before`` are
        its committed state as this transaction read it (None for a new document)."""
        previous = self.writes.get(doc_id)
        self._undo.append((doc_id, _MISSING if previous is None else previous))
        if previous is not None:  # written before in this transaction: its old state stays
            old, before = previous.old, previous.before
        self.writes[doc_id] = Change(table, doc, encoded, old, before)

    def mark(self) -> int:
        """A point to roll back to (a savepoint)."""
        return len(self._undo)

    def rollback(self, mark: int) -> None:
        """Undo the writes made since ``mark``. Reads stay recorded: what was seen was seen."""
        undo = self._undo
        while len(undo) > mark:
            doc_id, previous = undo.pop()
            if previous is _MISSING:
                del self.writes[doc_id]
            else:
                self.writes[doc_id] = previous  # type: ignore[assignment]

    def after_commit(self, hook: Callable[[], None]) -> None:
        self.hooks.append(hook)

    def notify(self, channel: str) -> None:
        """Wake ``channel``'s listeners in every process once this transaction commits."""
        self.channels.add(channel)
