import math
from functools import cmp_to_key

from hypothesis import given
from hypothesis import strategies as st

from pyconvex.database import keys
from pyconvex.values import INT64_MAX, INT64_MIN

numbers = (
    st.integers(INT64_MIN, INT64_MAX)
    | st.floats(allow_nan=False)
    | st.sampled_from(
        [2**53, 2**53 + 1, float(2**53), 2**63 - 1, float(2**63), -(2**63), -0.0, 0.0, 0]
    )
)
scalars = st.none() | st.booleans() | numbers | st.text(max_size=6) | st.binary(max_size=6)
values_ = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)

RANK = {type(None): 0, int: 1, float: 1, bool: 2, str: 3, bytes: 4, list: 5, dict: 6}


def reference_cmp(a, b) -> int:
    """Convex order written out directly, to check the byte encoding against."""
    ra, rb = RANK[type(a)], RANK[type(b)]
    if ra != rb:
        return (ra > rb) - (ra < rb)
    if isinstance(a, (list,)):
        for x, y in zip(a, b, strict=False):
            c = reference_cmp(x, y)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if isinstance(a, dict):
        return reference_cmp([[k, a[k]] for k in sorted(a)], [[k, b[k]] for k in sorted(b)])
    if a is None:
        return 0
    return (a > b) - (a < b)


@given(numbers, numbers)
def test_numbers_order_exactly_across_int_and_float(a, b):
    ka, kb = keys.encode(a), keys.encode(b)
    assert (ka < kb) == (a < b)
    assert (ka == kb) == (a == b)


@given(st.lists(scalars, max_size=30))
def test_scalars_sort_like_convex(items):
    by_key = sorted(items, key=keys.encode)
    by_reference = sorted(items, key=cmp_to_key(reference_cmp))
    assert [keys.encode(x) for x in by_key] == [keys.encode(x) for x in by_reference]


@given(values_, values_)
def test_encoding_is_a_total_order_consistent_with_prefixes(a, b):
    ka, kb = keys.encode(a), keys.encode(b)
    # self-delimiting: one key is never a proper prefix of another
    assert ka == kb or not (ka.startswith(kb) or kb.startswith(ka))


def test_special_floats():
    assert keys.encode(-0.0) == keys.encode(0.0)
    assert keys.encode(float("inf")) < keys.encode(float("nan"))
    assert keys.encode(math.nan) < keys.encode(False)
    assert keys.encode(keys.MISSING) < keys.encode(None)
    assert keys.encode("a") < keys.encode("a\x00") < keys.encode("ab")


def test_successor():
    assert keys.successor(b"ab") == b"ac"
    assert keys.successor(b"a\xff") == b"b"
    assert keys.successor(b"") is None
