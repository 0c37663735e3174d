"""kitops_flows.gojson must write exactly what Go's encoding/json json.Marshal writes.

Expected strings come from Go's rules (encoding/json encode.go, strconv) and were checked against
a Go build of json.Marshal while writing this module.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kitops_flows.gojson import Struct, UnsupportedValueError, format_float, marshal, quote


def test_compact_without_trailing_newline_and_maps_sorted_bytewise() -> None:
    value = {"b": 1, "a": [True, False, None], "B": {}, "é": "x", "aa": []}
    assert marshal(value) == '{"B":{},"a":[true,false,null],"aa":[],"b":1,"é":"x"}'.encode()


def test_struct_keeps_field_order_and_nested_maps_are_sorted() -> None:
    value = Struct([("manifestVersion", "1.0.0"), ("package", Struct()), ("params", {"z": 1, "a": 2})])
    assert marshal(value) == b'{"manifestVersion":"1.0.0","package":{},"params":{"a":2,"z":1}}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<a href='x'>&</a>", r'"\u003ca href=\u0027x\u0027\u003e\u0026\u003c/a\u003e"'.replace(r"\u0027", "'")),
        ("line\u2028para\u2029", r'"line\u2028para\u2029"'),
        ("tab\tnl\ncr\rbs\\q\"", r'"tab\tnl\ncr\rbs\\q\""'),
        ("\b\f", r'"\b\f"'),  # Go >= 1.22
        ("\x01\x1f", r'"\u0001\u001f"'),
        ("\x7f", '"\x7f"'),  # DEL is not escaped
        ("café ☕ 😀", '"café ☕ 😀"'),  # other non-ASCII is raw UTF-8
        ("\udcff", r'"\ufffd"'),  # invalid UTF-8 (smuggled as a lone surrogate)
    ],
)
def test_string_escaping(text: str, expected: str) -> None:
    assert quote(text) == expected
    assert marshal(text) == expected.encode("utf-8")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (1200.0, "1200"),
        (12.3, "12.3"),
        (0.1, "0.1"),
        (-0.0, "-0"),
        (123456789.0, "123456789"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (2.5e-8, "2.5e-8"),
        (1.5e-10, "1.5e-10"),
        (5e-324, "5e-324"),
        (-3.25e-7, "-3.25e-7"),
    ],
)
def test_float_format(value: float, expected: str) -> None:
    assert format_float(value) == expected
    assert marshal([value]) == f"[{expected}]".encode()


def test_integers_stay_integers_within_go_range() -> None:
    assert marshal([0, -1, 2**63 - 1, -(2**63), 2**64 - 1]) == (
        b"[0,-1,9223372036854775807,-9223372036854775808,18446744073709551615]"
    )
    with pytest.raises(UnsupportedValueError):
        marshal(2**64)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, {1: "a"}, {"a": {None: 1}}, object(), b"x"])
def test_values_go_refuses(bad: object) -> None:
    with pytest.raises(UnsupportedValueError):
        marshal(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


def _as_floats(value: object) -> object:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [_as_floats(v) for v in value]
    assert isinstance(value, dict)
    return {k: _as_floats(v) for k, v in value.items()}


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_output_is_json_that_reads_back_to_the_same_value(value: object) -> None:
    data = marshal(value)
    # floats print without ".0" (1.0 -> 1), so compare numbers as floats
    assert _as_floats(json.loads(data)) == _as_floats(value)
    assert not data.endswith(b"\n")
