import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyconvex import Int64, values
from pyconvex.errors import InvalidValueError
from pyconvex.values import (
    DOCUMENT_LIMITS,
    check_value,
    dumps,
    from_convex_json,
    loads,
    to_convex_json,
)

keys = st.text(min_size=0, max_size=8).filter(
    lambda k: not k.startswith("$") and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in k)
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=values.INT64_MIN, max_value=values.INT64_MAX)
    | st.integers(min_value=values.INT64_MIN, max_value=values.INT64_MAX).map(Int64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
convex_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=30,
)


def same(a, b):
    """Equality that also tells int from float, bool from int, -0.0 from 0.0 and NaN from NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@given(convex_values)
def test_convex_json_round_trip(value):
    check_value(value)
    assert same(from_convex_json(to_convex_json(value, wire=False)), value)
    assert same(loads(dumps(value, wire=False)), value)


def _safe(value):
    """Whether every plain int in ``value`` is one a float64 holds exactly."""
    if type(value) is int:
        return float(value) == value
    if isinstance(value, list):
        return all(_safe(item) for item in value)
    if isinstance(value, dict):
        return all(_safe(item) for item in value.values())
    return True


def _as_float(value):
    """What a client that knows only float64 numbers and bigints reads back."""
    if type(value) is int:
        return float(value)
    if isinstance(value, list):
        return [_as_float(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_float(item) for key, item in value.items()}
    return value


@given(convex_values)
def test_the_wire_is_exact_for_convex_clients(value):
    """On the wire an Int64 is $integer and a plain int a JSON number, which Convex's clients
    (and the function API's convex_encoded_json) read as a float; an int no float holds
    exactly is refused, naming where it is."""
    if not _safe(value):
        with pytest.raises(InvalidValueError, match="cannot be sent exactly"):
            to_convex_json(value)
        return
    back = from_convex_json(to_convex_json(value), numbers="float")
    assert same(back, _as_float(value))


def test_an_int_no_float_holds_is_refused_with_where_it_is():
    value = {"a": [1, {"b": 2**53 + 1}], "ok": 2**53}
    with pytest.raises(InvalidValueError, match=r"The number 9007199254740993 at \.a\[1\]\.b "):
        to_convex_json(value)
    with pytest.raises(InvalidValueError, match=r"The number 9007199254740993 cannot"):
        to_convex_json(2**53 + 1)
    assert to_convex_json(value, wire=False)["a"][1]["b"] == 2**53 + 1


@given(convex_values)
def test_storage_round_trip_keeps_types(value):
    assert same(values.decode(values.encode(value)), value)


def test_an_int64_computes_like_an_int_and_prints_as_one():
    count = Int64(3)
    assert count + 1 == 4 and type(count + 1) is int
    assert str(count) == "3" and f"{count}" == "3" and repr(count) == "Int64(3)"
    assert values.display_value(count) == "3n"  # a bigint, as Convex's messages print it
    with pytest.raises(TypeError):
        Int64(2.0)
    with pytest.raises(OverflowError):
        Int64(2**63)


def test_wire_forms():
    assert to_convex_json(1) == 1 and type(to_convex_json(1)) is float  # "1.0" on the wire
    assert to_convex_json(1.5) == 1.5
    assert to_convex_json(Int64(2**60)) == {"$integer": "AAAAAAAAABA="}
    assert to_convex_json(2**60) == 2**60  # a float holds it exactly: a number
    with pytest.raises(InvalidValueError, match=r"2305843009213693953 at \.a\[1\].*v\.int64\(\)"):
        to_convex_json({"a": [1, 2**61 + 1]})
    assert to_convex_json({"a": [2**61 + 1]}, wire=False) == {"a": [2**61 + 1]}
    assert type(from_convex_json({"$integer": "AAAAAAAAABA="})) is Int64
    assert type(from_convex_json(5, numbers="float")) is float
    assert type(from_convex_json(5)) is int
    assert to_convex_json(b"\x00\x01") == {"$bytes": "AAE="}
    assert to_convex_json(float("inf")) == {"$float": "AAAAAAAA8H8="}
    assert to_convex_json(-0.0) == {"$float": "AAAAAAAAAIA="}
    assert dumps({"a": [1, 2.0, None, True]}) == b'{"a":[1.0,2.0,null,true]}'
    assert dumps({"a": [1, 2.0, None, True]}, wire=False) == b'{"a":[1,2.0,null,true]}'
    assert same(loads(b'{"a": 1, "b": 1.0}'), {"a": 1, "b": 1.0})


@pytest.mark.parametrize(
    "bad, message",
    [
        ({1: "x"}, "field name 1 is not a string"),
        ({"$a": 1}, "starts with '$'"),
        ({"a": {1, 2}}, "set is not supported"),
        ([1, (2, 3)], "tuple is not supported"),
        (2**64, "outside the signed 64-bit range"),
        ({"a\x00": 1}, "control character"),
    ],
)
def test_invalid_values_name_the_problem(bad, message):
    with pytest.raises(InvalidValueError, match=message.replace("$", r"\$").replace("(", r"\(")):
        check_value(bad)


def test_limits_depth_and_size():
    deep: object = 1
    for _ in range(20):
        deep = [deep]
    check_value(deep)
    with pytest.raises(InvalidValueError, match="nested more than 16 levels"):
        check_value(deep, limits=DOCUMENT_LIMITS)
    with pytest.raises(InvalidValueError, match="more than 8192"):
        check_value(list(range(8193)))
    with pytest.raises(InvalidValueError, match=r"path \.a\[1\]"):
        check_value({"a": [1, object()]})


@pytest.mark.parametrize(
    "bad",
    [{"$integer": "AAA="}, {"$bytes": "!!"}, {"$float": 5}, {"$other": 1}, {"a": {"$x": 1}}],
)
def test_bad_convex_json_is_rejected(bad):
    with pytest.raises(InvalidValueError):
        from_convex_json(bad)


def test_malformed_json_is_a_value_error():
    with pytest.raises(ValueError, match="invalid JSON"):
        loads(b"{nope")
