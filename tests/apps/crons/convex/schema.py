from pyconvex import define_schema, define_table, v

schema = define_schema({"ticks": define_table({"job": v.string(), "at": v.float64()})})
