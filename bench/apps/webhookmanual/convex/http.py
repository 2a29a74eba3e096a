"""The webhook benchmark's receiver written by hand: verify, then one mutation."""

from pyconvex import HttpRouter, Response, env, internal
from pyconvex.webhooks import WebhookVerificationError, verify

http = HttpRouter()


@http.route(path="/webhooks/stripe", method="POST")
async def stripe(ctx, request):
    body = await request.body()
    try:
        event = verify(
            "stripe", body=body, headers=request.headers, secret=env.get("STRIPE_WEBHOOK_SECRET")
        )
    except WebhookVerificationError as exc:
        return Response.json({"error": exc.reason}, status=400)
    await ctx.run_mutation(
        internal.billing.record, {"event_id": event.id, "type": event.type, "body": body}
    )
    return Response.json({"received": True})
