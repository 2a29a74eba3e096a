from pyconvex import internal_mutation, v


@internal_mutation(args={"name": v.string(), "payload": v.any()})
async def noop(ctx, args):
    return None


@internal_mutation(args={"name": v.string()})
async def tiny(ctx, args):
    return await ctx.db.insert("tiny", {"name": args["name"]})


@internal_mutation(args={"name": v.string(), "payload": v.any()})
async def create(ctx, args):
    return await ctx.db.insert("items", {"name": args["name"], "payload": args["payload"]})
