from pyconvex import internal, internal_mutation, mutation, query, v


@mutation(args={"text": v.string()}, returns=v.id("notes"))
async def add(ctx, args):
    print(f"adding a note: {args['text']}")
    return await ctx.db.insert("notes", {"text": args["text"]})


@query
async def list(ctx, args):
    return await ctx.db.query("notes").order("desc").collect()


@query
async def whoami(ctx, args):
    identity = await ctx.auth.get_user_identity()
    return None if identity is None else identity.name


@query
async def broken(ctx, args):
    raise RuntimeError("this query always breaks")


@internal_mutation(args={"text": v.string()})
async def add_later(ctx, args):
    await ctx.db.insert("notes", {"text": args["text"]})


@mutation(args={"text": v.string()})
async def remind(ctx, args):
    return await ctx.scheduler.run_after(3600, internal.notes.add_later, {"text": args["text"]})


@mutation
async def fix_hooks(ctx, args):
    await ctx.db.insert("fixes", {"what": "hooks"})
