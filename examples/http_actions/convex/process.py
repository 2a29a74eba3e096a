from pyconvex import internal_mutation, v


@internal_mutation(args={"data": v.any()})
async def process_data(ctx, args):
    data = args["data"]
    if data == "fail":  # a stand-in for whatever can go wrong in real processing
        raise RuntimeError("the processor rejected this input (internal detail)")
    result = {"kind": type(data).__name__, "size": len(data) if hasattr(data, "__len__") else 1}
    await ctx.db.insert("processed", {"data": data, "result": result})
    return result
