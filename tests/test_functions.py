import textwrap
from pathlib import Path

import pytest

from pyconvex import ConvexError, api, internal, internal_query, mutation, query, v
from pyconvex.errors import (
    AppLoadError,
    ArgumentValidationError,
    FunctionNotFoundError,
    FunctionTimeoutError,
    ReturnsValidationError,
)
from pyconvex.functions import TimeLimits, function_path, load_app
from pyconvex.testing import ConvexTest


def test_references_are_attribute_chains():
    assert function_path(api.items.create) == "items:create"
    assert function_path(internal.webhooks.stripe.handle) == "webhooks/stripe:handle"
    assert function_path(internal.items.list) == "items:list"
    assert function_path(internal.items.get) == "items:get"
    assert function_path("items:create") == "items:create"
    assert function_path("items") == "items:default"
    with pytest.raises(ValueError):
        function_path(api.items)
    with pytest.raises(ValueError):
        function_path("not a path")


def test_decorator_spellings():
    @query
    async def bare(ctx, args): ...

    @internal_query(args={"x": v.string()}, returns=v.null())
    async def called(ctx, args): ...

    async def handler(ctx, args): ...

    explicit = mutation(args={"y": v.int64()}, handler=handler)
    assert bare.kind == "query" and bare.is_public and bare.args is None
    assert called.visibility == "internal" and str(called.args) == "v.object({x: v.string()})"
    assert explicit.kind == "mutation" and explicit.handler is handler
    with pytest.raises(TypeError):
        query(args={"x": "string"})(handler)


def test_loading_collects_paths(basic_app):
    app = load_app(basic_app / "convex")
    try:
        assert {"items:create", "items:get", "counters:increment", "sub/deep:where"} <= set(
            app.functions
        )
        assert "model:describe" not in app.functions  # plain helpers are not functions
        assert app.schema is not None and "items" in app.schema.tables
        assert app.functions["items:create"].path == "items:create"
    finally:
        app.unload()


async def test_run_public_internal_and_references(t):
    item_id = await t.mutation(internal.items.create, {"name": "a", "description": None})
    doc = await t.query("items:get", {"id": item_id})
    assert doc["name"] == "a" and "description" not in doc
    assert await t.query(api.items.count) == 1
    assert await t.query(api.sub.deep.where) == "sub/deep:where"
    executor = t.deployment.executor
    with pytest.raises(
        FunctionNotFoundError, match=r"Could not find public function for 'items:create'\."
    ):
        await executor.run("items:create", {"name": "x"}, public_only=True)
    with pytest.raises(FunctionNotFoundError, match=r"Could not find function for 'items:nope'\."):
        await executor.run("items:nope")
    with pytest.raises(FunctionNotFoundError, match="as Query, but it is defined as Mutation"):
        await t.query("items:create", {"name": "x"})


async def test_argument_and_return_validation(t):
    with pytest.raises(ArgumentValidationError) as info:
        await t.mutation(internal.items.create, {"name": 1})
    assert "Path: .name" in str(info.value) and "Validator: v.string()" in str(info.value)
    with pytest.raises(ArgumentValidationError, match="extra field `other`"):
        await t.mutation(internal.items.create, {"name": "a", "other": 1})
    with pytest.raises(ArgumentValidationError, match="must be an object"):
        await t.deployment.executor.run("items:create", [1])  # type: ignore[arg-type]
    with pytest.raises(ReturnsValidationError, match=r"Validator: v\.string\(\)"):
        await t.query("items:bad_return")


async def test_convex_error_carries_data_and_rolls_back(t):
    with pytest.raises(ConvexError) as info:
        await t.mutation("items:create_then_fail", {"name": "x"})
    assert info.value.data == {"code": "BOOM", "name": "x"}
    assert await t.query(api.items.count) == 0


async def test_nested_calls_share_the_transaction_with_savepoints(t):
    result = await t.mutation("items:create_nested", {"name": "n"})
    assert result["label"] == "item n"
    names = [d["name"] for d in await t.query("items:list")]
    assert names == ["n"]  # the failed nested mutation's insert was undone, the outer one kept


