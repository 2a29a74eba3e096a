"""The same work as http_raw.py, written as a Starlette app."""

import os
import sqlite3

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_db = sqlite3.connect(os.environ.get("BENCH_DB", ":memory:"), isolation_level=None)
_db.execute("PRAGMA journal_mode=WAL")
_db.execute("PRAGMA synchronous=NORMAL")
_db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT, payload BLOB)")


def _json(data, status=200):
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


async def health(request: Request):
    return _json({"status": "ok"})


async def user(request: Request):
    return _json({"user_id": request.path_params["user_id"]})


async def create(request: Request):
    body = await request.body()
    data = msgspec.json.decode(body)
    cursor = _db.execute("INSERT INTO items (name, payload) VALUES (?, ?)", (data["name"], body))
    return _json({"id": cursor.lastrowid}, 201)


EXTRA = int(os.environ.get("BENCH_ROUTES", "0"))
app = Starlette(
    routes=[
        *(Route(f"/extra/{i}/{{x}}", health) for i in range(EXTRA)),
        Route("/health", health),
        Route("/users/{user_id}", user),
        Route("/items", create, methods=["POST"]),
    ]
)
