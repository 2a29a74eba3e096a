"""What a transaction read, what a commit wrote, and whether the two overlap.

A :class:`ReadSet` holds the documents a transaction read by id and the index
ranges it scanned (with their bounds, including ranges that found nothing, so
that an insert into a range another transaction saw empty is caught: a
phantom). A :class:`Writes` holds what one commit changed: the ids of the
documents it wrote, and for each index every key it added or removed. A
transaction whose snapshot is older than a commit conflicts with it exactly
when the commit's writes fall inside its read set.

Two consumers stand on this: the committer's conflict checks and, above the
database, subscriptions (which queries a commit invalidates).

>>> reads = ReadSet()
>>> reads.add_range(7, b"a", b"c")
>>> Writes(keys={7: [b"b"]}).overlaps(reads), Writes(keys={7: [b"c"]}).overlaps(reads)
(True, False)
"""

from __future__ import annotations

from typing import Any

import msgspec

# A pseudo document id: read by a transaction that looked for an index that did not
# exist yet, written by a commit that creates one.
REGISTRY = "\x00indexes"

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


class ReadSet:
    """The documents and index ranges one transaction read."""

    __slots__ = ("docs", "ranges")

    def __init__(self) -> None:
        self.docs: set[str] = set()
        #: index number -> [(start, end)], ``end`` None for no upper bound
        self.ranges: dict[int, list[tuple[bytes, bytes | None]]] = {}

    def add_doc(self, doc_id: str) -> None:
        self.docs.add(doc_id)

    def add_range(self, index_id: int, start: bytes, end: bytes | None) -> None:
        ranges = self.ranges.get(index_id)
        if ranges is None:
            self.ranges[index_id] = [(start, end)]
        else:
            ranges.append((start, end))

    def __bool__(self) -> bool:
        return bool(self.docs or self.ranges)

    def contains_key(self, index_id: int, key: bytes) -> bool:
        for start, end in self.ranges.get(index_id, ()):
            if start <= key and (end is None or key < end):
                return True
        return False


class Writes:
    """What one commit changed, as conflict checks and subscriptions see it."""

    __slots__ = ("docs", "everything", "keys", "tables")

    def __init__(
        self,
        docs: set[str] | None = None,
        keys: dict[int, list[bytes]] | None = None,
        *,
        everything: bool = False,
        tables: set[str] | None = None,
    ) -> None:
        self.docs: set[str] = docs if docs is not None else set()
        #: index number -> keys added or removed (both: a document that moved out of a
        #: range changes what a reader of that range saw)
        self.keys: dict[int, list[bytes]] = keys if keys is not None else {}
        #: a schema change (indexes built or dropped): every reader conflicts with it
        self.everything = everything
        #: the tables written (for error messages)
        self.tables: set[str] = tables if tables is not None else set()

    def add_key(self, index_id: int, key: bytes) -> None:
        keys = self.keys.get(index_id)
        if keys is None:
            self.keys[index_id] = [key]
        else:
            keys.append(key)

    def merge(self, other: Writes) -> None:
        self.docs |= other.docs
        for index_id, keys in other.keys.items():
            self.keys.setdefault(index_id, []).extend(keys)
        self.everything = self.everything or other.everything
        self.tables |= other.tables

    def overlaps(self, reads: ReadSet) -> bool:
        """Whether these writes change anything ``reads`` saw."""
        if self.everything:
            return bool(reads)
        if reads.docs and not reads.docs.isdisjoint(self.docs):
            return True
        ranges = reads.ranges
        if not ranges:
            return False
        for index_id, keys in self.keys.items():
            spans = ranges.get(index_id)
            if spans is None:
                continue
            for start, end in spans:
                for key in keys:
                    if start <= key and (end is None or key < end):
                        return True
        return False

    def encode(self) -> bytes:
        """The commit log's form (other processes decode it for their own checks)."""
        return _encoder.encode(
            [sorted(self.docs), list(self.keys.items()), self.everything, sorted(self.tables)]
        )

    @classmethod
    def decode(cls, data: bytes) -> Writes:
        docs, keys, everything, tables = _decoder.decode(data)
        return cls(
            set(docs),
            {int(index_id): list(index_keys) for index_id, index_keys in keys},
            everything=bool(everything),
            tables=set(tables),
        )


def encode_undo(before: dict[str, tuple[str, bytes | None]]) -> bytes:
    """The documents a commit changed, as they were before it: (table, encoded). A document
    it wrote that is not here did not exist before it."""
    return _encoder.encode([[doc_id, table, raw] for doc_id, (table, raw) in before.items()])


def decode_undo(data: bytes) -> list[tuple[str, str, bytes | None]]:
    rows: list[Any] = _decoder.decode(data) if data else []
    return [(doc_id, table, raw) for doc_id, table, raw in rows]
