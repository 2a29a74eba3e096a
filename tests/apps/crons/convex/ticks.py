import time

from pyconvex import internal_action, internal_mutation, internal_query, query, v


@internal_mutation(args={"job": v.string()})
async def tick(ctx, args):
    print(f"tick {args['job']}")
    await ctx.db.insert("ticks", {"job": args["job"], "at": time.time()})
    return args["job"]


@internal_mutation
async def broken(ctx, args):
    await ctx.db.insert("ticks", {"job": "broken", "at": time.time()})  # undone
    raise RuntimeError("the job broke")


@internal_action(args={"job": v.string()})
async def remote(ctx, args):
    await ctx.run_mutation("ticks:tick", {"job": args["job"]})
    return "done"


@internal_query
async def a_query(ctx, args):
    return None


@query(args={"job": v.string()})
async def count(ctx, args):
    return len([t for t in await ctx.db.query("ticks").collect() if t["job"] == args["job"]])


@query(args={"job": v.string()})
async def times(ctx, args):
    return sorted(t["at"] for t in await ctx.db.query("ticks").collect() if t["job"] == args["job"])


@internal_action
async def slowly(ctx, args):
    import asyncio

    await asyncio.sleep(0.3)  # long enough to be running while the other jobs run
    await ctx.run_mutation("ticks:tick", {"job": "slow"})
