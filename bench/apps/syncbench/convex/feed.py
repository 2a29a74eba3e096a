"""The sync benchmark's app: each channel's latest post, subscribed to by many clients."""

from pyconvex import mutation, query, v


@query(args={"channel": v.string()})
async def latest(ctx, args):
    post = await (
        ctx.db.query("posts")
        .with_index("by_channel", lambda q: q.eq("channel", args["channel"]))
        .order("desc")
        .first()
    )
    return None if post is None else {"seq": post["seq"], "channel": post["channel"]}


@mutation(args={"channel": v.string(), "seq": v.number()})
async def post(ctx, args):
    await ctx.db.insert("posts", {"channel": args["channel"], "seq": args["seq"]})
