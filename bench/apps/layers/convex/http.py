"""The POST /items request of the HTTP benchmark, one layer at a time (bench_layers.py)."""

from pyconvex import HttpRouter, Response, internal

http = HttpRouter()


@http.route(path="/parse", method="POST")
async def parse(ctx, request):
    data = await request.json()
    return Response.json({"id": data["name"]}, status=201)


@http.route(path="/noop", method="POST")
async def noop(ctx, request):
    data = await request.json()
    await ctx.run_mutation(internal.items.noop, {"name": data["name"], "payload": data})
    return Response.json({"id": data["name"]}, status=201)


@http.route(path="/tiny", method="POST")
async def tiny(ctx, request):
    data = await request.json()
    item_id = await ctx.run_mutation(internal.items.tiny, {"name": data["name"]})
    return Response.json({"id": item_id}, status=201)


@http.route(path="/items", method="POST")
async def create(ctx, request):
    data = await request.json()
    item_id = await ctx.run_mutation(internal.items.create, {"name": data["name"], "payload": data})
    return Response.json({"id": item_id}, status=201)
