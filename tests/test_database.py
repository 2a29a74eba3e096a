import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyconvex import define_schema, define_table, v
from pyconvex.database import Database, keys
from pyconvex.errors import InvalidQueryError, InvalidValueError, SchemaValidationError
from pyconvex.persistence import open_persistence
from pyconvex.persistence.postgres import PostgresPersistence
from pyconvex.persistence.sqlite import SqlitePersistence


async def insert_all(db, table, docs):
    async def body(w):
        return [await w.insert(table, d) for d in docs]

    return await db.transact(body)


async def count(db, table="items"):
    async with db.read() as r:
        return len(await r.query(table).collect())


async def test_insert_get_patch_replace_delete(db):
    (item_id,) = await insert_all(db, "items", [{"name": "a", "status": "new"}])
    async with db.read() as r:
        doc = await r.get(item_id)
    assert doc["_id"] == item_id and doc["name"] == "a" and isinstance(doc["_creationTime"], float)

    async def edit(w):
        await w.patch(item_id, {"status": "done", "n": 2})
        assert (await w.get(item_id))["status"] == "done"  # reads its own writes
        await w.patch(item_id, {"n": None})  # optional and not nullable: None removes the field

    await db.transact(edit)
    async with db.read() as r:
        doc = await r.get(item_id)
    assert doc["status"] == "done" and "n" not in doc

    async def replace(w):
        await w.replace(item_id, {"name": "b"})

    await db.transact(replace)
    async with db.read() as r:
        replaced = await r.get(item_id)
        assert replaced == {"_id": item_id, "_creationTime": doc["_creationTime"], "name": "b"}
        assert (
            await r.query("items")
            .with_index("by_status", lambda q: q.eq("status", "done"))
            .collect()
            == []
        )

    async def delete(w):
        await w.delete(item_id)

    await db.transact(delete)
    async with db.read() as r:
        assert await r.get(item_id) is None
        assert await r.query("items").collect() == []


async def test_values_keep_their_types(db):
    doc = {"a": 1, "b": 1.0, "c": b"\x00", "d": [None, True, {"e": 2**62}]}
    (doc_id,) = await insert_all(db, "loose", [doc])
    async with db.read() as r:
        stored = await r.get(doc_id)
    assert type(stored["a"]) is int and type(stored["b"]) is float
    assert stored["c"] == b"\x00" and stored["d"] == [None, True, {"e": 2**62}]


async def test_schema_rejects_bad_document_before_anything_is_written(db):
    async def body(w):
        await w.insert("items", {"name": "ok"})
        await w.insert("items", {"name": 5})

    with pytest.raises(SchemaValidationError) as info:
        await db.transact(body)
    assert 'table "items"' in str(info.value) and "Path: .name" in str(info.value)
    assert await count(db) == 0
    async with db.read() as r:
        assert await r.query("items").with_index("by_status").collect() == []


async def test_mutation_that_raises_leaves_no_write(db):
    async def body(w):
        await w.insert("items", {"name": "x"})
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.transact(body)
    assert await count(db) == 0


async def test_unknown_table_and_reserved_fields(db):
    async def unknown(w):
        await w.insert("nope", {"a": 1})

    with pytest.raises(SchemaValidationError, match='Table "nope" is not in the schema'):
        await db.transact(unknown)

    async def reserved(w):
        await w.insert("loose", {"_secret": 1})

    with pytest.raises(InvalidValueError, match="reserved"):
        await db.transact(reserved)

    async def system(w):
        await w.insert("_scheduled_functions", {})

    with pytest.raises(InvalidQueryError, match="system table"):
        await db.transact(system)


async def test_document_size_limit(db):
    async def big(w):
        await w.insert("loose", {"blob": b"x" * (1024 * 1024)})

    with pytest.raises(InvalidValueError, match="1 MiB"):
        await db.transact(big)


