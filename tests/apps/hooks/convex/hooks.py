"""Handlers for tests/test_webhook_operations.py."""

import asyncio
import time

from pyconvex import internal, internal_action, internal_mutation, query
from pyconvex.errors import NonRetryableError


@internal_mutation
async def record(ctx, args):
    await ctx.db.insert("handled", {"event_id": args["id"], "path": args["type"] or ""})


@internal_action
async def slow(ctx, args):
    start = time.time()
    await asyncio.sleep(0.1)
    await ctx.run_mutation(internal.hooks.ran, {"start": start, "end": time.time()})
    await ctx.run_mutation(internal.hooks.record, args)


@internal_mutation
async def ran(ctx, args):
    await ctx.db.insert("runs", args)


@internal_mutation
async def refuse(ctx, args):
    raise NonRetryableError(f"event {args['id']} cannot be handled")


@internal_mutation
async def broken(ctx, args):
    raise RuntimeError("the handler broke")


@query
async def handled(ctx, args):
    return sorted(row["event_id"] for row in await ctx.db.query("handled").collect())


@query
async def runs(ctx, args):
    return await ctx.db.query("runs").collect()
