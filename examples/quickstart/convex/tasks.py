from pyconvex import internal_mutation, mutation, query, v


@mutation(args={"text": v.string(), "priority": v.optional(v.int64())}, returns=v.id("tasks"))
async def add(ctx, args):
    """Add a task; returns its id."""
    return await ctx.db.insert(
        "tasks", {"text": args["text"], "done": False, "priority": args.get("priority")}
    )


@mutation(args={"id": v.id("tasks")})
async def complete(ctx, args):
    await ctx.db.patch(args["id"], {"done": True})


@query(args={"done": v.optional(v.boolean())})
async def list(ctx, args):
    """Tasks, newest first; only done (or open) ones when `done` is given."""
    tasks = ctx.db.query("tasks")
    if "done" in args:
        tasks = tasks.with_index("by_done", lambda q: q.eq("done", args["done"]))
    return await tasks.order("desc").collect()


@internal_mutation
def seed(ctx, args):
    """A plain `def` works too: it runs in a worker thread, ctx calls need no await."""
    if ctx.db.query("tasks").first() is not None:
        return "already seeded"
    for text in ("Read the README", "Write a query", "Ship it"):
        ctx.db.insert("tasks", {"text": text, "done": False})
    return "seeded 3 tasks"
