"""File storage over real HTTP: store, metadata, URLs with Range, upload URLs, deletes, limits."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from conftest import Served, api_call, wait_until
from pyconvex.database.system import UPLOAD_TOKENS
from pyconvex.values import from_convex_json


def call(served: Served, kind: str, path: str, args: Any = None) -> Any:
    """A function's result as Convex's clients get it, decoded ($integer as Int64)."""
    return from_convex_json(api_call(served.api, kind, path, args, encoded=True))


def store(served: Served, data: bytes, content_type: str | None = None) -> str:
    args: dict[str, Any] = {"data": {"$bytes": base64.b64encode(data).decode()}}
    if content_type:
        args["content_type"] = content_type
    storage_id: str = call(served, "action", "files:store_bytes", args)
    return storage_id


DATA = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture(params=["file", "s3"])
def web(request: pytest.FixtureRequest, serve_app: Any, web_app: Path) -> Served:
    """The web app served for real, its files in a local folder or in an S3 bucket."""
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        served: Served = serve_app(web_app, storage_url=f"s3://{bucket}/files")
        return served
    return serve_app(web_app)  # type: ignore[no-any-return]


def test_store_get_and_metadata(web: Served) -> None:
    storage_id = store(web, DATA, "application/x-test")
    assert call(web, "query", "files:meta", {"id": storage_id}) == {
        "sha256": hashlib.sha256(DATA).hexdigest(),
        "size": len(DATA),
        "content_type": "application/x-test",
    }
    assert call(web, "action", "files:read_back", {"id": storage_id}) == DATA
    assert call(web, "query", "files:listing") == [{"id": storage_id, "size": len(DATA)}]


def test_malformed_and_unknown_ids_give_none(web: Served) -> None:
    other_table_id = call(web, "mutation", "counters:increment", {"name": "x"})
    for bad in ("nope", "../../etc/passwd", "", "2mta849rjr0peze6g2vrzhd16158wt15"):
        assert call(web, "query", "files:meta", {"id": bad}) is None
        assert call(web, "query", "files:url", {"id": bad}) is None
    assert other_table_id == 1


def test_url_serves_the_file_with_headers_and_ranges(web: Served) -> None:
    storage_id = store(web, DATA, "image/png")
    url = call(web, "query", "files:url", {"id": storage_id})
    assert url == f"{web.api}/api/storage/{storage_id}"
    whole = httpx.get(url)
    assert whole.status_code == 200 and whole.content == DATA
    assert whole.headers["content-type"] == "image/png"
    assert whole.headers["content-length"] == str(len(DATA))
    assert whole.headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert whole.headers["accept-ranges"] == "bytes"

    cases = {
        "bytes=0-99": (0, 100),
        "bytes=100-": (100, len(DATA)),
        "bytes=-10": (len(DATA) - 10, len(DATA)),
        "bytes=10000-99999": (10000, len(DATA)),
    }
    for header, (start, end) in cases.items():
        part = httpx.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == DATA[start:end], header
        assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    for unsatisfiable in (f"bytes={len(DATA)}-", "bytes=-0", "bytes=50-10"):
        refused = httpx.get(url, headers={"Range": unsatisfiable})
        assert refused.status_code == 416, unsatisfiable
        assert refused.headers["content-range"] == f"bytes */{len(DATA)}"
    # several ranges, or a unit we do not know: the whole file (RFC 9110 allows ignoring Range)
    assert httpx.get(url, headers={"Range": "bytes=0-1,5-6"}).content == DATA
    assert httpx.get(url, headers={"Range": "items=0-1"}).status_code == 200

    head = httpx.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(DATA))
    cached = httpx.get(url, headers={"If-None-Match": whole.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""


def test_file_urls_never_reach_outside_the_store(web: Served) -> None:
    for path in ("nope", "..%2F..%2Fdata.sqlite3", "%2e%2e/%2e%2e/etc/passwd", "a" * 500):
        response = httpx.get(f"{web.api}/api/storage/{path}")
        assert response.status_code == 400, path
    unknown = "2mta849rjr0peze6g2vrzhd16158wt15"
    assert httpx.get(f"{web.api}/api/storage/{unknown}").status_code in (400, 404)
    storage_id = store(web, b"x")
    call(web, "mutation", "files:remove", {"id": storage_id})
    assert httpx.get(f"{web.api}/api/storage/{storage_id}").status_code == 404


def test_upload_url_one_time(web: Served) -> None:
    url = call(web, "mutation", "files:upload_url")
    assert url.startswith(f"{web.api}/api/storage/upload?token=")
    uploaded = httpx.post(url, content=DATA, headers={"Content-Type": "text/csv"})
    assert uploaded.status_code == 200
    storage_id = uploaded.json()["storageId"]
    assert call(web, "query", "files:meta", {"id": storage_id})["content_type"] == "text/csv"
    assert httpx.get(f"{web.api}/api/storage/{storage_id}").content == DATA

    reused = httpx.post(url, content=b"again")
    assert reused.status_code == 404
    assert "already used" in reused.json()["message"]
    altered = httpx.post(url[:-3] + "zzz", content=b"x")
    assert altered.status_code in (400, 404)
    assert (
        httpx.post(f"{web.api}/api/storage/upload?token=../../x", content=b"x").status_code == 400
    )
    assert httpx.post(f"{web.api}/api/storage/upload", content=b"x").status_code == 400
    assert len(call(web, "query", "files:listing")) == 1


async def _expire_all_tokens(served: Served) -> None:
    async def expire(writer: Any) -> None:
        for row in await writer.query(UPLOAD_TOKENS).collect():
            await writer.patch(row["_id"], {"expires_at": 0.0})

    await served.deployment.database.transact(expire, system=True)


def test_expired_upload_url_is_410(web: Served) -> None:
    import asyncio

    url = call(web, "mutation", "files:upload_url")
    future = asyncio.run_coroutine_threadsafe(_expire_all_tokens(web), web.loop)
    future.result(timeout=10)
    expired = httpx.post(url, content=b"late")
    assert expired.status_code == 410
    assert "expired" in expired.json()["message"]


def test_mutation_delete_happens_only_on_commit(web: Served) -> None:
    storage_id = store(web, b"keep me")
    failed = httpx.post(
        f"{web.api}/api/mutation",
        json={"path": "files:remove_then_fail", "args": {"id": storage_id}},
    ).json()
    assert failed["status"] == "error"
    assert httpx.get(f"{web.api}/api/storage/{storage_id}").content == b"keep me"
    assert len(stored_blobs(web)) == 1
    call(web, "mutation", "files:remove", {"id": storage_id})
    assert call(web, "query", "files:meta", {"id": storage_id}) is None
    wait_until(lambda: not stored_blobs(web))  # the bytes go right after the commit


def stored_blobs(served: Served) -> list[str]:
    """The blobs in the served deployment's store (files in the folder, or objects in the bucket)."""
    url = urlparse(served.deployment.storage_url)
    if url.scheme == "s3":
        import os

        import boto3

        client = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"])
        listing = client.list_objects_v2(Bucket=url.netloc)
        return [item["Key"] for item in listing.get("Contents", [])]
    root = Path(url.path)
    return [str(p) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]


