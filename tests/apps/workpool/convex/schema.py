from pyconvex import define_schema, define_table, v

schema = define_schema(
    {
        # a run of a "slow" action: when it started and ended (pid: which process ran it)
        "runs": define_table(
            {"i": v.float64(), "start": v.float64(), "end": v.float64(), "pid": v.float64()}
        ),
        "counters": define_table({"key": v.string(), "n": v.float64()}).index("by_key", ["key"]),
        "completions": define_table({"work_id": v.string(), "context": v.any(), "result": v.any()}),
        "notes": define_table({"text": v.string()}),
    }
)
