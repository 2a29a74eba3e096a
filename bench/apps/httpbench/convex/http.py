"""The benchmark's endpoints; BENCH_ROUTES=N adds N more routes to show lookup cost stays flat."""

import os

from pyconvex import HttpRouter, Response, internal

http = HttpRouter()


@http.route(path="/health", method="GET")
async def health(ctx, request):
    return Response.json({"status": "ok"})


@http.route(path="/users/{user_id}", method="GET")
async def user(ctx, request):
    return Response.json({"user_id": request.path_params["user_id"]})


@http.route(path="/items", method="POST")
async def create(ctx, request):
    data = await request.json()
    item_id = await ctx.run_mutation(internal.items.create, {"name": data["name"], "payload": data})
    return Response.json({"id": item_id}, status=201)


# Filler routes in the three kinds: exact paths, {param} paths, prefixes.
for i in range(int(os.environ.get("BENCH_ROUTES", "7"))):
    kind = i % 3
    if kind == 0:
        http.route(path=f"/extra/{i}", method="GET", handler=health)
    elif kind == 1:
        http.route(path=f"/extra/{i}/{{x}}/detail", method="GET", handler=user)
    else:
        http.route(path_prefix=f"/prefix/{i}/", method="GET", handler=health)
