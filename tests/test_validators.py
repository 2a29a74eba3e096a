import pytest

from pyconvex import ids, v
from pyconvex.errors import ValidationError

USER_ID = ids.new_id("users")
ITEM_ID = ids.new_id("items")

CASES = [
    (v.string(), ["", "x"], [1, None, b"x", True]),
    (v.number(), [1, 1.5, -3, float("inf")], [True, "1", None, 2**63]),
    (v.float64(), [2.5, 7], [False, "x"]),
    (v.int64(), [0, -(2**63), 2**63 - 1], [1.0, True, 2**63, "1"]),
    (v.boolean(), [True, False], [0, 1, None, "true"]),
    (v.null(), [None], [0, False, ""]),
    (v.bytes(), [b"", b"\x00"], ["", [0]]),
    (v.any(), [None, 1, "x", [1], {"a": b""}], []),
    (
        v.id("users"),
        [USER_ID],
        [ITEM_ID, "x", USER_ID[:-1] + ("1" if USER_ID[-1] == "0" else "0"), 5],
    ),
    (v.literal("a"), ["a"], ["b", None]),
    (v.literal(3), [3, 3.0], [4, True, "3"]),
    (v.literal(True), [True], [1, False]),
    (v.array(v.int64()), [[], [1, 2]], [[1.5], "x", None, [1, "2"]]),
    (v.object({"a": v.string()}), [{"a": "x"}], [{}, {"a": 1}, {"a": "x", "b": 1}, []]),
    (v.record(v.string(), v.number()), [{}, {"a": 1, "b": 2.5}], [{"a": "x"}, []]),
    (v.record(v.id("users"), v.boolean()), [{USER_ID: True}], [{"x": True}]),
    (v.union(v.string(), v.null()), ["x", None], [1, b""]),
    (v.nullable(v.int64()), [None, 5], ["5"]),
    # Literal members of a union are matched without raising: the same rules as alone.
    (
        v.union(v.literal("a"), v.literal(3), v.literal(True)),
        ["a", 3, 3.0, True],
        ["b", 4, 1, False, None, "3"],
    ),
    (v.union(v.literal(1), v.string()), [1, 1.0, "x"], [True, 2, None]),
]


@pytest.mark.parametrize("validator, good, bad", CASES, ids=[str(c[0]) for c in CASES])
def test_accepts_and_rejects(validator, good, bad):
    for value in good:
        assert validator.validate(value) == value
    for value in bad:
        with pytest.raises(ValidationError):
            validator.validate(value)


def test_no_match_message_has_path_value_and_validator():
    validator = v.object({"a": v.array(v.object({"b": v.number()}))})
    with pytest.raises(ValidationError) as info:
        validator.validate({"a": [{"b": 1}, {"b": "two"}]})
    assert str(info.value) == (
        'Value does not match validator.\nPath: .a[1].b\nValue: "two"\nValidator: v.number()'
    )


def test_missing_field_message():
    with pytest.raises(ValidationError) as info:
        v.object({"x": v.string()}).validate({})
    assert str(info.value) == (
        "Object is missing the required field `x`. Consider wrapping the field validator in "
        "`v.optional(...)` if this is expected.\n\nObject: {}\nValidator: v.object({x: v.string()})"
    )


def test_extra_field_message_with_nested_path():
    validator = v.object({"outer": v.object({"x": v.string()})})
    with pytest.raises(ValidationError) as info:
        validator.validate({"outer": {"x": "a", "y": 1}})
    assert str(info.value) == (
        "Object contains extra field `y` that is not in the validator.\nPath: .outer\n"
        'Object: {x: "a", y: 1}\nValidator: v.object({x: v.string()})'
    )


def test_record_paths():
    with pytest.raises(ValidationError, match=r"Path: \.m\.values\(\)"):
        v.object({"m": v.record(v.string(), v.number())}).validate({"m": {"k": "v"}})
    with pytest.raises(ValidationError, match=r"Path: \.keys\(\)"):
        v.record(v.id("users"), v.number()).validate({"nope": 1})


def test_optional_none_means_absent_unless_nullable():
    validator = v.object({"a": v.optional(v.string()), "b": v.optional(v.nullable(v.string()))})
    assert validator.validate({"a": None, "b": None}) == {"b": None}
    assert validator.validate({}) == {}
    with pytest.raises(ValidationError):
        v.object({"a": v.string()}).validate({"a": None})


def test_literal_message():
    with pytest.raises(
        ValidationError, match=r'`"b"` does not match literal validator `v.literal\("a"\)`'
    ):
        v.literal("a").validate("b")


def test_union_message_names_the_union():
    with pytest.raises(ValidationError, match=r"Validator: v.union\(v.string\(\), v.int64\(\)\)"):
        v.union(v.string(), v.int64()).validate(1.5)


@pytest.mark.parametrize(
    "build",
    [
        lambda: v.array("string"),
        lambda: v.object({"a": str}),
        lambda: v.record(v.number(), v.string()),
        lambda: v.record(v.string(), v.optional(v.string())),
        lambda: v.union(),
        lambda: v.literal(None),
        lambda: v.literal([1]),
    ],
)
def test_misbuilt_validators_fail_at_definition(build):
    with pytest.raises(TypeError):
        build()


def test_validators_print_like_convex():
    assert str(v.object({"a": v.optional(v.id("users")), "b": v.literal("x")})) == (
        'v.object({a: v.optional(v.id("users")), b: v.literal("x")})'
    )
