from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        "items": define_table({"name": v.string(), "payload": v.any()}),
        "tiny": define_table({"name": v.string()}),
    }
)
