"""The blob store interface: bytes under keys, streamed in and out.

Everything that knows about storage ids, metadata, URLs and upload tokens
lives above it (``service.py``), once for every backend. Keys are made by
pyconvex (random hex), never taken from a request.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

CHUNK = 1024 * 1024  # what reads yield at a time
_KEY = re.compile(r"^[0-9a-f]{32}$")


def blob_name(key: str) -> str:
    """``ab/abcdef...``: where a blob lives below a store's root (a folder, a bucket prefix).

    Keys are ours, but checked anyway: nothing may name a path or object outside the root.
    """
    if not _KEY.match(key):
        raise ValueError(f"Invalid blob key {key!r}")
    return f"{key[:2]}/{key}"


@dataclass(frozen=True)
class Written:
    """What a finished write measured on the way."""

    size: int
    sha256: str


class BlobStore(ABC):
    @abstractmethod
    async def put(
        self, key: str, chunks: AsyncIterator[bytes], *, max_size: int | None = None
    ) -> Written:
        """Store the chunks under ``key``, all or nothing; hash and count them on the way.

        Raises ``BlobTooLarge`` (and stores nothing) past ``max_size`` bytes.
        """

    @abstractmethod
    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive; None: to the end), in chunks."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; no error if it is already gone."""

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release resources."""


class Measured:
    """A blob's incoming chunks, counted, hashed and checked against ``max_size`` on the way,
    and regrouped into pieces of at least ``piece`` bytes (the last may be smaller) for
    backends that write in large units.

        measured = Measured(chunks, piece=1024 * 1024, max_size=limit)
        async for piece in measured.pieces():
            ...                                   # write it
        return measured.written()
    """

    def __init__(self, chunks: AsyncIterator[bytes], *, piece: int, max_size: int | None) -> None:
        self._chunks = chunks
        self._piece = piece
        self._max_size = max_size
        self._digest = hashlib.sha256()
        self.size = 0

    async def pieces(self) -> AsyncIterator[bytes]:
        pending = bytearray()
        async for chunk in self._chunks:
            if not chunk:
                continue
            self.size += len(chunk)
            if self._max_size is not None and self.size > self._max_size:
                raise BlobTooLarge(self._max_size)
            self._digest.update(chunk)
            pending += chunk
            if len(pending) >= self._piece:
                yield bytes(pending)
                pending = bytearray()
        if pending:
            yield bytes(pending)

    def written(self) -> Written:
        return Written(self.size, self._digest.hexdigest())


class BlobTooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The file is over the upload limit of {limit} bytes")
        self.limit = limit
