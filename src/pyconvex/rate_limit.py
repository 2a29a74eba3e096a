"""Rate limits, as ``@convex-dev/rate-limiter`` has them: token buckets and fixed windows whose
state is a system table, so a limit consumed by a mutation that fails is given back with it,
and every process shares it.

    from pyconvex.rate_limit import HOUR, MINUTE, RateLimiter, too_many_requests

    limiter = RateLimiter({
        "send_message": {"kind": "token bucket", "rate": 10, "period": MINUTE, "capacity": 3},
        "failed_logins": {"kind": "fixed window", "rate": 10, "period": HOUR},
    })

    @mutation(args={"text": v.string()})
    async def send(ctx, args):
        user = ...
        await limiter.limit(ctx, "send_message", key=user, throws=True)   # ConvexError if over

Periods are seconds (``SECOND``, ``MINUTE``, ``HOUR``, ``DAY``), and so is ``retry_after``.
See docs/rate-limiting.md.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any, Literal

from .database.system import RATE_LIMITS
from .errors import ConvexError
from .functions.context import in_system_transaction
from .http.response import Response

SECOND = 1.0
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0

Kind = Literal["token bucket", "fixed window"]
EPSILON = 1e-9


@dataclass(frozen=True)
class Config:
    """One limit. ``capacity`` defaults to ``rate``; ``shards`` spreads a hot limit over rows."""

    kind: Kind
    rate: float
    period: float
    capacity: float | None = None
    max_reserved: float | None = None
    shards: int = 1
    start: float | None = None  # fixed windows: where windows begin (random per key if None)

    @classmethod
    def of(cls, name: str, given: Any) -> Config:
        if isinstance(given, Config):
            return given
        if not isinstance(given, dict):
            raise TypeError(f"Rate limit {name!r}: a config is a dict, not {type(given).__name__}")
        unknown = set(given) - {
            "kind", "rate", "period", "capacity", "max_reserved", "shards", "start",
        }  # fmt: skip
        if unknown:
            raise TypeError(f"Rate limit {name!r}: unknown setting(s) {sorted(unknown)}")
        config = cls(**given)
        if config.kind not in ("token bucket", "fixed window"):
            raise ValueError(
                f'Rate limit {name!r}: kind must be "token bucket" or "fixed window", '
                f"not {config.kind!r}"
            )
        for what in ("rate", "period"):
            value = getattr(config, what)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"Rate limit {name!r}: {what} must be a positive number")
        if (
            isinstance(config.shards, bool)
            or not isinstance(config.shards, int)
            or config.shards < 1
        ):
            raise ValueError(f"Rate limit {name!r}: shards must be a positive whole number")
        return config

    def sharded(self) -> tuple[float, float, float | None]:
        """(rate, capacity, max_reserved) of one shard."""
        n = self.shards
        capacity = self.rate if self.capacity is None else self.capacity
        reserved = None if self.max_reserved is None else self.max_reserved / n
        return self.rate / n, capacity / n, reserved


def calculate(
    state: dict[str, float] | None, config: Config, now: float, count: float
) -> tuple[dict[str, float], float | None]:
    """The state after taking ``count`` at ``now`` and, if that leaves it negative, how long
    until it would not be (seconds; None when it is not negative). Pure: no reserve rule."""
    rate, capacity, _ = config.sharded()
    if config.kind == "token bucket":
        if state is None:
            value, ts = capacity, now
        else:
            value = min(state["value"] + (now - state["ts"]) * rate / config.period, capacity)
            ts = now
        value = _settled(value - count)
        retry = -value * config.period / rate if value < 0 else None
        return {"value": value, "ts": ts}, retry
    if state is None:
        start = config.start if config.start is not None else now - random.random() * config.period
        windows = math.floor((now - start) / config.period)
        ts = start + windows * config.period
        value = capacity
    else:
        windows = math.floor((now - state["ts"]) / config.period)
        ts = state["ts"] + windows * config.period
        value = min(state["value"] + rate * windows, capacity)
    value = _settled(value - count)
    retry = ts + config.period * math.ceil(-value / rate) - now if value < 0 else None
    return {"value": value, "ts": ts}, retry


def _settled(value: float) -> float:
    """Rounding, not a shortfall: exactly enough tokens, added up in floats, can come out
    a hair below zero."""
    return 0.0 if -EPSILON < value < 0 else value


class RateLimiter:
    """Named limits over the ``_rate_limits`` system table (see the module's docstring)."""

    def __init__(self, limits: dict[str, Any]) -> None:
        self.limits = {name: Config.of(name, config) for name, config in limits.items()}

    def _config(self, name: str, override: Any) -> Config:
        if override is not None:
            return Config.of(name, override)
        try:
            return self.limits[name]
        except KeyError:
            raise KeyError(
                f"No rate limit named {name!r}: this limiter has {sorted(self.limits)}"
            ) from None

    async def limit(
        self,
        ctx: Any,
        name: str,
        *,
        key: str | None = None,
        count: float = 1,
        reserve: bool = False,
        throws: bool = False,
        config: Any = None,
    ) -> dict[str, Any]:
        """Take ``count`` from the limit ``name`` (per ``key``): ``{"ok", "retry_after"}``.

        In a mutation it is part of the mutation's transaction; in an action, a transaction
        of its own. ``reserve=True`` books capacity ahead (``ok`` with the time to wait);
        ``throws=True`` raises ``ConvexError({"kind": "RateLimited", ...})`` instead of
        answering ``ok: False``.
        """
        return await self._status(ctx, name, key, count, reserve, throws, config, write=True)

    async def check(
        self,
        ctx: Any,
        name: str,
        *,
        key: str | None = None,
        count: float = 1,
        reserve: bool = False,
        throws: bool = False,
        config: Any = None,
    ) -> dict[str, Any]:
        """What :meth:`limit` would answer, taking nothing (queries may call it too)."""
        return await self._status(ctx, name, key, count, reserve, throws, config, write=False)

    async def _status(
        self,
        ctx: Any,
        name: str,
        key: str | None,
        count: float,
        reserve: bool,
        throws: bool,
        config: Any,
        *,
        write: bool,
    ) -> dict[str, Any]:
        settings = self._config(name, config)
        now = _now(ctx)
        status: dict[str, Any] = await in_system_transaction(
            ctx,
            lambda db: _take(db, name, settings, key, count, reserve, throws, write, now),
            write=write,
            what="A rate limit",
        )
        return status

    async def reset(self, ctx: Any, name: str, *, key: str | None = None) -> None:
        """Forget the limit's state for ``key``: it is full again."""

        async def forget(db: Any) -> None:
            for row in await _rows(db, name, key):
                await db.delete(row["_id"])

        await in_system_transaction(ctx, forget, what="A rate limit")

    async def get_value(self, ctx: Any, name: str, *, key: str | None = None) -> dict[str, Any]:
        """``{"value", "ts", "shard", "config"}`` of one shard, as of now."""
        settings = self._config(name, None)
        now = _now(ctx)

        async def read(db: Any) -> dict[str, Any]:
            shard = random.randrange(settings.shards)
            row = await _row(db, name, key, shard)
            state, _ = calculate(_state(row), settings, now, 0)
            return {**state, "shard": shard, "config": settings.__dict__}

        value: dict[str, Any] = await in_system_transaction(ctx, read, write=False)
        return value


async def _take(
    db: Any,
    name: str,
    config: Config,
    key: str | None,
    count: float,
    reserve: bool,
    throws: bool,
    write: bool,
    now: float,
) -> dict[str, Any]:
    _, capacity, max_reserved = config.sharded()
    # One call gets at most one shard's capacity, or two shards' when there are 3 or
    # more (the second choice); more could never be granted, unless booked ahead.
    most = capacity * (2 if config.shards >= 3 else 1)
    if reserve:
        most = math.inf if max_reserved is None else most + max_reserved
    if count > most:
        raise ValueError(f"Rate limit {name} count {count} exceeds {most}")
    shard = random.randrange(config.shards)
    row = await _row(db, name, key, shard)
    state, retry = calculate(_state(row), config, now, count)
    taken = [(shard, row, state)]
    # Power of two choices: with 3 shards or more, a shard that cannot serve the call is
    # compared with a second one (only then: a shard that can is the common case).
    if retry is not None and config.shards >= 3:
        other = (shard + 1 + random.randrange(config.shards - 1)) % config.shards
        other_row = await _row(db, name, key, other)
        other_state, other_retry = calculate(_state(other_row), config, now, count)
        if other_retry is None or other_retry < retry:
            taken, retry, state = [(other, other_row, other_state)], other_retry, other_state
        if retry is not None:
            both = _combined(
                config, now, count, (shard, row), (other, other_row)
            )  # neither alone: together, left balanced
            if both is not None:
                taken, retry = both, None
    if retry is not None:
        too_many = max_reserved is not None and -state["value"] > max_reserved
        if not reserve or too_many:
            if throws:
                raise ConvexError({"kind": "RateLimited", "name": name, "retry_after": retry})
            return {"ok": False, "retry_after": retry}
    if write:
        for number, old, new in taken:
            if old is None:
                fields = {**new, "name": name, "key": key, "shard": float(number)}
                await db.insert(RATE_LIMITS, fields)
            else:
                await db.patch(old["_id"], new)
    return {"ok": True, "retry_after": retry}


def _combined(
    config: Config, now: float, count: float, *shards: tuple[int, dict[str, Any] | None]
) -> list[tuple[int, dict[str, Any] | None, dict[str, float]]] | None:
    """``count`` taken from two shards together, leaving them equal; None if they hold less."""
    refilled = [(n, row, calculate(_state(row), config, now, 0)[0]) for n, row in shards]
    left = sum(state["value"] for _, _, state in refilled) - count
    if left < -EPSILON:
        return None
    return [(n, row, {**state, "value": left / 2}) for n, row, state in refilled]


def _now(ctx: Any) -> float:
    """The deployment's clock (a test's, in ConvexTest), else the time."""
    try:
        clock = ctx._executor.scheduler.clock
    except (AttributeError, RuntimeError):
        return time.time()
    now: float = clock()
    return now


def _state(row: dict[str, Any] | None) -> dict[str, float] | None:
    return None if row is None else {"value": row["value"], "ts": row["ts"]}


async def _row(db: Any, name: str, key: str | None, shard: int) -> dict[str, Any] | None:
    row: dict[str, Any] | None = await (
        db.query(RATE_LIMITS)
        .with_index("by_key", lambda q: q.eq("name", name).eq("key", key).eq("shard", float(shard)))
        .unique()
    )
    return row


async def _rows(db: Any, name: str, key: str | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await (
        db.query(RATE_LIMITS)
        .with_index("by_key", lambda q: q.eq("name", name).eq("key", key))
        .collect()
    )
    return rows


async def take(
    db: Any, name: str, config: Any, *, now: float, count: float = 1, write: bool = True
) -> dict[str, Any]:
    """Take ``count`` from the keyless limit ``name`` in ``db``'s transaction (a system
    reader, or writer when ``write``): pyconvex's own throttles (webhook endpoints) use the
    same state and arithmetic as apps' limits. ``{"ok", "retry_after"}``; never raises for
    a refusal."""
    settings = Config.of(name, config)
    return await _take(db, name, settings, None, count, False, False, write, now)


def too_many_requests(status: dict[str, Any], message: str = "Too many requests") -> Response:
    """A 429 for an HTTP action whose limit said no, with ``Retry-After`` (whole seconds)."""
    retry = status.get("retry_after") or 0
    seconds = max(1, math.ceil(retry))
    return Response.json(
        {"error": message, "retry_after": retry},
        status=429,
        headers={"retry-after": str(seconds)},
    )
