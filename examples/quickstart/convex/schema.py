from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        "tasks": define_table(
            {"text": v.string(), "done": v.boolean(), "priority": v.optional(v.int64())}
        ).index("by_done", ["done"]),
    }
)
