"""Every kind of Convex value, both ways, and errors with data."""

import asyncio

from pyconvex import ConvexError, Int64, action, internal_query, mutation, query, v


@query(args={"value": v.any()})
async def echo(ctx, args):
    return args["value"]


@internal_query(args={"value": v.any()})
async def echo_internal(ctx, args):
    return args["value"]


@query(args={"value": v.any()})
async def kinds(ctx, args):
    """The Python type each field arrived as."""
    return {key: type(item).__name__ for key, item in args["value"].items()}


@query(args={"n": v.int64(), "x": v.number()})
async def numbers(ctx, args):
    return {"n": args["n"], "x": args["x"], "n_type": type(args["n"]).__name__}


@query
async def samples(ctx, args):
    return {
        "int64": Int64(2**62 + 1),
        "negative": Int64(-5),
        "float": 1.5,
        "whole": 3,
        "nan": float("nan"),
        "inf": float("-inf"),
        "negative_zero": -0.0,
        "bytes": b"\x00\xffbytes",
        "text": "héllo",
        "list": [1, "two", None, True],
        "nested": {"a": {"b": [Int64(1)]}},
        "null": None,
    }


@query
async def fails(ctx, args):
    raise ConvexError({"code": "NOPE", "n": Int64(7)})


@query
async def breaks(ctx, args):
    raise ValueError("the query broke")


@mutation
async def refuses(ctx, args):
    raise ConvexError({"code": "REFUSED"})


@action(args={"text": v.string()})
async def shout(ctx, args):
    print("shouting")
    return args["text"].upper()


@action
async def explodes(ctx, args):
    raise ConvexError("boom")


@query
async def whoami(ctx, args):
    identity = await ctx.auth.get_user_identity()
    return None if identity is None else identity.subject


@query(args={"delay": v.number(), "tag": v.string()})
async def slow(ctx, args):
    """Takes ``delay`` seconds (sessions that ask at once share the run)."""
    await asyncio.sleep(args["delay"])
    return args["tag"]


@query(args={"size": v.number()})
async def large(ctx, args):
    return "x" * int(args["size"])


@mutation(args={"size": v.number()})
async def large_result(ctx, args):
    await ctx.db.insert("messages", {"channel": "large", "body": str(int(args["size"]))})
    return "y" * int(args["size"])
