"""Functions that take any value: how deep arguments may nest is the server's to decide."""

from pyconvex import action, mutation, query, v


@query(args={"value": v.any()})
async def echo(ctx, args):
    return args["value"]


@mutation(args={"value": v.any()})
async def keep(ctx, args):
    return args["value"]


@action(args={"value": v.any()})
async def act(ctx, args):
    return args["value"]


@action(args={"data": v.bytes(), "content_type": v.optional(v.string())})
async def store(ctx, args):
    return await ctx.storage.store(args["data"], content_type=args.get("content_type"))


@mutation
async def upload_url(ctx, args):
    return await ctx.storage.generate_upload_url()
