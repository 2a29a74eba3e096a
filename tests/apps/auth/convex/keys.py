from pyconvex import api_keys, internal_mutation, query, v


@internal_mutation(args={"owner": v.string(), "scopes": v.optional(v.array(v.string()))})
async def create(ctx, args):
    return await api_keys.create(ctx, args["owner"], "test key", args.get("scopes", []))


@internal_mutation(args={"id": v.string()})
async def revoke(ctx, args):
    return await api_keys.revoke(ctx, args["id"])


@query(args={"key": v.string()})
async def check(ctx, args):
    return await api_keys.validate(ctx, args["key"])


@query(args={"owner": v.string()})
async def mine(ctx, args):
    return await api_keys.list_keys(ctx, args["owner"])


@query
async def create_from_query(ctx, args):
    return await api_keys.create(ctx, "x", "y")
