import contextlib

from pyconvex import (
    ConvexError,
    action,
    internal,
    internal_mutation,
    internal_query,
    mutation,
    query,
    v,
)

from .model import describe


@internal_mutation(
    args={"name": v.string(), "description": v.optional(v.string())}, returns=v.id("items")
)
async def create(ctx, args):
    return await ctx.db.insert(
        "items", {"name": args["name"], "description": args.get("description")}
    )


@internal_query(args={"id": v.id("items")})
async def get(ctx, args):
    return await ctx.db.get(args["id"])


@query
async def count(ctx, args):
    return len(await ctx.db.query("items").collect())


@query
async def list(ctx, args):
    return await ctx.db.query("items").collect()


@query(returns=v.string())
async def bad_return(ctx, args):
    return 5


@mutation(args={"name": v.string()})
async def create_then_fail(ctx, args):
    await ctx.db.insert("items", {"name": args["name"]})
    raise ConvexError({"code": "BOOM", "name": args["name"]})


@mutation(args={"name": v.string()})
async def create_nested(ctx, args):
    item_id = await ctx.run_mutation(internal.items.create, {"name": args["name"]})
    with contextlib.suppress(ConvexError):
        await ctx.run_mutation(internal.items.create_then_fail_internal, {"name": "undone"})
    return {
        "id": item_id,
        "label": describe(await ctx.run_query(internal.items.get, {"id": item_id})),
    }


@internal_mutation(args={"name": v.string()})
async def create_then_fail_internal(ctx, args):
    await ctx.db.insert("items", {"name": args["name"]})
    raise ConvexError("nope")


@mutation
def create_sync(ctx, args):
    """A plain def mutation: runs in a worker thread, ctx calls without await."""
    item_id = ctx.db.insert("items", {"name": args["name"]})
    names = [doc["name"] for doc in ctx.db.query("items")]
    return {"id": item_id, "names": names}


@query
async def slow(ctx, args):
    import asyncio

    await asyncio.sleep(5)


@action
async def upstream_timeout(ctx, args):
    raise TimeoutError("the upstream API timed out")


@mutation
async def slow_write(ctx, args):
    """Writes, then outlives its time limit: the writes must not commit."""
    import asyncio

    await ctx.db.insert("items", {"name": "never committed"})
    await asyncio.sleep(5)
