from pyconvex import action, api, internal_mutation, mutation, query, v


@mutation(args={"name": v.string()}, returns=v.int64())
async def increment(ctx, args):
    counter = (
        await ctx.db.query("counters")
        .with_index("by_name", lambda q: q.eq("name", args["name"]))
        .unique()
    )
    if counter is None:
        await ctx.db.insert("counters", {"name": args["name"], "value": 1})
        return 1
    await ctx.db.patch(counter["_id"], {"value": counter["value"] + 1})
    return counter["value"] + 1


@query(args={"name": v.string()})
async def get(ctx, args):
    counter = (
        await ctx.db.query("counters")
        .with_index("by_name", lambda q: q.eq("name", args["name"]))
        .unique()
    )
    return None if counter is None else counter["value"]


@action(args={"name": v.string(), "times": v.int64()})
async def bump_many(ctx, args):
    for _ in range(args["times"]):
        await ctx.run_mutation(api.counters.increment, {"name": args["name"]})
    return await ctx.run_query(api.counters.get, {"name": args["name"]})


@action
def bump_sync(ctx, args):
    ctx.run_mutation("counters:increment", {"name": args["name"]})
    return ctx.run_query(get, {"name": args["name"]})


@internal_mutation
async def reset(ctx, args):
    for doc in await ctx.db.query("counters").collect():
        await ctx.db.delete(doc["_id"])
