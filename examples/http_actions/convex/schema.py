"""The guide's tables, plus the items the /api/items endpoints keep."""

from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        # API keys as the guide keeps them, except that only a SHA-256 of each key is stored
        # (so a leaked database leaks no keys). pyconvex.api_keys does all this for you.
        "apiKeys": define_table(
            {
                "key_hash": v.string(),
                "user_id": v.string(),
                "name": v.string(),
                "last_used": v.optional(v.float64()),
                "is_active": v.boolean(),
            }
        )
        .index("by_key", ["key_hash"])
        .index("by_user", ["user_id"]),
        # Every webhook delivery the app saw, and what became of it.
        "webhookEvents": define_table(
            {
                "source": v.string(),
                "event_type": v.string(),
                "event_id": v.optional(v.string()),
                "status": v.union(
                    v.literal("received"), v.literal("processed"), v.literal("ignored")
                ),
                "payload": v.any(),
            }
        )
        .index("by_source", ["source"])
        .index("by_status", ["status"]),
        # Users, kept in step with Clerk by its webhooks.
        "users": define_table(
            {
                "clerk_id": v.string(),
                "email": v.optional(v.string()),
                "name": v.optional(v.string()),
                "subscription_status": v.optional(v.string()),
            }
        ).index("by_clerk_id", ["clerk_id"]),
        # Stripe checkouts that completed.
        "payments": define_table(
            {
                "session_id": v.string(),
                "customer": v.optional(v.string()),
                "amount": v.optional(v.int64()),
            }
        ),
        "items": define_table(
            {
                "name": v.string(),
                "description": v.optional(v.string()),
                "price": v.optional(v.float64()),
            }
        ),
        "processed": define_table({"data": v.any(), "result": v.any()}),
    }
)
