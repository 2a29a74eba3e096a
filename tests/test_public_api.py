import pyconvex


def test_public_names():
    assert set(pyconvex.__all__) == {
        "ArgumentValidationError",
        "ConvexError",
        "HttpRouter",
        "Int64",
        "Request",
        "Response",
        "ReturnsValidationError",
        "SchemaValidationError",
        "action",
        "api",
        "cors_router",
        "cron_jobs",
        "define_schema",
        "define_table",
        "env",
        "http_action",
        "internal",
        "internal_action",
        "internal_mutation",
        "internal_query",
        "mutation",
        "query",
        "v",
    }
    for name in pyconvex.__all__:
        assert getattr(pyconvex, name) is not None
