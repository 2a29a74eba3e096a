from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        "handled": define_table({"event_id": v.string(), "path": v.string()}),
        "runs": define_table({"start": v.float64(), "end": v.float64()}),
    }
)
