"""Blobs in an S3-compatible bucket: ``s3://bucket/optional/prefix``.

    PYCONVEX_STORAGE_URL=s3://my-bucket/app1 AWS_ENDPOINT_URL=http://127.0.0.1:9000 pyconvex serve

Credentials, region and endpoint come from boto3's usual sources (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL`` or ``S3_ENDPOINT_URL`` for a
compatible store, ``~/.aws``). A file of up to ``PART`` bytes is one ``PutObject``; a larger
one is a multipart upload, sent part by part as the bytes arrive (at most one part held in
memory) and aborted if anything fails, so a failed upload leaves nothing behind. Reads are
ranged ``GetObject``s streamed in chunks. File URLs stay pyconvex's own (the API port streams
the object), so access control and Range handling are the same as with a local folder.

boto3 is blocking: every call runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from .base import CHUNK, BlobStore, Measured, Written, blob_name

PART = 8 * 1024 * 1024  # S3 parts must be at least 5 MiB, except the last


class S3BlobStore(BlobStore):
    """Blob keys ``PREFIX/ab/abcdef...`` in one bucket."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None) -> None:
        if not bucket:
            raise ValueError("An s3:// storage URL needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client if client is not None else _client()

    def _name(self, key: str) -> str:
        name = blob_name(key)
        return f"{self.prefix}/{name}" if self.prefix else name

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self._client, method), **kwargs)

    async def put(
        self, key: str, chunks: AsyncIterator[bytes], *, max_size: int | None = None
    ) -> Written:
        name = self._name(key)
        measured = Measured(chunks, piece=PART, max_size=max_size)
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        held: bytes | None = None  # a part is sent once we know it is not the last one
        try:
            async for piece in measured.pieces():
                if held is not None:
                    if upload_id is None:
                        created = await self._call(
                            "create_multipart_upload", Bucket=self.bucket, Key=name
                        )
                        upload_id = created["UploadId"]
                    await self._upload_part(name, upload_id, parts, held)
                held = piece
            if upload_id is None:
                await self._call("put_object", Bucket=self.bucket, Key=name, Body=held or b"")
            else:
                assert held is not None
                await self._upload_part(name, upload_id, parts, held)
                await self._call(
                    "complete_multipart_upload",
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException:
            if upload_id is not None:
                await asyncio.shield(self._abort(name, upload_id))
            raise
        return measured.written()

    async def _upload_part(
        self, name: str, upload_id: str, parts: list[dict[str, Any]], body: bytes
    ) -> None:
        number = len(parts) + 1
        answer = await self._call(
            "upload_part",
            Bucket=self.bucket,
            Key=name,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    async def _abort(self, name: str, upload_id: str) -> None:
        # If even this fails, the bucket's lifecycle rule for stale uploads cleans up.
        with contextlib.suppress(Exception):
            await self._call(
                "abort_multipart_upload", Bucket=self.bucket, Key=name, UploadId=upload_id
            )

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            return
        ranged: dict[str, str] = {}
        if start or end is not None:  # a Range on an empty object is a 416: ask only when needed
            ranged["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        answer = await self._call("get_object", Bucket=self.bucket, Key=self._name(key), **ranged)
        body = answer["Body"]
        try:
            while True:
                chunk = await asyncio.to_thread(body.read, CHUNK)
                if not chunk:
                    break
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await self._call("delete_object", Bucket=self.bucket, Key=self._name(key))

    def close(self) -> None:
        self._client.close()


def _client() -> Any:
    try:
        import boto3
    except ImportError:  # pragma: no cover - depends on the install
        raise RuntimeError("s3:// storage needs boto3: pip install 'pyconvex[s3]'") from None
    endpoint = os.environ.get("S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    return boto3.client("s3", endpoint_url=endpoint or None)
