from pyconvex import internal_mutation


@internal_mutation
async def on_event(ctx, args):
    await ctx.db.insert("payments", {"event": args["id"]})
