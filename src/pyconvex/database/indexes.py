"""Which indexes exist, under which numbers, and their key ranges.

Index numbers live in the store (global ``indexes``) so every process agrees
on them. Each table has ``by_creation_time`` (its natural order, created with
the table's first document); schema indexes are added, backfilled and dropped
when the schema changes. A number is never reused: an index whose fields
change gets a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import values
from ..errors import InvalidQueryError
from ..persistence import ReadTransaction, WriteTransaction
from . import keys

CREATION_INDEX = "by_creation_time"
_GLOBAL = "indexes"


@dataclass(frozen=True, slots=True)
class IndexInfo:
    table: str
    name: str
    fields: tuple[str, ...]
    id: int

    @property
    def all_fields(self) -> tuple[str, ...]:
        return (*self.fields, "_creationTime")

    def key(self, doc: dict[str, Any]) -> bytes:
        return keys.index_key(doc, self.fields)


def _slot(table: str, name: str, fields: tuple[str, ...]) -> str:
    return "\x00".join((table, name, ",".join(fields)))


class IndexRegistry:
    """A process-wide cache of the stored index numbers.

    The stored registry carries a version, bumped by every change, so that a reader whose
    snapshot is older than the cache never replaces the cache with its older registry.
    Only the committer changes it (under the store's write lock).
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._next = 1
        self._version = -1  # nothing loaded yet
        #: Every index of a table, as the committer writes them.
        self.table_indexes: dict[str, list[IndexInfo]] = {}
        #: Bumped whenever ``table_indexes`` may have lost an entry: what was computed
        #: from an older generation must be computed again.
        self.generation = 0

    def invalidate(self) -> None:
        """Forget the cache: a commit that allocated numbers failed, or another process
        changed the indexes."""
        self._ids = {}
        self._next = 1
        self._version = -1
        self.table_indexes = {}
        self.generation += 1

    @staticmethod
    async def _read(txn: ReadTransaction) -> tuple[dict[str, int], int, int]:
        raw = await txn.get_global(_GLOBAL)
        if raw is None:
            return {}, 1, 0
        data = values.decode(raw)
        return dict(data["ids"]), data["next"], data.get("version", 0)

    async def _load(self, txn: ReadTransaction) -> dict[str, int]:
        ids, next_id, version = await self._read(txn)
        if version >= self._version:
            self._ids, self._next, self._version = ids, next_id, version
        return ids

    async def _store(self, txn: WriteTransaction) -> None:
        self._version += 1
        await txn.set_global(
            _GLOBAL, values.encode({"ids": self._ids, "next": self._next, "version": self._version})
        )

    async def find(
        self, txn: ReadTransaction, table: str, name: str, fields: tuple[str, ...]
    ) -> IndexInfo | None:
        """The index if it exists in ``txn``'s snapshot (reading the store when unknown here)."""
        slot = _slot(table, name, fields)
        number = self._ids.get(slot)
        if number is None:
            number = (await self._load(txn)).get(slot)
            if number is None:
                return None
        return IndexInfo(table, name, fields, number)

    async def ensure(
        self, txn: WriteTransaction, table: str, name: str, fields: tuple[str, ...]
    ) -> tuple[IndexInfo, bool]:
        """The index, allocating its number if new; the flag says whether it was created.

        ``txn`` is the store's write transaction: it sees the newest registry."""
        found = await self.find(txn, table, name, fields)
        if found is not None:
            return found, False
        await self._load(txn)
        slot = _slot(table, name, fields)
        self.table_indexes.pop(table, None)
        self.generation += 1
        self._ids[slot] = self._next
        self._next += 1
        await self._store(txn)
        return IndexInfo(table, name, fields, self._ids[slot]), True

    async def all(self, txn: ReadTransaction) -> list[IndexInfo]:
        out = []
        for slot, number in (await self._load(txn)).items():
            table, name, fields = slot.split("\x00")
            out.append(IndexInfo(table, name, tuple(f for f in fields.split(",") if f), number))
        return out

    async def remove(self, txn: WriteTransaction, info: IndexInfo) -> None:
        await self._load(txn)
        self.table_indexes.pop(info.table, None)
        self.generation += 1
        self._ids.pop(_slot(info.table, info.name, info.fields), None)
        await txn.drop_index(info.id)
        await self._store(txn)


class IndexRange:
    """The builder passed to ``with_index(name, lambda q: ...)``.

    Equalities on a prefix of the index's fields, in order, then at most one
    lower bound (``gt``/``gte``) and one upper bound (``lt``/``lte``) on the next field.
    """

    def __init__(self, index: str, fields: tuple[str, ...]) -> None:
        self._index = index
        self._fields = fields
        self._eq: list[Any] = []
        self._lower: tuple[str, Any] | None = None
        self._upper: tuple[str, Any] | None = None

    def _next_field(self, field: str, op: str) -> None:
        position = len(self._eq)
        expected = self._fields[position] if position < len(self._fields) else None
        if field != expected:
            raise InvalidQueryError(
                f"Uh oh! Index range on {self._index} uses {op}({field!r}) out of order. "
                f"Index fields: {list(self._fields)}; the next field to constrain is {expected!r}. "
                "Use eq() on a prefix of the fields, then one lower and one upper bound on the next."
            )

    def eq(self, field: str, value: Any) -> IndexRange:
        if self._lower or self._upper:
            raise InvalidQueryError(
                f"eq({field!r}) after a range bound in index range on {self._index}"
            )
        self._next_field(field, "eq")
        self._eq.append(value)
        return self

    def _bound(self, which: str, op: str, field: str, value: Any) -> IndexRange:
        current = self._lower if which == "lower" else self._upper
        if current is not None:
            raise InvalidQueryError(f"Index range on {self._index} already has a {which} bound")
        other = self._upper if which == "lower" else self._lower
        if other is not None:
            if which == "lower":
                raise InvalidQueryError(
                    f"{op}() must come before lt()/lte() in index range on {self._index}"
                )
            if field != self._fields[len(self._eq)]:
                raise InvalidQueryError(
                    f"Index range on {self._index}: both bounds must be on the same field"
                )
        else:
            self._next_field(field, op)
        if which == "lower":
            self._lower = (op, value)
        else:
            self._upper = (op, value)
        return self

    def gt(self, field: str, value: Any) -> IndexRange:
        return self._bound("lower", "gt", field, value)

    def gte(self, field: str, value: Any) -> IndexRange:
        return self._bound("lower", "gte", field, value)

    def lt(self, field: str, value: Any) -> IndexRange:
        return self._bound("upper", "lt", field, value)

    def lte(self, field: str, value: Any) -> IndexRange:
        return self._bound("upper", "lte", field, value)

    def byte_range(self) -> tuple[bytes, bytes | None]:
        """The ``[start, end)`` byte range of index keys this range selects."""
        for value in self._eq + [b[1] for b in (self._lower, self._upper) if b]:
            values.check_value(value, what="Index range value")
        prefix = b"".join(keys.encode(v) for v in self._eq)
        start, end = prefix, keys.successor(prefix)
        if self._lower is not None:
            op, value = self._lower
            at = prefix + keys.encode(value)
            start = at if op == "gte" else keys.successor(at) or at
        if self._upper is not None:
            op, value = self._upper
            at = prefix + keys.encode(value)
            end = at if op == "lt" else keys.successor(at)
        return start, end
