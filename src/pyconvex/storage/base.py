"""The blob store interface: bytes under keys, streamed in and out.

Everything that knows about storage ids, metadata, URLs and upload tokens
lives above it (``service.py``), once for every backend. Keys are made by
pyconvex (random hex), never taken from a request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass


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


class BlobTooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The file is over the upload limit of {limit} bytes")
        self.limit = limit
