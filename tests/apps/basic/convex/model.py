def describe(doc):
    return f"item {doc['name']}"
