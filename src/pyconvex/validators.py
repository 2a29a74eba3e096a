"""Validators: ``v.string()``, ``v.object({...})`` and friends.

A validator checks a value and returns it normalised: inside an object, a
``None`` given for a ``v.optional(x)`` field whose ``x`` does not accept null
means "absent", so the field is dropped (Python has no ``undefined``).

>>> args = v.object({"name": v.string(), "tags": v.optional(v.array(v.string()))})
>>> args.validate({"name": "a", "tags": None})
{'name': 'a'}
>>> args.validate({"name": 1})
Traceback (most recent call last):
...
pyconvex.errors.ValidationError: Value does not match validator.
Path: .name
Value: 1
Validator: v.string()

Messages follow Convex's (convex-backend ``schemas/validator.rs``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

from . import ids
from .errors import ValidationError
from .values import INT64_MAX, INT64_MIN, Int64, display_value

__all__ = ["Validator", "v"]


def _context(path: str) -> str:
    return f"Path: {path}" if path else ""


def _no_match(value: object, validator: Validator, path: str) -> ValidationError:
    return ValidationError(
        f"Value does not match validator.\n{_context(path)}\n"
        f"Value: {display_value(value)}\nValidator: {validator}"
    )


class Validator(ABC):
    """Base of every validator. Use the ``v`` namespace to build them."""

    optional: bool = False

    @abstractmethod
    def validate(self, value: Any, path: str = "") -> Any:
        """Return ``value`` (normalised) or raise :class:`ValidationError`."""

    def accepts_null(self) -> bool:
        return False

    def __repr__(self) -> str:
        return str(self)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class _Simple(Validator):
    name = ""

    def __str__(self) -> str:
        return f"v.{self.name}()"


class StringValidator(_Simple):
    name = "string"

    def validate(self, value: Any, path: str = "") -> Any:
        if isinstance(value, str):
            return value
        raise _no_match(value, self, path)


class NumberValidator(_Simple):
    """``v.number()`` / ``v.float64()``: a Convex number, an ``int`` or ``float`` as it is;
    never a ``bool``, nor an :class:`~pyconvex.Int64` (Convex's other number type)."""

    def __init__(self, name: str = "number") -> None:
        self.name = name

    def validate(self, value: Any, path: str = "") -> Any:
        cls = value.__class__
        if cls is float or (cls is int and INT64_MIN <= value <= INT64_MAX):
            return value
        raise _no_match(value, self, path)


class Int64Validator(_Simple):
    """``v.int64()``: any ``int`` in the signed 64-bit range, as an :class:`~pyconvex.Int64`;
    never a ``float`` (not even ``5.0``) nor a ``bool``."""

    name = "int64"

    def validate(self, value: Any, path: str = "") -> Any:
        cls = value.__class__
        if cls is Int64:
            return value
        if cls is int and INT64_MIN <= value <= INT64_MAX:
            return Int64(value)
        raise _no_match(value, self, path)


class BooleanValidator(_Simple):
    name = "boolean"

    def validate(self, value: Any, path: str = "") -> Any:
        if isinstance(value, bool):
            return value
        raise _no_match(value, self, path)


class NullValidator(_Simple):
    name = "null"

    def validate(self, value: Any, path: str = "") -> Any:
        if value is None:
            return value
        raise _no_match(value, self, path)

    def accepts_null(self) -> bool:
        return True


class BytesValidator(_Simple):
    name = "bytes"

    def validate(self, value: Any, path: str = "") -> Any:
        if isinstance(value, bytes):
            return value
        raise _no_match(value, self, path)


class AnyValidator(_Simple):
    name = "any"

    def validate(self, value: Any, path: str = "") -> Any:
        return value

    def accepts_null(self) -> bool:
        return True


class IdValidator(Validator):
    """``v.id("users")``: an id of a document in that table."""

    def __init__(self, table: str) -> None:
        if not isinstance(table, str) or not table:
            raise TypeError("v.id() takes a table name")
        self.table = table

    def __str__(self) -> str:
        return f'v.id("{self.table}")'

    def validate(self, value: Any, path: str = "") -> Any:
        if ids.is_id_of(value, self.table):
            return value
        raise _no_match(value, self, path)


class LiteralValidator(Validator):
    def __init__(self, literal: str | int | float | bool) -> None:
        if literal is None or not isinstance(literal, (str, int, float, bool)):
            raise TypeError(f"v.literal() takes a str, int, float or bool, not {literal!r}")
        self.literal = literal

    def __str__(self) -> str:
        return f"v.literal({display_value(self.literal)})"

    def matches(self, value: Any) -> bool:
        """Whether ``value`` is this literal, without building an error.

        v.literal(3).matches(3.0)    # True: one Convex number
        v.literal(1).matches(True)   # False: a bool is not a number
        """
        if type(value) is type(self.literal) and value == self.literal:
            return True
        # A bool never matches a number literal, and 1 == 1.0 across int/float.
        return (
            isinstance(value, (int, float))
            and isinstance(self.literal, (int, float))
            and not isinstance(value, bool)
            and not isinstance(self.literal, bool)
            and value == self.literal
        )

    def validate(self, value: Any, path: str = "") -> Any:
        if self.matches(value):
            return value
        context = f"\n{_context(path)}" if path else ""
        raise ValidationError(
            f"`{display_value(value)}` does not match literal validator `{self}`.{context}"
        )


class ArrayValidator(Validator):
    def __init__(self, element: Validator) -> None:
        self.element = _require(element, "v.array()")

    def __str__(self) -> str:
        return f"v.array({self.element})"

    def validate(self, value: Any, path: str = "") -> Any:
        if not isinstance(value, list):
            raise _no_match(value, self, path)
        element = self.element
        return [element.validate(item, f"{path}[{i}]") for i, item in enumerate(value)]


class ObjectValidator(Validator):
    """``v.object({...})``: exactly these fields; ``v.optional`` ones may be absent."""

    def __init__(self, fields: Mapping[str, Validator]) -> None:
        if not isinstance(fields, Mapping):
            raise TypeError("v.object() takes a dict of validators")
        for name, field in fields.items():
            if not isinstance(name, str) or name.startswith("$") or not name:
                raise TypeError(f"v.object() field name {name!r} is not allowed")
            _require(field, f"v.object() field {name!r}")
        self.fields: dict[str, Validator] = dict(fields)

    def __str__(self) -> str:
        inner = ", ".join(f"{k}: {f}" for k, f in self.fields.items())
        return f"v.object({{{inner}}})"

    def validate(self, value: Any, path: str = "") -> Any:
        if not isinstance(value, dict):
            raise _no_match(value, self, path)
        out: dict[str, Any] = {}
        for name, field in self.fields.items():
            if name in value:
                item = value[name]
                if item is None and field.optional and not field.accepts_null():
                    continue  # None for an optional non-null field means "absent"
                out[name] = field.validate(item, f"{path}.{name}")
            elif not field.optional:
                raise ValidationError(
                    f"Object is missing the required field `{name}`. Consider wrapping the "
                    f"field validator in `v.optional(...)` if this is expected.\n"
                    f"{_context(path)}\nObject: {display_value(value)}\nValidator: {self}"
                )
        if len(out) < len(value):
            for name in value:
                if name not in self.fields:
                    raise ValidationError(
                        f"Object contains extra field `{name}` that is not in the validator.\n"
                        f"{_context(path)}\nObject: {display_value(value)}\nValidator: {self}"
                    )
        return out


class RecordValidator(Validator):
    def __init__(self, keys: Validator, values: Validator) -> None:
        _require(keys, "v.record() keys")
        _require(values, "v.record() values")
        if not _string_like(keys):
            raise TypeError(
                f"v.record() keys must be v.string(), v.id() or a union of them, not {keys}"
            )
        if values.optional:
            raise TypeError("v.record() values cannot be v.optional()")
        self.keys = keys
        self.values = values

    def __str__(self) -> str:
        return f"v.record({self.keys}, {self.values})"

    def validate(self, value: Any, path: str = "") -> Any:
        if not isinstance(value, dict):
            raise _no_match(value, self, path)
        out: dict[str, Any] = {}
        for key, item in value.items():
            self.keys.validate(key, f"{path}.keys()")
            out[key] = self.values.validate(item, f"{path}.values()")
        return out


def _string_like(validator: Validator) -> bool:
    if isinstance(validator, (StringValidator, IdValidator)):
        return True
    return isinstance(validator, UnionValidator) and all(_string_like(m) for m in validator.members)


class UnionValidator(Validator):
    def __init__(self, members: Iterable[Validator]) -> None:
        self.members = tuple(_require(m, "v.union() member") for m in members)
        if not self.members:
            raise TypeError("v.union() needs at least one validator")

    def __str__(self) -> str:
        return "v.union(" + ", ".join(str(m) for m in self.members) + ")"

    def accepts_null(self) -> bool:
        return any(m.accepts_null() for m in self.members)

    def validate(self, value: Any, path: str = "") -> Any:
        if len(self.members) == 1:
            return self.members[0].validate(value, path)
        for member in self.members:
            # A literal that does not match is asked without raising: its error message
            # (the value rendered as JSON) would be built only to be thrown away, and
            # unions of literals (`status` fields) are checked on every write.
            if isinstance(member, LiteralValidator):
                if member.matches(value):
                    return value
                continue
            try:
                return member.validate(value, path)
            except ValidationError:
                continue
        raise _no_match(value, self, path)


class OptionalValidator(Validator):
    """``v.optional(x)``: marks an object field as possibly absent."""

    optional = True

    def __init__(self, inner: Validator) -> None:
        inner = _require(inner, "v.optional()")
        self.inner: Validator = inner.inner if isinstance(inner, OptionalValidator) else inner

    def __str__(self) -> str:
        return f"v.optional({self.inner})"

    def accepts_null(self) -> bool:
        return self.inner.accepts_null()

    def validate(self, value: Any, path: str = "") -> Any:
        return self.inner.validate(value, path)


def _require(validator: object, where: str) -> Validator:
    if not isinstance(validator, Validator):
        raise TypeError(f"{where} expects a validator such as v.string(), got {validator!r}")
    return validator


def as_object_validator(args: Mapping[str, Validator] | Validator) -> ObjectValidator:
    """Accept ``args=`` as a dict of validators or a ``v.object(...)``."""
    if isinstance(args, ObjectValidator):
        return args
    if isinstance(args, Validator):
        raise TypeError(f"args must be a dict of validators or v.object(...), not {args}")
    return ObjectValidator(args)


class _V:
    """The ``v`` namespace."""

    def string(self) -> Validator:
        return StringValidator()

    def number(self) -> Validator:
        return NumberValidator("number")

    def float64(self) -> Validator:
        return NumberValidator("float64")

    def int64(self) -> Validator:
        return Int64Validator()

    def boolean(self) -> Validator:
        return BooleanValidator()

    def null(self) -> Validator:
        return NullValidator()

    def bytes(self) -> Validator:
        return BytesValidator()

    def any(self) -> Validator:
        return AnyValidator()

    def id(self, table: str) -> Validator:
        return IdValidator(table)

    def literal(self, value: str | int | float | bool) -> Validator:
        return LiteralValidator(value)

    def array(self, element: Validator) -> Validator:
        return ArrayValidator(element)

    def object(self, fields: Mapping[str, Validator]) -> ObjectValidator:
        return ObjectValidator(fields)

    def record(self, keys: Validator, values: Validator) -> Validator:
        return RecordValidator(keys, values)

    def union(self, *members: Validator) -> Validator:
        return UnionValidator(members)

    def optional(self, inner: Validator) -> Validator:
        return OptionalValidator(inner)

    def nullable(self, inner: Validator) -> Validator:
        return UnionValidator((inner, NullValidator()))


v = _V()
