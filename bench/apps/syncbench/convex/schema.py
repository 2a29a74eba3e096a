from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        "posts": define_table({"channel": v.string(), "seq": v.number()}).index(
            "by_channel", ["channel"]
        )
    }
)
