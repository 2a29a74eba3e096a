import asyncio
import logging

from pyconvex import ConvexError, Int64, internal_query, mutation, query, v

log = logging.getLogger(__name__)


@mutation(args={"name": v.string()})
async def increment(ctx, args):
    found = (
        await ctx.db.query("counters")
        .with_index("by_name", lambda q: q.eq("name", args["name"]))
        .first()
    )
    if found is None:
        await ctx.db.insert("counters", {"name": args["name"], "value": 1})
        return 1
    await ctx.db.patch(found["_id"], {"value": found["value"] + 1})
    return found["value"] + 1


@query(args={"name": v.string()})
async def get(ctx, args):
    found = (
        await ctx.db.query("counters")
        .with_index("by_name", lambda q: q.eq("name", args["name"]))
        .first()
    )
    return 0 if found is None else found["value"]


@internal_query
async def secret(ctx, args):
    return "internal"


@query(args={"value": v.any()})
async def echo(ctx, args):
    return args["value"]


@query(args={"tag": v.string(), "n": v.number()})
async def chatty(ctx, args):
    for i in range(int(args["n"])):
        print(args["tag"], i)
        await asyncio.sleep(0)
    log.warning("done %s", args["tag"])
    return args["tag"]


@query
async def fails(ctx, args):
    raise ValueError("the query broke")


@query
async def refuses(ctx, args):
    raise ConvexError({"code": "NOPE", "n": Int64(2**60)})


@query(args={"value": v.any()})
async def types(ctx, args):
    return {key: type(item).__name__ for key, item in args["value"].items()}


@query
async def huge(ctx, args):
    return {"big": 2**60 + 1}  # a plain int: a float64 on the wire, which cannot hold it


@query
def plain(ctx, args):
    print("from a thread")
    return ctx.db.query("counters").collect().__len__()
