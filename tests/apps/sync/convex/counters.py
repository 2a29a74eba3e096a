from pyconvex import Int64, mutation, query, v


@mutation(args={"name": v.string()})
async def increment(ctx, args):
    found = (
        await ctx.db.query("counters")
        .with_index("by_name", lambda q: q.eq("name", args["name"]))
        .first()
    )
    if found is None:
        await ctx.db.insert("counters", {"name": args["name"], "value": Int64(1)})
        return Int64(1)
    await ctx.db.patch(found["_id"], {"value": found["value"] + 1})
    return Int64(found["value"] + 1)


@query(args={"name": v.string()})
async def get(ctx, args):
    found = (
        await ctx.db.query("counters")
        .with_index("by_name", lambda q: q.eq("name", args["name"]))
        .first()
    )
    return Int64(0) if found is None else found["value"]
