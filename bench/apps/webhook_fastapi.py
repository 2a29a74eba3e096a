"""The same receiver as webhook_raw.py, as FastAPI users write it."""

import hashlib
import hmac
import os
import sqlite3

from fastapi import FastAPI, Header, HTTPException, Request

SECRET = b"whsec_bench"
_db = sqlite3.connect(os.environ.get("BENCH_DB", ":memory:"), isolation_level=None)
_db.execute("PRAGMA journal_mode=WAL")
_db.execute("PRAGMA synchronous=NORMAL")
_db.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, type TEXT, body BLOB)")
app = FastAPI()


@app.post("/webhooks/stripe")
async def stripe(request: Request, stripe_signature: str = Header("")):
    body = await request.body()
    fields = dict(part.split("=", 1) for part in stripe_signature.split(",") if "=" in part)
    expected = hmac.new(
        SECRET, fields.get("t", "").encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected.encode(), fields.get("v1", "").encode()):
        raise HTTPException(400, "bad_signature")
    event = await request.json()
    _db.execute(
        "INSERT OR IGNORE INTO events (id, type, body) VALUES (?, ?, ?)",
        (event["id"], event["type"], body),
    )
    return {"received": True}
