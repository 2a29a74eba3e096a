"""Function references: ``api.items.create``, ``internal.webhooks.stripe.handle``.

A reference is a plain attribute chain naming a path; the last attribute is
the function, the others the module path (``/`` between packages):

>>> str(internal.webhooks.stripe.handle)
'webhooks/stripe:handle'
>>> str(api.items.list)
'items:list'

Wherever a reference is taken, a ``"items:create"`` string or the function
object itself works too.
"""

from __future__ import annotations

import re
from typing import Any

from .define import FunctionDefinition

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


class FunctionReference:
    """A name for a function, resolved when it is called."""

    __slots__ = ("_children", "_parts", "_path", "_root")
    _root: str
    _parts: tuple[str, ...]
    _children: dict[str, FunctionReference]
    _path: str | None

    def __init__(self, root: str, parts: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "_path", None)

    def __getattr__(self, name: str) -> FunctionReference:
        # Made once per name: ``internal.items.create`` in a handler is two dict lookups.
        child = self._children.get(name)
        if child is None:
            if name.startswith("__"):
                raise AttributeError(name)
            child = FunctionReference(self._root, (*self._parts, name))
            if len(self._children) < 1024:  # names from untrusted strings cannot grow it
                self._children[name] = child
        return child

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("function references are read-only")

    @property
    def path(self) -> str:
        if self._path is not None:
            return self._path
        if len(self._parts) < 2:
            raise ValueError(
                f"{self!r} is not a function reference: name a module and a function, "
                f"e.g. {self._root}.items.create"
            )
        path = "/".join(self._parts[:-1]) + ":" + self._parts[-1]
        object.__setattr__(self, "_path", path)
        return path

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return ".".join((self._root, *self._parts))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FunctionReference) and self._parts == other._parts

    def __hash__(self) -> int:
        return hash(self._parts)


api = FunctionReference("api")
internal = FunctionReference("internal")

FunctionLike = FunctionReference | FunctionDefinition | str


def function_path(ref: Any) -> str:
    """The ``"module:function"`` path of a reference, string or function object."""
    if isinstance(ref, FunctionReference):
        return ref.path
    if isinstance(ref, FunctionDefinition):
        if ref.path is None:
            raise ValueError(
                f"{ref!r} is not part of a loaded app: define it in a module of the functions folder"
            )
        return ref.path
    if isinstance(ref, str):
        path = ref.removesuffix(".py") if ":" not in ref else ref
        if ":" not in path:
            path += ":default"
        if not _PATH.match(path):
            raise ValueError(f"{ref!r} is not a function path such as 'items:create'")
        return path
    raise TypeError(f"Expected a function reference, path or function, got {type(ref).__name__}")
