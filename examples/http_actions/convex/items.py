from pyconvex import internal_mutation, internal_query, v

ITEM = {"name": v.string(), "description": v.optional(v.string()), "price": v.optional(v.float64())}


@internal_mutation(args=ITEM, returns=v.id("items"))
async def create(ctx, args):
    return await ctx.db.insert("items", args)


@internal_query(args={"id": v.id("items")})
async def get(ctx, args):
    return await ctx.db.get(args["id"])


@internal_query(args={"limit": v.int64()})
async def list(ctx, args):
    return await ctx.db.query("items").order("desc").take(args["limit"])
