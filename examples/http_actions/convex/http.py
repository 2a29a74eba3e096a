"""Every endpoint of the HTTP actions guide, in Python."""

import logging

from pyconvex import HttpRouter, Response, cors_router, env, internal
from pyconvex.auth import AuthenticationError
from pyconvex.errors import BadRequestError, InvalidValueError, ValidationError
from pyconvex.rate_limit import too_many_requests
from pyconvex.webhooks import WebhookVerificationError, verify

from . import keys

http = HttpRouter()
log = logging.getLogger("http_actions")


@http.route(path="/health", method="GET")
async def health(ctx, request):
    return Response.json({"status": "ok"})


# -- JSON, forms and uploads ---------------------------------------------------------------


def allowed_origins(request):
    """From the ALLOWED_ORIGINS env var (comma-separated), read per request: `pyconvex env set`."""
    return [o.strip() for o in env.get("ALLOWED_ORIGINS", "*").split(",") if o.strip()]


cors = cors_router(
    http, allowed_origins=allowed_origins, allowed_headers=["Content-Type", "Authorization"]
)


@cors.route(path="/api/data", method="POST")
async def data(ctx, request):
    body = await request.json()
    return Response.json(
        {
            "received": body,
            "authorization": request.headers.get("authorization"),
            "filter": request.query.get("filter"),
        }
    )


@http.route(path="/api/form", method="POST")
async def form(ctx, request):
    fields = await request.form_data()  # urlencoded or multipart
    name, email = fields.get("name"), fields.get("email")
    if not isinstance(name, str) or not isinstance(email, str):
        return Response.json({"error": "name and email are required"}, status=400)
    return Response.json({"name": name, "email": email})


@http.route(path="/api/upload", method="POST")
async def upload(ctx, request):
    content_type = request.headers.get("content-type", "application/octet-stream")
    storage_id = await ctx.storage.store(request.stream(), content_type)  # streamed to storage
    return Response.json({"storageId": storage_id})


@http.route(path_prefix="/files/", method="GET")
async def file(ctx, request):
    url = await ctx.storage.get_url(request.path.removeprefix("/files/"))
    if url is None:
        return Response.json({"error": "File not found"}, status=404)
    return Response.redirect(url)


# -- users, items, processing ----------------------------------------------------------------


@http.route(path_prefix="/api/users/", method="GET")
async def user_by_id(ctx, request):
    user_id = request.path.removeprefix("/api/users/")
    user = await ctx.run_query(internal.users.get, {"id": user_id})
    if user is None:
        return Response.json({"error": "User not found"}, status=404)
    return Response.json(user)


@http.route(path="/api/items", method="POST")
async def create_item(ctx, request):
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return Response.json(
            {"error": 'Send {"name": "...", "description"?, "price"?}'}, status=400
        )
    fields = {k: body[k] for k in ("name", "description", "price") if k in body}
    item_id = await ctx.run_mutation(internal.items.create, fields)
    item = await ctx.run_query(internal.items.get, {"id": item_id})
    return Response.json(item, status=201)


@http.route(path="/api/items", method="GET")
async def list_items(ctx, request):
    raw = request.query.get("limit", "10")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        return Response.json({"error": "limit must be a number from 1 to 100"}, status=400)
    items = await ctx.run_query(internal.items.list, {"limit": int(raw)})
    return Response.json({"items": items})


@http.route(path="/api/process", method="POST")
async def process(ctx, request):
    if not request.headers.get("content-type", "").startswith("application/json"):
        return Response.json({"error": "Content-Type must be application/json"}, status=415)
    try:
        body = await request.json()
    except BadRequestError:
        return Response.json({"error": "Invalid JSON"}, status=400)
    if not isinstance(body, dict) or "data" not in body:
        return Response.json({"error": "Missing required field: data"}, status=400)
    try:
        result = await ctx.run_mutation(internal.process.process_data, {"data": body["data"]})
    except (ValidationError, InvalidValueError) as exc:  # data no document can hold: the client's
        return Response.json({"error": f"Invalid data: {exc}"}, status=400)
    except Exception:
        log.exception("Processing failed")  # the details go to the logs, not to the client
        return Response.json({"error": "Internal server error"}, status=500)
    return Response.json({"success": True, "result": result})


# -- auth ------------------------------------------------------------------------------------


@http.route(path="/api/protected", method="GET")
async def protected(ctx, request):
    key = request.headers.get("x-api-key")
    if not key:
        return Response.json({"error": "Missing API key"}, status=401)
    owner = await ctx.run_mutation(internal.keys.validate, {"key": key})
    if owner is None:
        return Response.json({"error": "Invalid API key"}, status=403)
    # Limited per key, not per caller: a key shared by many machines shares its limit.
    status = await keys.limits.limit(ctx, "api", key=owner["user_id"] + "/" + owner["name"])
    if not status["ok"]:
        return too_many_requests(status)
    return Response.json({"message": "Access granted", "user_id": owner["user_id"]})


@http.route(path="/api/user", method="GET")
async def current_user(ctx, request):
    try:
        identity = await ctx.auth.get_user_identity()
    except AuthenticationError:
        return Response.json({"error": "Invalid token"}, status=403)
    if identity is None:
        return Response.json({"error": "Unauthorized"}, status=401)
    user = await ctx.run_query(internal.users.by_clerk_id, {"clerk_id": identity.subject})
    return Response.json(
        {
            "identity": {
                "subject": identity.subject,
                "token_identifier": identity.token_identifier,
                "email": identity.email,
                "name": identity.name,
            },
            "user": user,
        }
    )


# -- webhooks --------------------------------------------------------------------------------

# Verified over the raw body, recorded and deduplicated before the 200, then handled in the
# background with retries: the handlers are internal mutations, so each runs exactly once.
http.webhook(
    path="/webhooks/stripe",
    provider="stripe",
    secret_env="STRIPE_WEBHOOK_SECRET",
    handler=internal.webhooks.on_stripe_event,
)
http.webhook(
    path="/webhooks/clerk",
    provider="clerk",
    secret_env="CLERK_WEBHOOK_SECRET",
    handler=internal.webhooks.on_clerk_event,
)


@http.route(path="/webhooks/github", method="POST")
async def github(ctx, request):
    """The same by hand, for when you want the request in your own code: verify, then act."""
    body = await request.body()  # the raw bytes: never verify re-serialized JSON
    try:
        event = verify(
            "github", body=body, headers=request.headers, secret=env.get("GITHUB_WEBHOOK_SECRET")
        )
    except WebhookVerificationError as exc:
        return Response.json({"error": "Invalid signature", "reason": exc.reason}, status=400)
    await ctx.run_mutation(
        internal.webhooks.log,
        {
            "source": "github",
            "event_type": event.type or "unknown",
            "event_id": event.id,
            "status": "processed",
            "payload": event.payload,
        },
    )
    return Response.json({"received": True})
