from pyconvex import action, api, internal, internal_mutation, mutation, query, v


async def _describe(ctx):
    identity = await ctx.auth.get_user_identity()
    if identity is None:
        return None
    return {
        "token_identifier": identity.token_identifier,
        "name": identity.name,
        "org": identity.get("org"),
    }


@query
async def whoami(ctx, args):
    return await _describe(ctx)


@mutation
async def whoami_mutation(ctx, args):
    return await _describe(ctx)


@action
async def whoami_via_action(ctx, args):
    return {
        "action": await _describe(ctx),
        "query": await ctx.run_query(api.users.whoami),
        "mutation": await ctx.run_mutation(api.users.whoami_mutation),
    }


@action
async def whoami_via_nested_action(ctx, args):
    return await ctx.run_action(api.users.whoami_via_action)


@mutation(args={"text": v.string()})
async def note(ctx, args):
    identity = await ctx.auth.get_user_identity()
    await ctx.db.insert("notes", {"author": identity.token_identifier, "text": args["text"]})
    await ctx.scheduler.run_after(0, internal.users.probe, {})


@internal_mutation
async def probe(ctx, args):
    await ctx.db.insert("probes", {"anonymous": await ctx.auth.get_user_identity() is None})


@query
async def probes(ctx, args):
    return [row["anonymous"] for row in await ctx.db.query("probes").collect()]
