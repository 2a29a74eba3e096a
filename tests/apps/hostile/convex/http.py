from pyconvex import HttpRouter, Response

http = HttpRouter()


@http.route(path="/health", method="GET")
async def health(ctx, request):
    return Response.json({"status": "ok"})


@http.route(path="/json", method="POST")
async def parsed(ctx, request):
    """Leaves a bad body to the server: invalid or too deep JSON is its 400."""
    return Response.json({"value": await request.json()})


@http.route(path="/json-or-422", method="POST")
async def handled(ctx, request):
    try:
        body = await request.json()
    except ValueError as exc:  # what API.md section 5 promises json() raises
        return Response.json({"error": str(exc)}, status=422)
    return Response.json({"value": body})
