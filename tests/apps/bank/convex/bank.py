import asyncio

from pyconvex import ConvexError, internal_mutation, mutation, query, v


async def _account(ctx, name):
    found = (
        await ctx.db.query("accounts").with_index("by_name", lambda q: q.eq("name", name)).unique()
    )
    if found is None:
        raise ConvexError({"code": "NO_ACCOUNT", "name": name})
    return found


@mutation(args={"name": v.string(), "balance": v.number()})
async def open_account(ctx, args):
    return await ctx.db.insert("accounts", {"name": args["name"], "balance": args["balance"]})


@internal_mutation(
    args={
        "transfer_id": v.string(),
        "source": v.string(),
        "target": v.string(),
        "amount": v.number(),
        "pause": v.number(),
    }
)
async def transfer(ctx, args):
    """Read both balances, wait (another client's transfer may commit meanwhile), then write."""
    source = await _account(ctx, args["source"])
    target = await _account(ctx, args["target"])
    await asyncio.sleep(args["pause"])
    amount = min(args["amount"], source["balance"])
    await ctx.db.patch(source["_id"], {"balance": source["balance"] - amount})
    await ctx.db.patch(target["_id"], {"balance": target["balance"] + amount})
    await ctx.db.insert(
        "transfers",
        {
            "transfer_id": args["transfer_id"],
            "source": args["source"],
            "target": args["target"],
            "amount": amount,
            "seen_source": source["balance"],
            "seen_target": target["balance"],
        },
    )
    return amount


@query
async def balances(ctx, args):
    return {a["name"]: a["balance"] for a in await ctx.db.query("accounts").collect()}


@query
async def transfers(ctx, args):
    return await ctx.db.query("transfers").collect()


@mutation(args={"text": v.string(), "tag": v.string()})
async def note(ctx, args):
    return await ctx.db.insert("notes", {"text": args["text"], "tag": args["tag"]})


@mutation(args={"text": v.string()})
async def note_then_fail(ctx, args):
    await ctx.db.insert("notes", {"text": args["text"], "tag": "failed"})
    raise ConvexError("refused")


@mutation(args={"text": v.string()})
async def note_then_hang(ctx, args):
    await ctx.db.insert("notes", {"text": args["text"], "tag": "hung"})
    await asyncio.sleep(60)


@query(args={"tag": v.string()})
async def notes(ctx, args):
    return (
        await ctx.db.query("notes")
        .with_index("by_tag", lambda q: q.eq("tag", args["tag"]))
        .collect()
    )


@query
async def all_notes(ctx, args):
    return [n["_id"] for n in await ctx.db.query("notes").collect()]
