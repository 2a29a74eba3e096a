"""Work for the pools of tests/test_workpool.py."""

import asyncio
import os
import time

from pyconvex import action, internal, internal_action, internal_mutation, mutation, query
from pyconvex.workpool import NonRetryableError, Workpool

three = Workpool("three", max_parallelism=3)
retrying = Workpool(
    "retrying", max_parallelism=5, retry={"max_attempts": 3, "initial_backoff": 0.01, "base": 2}
)


@internal_action
async def slow(ctx, args):
    start = time.time()
    await asyncio.sleep(args["seconds"])
    await ctx.run_mutation(
        internal.work.record,
        {"i": args["i"], "start": start, "end": time.time(), "pid": os.getpid()},
    )


@internal_mutation
async def record(ctx, args):
    await ctx.db.insert("runs", args)


@internal_mutation
async def bump(ctx, args):
    row = (
        await ctx.db.query("counters")
        .with_index("by_key", lambda q: q.eq("key", args["key"]))
        .first()
    )
    if row is None:
        await ctx.db.insert("counters", {"key": args["key"], "n": 1.0})
        return 1
    await ctx.db.patch(row["_id"], {"n": row["n"] + 1})
    return int(row["n"]) + 1


@query
async def count(ctx, args):
    row = (
        await ctx.db.query("counters")
        .with_index("by_key", lambda q: q.eq("key", args["key"]))
        .first()
    )
    return 0 if row is None else int(row["n"])


@internal_action
async def flaky(ctx, args):
    """Fails until it has been tried more than ``fails`` times."""
    n = await ctx.run_mutation(internal.work.bump, {"key": args["key"]})
    if n <= args["fails"]:
        raise RuntimeError(f"attempt {n} failed")
    return {"attempt": n}


@internal_action
async def fatal(ctx, args):
    await ctx.run_mutation(internal.work.bump, {"key": "fatal"})
    raise NonRetryableError("the customer is gone")


@internal_action
async def first_hangs(ctx, args):
    """The first attempt hangs (to be killed); a later one returns at once."""
    n = await ctx.run_mutation(internal.work.bump, {"key": "hangs"})
    if n == 1:
        await asyncio.sleep(3600)
    return n


@internal_mutation
async def note(ctx, args):
    if args["text"] == "boom":
        raise ValueError("no booms")
    await ctx.db.insert("notes", {"text": args["text"]})
    return args["text"]


@internal_mutation
async def done(ctx, args):
    await ctx.db.insert("completions", args)


@mutation
async def start_slow(ctx, args):
    return [
        await three.enqueue_action(ctx, internal.work.slow, {"i": i, "seconds": args["seconds"]})
        for i in range(args["n"])
    ]


@mutation
async def start_flaky(ctx, args):
    return await retrying.enqueue_action(
        ctx,
        internal.work.flaky,
        {"key": args["key"], "fails": args["fails"]},
        on_complete=internal.work.done,
        context={"key": args["key"]},
    )


@mutation
async def start_fatal(ctx, args):
    return await retrying.enqueue_action(
        ctx, internal.work.fatal, {}, on_complete=internal.work.done, context="fatal"
    )


@mutation
async def start_hangs(ctx, args):
    return await retrying.enqueue_action(
        ctx, internal.work.first_hangs, {}, on_complete=internal.work.done, context="hangs"
    )


@mutation
async def start_note(ctx, args):
    work_id = await three.enqueue_mutation(
        ctx, internal.work.note, {"text": args["text"]}, on_complete=internal.work.done
    )
    if args.get("fail"):
        raise RuntimeError("the enqueuing mutation failed")
    return work_id


@action
async def start_from_action(ctx, args):
    return await three.enqueue_mutation(
        ctx,
        internal.work.note,
        {"text": args["text"]},
        on_complete=internal.work.done,
        run_after=args.get("delay", 0),
    )


@query
async def status(ctx, args):
    return (
        await retrying.status(ctx, args["id"])
        if args.get("pool") == "retrying"
        else await three.status(ctx, args["id"])
    )


@mutation
async def cancel(ctx, args):
    await three.cancel(ctx, args["id"])


@mutation
async def cancel_all(ctx, args):
    return await three.cancel_all(ctx)


@query
async def runs(ctx, args):
    return await ctx.db.query("runs").collect()


@query
async def completions(ctx, args):
    return await ctx.db.query("completions").collect()


@query
async def notes(ctx, args):
    return [row["text"] for row in await ctx.db.query("notes").collect()]


one = Workpool("one", max_parallelism=1)


@mutation
async def start_many_notes(ctx, args):
    for i in range(args["n"]):
        await one.enqueue_mutation(ctx, internal.work.note, {"text": f"n{i}"})


@mutation
async def start_other_note(ctx, args):
    return await one.enqueue_mutation(ctx, internal.work.note, {"text": args["text"]})


@mutation
async def schedule_pair(ctx, args):
    """A job at +0 that cancels a job at +5 (both due by the time the test looks)."""
    victim = await ctx.scheduler.run_after(5, internal.work.note, {"text": "victim"})
    await ctx.scheduler.run_after(0, internal.work.cancel_job, {"id": victim})
    return victim


@internal_mutation
async def cancel_job(ctx, args):
    await ctx.scheduler.cancel(args["id"])


@mutation
async def enqueue_then_cancel_later(ctx, args):
    """A note item at +1, and one at +0 (same pool) that cancels it."""
    victim = await three.enqueue_mutation(
        ctx, internal.work.note, {"text": "victim"}, on_complete=internal.work.done, run_after=1
    )
    await three.enqueue_mutation(ctx, internal.work.cancel_work, {"id": victim})
    return victim


@internal_mutation
async def cancel_work(ctx, args):
    await three.cancel(ctx, args["id"])


@mutation
async def start_nan(ctx, args):
    await three.enqueue_mutation(ctx, internal.work.note, {"text": "x"}, run_after=float("nan"))


@mutation
async def schedule_nan(ctx, args):
    await ctx.scheduler.run_at(float("nan"), internal.work.note, {"text": "x"})


@mutation
async def start_other_pool_note(ctx, args):
    return await three.enqueue_mutation(ctx, internal.work.note, {"text": args["text"]})


@internal_action
async def big_return(ctx, args):
    return "x" * 250_000


@mutation
async def start_big(ctx, args):
    return await three.enqueue_action(
        ctx, internal.work.big_return, {"pad": "y" * 900_000}, on_complete=internal.work.done
    )


@mutation
async def schedule_notes(ctx, args):
    for i in range(args["n"]):
        await ctx.scheduler.run_after(0, internal.work.note, {"text": f"s{i}"})
