from pyconvex import action, mutation, query, v
from pyconvex.rate_limit import HOUR, MINUTE, RateLimiter

limiter = RateLimiter(
    {
        "send": {"kind": "token bucket", "rate": 10, "period": MINUTE, "capacity": 3},
        "requests": {"kind": "fixed window", "rate": 100, "period": HOUR, "start": 0},
        "sharded": {"kind": "token bucket", "rate": 600, "period": MINUTE, "shards": 4},
        "booked": {"kind": "token bucket", "rate": 1, "period": MINUTE, "max_reserved": 2},
    }
)


@mutation(args={"user": v.string(), "text": v.string()})
async def send(ctx, args):
    await limiter.limit(ctx, "send", key=args["user"], throws=True)
    await ctx.db.insert("messages", {"user": args["user"], "text": args["text"]})


@mutation(args={"user": v.string()})
async def send_then_fail(ctx, args):
    await limiter.limit(ctx, "send", key=args["user"], count=3)
    raise RuntimeError("the mutation failed after taking the limit")


@mutation(args={"name": v.string(), "user": v.string(), "reserve": v.optional(v.boolean())})
async def take(ctx, args):
    return await limiter.limit(
        ctx, args["name"], key=args["user"], reserve=args.get("reserve", False)
    )


@query(args={"user": v.string()})
async def check(ctx, args):
    return await limiter.check(ctx, "send", key=args["user"])


@action(args={"user": v.string()})
async def take_from_action(ctx, args):
    return await limiter.limit(ctx, "send", key=args["user"])


@mutation(args={"user": v.string()})
async def reset(ctx, args):
    await limiter.reset(ctx, "send", key=args["user"])


@mutation(
    args={
        "name": v.string(),
        "user": v.string(),
        "count": v.number(),
        "reserve": v.optional(v.boolean()),
    }
)
async def take_many(ctx, args):
    return await limiter.limit(
        ctx, args["name"], key=args["user"], count=args["count"], reserve=args.get("reserve", False)
    )
