"""The live-query baselines' shared work, with nothing in between: SQLite (WAL, as the
HTTP baselines set it up) and a set of sockets per channel.

A client sends ``{"type": "sub", "channels": [...]}`` and gets each channel's latest post
at once; a writer sends ``{"type": "post", "channel": c, "seq": n}``: the post is stored
and committed, every subscriber of the channel is sent ``{"channel": c, "value": {...}}``,
and the writer ``{"type": "done", "seq": n, "ts": <commit time, ns>}``.
"""

import os
import sqlite3
import time
from collections import defaultdict

import msgspec

_db = sqlite3.connect(os.environ.get("BENCH_DB", ":memory:"), isolation_level=None)
_db.execute("PRAGMA journal_mode=WAL")
_db.execute("PRAGMA synchronous=NORMAL")
_db.execute("CREATE TABLE IF NOT EXISTS posts (id INTEGER PRIMARY KEY, channel TEXT, seq REAL)")
_db.execute("CREATE INDEX IF NOT EXISTS by_channel ON posts (channel, id)")
encode = msgspec.json.encode
decode = msgspec.json.decode
subscribers: defaultdict[str, set] = defaultdict(set)  # channel -> send functions


def latest(channel: str):
    row = _db.execute(
        "SELECT seq FROM posts WHERE channel = ? ORDER BY id DESC LIMIT 1", (channel,)
    ).fetchone()
    return None if row is None else {"seq": row[0], "channel": channel}


async def handle(message: bytes | str, send, subscribed: list) -> None:
    """One client message; ``send(bytes)`` answers it, ``subscribed`` collects channels."""
    data = decode(message)
    if data["type"] == "sub":
        for channel in data["channels"]:
            subscribers[channel].add(send)
            subscribed.append(channel)
            await send(encode({"channel": channel, "value": latest(channel)}))
    elif data["type"] == "post":
        channel = data["channel"]
        ts = time.time_ns()
        _db.execute("BEGIN")
        _db.execute("INSERT INTO posts (channel, seq) VALUES (?, ?)", (channel, data["seq"]))
        _db.execute("COMMIT")
        update = encode({"channel": channel, "value": latest(channel)})
        for subscriber in list(subscribers[channel]):
            await subscriber(update)
        await send(encode({"type": "done", "seq": data["seq"], "ts": ts}))


def leave(send, subscribed: list) -> None:
    for channel in subscribed:
        subscribers[channel].discard(send)
