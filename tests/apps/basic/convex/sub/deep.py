from pyconvex import query


@query
async def where(ctx, args):
    return "sub/deep:where"
