from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        "docs": define_table({"key": v.string(), "n": v.int64(), "body": v.string()}).index(
            "by_key", ["key"]
        )
    }
)
