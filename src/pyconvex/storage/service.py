"""File storage for one deployment: blobs in a :class:`BlobStore`, their records in ``_storage``.

A stored file is a ``_storage`` row (``sha256`` as hex, ``size``,
``content_type``, and ``blob``, the key of its bytes); its storage id is the
row's ``_id``. Bytes are written first, then the row is committed, so a row
never points at missing bytes; a crash in between leaves only unreferenced
bytes. Deleting removes the row, then (after the commit) the bytes.

Upload URLs are one-time tokens: a ``_upload_tokens`` row made by
``generate_upload_url`` (in the caller's mutation, so a failed mutation makes
no valid URL) and deleted in the same transaction that records the upload.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

from .. import ids
from ..database.system import STORAGE, UPLOAD_TOKENS
from .base import BlobStore, Written

if TYPE_CHECKING:
    from ..database import Database, DatabaseReader, DatabaseWriter

UPLOAD_URL_SECONDS = 3600
DEFAULT_MAX_UPLOAD = 4 * 1024**3

Data = bytes | bytearray | memoryview | AsyncIterable[bytes]


class UploadRefused(ValueError):
    """An upload token that is malformed, unknown, used or expired (``status`` says which)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _chunks(data: Data) -> AsyncIterator[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield bytes(data)
        return
    if not hasattr(data, "__aiter__"):
        raise TypeError(
            f"store() takes bytes or an async iterator of bytes, not {type(data).__name__}"
        )
    async for chunk in data:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"store() got a chunk of {type(chunk).__name__}, expected bytes")
        yield bytes(chunk)


def is_storage_id(value: object) -> bool:
    return isinstance(value, str) and ids.is_id_of(value, STORAGE)


class FileStorage:
    """The storage service behind ``ctx.storage`` and the file endpoints."""

    def __init__(
        self,
        database: Database,
        blobs: BlobStore,
        base_url: str,
        *,
        max_upload: int = DEFAULT_MAX_UPLOAD,
    ) -> None:
        self.database = database
        self.blobs = blobs
        self.base_url = base_url.rstrip("/")
        self.max_upload = max_upload
        self._cleanups: set[asyncio.Task[None]] = set()

    # -- reading ---------------------------------------------------------------------------

    @staticmethod
    async def row(reader: DatabaseReader, storage_id: object) -> dict[str, Any] | None:
        """The ``_storage`` row of an id, or None for a malformed or unknown id."""
        if not is_storage_id(storage_id):
            return None
        return await reader.system.get(storage_id)  # type: ignore[arg-type]

    def url(self, storage_id: str) -> str:
        return f"{self.base_url}/api/storage/{storage_id}"

    @staticmethod
    def metadata(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "sha256": row["sha256"],
            "size": row["size"],
            "content_type": row.get("content_type"),
        }

    async def read_row(self, storage_id: object) -> dict[str, Any] | None:
        async with self.database.read(system=True) as reader:
            return await self.row(reader, storage_id)

    async def read_bytes(self, storage_id: object) -> bytes | None:
        """The whole file as bytes, or None if there is no such file."""
        row = await self.read_row(storage_id)
        if row is None:
            return None
        return b"".join([chunk async for chunk in self.blobs.read(row["blob"])])

    # -- writing ---------------------------------------------------------------------------

    async def store(
        self, data: Data, content_type: str | None = None, *, max_size: int | None = None
    ) -> str:
        """Stream ``data`` into the store and record it; returns the storage id."""
        key, written = await self.put_bytes(data, max_size=max_size)
        try:
            return await self.database.transact(
                lambda writer: self.record_in(writer, key, written, content_type), system=True
            )
        except BaseException:
            await self.blobs.delete(key)
            raise

    async def put_bytes(self, data: Data, *, max_size: int | None = None) -> tuple[str, Written]:
        """Write ``data`` to the blob store (durably), not yet a file: its key and size. A
        caller records it with :meth:`record_in` in its own transaction, or deletes it."""
        key = secrets.token_hex(16)
        return key, await self.blobs.put(key, _chunks(data), max_size=max_size)

    async def record_in(
        self, writer: DatabaseWriter, key: str, written: Written, content_type: str | None
    ) -> str:
        """Make the blob ``key`` a file in ``writer``'s transaction; its storage id."""
        return await self._record(writer, key, written.size, written.sha256, content_type)

    @staticmethod
    async def _record(
        writer: DatabaseWriter, key: str, size: int, sha256: str, content_type: str | None
    ) -> str:
        fields: dict[str, Any] = {"blob": key, "sha256": sha256, "size": size}
        if content_type:
            fields["content_type"] = content_type
        return await writer.insert(STORAGE, fields)

    async def delete_in(self, writer: DatabaseWriter, storage_id: object) -> None:
        """Delete the row in ``writer``'s transaction, and the bytes once it commits."""
        row = await self.row(writer, storage_id)
        if row is None:
            return
        await writer.system_writer().delete(row["_id"])
        self.database.after_commit(writer, lambda: self._remove_bytes_soon(row["_id"], row["blob"]))

    def _remove_bytes_soon(self, storage_id: str, key: str) -> None:
        task = asyncio.get_running_loop().create_task(self._remove_bytes(storage_id, key))
        self._cleanups.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._cleanups.discard)

    async def _remove_bytes(self, storage_id: str, key: str) -> None:
        # The hook also runs when only a savepoint around the delete was rolled back:
        # remove the bytes only if the row is really gone.
        if await self.read_row(storage_id) is None:
            await self.blobs.delete(key)

    async def delete(self, storage_id: object) -> None:
        await self.database.transact(lambda writer: self.delete_in(writer, storage_id), system=True)

    # -- upload URLs -----------------------------------------------------------------------

    async def upload_url_in(self, writer: DatabaseWriter) -> str:
        token = await writer.system_writer().insert(
            UPLOAD_TOKENS, {"expires_at": time.time() + UPLOAD_URL_SECONDS}
        )
        return f"{self.base_url}/api/storage/upload?token={token}"

    async def check_token(self, token: object) -> None:
        """Refuse a token that cannot be used, before reading the upload."""
        if not isinstance(token, str) or not ids.is_id_of(token, UPLOAD_TOKENS):
            raise UploadRefused(400, "Invalid upload URL: the token is malformed")
        async with self.database.read(system=True) as reader:
            row = await reader.get(token)
        self._check_row(row)

    @staticmethod
    def _check_row(row: dict[str, Any] | None) -> None:
        if row is None:
            raise UploadRefused(404, "This upload URL is unknown or was already used")
        if row["expires_at"] < time.time():
            raise UploadRefused(410, "This upload URL has expired: generate a new one")

    async def upload(self, token: str, data: Data, content_type: str | None) -> str:
        """Store an upload made with a token, consuming the token in the same transaction."""
        await self.check_token(token)
        key = secrets.token_hex(16)
        written = await self.blobs.put(key, _chunks(data), max_size=self.max_upload)

        async def record(writer: DatabaseWriter) -> str:
            self._check_row(await writer.get(token))  # a concurrent upload may have used it
            await writer.delete(token)
            return await self._record(writer, key, written.size, written.sha256, content_type)

        try:
            return await self.database.transact(record, system=True)
        except BaseException:
            await self.blobs.delete(key)
            raise
