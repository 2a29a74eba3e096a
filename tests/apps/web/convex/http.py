import asyncio
import logging

from pyconvex import ConvexError, HttpRouter, Response, api, env, http_action, internal

http = HttpRouter()
log = logging.getLogger(__name__)


@http.route(path="/health", method="GET")
async def health(ctx, request):
    return Response.json({"status": "ok"})


@http.route(path="/echo", method="POST")
async def echo(ctx, request):
    kind = request.query.get("as", "json")
    raw = await request.body()
    if kind == "json":
        data = await request.json()
        return Response.json({"json": data, "raw": raw.decode("latin-1")})
    if kind == "text":
        return Response.json({"text": await request.text()})
    if kind == "form":
        form = await request.form_data()
        out = {}
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                content = await value.read()
                out.setdefault(key, []).append(
                    {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "size": len(content),
                        "head": content[:16].decode("latin-1"),
                    }
                )
            else:
                out.setdefault(key, []).append(value)
        again = await request.body()
        return Response.json({"form": out, "raw_length": len(again)})
    if kind == "stream":
        total = 0
        chunks = 0
        async for chunk in request.stream():
            total += len(chunk)
            chunks += 1
        return Response.json({"total": total})
    return Response.json({"bytes": len(raw)})


@http.route(path="/inspect", method="GET")
async def inspect(ctx, request):
    return Response.json(
        {
            "method": request.method,
            "url": request.url,
            "path": request.path,
            "tags": request.query.getlist("tag"),
            "q": request.query.get("q"),
            "x_multi": request.headers.getlist("x-multi"),
            "ua": request.headers.get("User-Agent"),
            "client": list(request.client) if request.client else None,
            "body": (await request.body()).decode(),
        },
        headers={"X-Handled": "yes"},
    )


@http.route(path="/inspect", method="POST")
async def inspect_post(ctx, request):
    return Response("posted", status=201)


@http.route(path="/users/{user_id}/posts/{post_id}", method="GET")
async def post(ctx, request):
    return Response.json(request.path_params)


@http.route(path_prefix="/files/", method="GET")
async def files(ctx, request):
    return Response.json({"rest": request.path.removeprefix("/files/")})


@http.route(path="/boom", method="GET")
async def boom(ctx, request):
    raise RuntimeError("secret internals")


@http.route(path="/refuse", method="POST")
async def refuse(ctx, request):
    raise ConvexError({"code": "INSUFFICIENT_FUNDS", "balance": 3})


@http.route(path="/not-a-response", method="GET")
async def not_a_response(ctx, request):
    return {"status": "ok"}


@http.route(path="/bad-json", method="POST")
async def bad_json(ctx, request):
    return Response.json(await request.json())


@http.route(path="/stream", method="GET")
async def stream(ctx, request):
    async def parts():
        for i in range(5):
            await asyncio.sleep(0)
            yield f"part {i}\n"

    return Response(parts(), headers={"content-type": "text/plain"})


@http.route(path="/increment", method="POST")
async def increment(ctx, request):
    name = (await request.json())["name"]
    value = await ctx.run_mutation(api.counters.increment, {"name": name})
    return Response.json({"value": value})


@http.route(path="/log", method="POST")
async def log_lines(ctx, request):
    tag = request.query["tag"]
    for i in range(20):
        print(tag, i)
        await asyncio.sleep(0)
    log.info("info %s", tag)
    return Response.json({"tag": tag})


@http.route(path="/env", method="GET")
async def read_env(ctx, request):
    name = request.query["name"]
    return Response.json({"value": env.get(name)})


@http_action
def plain(ctx, request):
    body = request.body()
    count = ctx.run_query(api.counters.get, {"name": "plain"})
    print("plain handler")
    return Response.json({"len": len(body), "count": count})


http.route(path="/plain", method="POST", handler=plain)


@http.route(path="/redirect", method="GET")
async def redirect(ctx, request):
    return Response.redirect("https://example.com/there", status=307)


@http.route(path="/empty", method="DELETE")
async def empty(ctx, request):
    return Response(status=204)


@http.route(path="/slow", method="GET")
async def slow(ctx, request):
    await asyncio.sleep(30)
    return Response("too late")


@http.route(path="/upload", method="POST")
async def upload(ctx, request):
    storage_id = await ctx.storage.store(
        request.stream(), content_type=request.headers.get("content-type")
    )
    return Response.json({"storageId": storage_id})


@http.route(path="/download/{storage_id}", method="GET")
async def download(ctx, request):
    url = await ctx.storage.get_url(request.path_params["storage_id"])
    if url is None:
        return Response.json({"error": "not found"}, status=404)
    return Response.redirect(url)


http.webhook(
    path="/hooks/stripe",
    provider="stripe",
    secret_env="STRIPE_SECRET",
    handler=internal.webhooks.on_event,
)
http.webhook(
    path="/hooks/flaky",
    provider="github",
    secret_env="GITHUB_SECRET",
    handler=internal.webhooks.flaky,
)
http.webhook(
    path="/hooks/dead",
    provider="github",
    secret_env="GITHUB_SECRET",
    handler=internal.webhooks.always_fails,
    max_attempts=3,
)
http.webhook(
    path="/hooks/slack",
    provider="slack",
    secret_env="SLACK_SECRET",
    handler=internal.webhooks.on_event,
)
http.webhook(
    path="/hooks/svix",
    provider="svix",
    secret_env="SVIX_SECRET",
    handler=internal.webhooks.on_event_action,
)
http.webhook(
    path="/hooks/zoom",
    provider="zoom",
    secret_env="ZOOM_SECRET",
    handler=internal.webhooks.on_event,
)
http.webhook(
    path="/hooks/discord",
    provider="discord",
    secret_env="DISCORD_PUBLIC_KEY",
    handler=internal.webhooks.on_event,
)


@http.route(path="/pid", method="GET")
async def pid(ctx, request):
    import os

    return Response.json({"pid": os.getpid()})
