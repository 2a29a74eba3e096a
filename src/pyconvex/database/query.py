"""Queries: an index range, an order, filters, and how many documents to read.

Only the selected index range is read from the store, in batches, so an
indexed lookup costs the same in a table of a thousand documents or a million.

    failed = ctx.db.query("items").with_index("by_status", lambda q: q.eq("status", "failed"))
    await failed.order("desc").take(5)
"""

from __future__ import annotations

import base64
import copy
from collections.abc import AsyncGenerator, Callable
from typing import Any

from .. import values
from ..errors import InvalidQueryError
from .catalog import Catalog
from .filters import Compiled, FilterBuilder, compile_filter
from .indexes import CREATION_INDEX, IndexRange
from .transaction import Transaction

_FIRST_BATCH = 64
_MAX_BATCH = 1024


class Query:
    """An ordered, filtered read of one index range. Build it, then read it once."""

    _sync_facade = True

    def __init__(
        self,
        txn: Transaction,
        catalog: Catalog,
        table: str,
        index: str = CREATION_INDEX,
        *,
        system: bool = False,
    ) -> None:
        self._txn = txn
        self._catalog = catalog
        self._table = table
        self._system = system
        self._index = index
        self._range_fn: Callable[[IndexRange], Any] | None = None
        self._range: tuple[tuple[str, ...], bytes, bytes | None] | None = None
        self._descending = False
        self._filters: list[Compiled] = []
        self._ordered = False

    # -- building ------------------------------------------------------------------------

    def order(self, order: str) -> Query:
        """``"asc"`` (default) or ``"desc"``: the index order, or its reverse."""
        if order not in ("asc", "desc"):
            raise InvalidQueryError(f'order() takes "asc" or "desc", not {order!r}')
        if self._ordered:
            raise InvalidQueryError("Queries may only specify order at most once")
        query = copy.copy(self)
        query._ordered = True
        query._descending = order == "desc"
        return query

    def filter(self, predicate: Callable[[FilterBuilder], Any]) -> Query:
        """Keep documents for which the expression is true (read, then filtered)."""
        query = copy.copy(self)
        query._filters = [*self._filters, compile_filter(predicate)]
        return query

    # -- reading -------------------------------------------------------------------------

    def _bounds(self) -> tuple[tuple[str, ...], bytes, bytes | None]:
        """The index's fields and the key range to read; raises for a bad index or range."""
        if self._range is not None:
            return self._range
        fields = self._catalog.index_fields(self._table, self._index)
        bounds = IndexRange(f"{self._table}.{self._index}", (*fields, "_creationTime"))
        if self._range_fn is not None:
            built = self._range_fn(bounds)
            if built is not bounds and built is not None:
                raise InvalidQueryError("with_index() range must return the builder q (or nothing)")
        start, end = bounds.byte_range()
        self._range = (fields, start, end)
        return self._range

    def _accept(self, doc: dict[str, Any]) -> bool:
        return all(f(doc) for f in self._filters)

    async def _pages(
        self, limit: int | None, after: bytes | None = None, *, only_rows: bool = False
    ) -> AsyncGenerator[tuple[bytes, dict[str, Any]], None]:
        """(key, document) pairs in order, at most ``limit`` of them after filtering."""
        fields, start, end = self._bounds()
        if after is not None:
            if self._descending:
                end = after if end is None or after < end else end
            else:
                start = max(start, after + b"\x00")
        if end is not None and start >= end:
            return
        txn = self._txn
        info = await txn.find_index(self._table, self._index, fields)
        batch = _FIRST_BATCH if limit is None or self._filters else max(1, min(limit, _MAX_BATCH))
        found = 0
        rows = txn.scan(
            self._table,
            info,
            fields,
            start,
            end,
            reverse=self._descending,
            batch=batch,
            only_rows=only_rows,
        )
        try:
            async for key, doc in rows:
                if self._filters and not self._accept(doc):
                    continue
                yield key, doc
                found += 1
                if limit is not None and found >= limit:
                    return
        finally:
            await rows.aclose()

    async def take(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` documents."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidQueryError(f"take() takes a non-negative integer, not {n!r}")
        if n == 0:
            return []
        return [doc async for _, doc in self._pages(n)]

    async def claim(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` documents, as a queue worker takes them: the transaction
        conflicts with any change to the documents it took, but not with new documents
        added to the range meanwhile (a worker that took a batch does not care about the
        next one). For pyconvex's own workers (a system reader), not user code."""
        if not self._system:
            raise InvalidQueryError("claim() is for pyconvex's own workers")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidQueryError(f"claim() takes a positive integer, not {n!r}")
        return [doc async for _, doc in self._pages(n, only_rows=True)]

    async def collect(self) -> list[dict[str, Any]]:
        """Every document of the query (mind the size: prefer take or paginate for big tables)."""
        return [doc async for _, doc in self._pages(None)]

    async def first(self) -> dict[str, Any] | None:
        """The first document, or None."""
        docs = await self.take(1)
        return docs[0] if docs else None

    async def unique(self) -> dict[str, Any] | None:
        """The only document, or None; raises if there are two or more."""
        docs = await self.take(2)
        if len(docs) > 1:
            raise InvalidQueryError(
                f"unique() query returned more than one result from table {self._table}:\n"
                f" [{docs[0]['_id']}, {docs[1]['_id']}, ...]"
            )
        return docs[0] if docs else None

    async def paginate(self, options: dict[str, Any]) -> dict[str, Any]:
        """One page: ``{"page": [...], "is_done": bool, "continue_cursor": str}``.

        ``options`` holds ``num_items`` and ``cursor`` (None for the first page, else the
        previous page's ``continue_cursor``). A document present throughout is returned
        exactly once across pages. In Convex's spelling (``{"numItems", "cursor",
        "endCursor"}``, as ``usePaginatedQuery`` sends it) the answer is Convex's too:
        ``{"page", "isDone", "continueCursor"}``.

        A page read up to an end cursor (``endCursor``, or the end this query's previous run
        reached, when it runs again for a subscription) holds every document up to it,
        however many: pages grow and shrink instead of shifting.
        """
        if not isinstance(options, dict):
            raise InvalidQueryError('paginate() takes {"num_items": N, "cursor": None | str}')
        convex = "numItems" in options and "num_items" not in options
        num = options.get("numItems") if convex else options.get("num_items")
        if isinstance(num, float) and num.is_integer():
            num = int(num)  # Convex's clients send every number as a float
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise InvalidQueryError(
                f"paginate(): num_items must be a positive integer, not {num!r}"
            )
        after = self._decode_cursor(options.get("cursor"))
        explicit = options.get("endCursor" if convex else "end_cursor")
        txn = self._txn
        first = not txn.paginated
        txn.paginated = True
        if explicit is not None:
            end = self._decode_cursor(explicit)
        else:
            end = self._decode_cursor(txn.journal) if first and txn.journal else None
        page, last, done = await self._page(num, after, end)
        cursor = self._encode_cursor(b"" if done else last)
        if first:
            txn.journal_out = cursor  # where this page ended: its next run reads as far
        if convex:
            return {"page": page, "isDone": done, "continueCursor": cursor}
        return {"page": page, "is_done": done, "continue_cursor": cursor}

    async def _page(
        self, num: int, after: bytes | None, end: bytes | None
    ) -> tuple[list[dict[str, Any]], bytes | None, bool]:
        """(documents, the last one's key, whether the range is exhausted)."""
        if after == b"":
            return [], after, True
        page: list[dict[str, Any]] = []
        last = after
        if end == b"":  # to the end of the range, however many
            async for key, doc in self._pages(None, after):
                page.append(doc)
                last = key
            return page, last, True
        if end is not None:  # up to and including the end cursor's document, however many
            async for key, doc in self._pages(None, after):
                if key < end if self._descending else key > end:
                    break
                page.append(doc)
            return page, end, False
        async for key, doc in self._pages(num + 1, after):
            if len(page) == num:
                return page, last, False
            page.append(doc)
            last = key
        return page, last, True

    def _cursor_tag(self) -> bytes:
        return f"{self._table}.{self._index}.{'d' if self._descending else 'a'}".encode()

    def _encode_cursor(self, key: bytes | None) -> str:
        payload = values.encode([self._cursor_tag(), key])
        return base64.urlsafe_b64encode(payload).decode().rstrip("=")

    def _decode_cursor(self, cursor: Any) -> bytes | None:
        if cursor is None:
            return None
        try:
            if not isinstance(cursor, str):
                raise ValueError
            tag, key = values.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            if tag != self._cursor_tag() or not isinstance(key, (bytes, type(None))):
                raise ValueError
        except Exception:
            raise InvalidQueryError(
                "InvalidCursor: this cursor belongs to a different query or is malformed"
            ) from None
        return key

    def __aiter__(self) -> AsyncGenerator[dict[str, Any], None]:
        return self._docs()

    async def _docs(self) -> AsyncGenerator[dict[str, Any], None]:
        pages = self._pages(None)
        try:
            async for _, doc in pages:
                yield doc
        finally:
            await pages.aclose()  # a reader that stops early ends the scan now, not at GC


class QueryInitializer(Query):
    """``ctx.db.query(table)``: choose an index, or read the table in creation order."""

    def with_index(self, name: str, range: Callable[[IndexRange], Any] | None = None) -> Query:
        """Read through index ``name``, optionally narrowed to a range:

        ``lambda q: q.eq("userId", uid).gte("createdAt", since)``
        """
        query = Query(self._txn, self._catalog, self._table, name, system=self._system)
        query._range_fn = range
        query._bounds()  # fail here, naming the index, rather than when read
        return query
