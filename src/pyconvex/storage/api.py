"""``ctx.storage``: what each kind of function may do with stored files.

- query: ``get_url``, ``get_metadata``
- mutation: those, plus ``delete`` and ``generate_upload_url`` (in its transaction)
- action and HTTP action: all of them, plus ``store`` and ``get``; each call is
  its own transaction

    storage_id = await ctx.storage.store(request.stream(), content_type="image/png")
    url = await ctx.storage.get_url(storage_id)      # absolute, on the API port

A malformed or unknown id gives None (``delete`` does nothing), never an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .service import Data, FileStorage

if TYPE_CHECKING:
    from ..database import DatabaseReader, DatabaseWriter


class StorageReader:
    """``ctx.storage`` of a query."""

    _sync_facade = True

    def __init__(self, files: FileStorage, db: DatabaseReader | None) -> None:
        self._files = files
        self._db = db

    async def _row(self, storage_id: object) -> dict[str, Any] | None:
        if self._db is None:
            return await self._files.read_row(storage_id)
        return await self._files.row(self._db, storage_id)

    async def get_url(self, storage_id: str) -> str | None:
        """An absolute URL that serves the file (with Range support), or None."""
        row = await self._row(storage_id)
        return None if row is None else self._files.url(row["_id"])

    async def get_metadata(self, storage_id: str) -> dict[str, Any] | None:
        """``{"sha256": hex, "size": bytes, "content_type": str | None}``, or None."""
        row = await self._row(storage_id)
        return None if row is None else self._files.metadata(row)


class StorageWriter(StorageReader):
    """``ctx.storage`` of a mutation: changes happen only if the mutation commits."""

    _db: DatabaseWriter

    def __init__(self, files: FileStorage, db: DatabaseWriter) -> None:
        super().__init__(files, db)

    async def delete(self, storage_id: str) -> None:
        """Delete the file (its bytes go once the mutation commits)."""
        await self._files.delete_in(self._db, storage_id)

    async def generate_upload_url(self) -> str:
        """A URL that accepts one ``POST`` of raw bytes within an hour; answers ``{"storageId"}``."""
        return await self._files.upload_url_in(self._db)


class StorageActions(StorageReader):
    """``ctx.storage`` of an action or HTTP action: each call is its own transaction."""

    def __init__(self, files: FileStorage) -> None:
        super().__init__(files, None)

    async def store(self, data: Data, content_type: str | None = None) -> str:
        """Store bytes or an async iterator of chunks (streamed, never held whole); returns the id."""
        return await self._files.store(data, content_type)

    async def get(self, storage_id: str) -> bytes | None:
        """The whole file as bytes, or None. For large files serve ``get_url`` instead."""
        return await self._files.read_bytes(storage_id)

    async def delete(self, storage_id: str) -> None:
        await self._files.delete(storage_id)

    async def generate_upload_url(self) -> str:
        return await self._files.database.transact(self._files.upload_url_in, system=True)
