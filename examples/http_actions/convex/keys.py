"""The guide's API keys, with one change: only a SHA-256 of each key is stored.

(`pyconvex.api_keys` is the built-in version of this, with scopes and revocation.)
"""

import hashlib
import hmac
import secrets
import time

from pyconvex import internal_mutation, v
from pyconvex.rate_limit import MINUTE, RateLimiter

# Each key may make 10 requests at once, then one every second (60 a minute).
limits = RateLimiter(
    {"api": {"kind": "token bucket", "rate": 60, "period": MINUTE, "capacity": 10}}
)


def _hash(key):
    return hashlib.sha256(key.encode()).hexdigest()


@internal_mutation(args={"user_id": v.string(), "name": v.string()})
async def create(ctx, args):
    """Make a key and return it: the only time it is ever seen."""
    key = "sk_" + secrets.token_urlsafe(32)
    await ctx.db.insert(
        "apiKeys",
        {
            "key_hash": _hash(key),
            "user_id": args["user_id"],
            "name": args["name"],
            "is_active": True,
        },
    )
    return key


@internal_mutation(args={"key": v.string()})
async def validate(ctx, args):
    """The key's owner and name if it is a live key (and note its use), else None."""
    digest = _hash(args["key"])
    record = (
        await ctx.db.query("apiKeys")
        .with_index("by_key", lambda q: q.eq("key_hash", digest))
        .unique()
    )
    if (
        record is None
        or not record["is_active"]
        or not hmac.compare_digest(record["key_hash"], digest)
    ):
        return None
    await ctx.db.patch(record["_id"], {"last_used": time.time()})
    return {"user_id": record["user_id"], "name": record["name"]}


@internal_mutation(args={"user_id": v.string()})
async def revoke_all(ctx, args):
    keys = ctx.db.query("apiKeys").with_index("by_user", lambda q: q.eq("user_id", args["user_id"]))
    for record in await keys.collect():
        await ctx.db.patch(record["_id"], {"is_active": False})
