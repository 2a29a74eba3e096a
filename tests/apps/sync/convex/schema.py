from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        "messages": define_table({"channel": v.string(), "body": v.string()})
        .index("by_channel", ["channel"])
        .index("by_body", ["channel", "body"]),
        "counters": define_table({"name": v.string(), "value": v.int64()}).index(
            "by_name", ["name"]
        ),
    }
)
