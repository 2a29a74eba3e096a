from pyconvex import action, mutation, query, v


@mutation
async def upload_url(ctx, args):
    return await ctx.storage.generate_upload_url()


@query(args={"id": v.string()})
async def meta(ctx, args):
    return await ctx.storage.get_metadata(args["id"])


@query(args={"id": v.string()})
async def url(ctx, args):
    return await ctx.storage.get_url(args["id"])


@mutation(args={"id": v.string()})
async def remove(ctx, args):
    await ctx.storage.delete(args["id"])


@mutation(args={"id": v.string()})
async def remove_then_fail(ctx, args):
    await ctx.storage.delete(args["id"])
    raise RuntimeError("changed my mind")


@action(args={"data": v.bytes(), "content_type": v.optional(v.string())})
async def store_bytes(ctx, args):
    return await ctx.storage.store(args["data"], content_type=args.get("content_type"))


@action(args={"id": v.string()})
async def read_back(ctx, args):
    return await ctx.storage.get(args["id"])


@query
async def listing(ctx, args):
    return [
        {"id": row["_id"], "size": row["size"]}
        for row in await ctx.db.system.query("_storage").collect()
    ]
