from pyconvex import internal_query, v


@internal_query(args={"id": v.string()})
async def get(ctx, args):
    """A user by document id; None for an unknown or malformed id."""
    user_id = ctx.db.normalize_id("users", args["id"])
    return None if user_id is None else await ctx.db.get(user_id)


@internal_query(args={"clerk_id": v.string()})
async def by_clerk_id(ctx, args):
    return (
        await ctx.db.query("users")
        .with_index("by_clerk_id", lambda q: q.eq("clerk_id", args["clerk_id"]))
        .unique()
    )
