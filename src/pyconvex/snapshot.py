"""Whole-deployment snapshots: ``pyconvex export`` and ``pyconvex import``.

    pyconvex export backup.zip --app myapp                              # from SQLite...
    pyconvex import backup.zip --app myapp --database-url postgresql://...  # ...into PostgreSQL

A snapshot is a ZIP laid out like Convex's snapshot exports: ``TABLE/documents.jsonl``
for every table (one document per line, in Convex JSON, so ints, floats and bytes come
back as they were; ``_id`` and ``_creationTime`` kept), and the bytes of every stored file
as ``_storage/<storage id>``, beside ``_storage/documents.jsonl``. ``_pyconvex.json`` lists
the tables and their sizes. System tables travel too (env vars, scheduled jobs, webhook
events, API keys), except one-hour upload tokens.

Both directions stream: documents are read and written in pages, files in chunks, so the
size of a deployment is limited by the disk, not the memory. The export reads one
snapshot of the database (one read transaction), so it is consistent even while the
deployment serves. An import goes into an empty database only, and validates every
document against the target app's schema; files are copied (and their sha256 checked)
before their ``_storage`` rows, so a row never names missing bytes.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec

from . import owner_only, values
from .database import Database, DatabaseWriter
from .database.system import (
    CRON_JOB_LOGS,
    CRON_JOBS,
    METRICS,
    RATE_LIMITS,
    STORAGE,
    UPLOAD_TOKENS,
)
from .storage import BlobStore
from .storage.base import CHUNK
from .values import plain_json

FORMAT = 1
META = "_pyconvex.json"
BATCH = 500
# Not the deployment's data: short-lived tokens, the server's own metrics (a snapshot
# moved elsewhere would show another deployment's traffic, and make it "not empty"), cron
# jobs (made from convex/crons.py at start) and rate-limit state (it refills by itself).
SKIPPED = frozenset({UPLOAD_TOKENS, METRICS, CRON_JOBS, CRON_JOB_LOGS, RATE_LIMITS})
_encode = msgspec.json.Encoder(enc_hook=plain_json).encode

# progress(kind, amount): kind is "documents" or "bytes"
Progress = Callable[[str, int], None]


def _quiet(kind: str, amount: int) -> None:
    pass


class SnapshotError(Exception):
    """A snapshot that cannot be imported here (not empty, not a snapshot, a bad document)."""


async def table_sizes(database: Database) -> dict[str, int]:
    """The tables a snapshot of ``database`` holds, with their document counts."""
    return {t: n for t, n in (await database.tables()).items() if t not in SKIPPED and n}


async def export(
    database: Database, blobs: BlobStore, path: str | Path, progress: Progress = _quiet
) -> dict[str, int]:
    """Write every table and file of the deployment to the ZIP at ``path``; the table sizes."""
    sizes = await table_sizes(database)
    # Owner-only, as the deployment's folder: it holds every table (env values included).
    fd = owner_only.open_private(path, os.O_WRONLY | os.O_TRUNC)
    with (
        os.fdopen(fd, "wb") as file,
        zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive,
    ):
        async with database.read(system=True) as reader:
            written: dict[str, int] = {}
            files: list[dict[str, Any]] = []
            for table in sizes:
                count = 0
                entry = _entry(f"{table}/documents.jsonl", zipfile.ZIP_DEFLATED)
                with archive.open(entry, "w", force_zip64=True) as out:
                    async for doc in reader.query(table):
                        out.write(_encode(values.to_convex_json(doc, wire=False)) + b"\n")
                        count += 1
                        progress("documents", 1)
                        if table == STORAGE:
                            files.append(doc)  # its bytes follow (one open entry at a time)
                written[table] = count
            for row in files:
                await _export_file(archive, blobs, row, progress)
        meta = {"format": FORMAT, "tables": written}
        archive.writestr(META, json.dumps(meta, indent=2))
    return written


async def _export_file(
    archive: zipfile.ZipFile, blobs: BlobStore, row: dict[str, Any], progress: Progress
) -> None:
    # Files are stored already compressed more often than not (images, PDFs, archives).
    entry = _entry(f"{STORAGE}/{row['_id']}", zipfile.ZIP_STORED)
    with archive.open(entry, "w", force_zip64=True) as out:
        async for chunk in blobs.read(row["blob"]):
            out.write(chunk)
            progress("bytes", len(chunk))


def _entry(name: str, compression: int) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    entry.compress_type = compression
    return entry


def read_meta(path: str | Path) -> dict[str, Any]:
    """The snapshot's table list; :class:`SnapshotError` if the file is not a snapshot."""
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read(META))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise SnapshotError(f"{path} is not a pyconvex snapshot: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise SnapshotError(f"{path} has snapshot format {meta.get('format')!r}, not {FORMAT}")
    return meta


async def import_(
    database: Database, blobs: BlobStore, path: str | Path, progress: Progress = _quiet
) -> dict[str, int]:
    """Load the snapshot at ``path`` into an empty deployment; the table sizes."""
    tables: dict[str, int] = read_meta(path)["tables"]
    present = await table_sizes(database)
    if present:
        raise SnapshotError(
            "The target deployment is not empty (it has "
            + ", ".join(f"{t}: {n}" for t, n in present.items())
            + "): import into a new database"
        )
    with zipfile.ZipFile(path) as archive:
        # Files first: a _storage row must never name bytes that are not there.
        for table in [STORAGE] if STORAGE in tables else []:
            async for row in _documents(archive, table):
                await _import_file(archive, blobs, row, progress)
        loaded: dict[str, int] = {}
        for table in tables:
            loaded[table] = 0
            batch: list[dict[str, Any]] = []
            async for doc in _documents(archive, table):
                batch.append(doc)
                if len(batch) >= BATCH:
                    loaded[table] += await _restore(database, table, batch, progress)
                    batch = []
            if batch:
                loaded[table] += await _restore(database, table, batch, progress)
    return loaded


async def _documents(archive: zipfile.ZipFile, table: str) -> AsyncIterator[dict[str, Any]]:
    with archive.open(f"{table}/documents.jsonl") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                doc = values.from_convex_json(msgspec.json.decode(line))
            except (msgspec.DecodeError, ValueError) as exc:
                raise SnapshotError(f"{table}/documents.jsonl line {number}: {exc}") from None
            if not isinstance(doc, dict):
                raise SnapshotError(f"{table}/documents.jsonl line {number}: not a document")
            yield doc


async def _import_file(
    archive: zipfile.ZipFile, blobs: BlobStore, row: dict[str, Any], progress: Progress
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        with archive.open(f"{STORAGE}/{row['_id']}") as source:
            while chunk := source.read(CHUNK):
                progress("bytes", len(chunk))
                yield chunk

    try:
        written = await blobs.put(row["blob"], chunks())  # hashed on the way in
    except KeyError:
        raise SnapshotError(f"The snapshot has no bytes for file {row['_id']}") from None
    if written.sha256 != row.get("sha256"):
        await blobs.delete(row["blob"])
        raise SnapshotError(f"File {row['_id']} does not match its sha256 in the snapshot")


async def _restore(
    database: Database, table: str, docs: list[dict[str, Any]], progress: Progress
) -> int:
    async def write(writer: DatabaseWriter) -> None:
        for doc in docs:
            try:
                await writer.restore(table, doc)
            except ValueError as exc:
                raise SnapshotError(f"Table {table}, document {doc.get('_id')}: {exc}") from None

    await database.transact(write, system=True)
    progress("documents", len(docs))
    return len(docs)
