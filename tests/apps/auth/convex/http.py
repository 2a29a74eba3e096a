from pyconvex import HttpRouter, Response, api, api_keys, http_action
from pyconvex.auth import AuthenticationError

http = HttpRouter()


@http.route(path="/me", method="GET")
@http_action
async def me(ctx, request):
    try:
        identity = await ctx.auth.get_user_identity()
    except AuthenticationError as exc:
        return Response.json({"error": "Invalid token", "reason": exc.reason}, status=403)
    if identity is None:
        return Response.json({"error": "Unauthorized"}, status=401)
    return Response.json(
        {"subject": identity.subject, "via_query": await ctx.run_query(api.users.whoami)}
    )


@http.route(path="/me-sync", method="GET")
@http_action
def me_sync(ctx, request):
    identity = ctx.auth.get_user_identity()
    return Response.json({"name": None if identity is None else identity.name})


@http.route(path="/api/protected", method="GET")
@http_action
async def protected(ctx, request):
    key = request.headers.get("x-api-key")
    if not key:
        return Response.json({"error": "Missing API key"}, status=401)
    record = await api_keys.validate(ctx, key, scope="read")
    if record is None:
        return Response.json({"error": "Invalid API key"}, status=403)
    return Response.json({"owner": record["owner"], "last_used_at": record["last_used_at"]})
