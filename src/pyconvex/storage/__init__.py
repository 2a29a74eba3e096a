"""File storage: a blob store (a local folder or an S3 bucket) behind one service and ``ctx.storage``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from .base import BlobStore, BlobTooLarge, Written
from .local import LocalBlobStore
from .service import FileStorage, UploadRefused

__all__ = [
    "BlobStore",
    "BlobTooLarge",
    "FileStorage",
    "LocalBlobStore",
    "UploadRefused",
    "Written",
    "open_blob_store",
]


def open_blob_store(url: str) -> BlobStore:
    """``file:///absolute/folder`` (or a plain path) -> a local folder;
    ``s3://bucket/prefix`` -> an S3-compatible bucket (see :mod:`pyconvex.storage.s3`)."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return LocalBlobStore(Path(unquote(parsed.path if parsed.scheme else url)))
    if parsed.scheme == "s3":
        from .s3 import S3BlobStore

        return S3BlobStore(parsed.netloc, unquote(parsed.path))
    raise ValueError(
        f"Unsupported storage URL {url!r}: expected file:///PATH or s3://BUCKET/PREFIX"
    )
