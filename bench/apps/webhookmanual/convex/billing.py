from pyconvex import internal_mutation, v


@internal_mutation(args={"event_id": v.string(), "type": v.string(), "body": v.bytes()})
async def record(ctx, args):
    """Once per event id (a provider's retry is not recorded twice), as the raw app's
    INSERT OR IGNORE."""
    seen = (
        await ctx.db.query("events")
        .with_index("by_event", lambda q: q.eq("event_id", args["event_id"]))
        .first()
    )
    if seen is None:
        await ctx.db.insert("events", args)
