from pyconvex import HttpRouter, Response, cors_router, env
from pyconvex.http import cors_headers

http = HttpRouter()


def app_origins(request):
    # A callable: the allowed origin comes from the deployment's environment.
    return [env.get("ALLOWED_ORIGIN", "https://app.example.com")]


cors = cors_router(
    http, allowed_origins=app_origins, allowed_headers=["Content-Type", "Authorization"]
)


@cors.route(path="/api/data", method="POST")
async def data(ctx, request):
    return Response.json(
        {
            "body": await request.json(),
            "authorization": request.headers.get("authorization"),
            "filter": request.query.get("filter"),
        }
    )


@cors.route(path="/api/data", method="GET")
async def data_get(ctx, request):
    return Response.json({"ok": True})


@http.route(path="/api/data", method="DELETE")  # not through cors: not in the preflight's list
async def data_delete(ctx, request):
    return Response(status=204)


@cors.route(path_prefix="/api/users/", method="GET")
async def user(ctx, request):
    return Response.json({"user": request.path.removeprefix("/api/users/")})


strict = cors_router(
    http, allowed_origins=["https://app.example.com"], enforce_allowed_origins=True
)


@strict.route(path="/strict", method="GET")
async def strict_get(ctx, request):
    return Response.json({"ok": True})


open_cors = cors_router(
    http,
    allowed_origins=["*.example.com"],
    allow_credentials=True,
    exposed_headers=["X-Total"],
    max_age=60,
)


@open_cors.route(path="/sub", method="PUT")
def sub(ctx, request):
    return Response.json({"sync": True}, headers={"X-Total": "3"})


@http.route(path="/manual", method="GET")
async def manual(ctx, request):
    headers = await cors_headers(request, allowed_origins=["https://app.example.com"])
    return Response.json({"manual": True}, headers=headers)
