"""Filter expressions: the ``q`` in ``.filter(lambda q: q.eq(q.field("status"), "done"))``.

Expressions are built once per query and compiled into a Python function of
the document. Comparisons use the index order (:mod:`.keys`), so a filter and
an index range always agree on what "equal" and "less than" mean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidQueryError
from . import keys

Compiled = Callable[[dict[str, Any]], Any]


class Expression:
    """A node of a filter expression."""

    __slots__ = ("fn",)

    def __init__(self, fn: Compiled) -> None:
        self.fn = fn

    def __bool__(self) -> bool:
        raise InvalidQueryError(
            "A filter expression has no truth value here: combine with q.and_(...), q.or_(...) "
            "and q.not_(...) instead of Python's and/or/not"
        )


def _compile(operand: Any) -> Compiled:
    if isinstance(operand, Expression):
        return operand.fn
    constant = operand
    return lambda doc: constant


def _cmp(a: Any, b: Any) -> int:
    ka, kb = keys.encode(a), keys.encode(b)
    return (ka > kb) - (ka < kb)


def _number(value: Any, op: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidQueryError(f"q.{op}() needs numbers, got {value!r}")
    return value


class FilterBuilder:
    """Builds :class:`Expression` nodes. Spelled as Convex's, with ``and_``/``or_``/``not_``."""

    def field(self, path: str) -> Expression:
        if not isinstance(path, str):
            raise InvalidQueryError("q.field() takes a field name such as 'status' or 'a.b'")
        return Expression(lambda doc: keys.get_field(doc, path))

    def _compare(self, a: Any, b: Any, test: Callable[[int], bool]) -> Expression:
        fa, fb = _compile(a), _compile(b)
        return Expression(lambda doc: test(_cmp(fa(doc), fb(doc))))

    def eq(self, a: Any, b: Any) -> Expression:
        return self._compare(a, b, lambda c: c == 0)

    def neq(self, a: Any, b: Any) -> Expression:
        return self._compare(a, b, lambda c: c != 0)

    def lt(self, a: Any, b: Any) -> Expression:
        return self._compare(a, b, lambda c: c < 0)

    def lte(self, a: Any, b: Any) -> Expression:
        return self._compare(a, b, lambda c: c <= 0)

    def gt(self, a: Any, b: Any) -> Expression:
        return self._compare(a, b, lambda c: c > 0)

    def gte(self, a: Any, b: Any) -> Expression:
        return self._compare(a, b, lambda c: c >= 0)

    def and_(self, *exprs: Any) -> Expression:
        parts = [_compile(e) for e in exprs]
        return Expression(lambda doc: all(p(doc) is True for p in parts))

    def or_(self, *exprs: Any) -> Expression:
        parts = [_compile(e) for e in exprs]
        return Expression(lambda doc: any(p(doc) is True for p in parts))

    def not_(self, expr: Any) -> Expression:
        part = _compile(expr)
        return Expression(lambda doc: part(doc) is not True)

    def _arith(self, op: str, a: Any, b: Any, fn: Callable[[Any, Any], Any]) -> Expression:
        fa, fb = _compile(a), _compile(b)
        return Expression(lambda doc: fn(_number(fa(doc), op), _number(fb(doc), op)))

    def add(self, a: Any, b: Any) -> Expression:
        return self._arith("add", a, b, lambda x, y: x + y)

    def sub(self, a: Any, b: Any) -> Expression:
        return self._arith("sub", a, b, lambda x, y: x - y)

    def mul(self, a: Any, b: Any) -> Expression:
        return self._arith("mul", a, b, lambda x, y: x * y)

    def div(self, a: Any, b: Any) -> Expression:
        return self._arith("div", a, b, lambda x, y: x / y)

    def mod(self, a: Any, b: Any) -> Expression:
        return self._arith("mod", a, b, lambda x, y: x % y)

    def neg(self, a: Any) -> Expression:
        fa = _compile(a)
        return Expression(lambda doc: -_number(fa(doc), "neg"))


def compile_filter(build: Callable[[FilterBuilder], Any]) -> Compiled:
    result = build(FilterBuilder())
    if not isinstance(result, Expression):
        raise InvalidQueryError(
            "filter() takes a function of q that returns an expression, e.g. "
            'lambda q: q.eq(q.field("status"), "done")'
        )
    fn = result.fn
    return lambda doc: fn(doc) is True
