from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        "items": define_table(
            {
                "name": v.string(),
                "description": v.optional(v.string()),
                "status": v.optional(v.string()),
            }
        ).index("by_status", ["status"]),
        "counters": define_table({"name": v.string(), "value": v.int64()}).index(
            "by_name", ["name"]
        ),
    }
)
