from pyconvex import define_schema, define_table, v

schema = define_schema({"payments": define_table({"event": v.string()})})
