from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        "events": define_table(
            {"event_id": v.string(), "type": v.string(), "body": v.bytes()}
        ).index("by_event", ["event_id"])
    }
)
