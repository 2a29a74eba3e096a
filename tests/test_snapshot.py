"""pyconvex export / import: a deployment moves from SQLite to PostgreSQL (and back) with its
tables, system tables and files, and the app serves the same data and files afterwards."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Served
from pyconvex import api_keys, snapshot
from pyconvex.testing import ConvexTest, sign_webhook
from test_cli import pyconvex

PICTURE = bytes(range(256)) * 300  # 76,800 bytes


async def fill(t: ConvexTest) -> dict[str, Any]:
    """Something in every kind of table; returns what to look for afterwards."""
    for _ in range(3):
        await t.mutation("counters:increment", {"name": "visits"})
    storage_id = await t.action("files:store_bytes", {"data": PICTURE, "content_type": "image/png"})
    await t.deployment.env.set("STRIPE_SECRET", "whsec_stripe")
    job = await t.mutation("jobs:schedule", {"delay": 3600, "tag": "later"})
    signed = sign_webhook("stripe", "whsec_stripe", {"id": "evt_9", "type": "invoice.paid"})
    await t.fetch("/hooks/stripe", method="POST", headers=signed.headers, body=signed.body)
    key = await t.run(lambda ctx: api_keys.create(ctx, "acct_1", "CI"))

    async def odd_values(ctx: Any) -> None:
        for n in range(1200):  # more than one import batch
            await ctx.db.insert("marks", {"i": n, "tag": "int" if n % 2 else "float", "at": 0.5})

    await t.run(odd_values)
    return {"storage_id": storage_id, "job": job, "key": key}


async def everything(t: ConvexTest) -> dict[str, Any]:
    async def read(ctx: Any) -> dict[str, Any]:
        return {
            "counters": await ctx.db.query("counters").collect(),
            "marks": await ctx.db.query("marks").collect(),
            "jobs": await ctx.db.system.query("_scheduled_functions").collect(),
            "events": await ctx.db.system.query("_webhook_events").collect(),
            "files": await ctx.db.system.query("_storage").collect(),
            "env": await ctx.db.system.query("_env_vars").collect(),
        }

    return await t.run(read)


async def test_sqlite_to_postgres_and_back(tmp_path: Path, postgres_url: str) -> None:
    web = Path(__file__).parent / "apps" / "web"
    first = tmp_path / "first.zip"
    async with ConvexTest(web, database_path=tmp_path / "a" / "data.sqlite3") as source:
        marks = await fill(source)
        before = await everything(source)
        written = await snapshot.export(
            source.deployment.database, source.deployment.files.blobs, first
        )
    assert written["marks"] == 1200 and written["_storage"] == 1 and "_upload_tokens" not in written

    async with ConvexTest(web, database_url=postgres_url) as target:
        loaded = await snapshot.import_(
            target.deployment.database, target.deployment.files.blobs, first
        )
        assert loaded == written
        assert await everything(target) == before  # ids, creation times, types: all as they were
        # Indexes were rebuilt as the documents went in.
        assert await target.query("counters:get", {"name": "visits"}) == 3
        # Files came along, bytes checked.
        back = await target.action("files:read_back", {"id": marks["storage_id"]})
        assert back == PICTURE
        # API keys keep working (their hashes moved), env vars too.
        assert (await target.run(lambda ctx: api_keys.validate(ctx, marks["key"])))[
            "owner"
        ] == "acct_1"
        assert (await target.deployment.env.list())["STRIPE_SECRET"] == "whsec_stripe"
        # The pending job and the webhook event still run.
        target.clock.advance(7200)
        assert await target.finish_scheduled_functions() == 2
        # And back again to SQLite.
        second = tmp_path / "second.zip"
        await snapshot.export(target.deployment.database, target.deployment.files.blobs, second)
        after_jobs = await everything(target)

    async with ConvexTest(web, database_path=tmp_path / "b" / "data.sqlite3") as again:
        await snapshot.import_(again.deployment.database, again.deployment.files.blobs, second)
        assert await everything(again) == after_jobs


def test_the_app_serves_the_same_data_and_files_after_moving(
    tmp_path: Path, postgres_url: str, serve_app: Callable[..., Served], web_app: Path
) -> None:
    """Through the CLI, as a user would: export from SQLite, import into PostgreSQL, serve."""
    app = tmp_path / "app"
    import shutil

    shutil.copytree(web_app, app)
    pyconvex("run", "counters:increment", '{"name": "a"}', "--app", str(app))
    data = {"$bytes": base64.b64encode(PICTURE).decode()}
    stored = pyconvex(
        "run",
        "files:store_bytes",
        f'{{"data": {{"$bytes": "{data["$bytes"]}"}}}}',
        "--app",
        str(app),
    )
    storage_id = stored.stdout.strip().strip('"')
    out = pyconvex("export", str(tmp_path / "snap.zip"), "--app", str(app))
    assert "exported" in out.stderr
    storage = (tmp_path / "pg-files").as_uri()
    pyconvex(
        "import", str(tmp_path / "snap.zip"), "--app", str(app),
        "--database-url", postgres_url, "--storage-url", storage,
    )  # fmt: skip

    served = serve_app(app, database_url=postgres_url, storage_url=storage)
    assert served.call("query", "counters:get", {"name": "a"}).json()["value"] == 1
    url = served.call("query", "files:url", {"id": storage_id}).json()["value"]
    picture = httpx.get(url)
    assert picture.content == PICTURE
    assert picture.headers["etag"] == f'"{hashlib.sha256(PICTURE).hexdigest()}"'


async def test_import_refuses_a_non_empty_target_and_broken_snapshots(tmp_path: Path) -> None:
    web = Path(__file__).parent / "apps" / "web"
    snap = tmp_path / "snap.zip"
    async with ConvexTest(web) as source:
        await fill(source)
        await snapshot.export(source.deployment.database, source.deployment.files.blobs, snap)
        with pytest.raises(snapshot.SnapshotError, match="not empty"):
            await snapshot.import_(source.deployment.database, source.deployment.files.blobs, snap)

    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(snapshot.SnapshotError, match="not a pyconvex snapshot"):
        snapshot.read_meta(tmp_path / "junk.zip")

    # A file whose bytes were changed in the snapshot is refused, and leaves no row.
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(snap) as original, zipfile.ZipFile(tampered, "w") as copy:
        for item in original.infolist():
            body = original.read(item)
            if item.filename.startswith("_storage/") and not item.filename.endswith(".jsonl"):
                body = body[:-1] + b"!"
            copy.writestr(item, body)
    async with ConvexTest(web) as target:
        with pytest.raises(snapshot.SnapshotError, match="does not match its sha256"):
            await snapshot.import_(
                target.deployment.database, target.deployment.files.blobs, tampered
            )
        assert await snapshot.table_sizes(target.deployment.database) == {}


async def test_an_export_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    import os
    import stat

    from pyconvex.database import Database
    from pyconvex.persistence import open_persistence
    from pyconvex.snapshot import export
    from pyconvex.storage import open_blob_store

    old = os.umask(0o022)
    try:
        database = Database(open_persistence(f"sqlite:///{tmp_path}/db.sqlite3"))
        await database.setup()
        blobs = open_blob_store((tmp_path / "blobs").as_uri())
        target = tmp_path / "snapshot.zip"
        await export(database, blobs, target)
        await database.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
