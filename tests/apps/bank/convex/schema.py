from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        "accounts": define_table({"name": v.string(), "balance": v.number()}).index(
            "by_name", ["name"]
        ),
        "transfers": define_table(
            {
                "transfer_id": v.string(),
                "source": v.string(),
                "target": v.string(),
                "amount": v.number(),
                # the balances this transfer saw: replayed in commit order, they must agree
                "seen_source": v.number(),
                "seen_target": v.number(),
            }
        ).index("by_transfer", ["transfer_id"]),
        "notes": define_table({"text": v.string(), "tag": v.string()}).index("by_tag", ["tag"]),
    }
)
