"""What the webhooks do once verified: Stripe payments, Clerk users, and a log of every event."""

from pyconvex import internal_mutation, v


async def log_event(ctx, source, event, status):
    await ctx.db.insert(
        "webhookEvents",
        {
            "source": source,
            "event_type": event.get("type") or "unknown",
            "event_id": event.get("id"),
            "status": status,
            "payload": event.get("payload"),
        },
    )


@internal_mutation(
    args={
        "source": v.string(),
        "event_type": v.string(),
        "event_id": v.optional(v.string()),
        "status": v.union(v.literal("received"), v.literal("processed"), v.literal("ignored")),
        "payload": v.any(),
    }
)
async def log(ctx, args):
    """For hand-written webhook routes (GitHub's, here)."""
    await ctx.db.insert("webhookEvents", args)


@internal_mutation
async def on_stripe_event(ctx, event):
    """Runs once per Stripe event, after it was verified and recorded (http.webhook)."""
    stripe_object = event["payload"]["data"]["object"]
    if event["type"] == "checkout.session.completed":
        await ctx.db.insert(
            "payments",
            {
                "session_id": stripe_object["id"],
                "customer": stripe_object.get("customer"),
                "amount": stripe_object.get("amount_total"),
            },
        )
    elif event["type"] == "customer.subscription.updated":
        clerk_id = (stripe_object.get("metadata") or {}).get("clerk_id")
        user = await _user(ctx, clerk_id) if clerk_id else None
        if user is not None:
            await ctx.db.patch(user["_id"], {"subscription_status": stripe_object["status"]})
    else:
        await log_event(ctx, "stripe", event, "ignored")
        return
    await log_event(ctx, "stripe", event, "processed")


@internal_mutation
async def on_clerk_event(ctx, event):
    """Keeps `users` in step with Clerk: user.created, user.updated, user.deleted."""
    data = event["payload"]["data"]
    user = await _user(ctx, data["id"])
    if event["type"] in ("user.created", "user.updated"):
        emails = data.get("email_addresses") or [{}]
        names = [data.get("first_name"), data.get("last_name")]
        fields = {
            "clerk_id": data["id"],
            "email": emails[0].get("email_address"),
            "name": " ".join(n for n in names if n) or None,
        }
        if user is None:
            await ctx.db.insert("users", fields)
        else:
            await ctx.db.patch(user["_id"], fields)
    elif event["type"] == "user.deleted":
        if user is not None:
            await ctx.db.delete(user["_id"])
    else:
        await log_event(ctx, "clerk", event, "ignored")
        return
    await log_event(ctx, "clerk", event, "processed")


async def _user(ctx, clerk_id):
    by_clerk_id = ctx.db.query("users").with_index(
        "by_clerk_id", lambda q: q.eq("clerk_id", clerk_id)
    )
    return await by_clerk_id.unique()
