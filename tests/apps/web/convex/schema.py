from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        "counters": define_table({"name": v.string(), "value": v.number()}).index(
            "by_name", ["name"]
        ),
        "messages": define_table({"body": v.string()}),
        "events": define_table(
            {
                "provider": v.string(),
                "event_id": v.optional(v.string()),
                "type": v.optional(v.string()),
            }
        ),
        "marks": define_table({"i": v.number(), "tag": v.string(), "at": v.float64()}).index(
            "by_tag", ["tag"]
        ),
    }
)
