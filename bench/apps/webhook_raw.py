"""Raw ASGI webhook receiver: verify Stripe's HMAC over the raw body, parse, commit one row."""

import hashlib
import hmac
import os
import sqlite3

import msgspec

SECRET = b"whsec_bench"
_db = sqlite3.connect(os.environ.get("BENCH_DB", ":memory:"), isolation_level=None)
_db.execute("PRAGMA journal_mode=WAL")
_db.execute("PRAGMA synchronous=NORMAL")
_db.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, type TEXT, body BLOB)")


async def _answer(send, status, body):
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    header = dict(scope["headers"]).get(b"stripe-signature", b"")
    fields = dict(part.split(b"=", 1) for part in header.split(b",") if b"=" in part)
    expected = (
        hmac.new(SECRET, fields.get(b"t", b"") + b"." + body, hashlib.sha256).hexdigest().encode()
    )
    if not hmac.compare_digest(expected, fields.get(b"v1", b"")):
        await _answer(send, 400, b'{"error":"bad_signature"}')
        return
    event = msgspec.json.decode(body)
    _db.execute(
        "INSERT OR IGNORE INTO events (id, type, body) VALUES (?, ?, ?)",
        (event["id"], event["type"], body),
    )
    await _answer(send, 200, b'{"received":true}')