def test_upload_through_an_http_action_and_download_redirect(web: Served) -> None:
    def chunks():
        for i in range(20):
            yield bytes([i]) * 50_000

    created = httpx.post(
        f"{web.site}/upload", content=chunks(), headers={"content-type": "video/mp4"}
    )
    storage_id = created.json()["storageId"]
    meta = call(web, "query", "files:meta", {"id": storage_id})
    assert meta["size"] == 1_000_000 and meta["content_type"] == "video/mp4"
    redirect = httpx.get(f"{web.site}/download/{storage_id}")
    assert redirect.status_code == 302
    assert redirect.headers["location"] == f"{web.api}/api/storage/{storage_id}"
    followed = httpx.get(f"{web.site}/download/{storage_id}", follow_redirects=True)
    assert followed.content == b"".join(bytes([i]) * 50_000 for i in range(20))
    assert httpx.get(f"{web.site}/download/nope").status_code == 404


@pytest.mark.parametrize("limit", [1000])
def test_upload_limit(serve_app, web_app, limit: int) -> None:  # type: ignore[no-untyped-def]
    served = serve_app(web_app, max_upload=limit)
    url = call(served, "mutation", "files:upload_url")
    assert httpx.post(url, content=b"x" * (limit + 1)).status_code == 413
    ok = httpx.post(url, content=b"x" * limit)
    assert ok.status_code == 200
    assert call(served, "query", "files:listing") == [{"id": ok.json()["storageId"], "size": limit}]


@pytest.mark.parametrize(
    ("content_type", "active"),
    [
        ("text/plain", False),
        ("text/plain; charset=utf-8", False),
        ("image/png", False),
        ("video/mp4", False),
        ("text/html; charset=utf-8", True),
        ("image/svg+xml", True),
        ("application/xml", True),
        ("application/atom+xml", True),
        ("TEXT/HTML", True),
        ("text/xsl", True),
        ("application/pdf", True),
        # what Chromium reads as HTML, though the first word is a safe type
        ("text/plain, text/html", True),
        ("text/html x", True),
        ("TEXT/HTML ,", True),
    ],
)
def test_stored_files_never_run_as_pages_of_the_api_origin(
    web: Served, content_type: str, active: bool
) -> None:
    storage_id = store(web, b"<script>alert(1)</script>", content_type)
    url = call(web, "query", "files:url", {"id": storage_id})
    answer = httpx.get(url)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-type"] == content_type  # as stored: never guessed
    assert answer.headers["content-security-policy"] == "sandbox"
    assert (answer.headers.get("content-disposition") == "attachment") is active
