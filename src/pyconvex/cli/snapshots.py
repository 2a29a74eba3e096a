"""``pyconvex export FILE`` and ``pyconvex import FILE``, with a progress bar.

Export works without importing the app (an app that no longer loads can still be saved);
import loads it, so every document is checked against the target's schema.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from .. import snapshot
from ..database import Database
from ..deployment import Deployment, database_url_for, storage_url_for
from ..persistence import open_persistence
from ..storage import open_blob_store


def add_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("file", metavar="FILE", help="the snapshot (a .zip)")
    sub.add_argument("--storage-url", default=None, help="default: file:///DIR/.pyconvex/storage")


@contextmanager
def _progress(console: Console, documents: int) -> Iterator[snapshot.Progress]:
    """A progress bar for ``documents`` documents and the file bytes; yields its callback."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}"),
        console=console,
        transient=False,
    )
    with bar:
        docs = bar.add_task("documents", total=documents)
        files = bar.add_task("file bytes", total=None)

        def advance(kind: str, amount: int) -> None:
            bar.advance(docs if kind == "documents" else files, amount)

        yield advance


async def export(ns: argparse.Namespace, console: Console) -> int:
    database = Database(open_persistence(database_url_for(ns.app, ns.database_url)))
    blobs = open_blob_store(storage_url_for(ns.app, ns.storage_url))
    try:
        await database.setup(system_only=True)
        sizes = await snapshot.table_sizes(database)
        with _progress(console, sum(sizes.values())) as advance:
            written = await snapshot.export(database, blobs, ns.file, advance)
    finally:
        await database.close()
        blobs.close()
    console.print(
        f"[green]✔[/] exported {sum(written.values()):,} documents in {len(written)} tables "
        f"to {ns.file}"
    )
    return 0


async def import_(ns: argparse.Namespace, console: Console) -> int:
    total = sum(snapshot.read_meta(ns.file)["tables"].values())
    async with Deployment(
        ns.app, database_url=ns.database_url, storage_url=ns.storage_url, sync_crons=False
    ) as deployment:
        # snapshot.import_ refuses too, but only once the bar is drawn: say it first.
        present = await snapshot.table_sizes(deployment.database)
        if present:
            raise snapshot.SnapshotError(
                "The target deployment is not empty ("
                + ", ".join(f"{t}: {n} documents" for t, n in present.items())
                + "): import only into a new database (see --database-url)"
            )
        with _progress(console, total) as advance:
            loaded = await snapshot.import_(
                deployment.database, deployment.files.blobs, ns.file, advance
            )
    console.print(
        f"[green]✔[/] imported {sum(loaded.values()):,} documents in {len(loaded)} tables"
    )
    return 0