async def test_plain_def_handlers_use_the_same_ctx_without_await(t):
    first = await t.mutation("items:create_sync", {"name": "a"})
    second = await t.mutation("items:create_sync", {"name": "b"})
    assert first["names"] == ["a"] and second["names"] == ["a", "b"]
    assert await t.action("counters:bump_sync", {"name": "z"}) == 1


async def test_actions_run_each_call_in_its_own_transaction(t):
    assert await t.action("counters:bump_many", {"name": "a", "times": 5}) == 5


async def test_run_gives_a_mutation_ctx(t):
    item_id = await t.run(lambda ctx: ctx.db.insert("items", {"name": "via run"}))
    doc = await t.run(lambda ctx: ctx.db.get(item_id))
    assert doc["name"] == "via run"


async def test_time_limit(basic_app):
    async with ConvexTest(basic_app) as harness:
        harness.deployment.executor.limits = TimeLimits(query=0.05)
        with pytest.raises(FunctionTimeoutError, match=r"maximum duration: 0\.05s"):
            await harness.query("items:slow")


async def test_a_mutation_cut_off_by_its_time_limit_commits_nothing(t):
    # On PostgreSQL the insert was already sent (pipelined) when the limit struck.
    t.deployment.executor.limits = TimeLimits(mutation=0.2)
    with pytest.raises(FunctionTimeoutError, match=r"maximum duration: 0\.2s"):
        await t.mutation("items:slow_write")
    assert await t.run(lambda ctx: ctx.db.query("items").collect()) == []
    # The connection and the writers' lock were let go: the next mutations go through.
    for _ in range(3):
        await t.mutation("counters:increment", {"name": "after"})
    assert await t.query("counters:get", {"name": "after"}) == 3


async def test_a_handlers_own_timeout_error_is_not_a_time_limit(t):
    with pytest.raises(TimeoutError, match="the upstream API timed out") as caught:
        await t.action("items:upstream_timeout")
    assert not isinstance(caught.value, FunctionTimeoutError)


def write_app(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "convex" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.mark.parametrize(
    "files, file, line, message",
    [
        ({"a.py": "x = 1\ndef broken(:\n"}, "a.py", 2, "SyntaxError"),
        ({"b.py": "import os\n\nraise RuntimeError('bad module')\n"}, "b.py", 3, "bad module"),
        (
            {
                "schema.py": "from pyconvex import define_schema, define_table, v\n"
                "schema = define_schema({'t': define_table({'a': v.string()})\n"
                "    .index('by_b', ['b'])})\n"
            },
            "schema.py",
            3,
            "not in the table's validator",
        ),
        (
            {
                "c.py": "from pyconvex import query, v\n\n@query(args={'x': 'string'})\nasync def f(ctx, args): ...\n"
            },
            "c.py",
            3,
            "expects a validator",
        ),
    ],
)
def test_broken_app_names_file_and_line(tmp_path, files, file, line, message):
    write_app(tmp_path, files)
    with pytest.raises(AppLoadError) as info:
        load_app(tmp_path / "convex")
    assert info.value.file is not None and info.value.file.endswith(file)
    assert info.value.line == line
    assert message in str(info.value)


def test_two_loads_do_not_share_modules(tmp_path):
    write_app(
        tmp_path,
        {"m.py": "from pyconvex import query\n\n@query\nasync def f(ctx, args):\n    return 1\n"},
    )
    first = load_app(tmp_path / "convex")
    (tmp_path / "convex" / "m.py").write_text(
        "from pyconvex import query\n\n@query\nasync def g(ctx, args):\n    return 2\n"
    )
    second = load_app(tmp_path / "convex")
    assert set(first.functions) == {"m:f"} and set(second.functions) == {"m:g"}
    first.unload()
    second.unload()


def test_the_event_loops_own_reports_are_not_a_functions_logs() -> None:
    import logging

    from pyconvex.functions.logs import Execution, current_execution, install_capture

    install_capture()
    execution = Execution("probe", None, None)
    token = current_execution.set(execution)
    try:
        logging.getLogger("asyncio").error("Task was destroyed but it is pending!")
        logging.getLogger("app").warning("the function's own")
    finally:
        current_execution.reset(token)
    assert [line.message for line in execution.lines] == ["the function's own"]
