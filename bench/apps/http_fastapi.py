"""The same work as http_raw.py, written as FastAPI users write it (a dict body, returned dicts)."""

import os
import sqlite3

from fastapi import FastAPI, Request

_db = sqlite3.connect(os.environ.get("BENCH_DB", ":memory:"), isolation_level=None)
_db.execute("PRAGMA journal_mode=WAL")
_db.execute("PRAGMA synchronous=NORMAL")
_db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT, payload BLOB)")

app = FastAPI()


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.get("/users/{user_id}")
async def user(user_id: str):
    return {"user_id": user_id}


@app.post("/items", status_code=201)
async def create(request: Request):
    body = await request.body()
    data = await request.json()
    cursor = _db.execute("INSERT INTO items (name, payload) VALUES (?, ?)", (data["name"], body))
    return {"id": cursor.lastrowid}