async def test_unique_raises_on_two_matches(db):
    await insert_all(db, "items", [{"name": "a", "status": "x"}, {"name": "b", "status": "x"}])
    async with db.read() as r:
        with pytest.raises(InvalidQueryError, match="unique\\(\\) query returned more than one"):
            await r.query("items").with_index("by_status", lambda q: q.eq("status", "x")).unique()
        assert (
            await r.query("items").with_index("by_status", lambda q: q.eq("status", "y")).unique()
            is None
        )
        one = await r.query("items").filter(lambda q: q.eq(q.field("name"), "b")).unique()
        assert one["name"] == "b"


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_paginate_returns_every_document_once_while_inserting(db, order):
    originals = set(await insert_all(db, "items", [{"name": f"d{i}"} for i in range(53)]))
    seen: list[str] = []
    cursor = None
    rounds = 0
    while True:
        async with db.read() as r:
            page = await r.query("items").order(order).paginate({"num_items": 7, "cursor": cursor})
        seen.extend(doc["_id"] for doc in page["page"])
        await insert_all(db, "items", [{"name": f"new{rounds}"}])
        rounds += 1
        if page["is_done"]:
            break
        cursor = page["continue_cursor"]
    assert len(seen) == len(set(seen))  # nothing twice
    assert originals <= set(seen)  # everything present throughout, once
    with pytest.raises(InvalidQueryError, match="InvalidCursor"):
        async with db.read() as r:
            await (
                r.query("items")
                .with_index("by_status")
                .paginate({"num_items": 1, "cursor": cursor})
            )


async def test_async_iteration_and_take(db):
    await insert_all(db, "items", [{"name": str(i), "n": i} for i in range(300)])
    async with db.read() as r:
        names = [doc["name"] async for doc in r.query("items")]
        assert names == [str(i) for i in range(300)]
        last = await r.query("items").order("desc").take(3)
        assert [d["n"] for d in last] == [299, 298, 297]
        odd = await r.query("items").filter(lambda q: q.eq(q.mod(q.field("n"), 2), 1)).take(200)
        assert len(odd) == 150
        assert (await r.query("items").first())["n"] == 0


async def test_filters(db):
    await insert_all(
        db,
        "items",
        [
            {"name": n, "n": i, "status": s}
            for i, (n, s) in enumerate([("a", "x"), ("b", "y"), ("c", "x"), ("d", "z")])
        ],
    )
    async with db.read() as r:

        async def names(build):
            return [d["name"] for d in await r.query("items").filter(build).collect()]

        assert await names(
            lambda q: q.and_(q.eq(q.field("status"), "x"), q.gt(q.field("n"), 0))
        ) == ["c"]
        assert await names(lambda q: q.or_(q.eq(q.field("name"), "a"), q.lte(q.field("n"), 1))) == [
            "a",
            "b",
        ]
        assert await names(lambda q: q.not_(q.eq(q.field("status"), "x"))) == ["b", "d"]
        assert await names(lambda q: q.eq(q.add(q.field("n"), 1), 4)) == ["d"]
        assert await names(lambda q: q.eq(q.field("missing"), None)) == []
        with pytest.raises(InvalidQueryError, match="no truth value"):
            await names(lambda q: q.eq(q.field("n"), 1) and q.eq(q.field("n"), 2))


async def test_index_range_misuse_is_an_error(db):
    async with db.read() as r:
        with pytest.raises(InvalidQueryError, match="not found"):
            r.query("items").with_index("by_nothing")
        with pytest.raises(InvalidQueryError, match="out of order"):
            r.query("items").with_index("by_status_n", lambda q: q.eq("n", 1))
        with pytest.raises(InvalidQueryError, match="after a range bound"):
            r.query("items").with_index("by_status_n", lambda q: q.gt("status", "a").eq("n", 1))
        with pytest.raises(InvalidQueryError, match="at most once"):
            r.query("items").order("asc").order("desc")


def test_index_scans_use_the_primary_key_range(tmp_path):
    store = SqlitePersistence(tmp_path / "plan.sqlite3")
    try:
        for bounded in (True, False):
            for reverse in (True, False):
                plan = " ".join(store.explain_scan(bounded=bounded, reverse=reverse))
                assert "SEARCH e USING PRIMARY KEY (index_id=? AND key>? AND key<?)" in plan or (
                    not bounded and "SEARCH e USING PRIMARY KEY (index_id=? AND key>?)" in plan
                ), plan
                assert "SCAN e" not in plan and "TEMP B-TREE" not in plan, plan
    finally:
        store.close_now()


