from pyconvex import HttpRouter, Response
from pyconvex.rate_limit import too_many_requests

from .limits import limiter

http = HttpRouter()


@http.route(path="/limited", method="GET")
async def limited(ctx, request):
    status = await limiter.limit(ctx, "requests", key=request.headers.get("x-user", "anonymous"))
    if not status["ok"]:
        return too_many_requests(status)
    return Response.json({"ok": True})
