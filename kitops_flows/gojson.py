"""Serialise Python values exactly as Go's ``encoding/json`` ``json.Marshal`` does.

Kit's config blob is ``json.Marshal(kitfile)``; its digest is part of every ModelKit, so the bytes
must match Go's to the byte (spec §3.1, §12):

>>> marshal({"b": 1.0, "a": ["<x>", None, True, 1e21, 1e-7]})
b'{"a":["\\\\u003cx\\\\u003e",null,true,1e+21,1e-7],"b":1}'
>>> marshal(Struct([("z", 1), ("a", 2)]))  # struct fields keep their declared order
b'{"z":1,"a":2}'

Type mapping: ``dict`` -> Go map (keys sorted bytewise), :class:`Struct` -> Go struct (insertion
order), ``list``/``tuple`` -> slice, ``str`` -> string, ``bool``, ``int`` (int64/uint64 range),
``float`` (float64), ``None`` -> ``null``. Anything else raises :class:`UnsupportedValueError`,
as Go does for NaN/Inf.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Struct", "UnsupportedValueError", "fixed_notation", "format_float", "marshal", "quote", "shortest_digits"]

_INT64_MIN = -(1 << 63)
_UINT64_MAX = (1 << 64) - 1


class UnsupportedValueError(ValueError):
    """A value Go's json.Marshal refuses (NaN, infinities, non-string map keys, unknown types)."""


class Struct(dict):  # type: ignore[type-arg]
    """A dict emitted in insertion order, the way Go emits a struct's fields (maps are sorted)."""


# Go escapes these (escapeHTML=true); everything else below 0x80 except controls, '"' and '\\' is raw.
_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",  # Go >= 1.22 (kit builds with 1.23) writes \b and \f rather than \u0008 / \u000c
    "\f": "\\f",
}


def _escape_char(ch: str) -> str:
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    code = ord(ch)
    if code < 0x20 or ch in "<>&" or code in (0x2028, 0x2029):
        return f"\\u{code:04x}"
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate is invalid UTF-8, which Go replaces
        return "\\ufffd"
    return ch


def quote(text: str) -> str:
    """A JSON string literal as Go writes it (HTML-safe, U+2028/9 escaped, other non-ASCII raw)."""
    return '"' + "".join(
        _escape_char(ch) if (ch < " " or ch in '"\\<>&' or ch in "\u2028\u2029" or "\ud800" <= ch <= "\udfff") else ch
        for ch in text
    ) + '"'


def format_float(value: float) -> str:
    """Go's float64 encoder: shortest round-trip digits, ES6-style exponent cut-offs.

    >>> [format_float(x) for x in (1.0, 1200.0, 12.3, 1e21, 1e-7, 1.5e-10, -0.0)]
    ['1', '1200', '12.3', '1e+21', '1e-7', '1.5e-10', '-0']
    """
    if math.isnan(value) or math.isinf(value):
        raise UnsupportedValueError(f"json: unsupported value: {_go_g(value)}")
    digits, exponent = shortest_digits(value)
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    absolute = abs(value)
    if absolute != 0 and (absolute < 1e-6 or absolute >= 1e21):
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp = exponent - 1
        exp_text = f"{abs(exp):02d}"
        if exp < 0 and exp_text.startswith("0"):  # Go cleans e-09 to e-9 (negative only)
            exp_text = exp_text[1:]
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{exp_text}"
    return sign + fixed_notation(digits, exponent)


def _go_g(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of ``|value|`` and the decimal point position.

    ``0.00123`` -> ``("123", -2)`` meaning 0.123e-2 (digits d1d2... times 10**(exponent-len)).
    """
    text = repr(abs(value))  # Python's repr is the shortest round-trip form, like Go's -1 precision
    mantissa, _, exp_part = text.partition("e")
    exp = int(exp_part) if exp_part else 0
    whole, _, frac = mantissa.partition(".")
    if frac == "0":
        frac = ""
    digits = (whole + frac).lstrip("0")
    if not digits:
        return "0", 1
    # position of the decimal point relative to the first significant digit
    leading_zeros = len(whole + frac) - len((whole + frac).lstrip("0"))
    point = len(whole) - leading_zeros + exp
    return digits.rstrip("0") or "0", point


def fixed_notation(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * (-point) + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _check_int(value: int) -> str:
    if not _INT64_MIN <= value <= _UINT64_MAX:
        raise UnsupportedValueError(f"json: integer {value} does not fit in a Go int64/uint64")
    return str(value)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(quote(value))
    elif isinstance(value, int):
        out.append(_check_int(value))
    elif isinstance(value, float):
        out.append(format_float(value))
    elif isinstance(value, Struct):
        _encode_pairs(value.items(), out)
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise UnsupportedValueError(
                    f"json: unsupported type: map with non-string key {key!r} (Go cannot encode it)"
                )
        _encode_pairs(sorted(value.items(), key=lambda kv: kv[0].encode("utf-8", "surrogatepass")), out)
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise UnsupportedValueError(f"json: unsupported type: {type(value).__name__}")


def _encode_pairs(pairs: Iterable[tuple[str, Any]], out: list[str]) -> None:
    out.append("{")
    first = True
    for key, item in pairs:
        if not first:
            out.append(",")
        first = False
        out.append(quote(key))
        out.append(":")
        _encode(item, out)
    out.append("}")


def marshal(value: Any) -> bytes:
    """``json.Marshal(value)``: compact UTF-8 bytes, no trailing newline."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")
