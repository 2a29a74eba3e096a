"""Blobs as files in a local folder: ``ROOT/ab/abcdef...``.

A write goes to a temporary file in the same folder and is renamed into
place when complete, so a reader never sees half a file and a crash leaves
only a temporary file behind. File I/O runs in worker threads, 1 MiB at a
time, so the event loop never waits on the disk. Folders are 0700 and files
0600 whatever the umask: what users stored is the deployment's alone.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from ..owner_only import open_private, private_dir
from .base import CHUNK, BlobStore, Measured, Written, blob_name


class LocalBlobStore(BlobStore):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        private_dir(self.root)

    def _path(self, key: str) -> Path:
        return self.root / blob_name(key)

    async def put(
        self, key: str, chunks: AsyncIterator[bytes], *, max_size: int | None = None
    ) -> Written:
        path = self._path(key)
        private_dir(path.parent)
        tmp = path.with_name(f".{key}.partial")
        out = await asyncio.to_thread(_create, tmp)
        measured = Measured(chunks, piece=CHUNK, max_size=max_size)
        try:
            async for piece in measured.pieces():
                await asyncio.to_thread(out.write, piece)
            await asyncio.to_thread(_finish, out)
            await asyncio.to_thread(os.replace, tmp, path)
        except BaseException:
            out.close()
            tmp.unlink(missing_ok=True)
            raise
        return measured.written()

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self._path(key)
        source = await asyncio.to_thread(open, path, "rb")
        try:
            if start:
                source.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                want = CHUNK if remaining is None else min(CHUNK, remaining)
                chunk = await asyncio.to_thread(source.read, want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            source.close()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)


def _create(path: Path) -> BinaryIO:
    """A new file, 0600: renamed into place, it is the blob (os.replace keeps the mode)."""
    return os.fdopen(open_private(path, os.O_WRONLY | os.O_TRUNC), "wb")


def _finish(out: object) -> None:
    out.flush()  # type: ignore[attr-defined]
    os.fsync(out.fileno())  # type: ignore[attr-defined]
    out.close()  # type: ignore[attr-defined]
