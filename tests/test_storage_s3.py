"""The S3 blob store against a real S3-compatible server (moto's): multipart, ranges, aborts."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest

from pyconvex.storage import BlobTooLarge, open_blob_store
from pyconvex.storage.s3 import PART, S3BlobStore

KEY = "0123456789abcdef0123456789abcdef"


def client() -> Any:
    return boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"])


async def pieces(total: int, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield bytes((sent + i) % 251 for i in range(n)) if n < 4096 else os.urandom(n)
        sent += n


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def leftovers(bucket: str) -> tuple[list[str], list[str]]:
    """Objects in the bucket, and multipart uploads still open in it."""
    objects = client().list_objects_v2(Bucket=bucket).get("Contents", [])
    uploads = client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [o["Key"] for o in objects], [u["Key"] for u in uploads]


async def test_a_large_file_goes_up_in_parts_and_comes_back_in_ranges(s3_bucket: str) -> None:
    store = open_blob_store(f"s3://{s3_bucket}/app1")
    assert isinstance(store, S3BlobStore)
    digest = hashlib.sha256()
    total = 2 * PART + 12345  # three parts, the last one short

    async def tee() -> AsyncIterator[bytes]:
        async for chunk in pieces(total):
            digest.update(chunk)
            yield chunk

    written = await store.put(KEY, tee())
    assert (written.size, written.sha256) == (total, digest.hexdigest())
    assert leftovers(s3_bucket) == ([f"app1/01/{KEY}"], [])
    whole = await collect(store.read(KEY))
    assert len(whole) == total and hashlib.sha256(whole).hexdigest() == written.sha256
    across = await collect(store.read(KEY, PART - 10, PART + 10))  # across a part boundary
    assert across == whole[PART - 10 : PART + 10]
    assert await collect(store.read(KEY, total - 5)) == whole[-5:]
    assert await collect(store.read(KEY, 10, 10)) == b""
    await store.delete(KEY)
    await store.delete(KEY)  # gone already: no error
    assert leftovers(s3_bucket) == ([], [])


async def test_over_the_limit_mid_upload_leaves_nothing(s3_bucket: str) -> None:
    store = S3BlobStore(s3_bucket)
    with pytest.raises(BlobTooLarge):
        # The first part goes up once the second has begun; the limit falls inside the third.
        await store.put(KEY, pieces(PART * 3), max_size=2 * PART + 1)
    assert leftovers(s3_bucket) == ([], [])


async def test_a_failing_source_aborts_the_upload(s3_bucket: str) -> None:
    store = S3BlobStore(s3_bucket)

    async def broken() -> AsyncIterator[bytes]:
        async for chunk in pieces(2 * PART + 1024):  # one part up, one held, then the failure
            yield chunk
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await store.put(KEY, broken())
    assert leftovers(s3_bucket) == ([], [])


async def test_small_files_are_one_object(s3_bucket: str) -> None:
    store = S3BlobStore(s3_bucket)
    written = await store.put(KEY, pieces(1000, 100))
    assert written.size == 1000
    assert await collect(store.read(KEY, 1, 4)) == bytes([1, 2, 3])
    await store.put(KEY[::-1], pieces(0))
    assert await collect(store.read(KEY[::-1])) == b""


def test_keys_are_checked_and_urls_need_a_bucket(s3_bucket: str) -> None:
    store = S3BlobStore(s3_bucket)
    with pytest.raises(ValueError, match="Invalid blob key"):
        store._name("../other-object")
    with pytest.raises(ValueError, match="needs a bucket"):
        open_blob_store("s3:///prefix")
