from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        "notes": define_table({"text": v.string(), "stars": v.optional(v.number())}).index(
            "by_text", ["text"]
        ),
        "fixes": define_table({"what": v.string()}),
    }
)
