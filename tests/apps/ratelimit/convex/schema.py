from pyconvex import define_schema, define_table, v

schema = define_schema({"messages": define_table({"user": v.string(), "text": v.string()})})
