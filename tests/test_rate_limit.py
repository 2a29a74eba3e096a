"""Rate limits: the arithmetic against a reference model, the state in a system table (rolled
back with a failed mutation), and one limit shared by two worker processes."""

from __future__ import annotations

import math
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyconvex import ConvexError
from pyconvex.rate_limit import Config, calculate, too_many_requests
from pyconvex.testing import ConvexTest

APP = Path(__file__).parent / "apps" / "ratelimit"

steps = st.lists(
    st.tuples(st.integers(0, 500), st.integers(0, 5)),  # (seconds since the last call, count)
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps, rate=st.integers(1, 20), capacity=st.integers(1, 30))
def test_a_token_bucket_is_the_reference_models(
    steps: list[tuple[int, int]], rate: int, capacity: int
) -> None:
    # The model: tokens trickle in one at a time, exactly, and never past the capacity.
    config = Config("token bucket", rate=rate, period=60, capacity=capacity)
    state, tokens, now = None, Fraction(capacity), 1_000_000
    for elapsed, count in steps:
        now += elapsed
        tokens = min(Fraction(capacity), tokens + Fraction(elapsed * rate, 60))
        if tokens >= count:  # taken: the model and the limiter both go down
            tokens -= count
            state, retry = calculate(state, config, now, count)
            assert retry is None
            assert math.isclose(state["value"], float(tokens), abs_tol=1e-6)
        else:  # refused: the state is not written; the wait is until count tokens are in
            _, retry = calculate(state, config, now, count)
            assert retry is not None
            assert math.isclose(retry, float((count - tokens) * 60 / rate), rel_tol=1e-9)


@settings(max_examples=300, deadline=None)
@given(steps=steps, rate=st.integers(1, 20), extra=st.integers(0, 20))
def test_a_fixed_window_is_the_reference_models(
    steps: list[tuple[int, int]], rate: int, extra: int
) -> None:
    # The model walks window by window from the start: each adds rate, up to the capacity.
    capacity = rate + extra
    config = Config("fixed window", rate=rate, period=60, capacity=capacity, start=0)
    state, tokens, window, now = None, capacity, None, 1_000_000
    for elapsed, count in steps:
        now += elapsed
        current = now // 60
        if window is not None:
            for _ in range(window, current):
                tokens = min(capacity, tokens + rate)
        window = current
        if tokens >= count:
            tokens -= count
            state, retry = calculate(state, config, now, count)
            assert retry is None and state["value"] == tokens
        else:
            _, retry = calculate(state, config, now, count)
            windows_needed = math.ceil((count - tokens) / rate)
            assert retry == (current + windows_needed) * 60 - now


@pytest.fixture
async def t() -> AsyncIterator[ConvexTest]:
    async with ConvexTest(APP) as test:
        yield test


async def test_a_limit_is_taken_per_key_and_refused_with_the_wait(t: ConvexTest) -> None:
    for _ in range(3):
        await t.mutation("limits:send", {"user": "ada", "text": "hi"})
    with pytest.raises(ConvexError) as refused:
        await t.mutation("limits:send", {"user": "ada", "text": "one too many"})
    assert refused.value.data["kind"] == "RateLimited" and refused.value.data["name"] == "send"
    assert 5.5 < refused.value.data["retry_after"] <= 6  # one token: 6 s at 10 a minute
    await t.mutation("limits:send", {"user": "bob", "text": "hi"})  # another key: its own
    assert (await t.query("limits:check", {"user": "ada"}))["ok"] is False
    await t.mutation("limits:reset", {"user": "ada"})
    assert (await t.query("limits:check", {"user": "ada"}))["ok"] is True


async def test_a_failed_mutation_gives_its_tokens_back(t: ConvexTest) -> None:
    with pytest.raises(RuntimeError):
        await t.mutation("limits:send_then_fail", {"user": "ada"})
    for _ in range(3):  # the whole capacity is still there
        await t.mutation("limits:send", {"user": "ada", "text": "hi"})
    status = await t.action("limits:take_from_action", {"user": "ada"})
    assert status["ok"] is False and status["retry_after"] > 0


async def test_reserve_books_ahead_up_to_max_reserved(t: ConvexTest) -> None:
    take = {"name": "booked", "user": "ada", "reserve": True}
    assert await t.mutation("limits:take", take) == {"ok": True, "retry_after": None}
    booked = [await t.mutation("limits:take", take) for _ in range(3)]
    assert [status["ok"] for status in booked] == [True, True, False]  # at most 2 booked
    assert 55 < booked[0]["retry_after"] <= 60 and 115 < booked[1]["retry_after"] <= 120


async def test_a_sharded_limit_holds_its_total(t: ConvexTest) -> None:
    # 600 a minute over 4 shards of 150: about the total, never more.
    taken = [
        (await t.mutation("limits:take", {"name": "sharded", "user": "ada"}))["ok"]
        for _ in range(700)
    ]
    assert 560 <= sum(taken) <= 600


def test_too_many_requests_is_a_429_with_retry_after() -> None:
    response = too_many_requests({"ok": False, "retry_after": 2.2})
    assert response.status == 429 and response.headers["retry-after"] == "3"


def test_1000_concurrent_requests_on_two_workers_never_exceed_the_limit(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_cli_serving import Process

    app = tmp_path / "app"
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("PYCONVEX_ADMIN_KEY", "limits-admin")
    process = Process("serve", str(app), "--workers", "2", "--database-url", postgres_url)
    process.wait_for(r"worker \d of 2")
    try:

        def hit(_: int) -> int:
            with httpx.Client(timeout=60) as client:  # a connection each: both workers serve
                return client.get(f"{process.site}/limited", headers={"x-user": "k"}).status_code

        with ThreadPoolExecutor(32) as pool:
            statuses = list(pool.map(hit, range(1000)))
    finally:
        process.stop()
    assert statuses.count(200) == 100 and statuses.count(429) == 900


async def test_a_limit_refills_by_the_tests_clock(t: ConvexTest) -> None:
    for _ in range(3):
        await t.mutation("limits:send", {"user": "ada", "text": "hi"})
    assert (await t.query("limits:check", {"user": "ada"}))["ok"] is False
    t.clock.advance(6)  # one token, at 10 a minute
    assert (await t.query("limits:check", {"user": "ada"}))["ok"] is True


async def test_what_one_call_may_take_and_two_shards_together(t: ConvexTest) -> None:
    # "sharded": 600 a minute over 4 shards of 150; one call gets at most two shards' worth.
    big = {"name": "sharded", "user": "ada", "count": 250}
    assert (await t.mutation("limits:take_many", big))["ok"] is True  # two shards together
    with pytest.raises(ValueError, match="count 301 exceeds 300"):
        await t.mutation("limits:take_many", {**big, "count": 301})
    booked = {"name": "booked", "user": "ada", "count": 3, "reserve": True}
    assert (await t.mutation("limits:take_many", booked))["ok"] is True  # 1 now, 2 booked
