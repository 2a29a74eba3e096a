import asyncio
import time
from datetime import UTC, datetime

from pyconvex import action, internal, internal_action, internal_mutation, mutation, query, v


@internal_mutation(
    args={"i": v.number(), "tag": v.optional(v.string()), "pause": v.optional(v.number())}
)
async def mark(ctx, args):
    await ctx.db.insert("marks", {"i": args["i"], "tag": args.get("tag", ""), "at": time.time()})
    if args.get("pause"):
        await asyncio.sleep(args["pause"])  # holds the transaction open: a crash can land inside


@internal_mutation(args={"i": v.number()})
async def mark_then_fail(ctx, args):
    await ctx.db.insert("marks", {"i": args["i"], "tag": "failing", "at": time.time()})
    raise ValueError("the job broke")


@mutation(
    args={"n": v.number(), "delay": v.number(), "tag": v.string(), "pause": v.optional(v.number())}
)
async def schedule_many(ctx, args):
    job = {"tag": args["tag"], "pause": args.get("pause", 0)}
    return [
        await ctx.scheduler.run_after(args["delay"], internal.jobs.mark, {"i": i, **job})
        for i in range(int(args["n"]))
    ]


@mutation(args={"delay": v.number(), "tag": v.string()})
async def schedule(ctx, args):
    return await ctx.scheduler.run_after(
        args["delay"], internal.jobs.mark, {"i": 0, "tag": args["tag"]}
    )


@mutation(args={"when": v.float64()})
async def schedule_at(ctx, args):
    when = datetime.fromtimestamp(args["when"], tz=UTC)
    return await ctx.scheduler.run_at(when, internal.jobs.mark, {"i": 1, "tag": "at"})


@mutation
async def schedule_then_fail(ctx, args):
    await ctx.scheduler.run_after(0, internal.jobs.mark, {"i": -1, "tag": "never"})
    raise RuntimeError("the caller broke")


@mutation
async def schedule_failing(ctx, args):
    return await ctx.scheduler.run_after(0, internal.jobs.mark_then_fail, {"i": 9})


@mutation
async def schedule_a_query(ctx, args):
    return await ctx.scheduler.run_after(0, "counters:get", {"name": "x"})


@mutation(args={"id": v.string()})
async def cancel(ctx, args):
    await ctx.scheduler.cancel(args["id"])


@query(args={"id": v.string()})
async def job(ctx, args):
    return await ctx.db.system.get(args["id"])


@query(args={"tag": v.string()})
async def marks(ctx, args):
    rows = (
        await ctx.db.query("marks")
        .with_index("by_tag", lambda q: q.eq("tag", args["tag"]))
        .collect()
    )
    return [{"i": row["i"], "at": row["at"]} for row in rows]


@action
async def schedule_from_action(ctx, args):
    return await ctx.scheduler.run_after(0, internal.jobs.mark, {"i": 5, "tag": "from-action"})


@internal_action
async def long_action(ctx, args):
    await ctx.run_mutation(internal.jobs.mark, {"i": 0, "tag": "action-start"})
    print("long action started")
    await asyncio.sleep(120)


@mutation
async def schedule_long_action(ctx, args):
    return await ctx.scheduler.run_after(0, internal.jobs.long_action, {})
