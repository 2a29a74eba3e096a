"""The baseline: a hand-written ASGI app doing the benchmark's work with nothing in between.

/health, /users/{id}, POST /items (parse the JSON body, insert one SQLite row, commit).
"""

import os
import sqlite3

import msgspec

_db = sqlite3.connect(os.environ.get("BENCH_DB", ":memory:"), isolation_level=None)
_db.execute("PRAGMA journal_mode=WAL")
_db.execute("PRAGMA synchronous=NORMAL")
_db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT, payload BLOB)")
_encode = msgspec.json.encode
_decode = msgspec.json.decode
_JSON = [(b"content-type", b"application/json")]


async def _send(send, status, data):
    body = _encode(data)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/health":
        await _send(send, 200, {"status": "ok"})
    elif path.startswith("/users/") and path.count("/") == 2:
        await _send(send, 200, {"user_id": path[7:]})
    elif path == "/items" and scope["method"] == "POST":
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        data = _decode(body)
        cursor = _db.execute(
            "INSERT INTO items (name, payload) VALUES (?, ?)", (data["name"], body)
        )
        await _send(send, 201, {"id": cursor.lastrowid})
    else:
        await send(
            {"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body", "body": b""})