async def test_postgres_index_scans_use_the_primary_key_index(postgres_url):
    """The same on PostgreSQL: an index range is a range scan of index_entries' B-tree."""
    store = PostgresPersistence(postgres_url)
    try:
        for bounded in (True, False):
            for reverse in (True, False):
                plan = " ".join(await store.explain_scan(bounded=bounded, reverse=reverse))
                assert "Index Scan" in plan and "index_entries_pkey" in plan, plan
                assert "Sort" not in plan and "Seq Scan on index_entries" not in plan, plan
    finally:
        await store.close()


async def test_new_index_is_backfilled_and_dropped_index_removed(database_url):
    before = define_schema({"t": define_table({"a": v.int64(), "b": v.int64()})})
    db = Database(open_persistence(database_url), before)
    await db.setup()
    await insert_all(db, "t", [{"a": i % 3, "b": i} for i in range(10)])
    await db.close()

    after = define_schema(
        {"t": define_table({"a": v.int64(), "b": v.int64()}).index("by_a", ["a"])}
    )
    db = Database(open_persistence(database_url), after)
    await db.setup()
    async with db.read() as r:
        found = await r.query("t").with_index("by_a", lambda q: q.eq("a", 1)).collect()
    assert [d["b"] for d in found] == [1, 4, 7]
    await db.close()

    db = Database(open_persistence(database_url), before)
    await db.setup()
    async with db.read() as r:
        stored = await db.registry.all(await r._txn.snapshot())
        user_indexes = [i.name for i in stored if not i.table.startswith("_")]
        assert user_indexes == ["by_creation_time"]
    await db.close()


# -- index ranges against brute force -------------------------------------------------------

RANGE_SCHEMA = define_schema(
    {"t": define_table({"a": v.any(), "b": v.optional(v.any())}).index("by_ab", ["a", "b"])}
)
small = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(-3, 3)
    | st.sampled_from(["", "a", "b"])
)
docs_strategy = st.lists(st.fixed_dictionaries({"a": small}, optional={"b": small}), max_size=25)
ops = st.sampled_from(["gt", "gte", "lt", "lte"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=docs_strategy,
    eq=st.one_of(st.none(), small),
    lower=st.one_of(st.none(), st.tuples(st.sampled_from(["gt", "gte"]), small)),
    upper=st.one_of(st.none(), st.tuples(st.sampled_from(["lt", "lte"]), small)),
    descending=st.booleans(),
)
def test_index_range_equals_brute_force(docs, eq, lower, upper, descending):
    def in_range(doc):
        a, b = keys.get_field(doc, "a"), keys.get_field(doc, "b")
        if eq is None:
            target = a
        else:
            if keys.compare(a, eq) != 0:
                return False
            target = b
        for bound in (lower, upper):
            if bound is None:
                continue
            op, value = bound
            c = keys.compare(target, value)
            if not {"gt": c > 0, "gte": c >= 0, "lt": c < 0, "lte": c <= 0}[op]:
                return False
        return True

    def build(q):
        if eq is not None:
            q = q.eq("a", eq)
        field = "a" if eq is None else "b"
        if lower:
            q = getattr(q, lower[0])(field, lower[1])
        if upper:
            q = getattr(q, upper[0])(field, upper[1])
        return q

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(SqlitePersistence(Path(tmp) / "db.sqlite3"), RANGE_SCHEMA)
            await db.setup()
            try:
                await insert_all(db, "t", docs)
                async with db.read() as r:
                    everything = await r.query("t").collect()
                    got = (
                        await r.query("t")
                        .with_index("by_ab", build)
                        .order("desc" if descending else "asc")
                        .collect()
                    )
            finally:
                await db.close()
            return everything, got

    everything, got = asyncio.run(main())
    index_order = sorted(
        everything,
        key=lambda d: keys.index_key(d, ("a", "b")),
        reverse=descending,
    )
    expected = [d["_id"] for d in index_order if in_range(d)]
    assert [d["_id"] for d in got] == expected
