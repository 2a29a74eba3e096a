from pyconvex import internal_mutation, internal_query, v


@internal_mutation(args={"key": v.string(), "n": v.int64()})
async def insert_one(ctx, args):
    return await ctx.db.insert("docs", {"key": args["key"], "n": args["n"], "body": "x" * 100})


@internal_mutation(args={"start": v.int64(), "count": v.int64()})
async def insert_batch(ctx, args):
    for n in range(args["start"], args["start"] + args["count"]):
        await ctx.db.insert("docs", {"key": f"k{n}", "n": n, "body": "x" * 100})


@internal_query(args={"key": v.string()})
async def lookup(ctx, args):
    return (
        await ctx.db.query("docs").with_index("by_key", lambda q: q.eq("key", args["key"])).unique()
    )
