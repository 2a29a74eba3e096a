import asyncio

from pyconvex import internal, internal_action, internal_mutation, query


@internal_mutation
async def on_event(ctx, args):
    fields = {"provider": args["provider"]}
    if args.get("id") is not None:
        fields["event_id"] = args["id"]
    if args.get("type") is not None:
        fields["type"] = args["type"]
    await ctx.db.insert("events", fields)
    if isinstance(args.get("payload"), dict) and args["payload"].get("pause"):
        await asyncio.sleep(args["payload"]["pause"])  # a kill can land while this runs


@internal_mutation
async def flaky(ctx, args):
    await ctx.db.insert("events", {"provider": args["provider"], "event_id": args["id"]})
    rows = await ctx.db.system.query("_webhook_events").collect()
    attempts = next(r["attempts"] for r in rows if r["event_id"] == args["id"])
    if attempts < 2:  # earlier attempts so far: fail the first two
        raise RuntimeError(f"flaky failure {attempts + 1}")


@internal_mutation
async def always_fails(ctx, args):
    raise ValueError("never works")


@internal_action
async def on_event_action(ctx, args):
    await ctx.run_mutation(internal.webhooks.on_event, args)


@query
async def events(ctx, args):
    return [
        {"provider": e["provider"], "event_id": e.get("event_id"), "type": e.get("type")}
        for e in await ctx.db.query("events").order("asc").collect()
    ]


@query
async def received(ctx, args):
    rows = await ctx.db.system.query("_webhook_events").order("asc").collect()
    return [
        {
            k: r.get(k)
            for k in ("provider", "event_id", "type", "status", "attempts", "last_error", "headers")
        }
        for r in rows
    ]
