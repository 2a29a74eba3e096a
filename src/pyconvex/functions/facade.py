"""The thin facade that lets a plain ``def`` handler use the same ``ctx``.

A plain ``def`` handler runs in a worker thread (as FastAPI runs ``def``
endpoints), so a blocking SDK call never stalls the server. There is one
implementation of every ``ctx`` method, ``async`` and bound to the event loop;
the facade hands each call to the loop and waits for its result:

    def handler(ctx, args):
        doc = ctx.db.get(args["id"])          # no await
        for item in ctx.db.query("items"):    # iterates the collected results
            ...
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any


def _wants_facade(obj: Any) -> bool:
    return getattr(type(obj), "_sync_facade", False) is True


class SyncFacade:
    """Wraps an object of the async ``ctx`` API for use from a worker thread."""

    __slots__ = ("_loop", "_target")

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_loop", loop)

    def _on_loop(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        result = asyncio.run_coroutine_threadsafe(call(), self._loop).result()
        return SyncFacade(result, self._loop) if _wants_facade(result) else result

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if _wants_facade(attr):
            return SyncFacade(attr, self._loop)
        if callable(attr) and not isinstance(attr, type):
            return lambda *args, **kwargs: self._on_loop(attr, *args, **kwargs)
        return attr

    def __iter__(self) -> Iterator[Any]:
        if hasattr(self._target, "collect"):
            return iter(self._on_loop(self._target.collect))
        return iter(self._target)

    def __repr__(self) -> str:
        return f"SyncFacade({self._target!r})"
