"""API keys: long random secrets your users put in ``X-API-Key``.

    from pyconvex import api_keys

    key = await api_keys.create(ctx, owner=user_id, name="CI", scopes=["read"])  # shown once
    record = await api_keys.validate(ctx, request.headers.get("x-api-key", ""))
    if record is None:
        return Response.json({"error": "Invalid API key"}, status=403)
    await api_keys.revoke(ctx, record["_id"])

Keys live in the ``_api_keys`` system table. Only a SHA-256 of each key is
stored (the key is 256 random bits, so a slow password hash would add
nothing), found through the ``by_hash`` index and compared in constant time.
Every function works from a mutation ``ctx`` (inside its transaction) or an
action / HTTP action ``ctx`` (a transaction of its own); ``validate`` also
from a query, where it cannot record ``last_used_at``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from .. import ids
from ..database import DatabaseReader, DatabaseWriter
from ..database.system import API_KEYS

PREFIX = "pcx_"
MAX_KEY_LENGTH = 256
#: ``last_used_at`` is written at most this often per key, so a busy key does
#: not turn every request into a write that races the others.
LAST_USED_RESOLUTION = 1.0
_T = TypeVar("_T")


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in row.items() if name != "hash"}


async def _writing(ctx: Any, fn: Callable[[DatabaseWriter], Awaitable[_T]]) -> _T:
    """Run ``fn`` with a system-table writer: the mutation's own, or a new transaction."""
    db = getattr(ctx, "db", None)
    if isinstance(db, DatabaseWriter):
        return await fn(db.system_writer())
    executor = getattr(ctx, "_executor", None)
    if db is None and executor is not None:
        return await executor.database.transact(fn, system=True)  # type: ignore[no-any-return]
    raise TypeError("api_keys needs a mutation, action or HTTP action ctx to write")


async def create(ctx: Any, owner: str, name: str, scopes: Iterable[str] = ()) -> str:
    """Make a key for ``owner`` and return it. Only now is it ever seen: store it nowhere.

    key = await api_keys.create(ctx, owner="user_123", name="deploy bot", scopes=["write"])
    """
    scopes = list(scopes)
    if not all(isinstance(scope, str) for scope in scopes):
        raise TypeError("scopes must be strings")
    key = PREFIX + secrets.token_urlsafe(32)

    async def insert(db: DatabaseWriter) -> None:
        await db.insert(
            API_KEYS,
            {
                "owner": owner,
                "name": name,
                "scopes": scopes,
                "hash": _hash(key),
                "prefix": key[: len(PREFIX) + 6],
            },
        )

    await _writing(ctx, insert)
    return key


async def _find(db: DatabaseReader, key: str) -> dict[str, Any] | None:
    digest = _hash(key)
    row = await db.query(API_KEYS).with_index("by_hash", lambda q: q.eq("hash", digest)).first()
    # The index found it by hash already; the constant-time compare is the habit, not the lock.
    if row is None or not hmac.compare_digest(row["hash"], digest):
        return None
    return row


async def _reading(ctx: Any, fn: Callable[[DatabaseReader], Awaitable[_T]]) -> _T:
    """Run ``fn`` with a system-table reader: a query's own, else as :func:`_writing`."""
    db = getattr(ctx, "db", None)
    if isinstance(db, DatabaseReader) and not isinstance(db, DatabaseWriter):
        return await fn(db.system)
    return await _writing(ctx, fn)


async def validate(ctx: Any, key: Any, *, scope: str | None = None) -> dict[str, Any] | None:
    """The key's record if ``key`` is a live key (holding ``scope``, if given), else ``None``.

        record = await api_keys.validate(ctx, request.headers.get("x-api-key", ""))
        # {"_id": ..., "owner": ..., "name": ..., "scopes": [...], "prefix": "pcx_Ab12Cd", "last_used_at": ...}

    Updates ``last_used_at`` (at most once a second per key; not from a query).
    """
    if not isinstance(key, str) or not key.startswith(PREFIX) or len(key) > MAX_KEY_LENGTH:
        return None

    async def check(db: DatabaseReader) -> dict[str, Any] | None:
        row = await _find(db, key)
        if row is None or row.get("revoked_at") is not None:
            return None
        if scope is not None and scope not in row["scopes"]:
            return None
        now = time.time()
        if (
            isinstance(db, DatabaseWriter)
            and now - (row.get("last_used_at") or 0.0) >= LAST_USED_RESOLUTION
        ):
            await db.patch(row["_id"], {"last_used_at": now})
            row = {**row, "last_used_at": now}
        return _public(row)

    return await _reading(ctx, check)


async def revoke(ctx: Any, key_id: str) -> bool:
    """Revoke a key by its record's ``_id``; False if there is no such live key."""
    if not ids.is_id_of(key_id, API_KEYS):
        return False

    async def mark(db: DatabaseWriter) -> bool:
        row = await db.get(key_id)
        if row is None or row.get("revoked_at") is not None:
            return False
        await db.patch(key_id, {"revoked_at": time.time()})
        return True

    return await _writing(ctx, mark)


async def list_keys(ctx: Any, owner: str) -> list[dict[str, Any]]:
    """``owner``'s keys, revoked ones included, without their hashes, oldest first."""

    async def read(db: DatabaseReader) -> list[dict[str, Any]]:
        by_owner = db.query(API_KEYS).with_index("by_owner", lambda q: q.eq("owner", owner))
        return [_public(row) for row in await by_owner.collect()]

    return await _reading(ctx, read)
