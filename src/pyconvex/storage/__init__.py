"""File storage: a blob store (local folder; S3 later) behind one service and ``ctx.storage``."""

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
    """``file:///absolute/folder`` (or a plain path) -> a local folder."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return LocalBlobStore(Path(unquote(parsed.path if parsed.scheme else url)))
    raise ValueError(f"Unsupported storage URL {url!r}: expected file:///PATH")
