"""Messages in channels: what the sync tests subscribe to."""

import asyncio
from pathlib import Path

from pyconvex import ConvexError, mutation, query, v


@query(args={"channel": v.string()})
async def list(ctx, args):
    docs = await (
        ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
        .collect()
    )
    return [doc["body"] for doc in docs]


@query(args={"channel": v.string(), "delay": v.number()})
async def list_slowly(ctx, args):
    """Reads the channel, then takes ``delay`` seconds: a write may land meanwhile."""
    found = await list.handler(ctx, {"channel": args["channel"]})
    await asyncio.sleep(args["delay"])
    return found


@query(args={"channel": v.string()})
async def latest(ctx, args):
    found = await (
        ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
        .order("desc")
        .first()
    )
    return None if found is None else found["body"]


@query(args={"channel": v.string()})
async def count(ctx, args):
    print("counting", args["channel"])
    return len(await list.handler(ctx, args))


@query(args={"channel": v.string(), "paginationOpts": v.any()})
async def page(ctx, args):
    """Paginated, in Convex's spelling (as usePaginatedQuery sends it)."""
    return await (
        ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
        .paginate(args["paginationOpts"])
    )


@query(args={"channel": v.string(), "paginationOpts": v.any()})
async def page_by_body(ctx, args):
    """Paginated in body order: a new message may fall inside a page already shown."""
    return await (
        ctx.db.query("messages")
        .with_index("by_body", lambda q: q.eq("channel", args["channel"]))
        .paginate(args["paginationOpts"])
    )


@mutation(args={"channel": v.string(), "body": v.string()})
async def send(ctx, args):
    if args["body"] == "":
        raise ConvexError({"code": "EMPTY", "channel": args["channel"]})
    return await ctx.db.insert("messages", {"channel": args["channel"], "body": args["body"]})


@mutation(
    args={
        "channel": v.string(),
        "body": v.string(),
        "delay": v.number(),
        "mark": v.optional(v.string()),
    }
)
async def send_slowly(ctx, args):
    """Reads the channel, waits, then writes: mutations of one session still run in order.
    ``mark`` names a file made when it starts (a test stops the server in the middle)."""
    before = len(await list.handler(ctx, {"channel": args["channel"]}))
    if "mark" in args:
        Path(args["mark"]).touch()
    await asyncio.sleep(args["delay"])
    await ctx.db.insert("messages", {"channel": args["channel"], "body": args["body"]})
    return before


@mutation(args={"channel": v.string()})
async def clear(ctx, args):
    docs = await (
        ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
        .collect()
    )
    for doc in docs:
        await ctx.db.delete(doc["_id"])
    return len(docs)
