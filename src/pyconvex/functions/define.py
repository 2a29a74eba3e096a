"""The six function kinds: ``query``, ``mutation``, ``action`` and their ``internal_`` twins.

>>> from pyconvex import internal_mutation, query, v
>>> @query
... async def count(ctx, args): ...
>>> @internal_mutation(args={"name": v.string()}, returns=v.id("items"))
... async def create(ctx, args):
...     return await ctx.db.insert("items", {"name": args["name"]})

Each is usable bare (``@query``), called (``@query(args=..., returns=...)``) or
with Convex's object spelling (``query(args=..., handler=fn)``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Literal, overload

from ..validators import ObjectValidator, Validator, as_object_validator

Kind = Literal["query", "mutation", "action"]
Visibility = Literal["public", "internal"]
Handler = Callable[..., Any]


class FunctionDefinition:
    """A registered function: its kind, visibility, validators and handler.

    ``path`` (``"items:create"``) is set when the app's functions folder is loaded.
    Calling the object calls the handler directly, which is handy for helpers
    and unit tests; other functions should use ``ctx.run_query`` and friends.
    """

    def __init__(
        self,
        kind: Kind,
        visibility: Visibility,
        handler: Handler,
        args: ObjectValidator | None,
        returns: Validator | None,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"A {kind} handler must be a function, not {handler!r}")
        self.kind = kind
        self.visibility = visibility
        self.handler = handler
        self.args = args
        self.returns = returns
        self.is_async = inspect.iscoroutinefunction(handler)
        self.path: str | None = None
        self.__name__ = getattr(handler, "__name__", kind)
        self.__qualname__ = getattr(handler, "__qualname__", self.__name__)
        self.__module__ = getattr(handler, "__module__", __name__)
        self.__doc__ = getattr(handler, "__doc__", None)

    @property
    def is_public(self) -> bool:
        return self.visibility == "public"

    def __call__(self, ctx: Any, args: Any = None) -> Any:
        return self.handler(ctx, {} if args is None else args)

    def __repr__(self) -> str:
        where = self.path or f"{self.__module__}.{self.__qualname__}"
        prefix = "internal_" if self.visibility == "internal" else ""
        return f"<{prefix}{self.kind} {where}>"


class _Kind:
    def __init__(self, kind: Kind, visibility: Visibility) -> None:
        self.kind = kind
        self.visibility = visibility
        self.__name__ = ("internal_" if visibility == "internal" else "") + kind

    def _define(
        self,
        handler: Handler,
        args: Mapping[str, Validator] | Validator | None,
        returns: Validator | None,
    ) -> FunctionDefinition:
        if returns is not None and not isinstance(returns, Validator):
            raise TypeError(f"{self.__name__}(returns=...) expects a validator, got {returns!r}")
        checked = None if args is None else as_object_validator(args)
        return FunctionDefinition(self.kind, self.visibility, handler, checked, returns)

    @overload
    def __call__(self, handler: Handler, /) -> FunctionDefinition: ...

    @overload
    def __call__(
        self,
        handler: None = None,
        /,
        *,
        args: Mapping[str, Validator] | Validator | None = None,
        returns: Validator | None = None,
    ) -> Callable[[Handler], FunctionDefinition]: ...

    def __call__(
        self,
        handler: Handler | None = None,
        /,
        *,
        args: Mapping[str, Validator] | Validator | None = None,
        returns: Validator | None = None,
        **kwargs: Any,
    ) -> Any:
        explicit = kwargs.pop("handler", None)
        if kwargs:
            raise TypeError(f"{self.__name__}() got unexpected arguments: {', '.join(kwargs)}")
        if handler is not None and explicit is not None:
            raise TypeError(f"{self.__name__}() got two handlers")
        target = handler if handler is not None else explicit
        if target is not None:
            return self._define(target, args, returns)
        return lambda fn: self._define(fn, args, returns)

    def __repr__(self) -> str:
        return f"pyconvex.{self.__name__}"


query = _Kind("query", "public")
mutation = _Kind("mutation", "public")
action = _Kind("action", "public")
internal_query = _Kind("query", "internal")
internal_mutation = _Kind("mutation", "internal")
internal_action = _Kind("action", "internal")


class HttpAction:
    """An HTTP action: ``handler(ctx, request) -> Response`` with an action's ``ctx``.

        @http_action
        async def health(ctx, request):
            return Response.json({"status": "ok"})

    A plain ``def`` handler runs in a worker thread, like a plain ``def`` action.
    """

    def __init__(self, handler: Handler) -> None:
        if isinstance(handler, HttpAction):
            handler = handler.handler
        self.handler: Handler = handler
        if not callable(handler):
            raise TypeError(f"http_action() takes a function, not {handler!r}")
        self.is_async = inspect.iscoroutinefunction(handler)
        self.__name__ = getattr(handler, "__name__", "http_action")
        self.__qualname__ = getattr(handler, "__qualname__", self.__name__)
        self.__module__ = getattr(handler, "__module__", __name__)
        self.__doc__ = getattr(handler, "__doc__", None)

    def __call__(self, ctx: Any, request: Any) -> Any:
        return self.handler(ctx, request)

    def __repr__(self) -> str:
        return f"<http_action {self.__module__}.{self.__qualname__}>"


def http_action(handler: Handler) -> HttpAction:
    """Mark ``handler(ctx, request)`` as an HTTP action, to be routed by an ``HttpRouter``."""
    return HttpAction(handler)
