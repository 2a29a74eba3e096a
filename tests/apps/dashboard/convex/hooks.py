from pyconvex import internal_mutation


@internal_mutation
async def on_push(ctx, args):
    if not await ctx.db.query("fixes").first():
        raise RuntimeError("the handler is broken until fix_hooks runs")
    print(f"processed {args['id']}")
