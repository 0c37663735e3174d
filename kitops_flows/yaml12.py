"""YAML the way kit's yaml.v3 (gopkg.in/yaml.v3 3.0.x) reads and writes it.

Reading: PyYAML parses (it is a YAML 1.1 *parser*, but the syntax is the same for Kitfiles); scalars
are then resolved with yaml.v3's rules, not PyYAML's YAML 1.1 ones:

>>> loads("a: yes\\nb: 0o17\\nc: 017\\nd: 1_000\\ne: .inf\\nf: 2001-12-14\\ng: 1e400")
{'a': 'yes', 'b': 15, 'c': 15, 'd': 1000, 'e': inf, 'f': '2001-12-14T00:00:00Z', 'g': '1e400'}

(``yes/no/on/off`` stay strings; ``0o17`` and the old ``017`` are octal; plain timestamps become Go
``time.Time`` values, kept here as :class:`Timestamp` strings in RFC 3339 form, which is how kit
re-serialises them; numbers that overflow float64 stay strings.) Duplicate keys are an error.

Writing: :func:`dump` emits what yaml.v3's encoder emits with ``SetIndent(2)``: block style,
sequences indented under their key, strings quoted only when a plain scalar would read back as
something else, ``|`` literals for multi-line strings, no line wrapping. :class:`Struct` mappings
keep their order (Go structs); plain dicts are sorted like yaml.v3 sorts map keys; :class:`Flow`
lists are written ``[a, b]``.

>>> print(dump(Struct(name="x", authors=Flow(["a", "b: c"]), params={"b": "true", "a": [1, 2.0]})), end="")
name: x
authors: [a, 'b: c']
params:
  a:
    - 1
    - 2
  b: "true"
"""

from __future__ import annotations

import base64
import binascii
import calendar
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from .gojson import Struct, fixed_notation, shortest_digits

__all__ = [
    "Flow",
    "MappingNode",
    "Node",
    "ScalarNode",
    "SequenceNode",
    "Struct",
    "Timestamp",
    "YAMLDecodeError",
    "compose",
    "construct",
    "dump",
    "line_of",
    "loads",
    "mapping_pairs",
    "resolve",
]

STR, BOOL, INT, FLOAT, NULL, TIMESTAMP, BINARY, MERGE = (
    "!!str", "!!bool", "!!int", "!!float", "!!null", "!!timestamp", "!!binary", "!!merge",
)
_IMPLICIT = "?implicit"  # marks a scalar with no explicit tag (see _Resolver)


class YAMLDecodeError(ValueError):
    """Malformed YAML, or a value yaml.v3 would refuse. ``line`` is 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
        self.problem = message


class Timestamp(str):
    """A plain YAML timestamp, held as the RFC 3339 text Go's time.Time marshals to."""


class Flow(list):  # type: ignore[type-arg]
    """A sequence written in flow style (``[a, b]``), like a yaml.v3 ``,flow`` field."""


# -- scalar resolution (yaml.v3 resolve.go) -----------------------------------------------------------

_MAP_VALUES: dict[str, tuple[str, Any]] = {}
for _words, _tag, _value in (
    (("true", "True", "TRUE"), BOOL, True),
    (("false", "False", "FALSE"), BOOL, False),
    (("", "~", "null", "Null", "NULL"), NULL, None),
    ((".nan", ".NaN", ".NAN"), FLOAT, math.nan),
    ((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), FLOAT, math.inf),
    (("-.inf", "-.Inf", "-.INF"), FLOAT, -math.inf),
    (("<<",), MERGE, "<<"),
):
    for _w in _words:
        _MAP_VALUES[_w] = (_tag, _value)

_HINT_MAP = set("yYnNtTfFoO~")
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_FLOAT = re.compile(r"^[-+]?(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)(?:[eE][-+]?[0-9](?:_?[0-9])*)?$")
_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_OLD_BOOLS = frozenset("y Y yes Yes YES on On ON n N no No NO off Off OFF".split())
_RESOLVABLE = frozenset(("", STR, BOOL, INT, FLOAT, TIMESTAMP, NULL))
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT64_MAX = (1 << 64) - 1
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:\d{2}))"
    r"|(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d{1,9}))?))?$"
)


def _go_parse_int(text: str, base: int = 0) -> int | None:
    """strconv.ParseInt/ParseUint(text, base, 64) without the range check; None if malformed."""
    sign = 1
    body = text
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if base == 0:
        low = body[:2].lower()
        if low in ("0x", "0o", "0b"):
            base, body = {"0x": 16, "0o": 8, "0b": 2}[low], body[2:]
        elif body.startswith("0") and len(body) > 1:
            base, body = 8, body[1:]
        else:
            base = 10
    digits = "0123456789abcdef"[:base]
    if not body or not all(c.lower() in digits for c in body):  # Python's int() would also take "_" and spaces
        return None
    return sign * int(body, base)


def _int_in_range(value: int, allow_uint: bool) -> bool:
    return _INT64[0] <= value <= _INT64[1] or (allow_uint and 0 <= value <= _UINT64_MAX)


def _parse_timestamp(text: str) -> Timestamp | None:
    """yaml.v3's timestamp formats, re-formatted as Go's RFC3339Nano (what time.Time marshals to)."""
    m = _TIMESTAMP.match(text)
    if not m:
        return None
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    # Go's calendar is proleptic Gregorian; year 0 is a leap year like 2000 (Python has no year 0)
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year or 2000, month)[1]:
        return None
    if m[4] is not None:
        hms, frac, zone = (m[4], m[5], m[6]), m[7], m[8]
    elif m[9] is not None:
        hms, frac, zone = (m[9], m[10], m[11]), m[12], "Z"
    else:
        hms, frac, zone = ("0", "0", "0"), None, "Z"
    hour, minute, second = (int(x) for x in hms)
    if hour >= 24 or minute >= 60 or second >= 60:
        return None
    if zone != "Z" and (int(zone[1:3]) > 24 or int(zone[4:6]) > 60):
        return None
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    fraction = (frac or "").rstrip("0")
    return Timestamp(
        f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
        + (f".{fraction}" if fraction else "")
        + zone
    )


def resolve(tag: str, text: str) -> tuple[str, Any]:
    """Resolve a scalar as yaml.v3 does: ``tag`` is ``""`` for a plain untagged scalar, else ``!!x``.

    Returns ``(resolved_tag, value)``; raises :class:`YAMLDecodeError` when an explicit tag does not
    fit the text (``!!bool yes``).
    """
    if tag not in _RESOLVABLE:
        return tag, text
    if tag == STR:
        return STR, text
    rtag, value = _resolve_untagged(text, allow_timestamp=tag in ("", TIMESTAMP))
    if tag in ("", rtag):
        return rtag, value
    if tag == FLOAT and rtag == INT:
        return FLOAT, float(value)
    raise YAMLDecodeError(f"cannot decode {rtag} `{text}` as a {tag}")


def _resolve_untagged(text: str, allow_timestamp: bool) -> tuple[str, Any]:
    hint = text[0] if text else ""
    if text == "" or hint in _HINT_MAP or hint in "+-.0123456789":
        if text in _MAP_VALUES:
            return _MAP_VALUES[text]
        if hint == ".":
            if _GO_FLOAT.match(text):
                value = float(text.replace("_", ""))
                if not math.isinf(value):
                    return FLOAT, value
        elif hint and hint in "+-0123456789":
            if allow_timestamp and (ts := _parse_timestamp(text)) is not None:
                return TIMESTAMP, ts
            plain = text.replace("_", "")
            number = _go_parse_int(plain)
            # ParseInt, then ParseUint (which takes no sign) for values above int64
            if number is not None and _int_in_range(number, allow_uint=not plain.startswith("+")):
                return INT, number
            if _YAML_FLOAT.match(plain):
                value = float(plain)
                if not math.isinf(value):  # Go's ParseFloat reports a range error: stays a string
                    return FLOAT, value
            for prefix, base in (("0b", 2), ("-0b", 2), ("0o", 8), ("-0o", 8)):
                if plain.startswith(prefix):
                    digits = plain[len(prefix):]
                    number = _go_parse_int(("-" if prefix[0] == "-" else "") + digits, base) if digits else None
                    if number is not None and _int_in_range(number, allow_uint=prefix[0] != "-"):
                        return INT, number
                    break
    return STR, text


def plain_resolves_to_string(text: str) -> bool:
    """Whether yaml.v3 may write ``text`` unquoted (it would read back as the same string)."""
    return _resolve_untagged(text, True)[0] == STR and not _BASE60.match(text) and text not in _OLD_BOOLS


# -- loading -----------------------------------------------------------------------------------------

class _Resolver(BaseResolver):
    """Leaves untagged scalars unresolved so that yaml.v3's rules can be applied afterwards."""

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:  # type: ignore[override]
        if kind is ScalarNode:
            return _IMPLICIT
        return super().resolve(kind, value, implicit)  # type: ignore[no-any-return]


class _Loader(Reader, Scanner, Parser, Composer, _Resolver):  # type: ignore[misc]
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _Resolver.__init__(self)


def line_of(node: Node) -> int:
    """1-based line where ``node`` starts."""
    return int(node.start_mark.line) + 1


def compose(text: str) -> Node | None:
    """Parse the first YAML document of ``text`` into a node tree (None for an empty stream).

    Like yaml.v3's Decoder, only the first document is read.
    """
    try:
        loader = _Loader(text)
    except yaml.YAMLError as e:  # the reader refuses control characters before parsing starts
        raise YAMLDecodeError(str(e).replace("\n", " ")) from None
    try:
        if loader.check_node():
            return loader.get_node()  # type: ignore[no-any-return]
        return None
    except RecursionError:  # the composer recurses once per nesting level
        raise YAMLDecodeError("document is nested too deeply") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise YAMLDecodeError(
            " ".join(x for x in (e.context, e.problem) if x) or str(e), (mark.line + 1) if mark else 0
        ) from None
    except yaml.YAMLError as e:
        raise YAMLDecodeError(str(e)) from None
    finally:
        loader.dispose()


def _short_tag(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix):] if tag.startswith(prefix) else tag


def scalar_value(node: ScalarNode) -> tuple[str, Any]:
    """``(tag, value)`` of a scalar node as yaml.v3 would decode it into ``any``."""
    tag = "" if node.tag == _IMPLICIT else _short_tag(node.tag)
    if any("\ud800" <= ch <= "\udfff" for ch in node.value):
        raise YAMLDecodeError("found invalid Unicode character escape code", line_of(node))
    if node.style is not None and tag in ("", "!"):  # quoted and block scalars are strings
        return STR, node.value
    if tag == "!":
        tag = ""
    try:
        if tag == BINARY:
            try:
                data = base64.b64decode(node.value.replace("\n", "").replace(" ", ""), validate=True)
            except (binascii.Error, ValueError):
                raise YAMLDecodeError("!!binary value contains invalid base64 data", line_of(node)) from None
            return STR, data.decode("utf-8", "surrogateescape")
        return resolve(tag, node.value)
    except YAMLDecodeError as e:
        raise YAMLDecodeError(e.problem, line_of(node)) from None


def is_null(node: Node) -> bool:
    """Whether ``node`` is a null scalar (a scalar that fails to resolve is not null)."""
    if not isinstance(node, ScalarNode):
        return False
    try:
        return scalar_value(node)[0] == NULL
    except YAMLDecodeError:
        return False


def check_duplicate_keys(node: MappingNode) -> None:
    """yaml.v3 refuses a mapping that repeats a key (compared by kind and text, as it does)."""
    seen: dict[tuple[type, Any], int] = {}
    for key, _ in node.value:
        ident = (type(key), key.value if isinstance(key, ScalarNode) else id(key))
        if ident in seen:
            raise YAMLDecodeError(
                f"mapping key {key.value!r} already defined at line {seen[ident]}", line_of(key)
            )
        seen[ident] = line_of(key)


def _is_merge_key(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.style is None and node.value == "<<" and node.tag in (
        _IMPLICIT, "tag:yaml.org,2002:merge",
    )


def mapping_pairs(node: MappingNode) -> list[tuple[Node, Node]]:
    """The key/value node pairs of a mapping with ``<<`` merges expanded (explicit keys win)."""
    check_duplicate_keys(node)
    own: list[tuple[Node, Node]] = []
    merged: list[tuple[Node, Node]] = []
    for key, value in node.value:
        if not _is_merge_key(key):
            own.append((key, value))
            continue
        sources = value.value if isinstance(value, SequenceNode) else [value]
        for source in sources:
            if not isinstance(source, MappingNode):
                raise YAMLDecodeError("map merge requires map or sequence of maps as the value", line_of(source))
            merged.extend(mapping_pairs(source))
    pairs = list(own)
    seen = {k.value for k, _ in own if isinstance(k, ScalarNode)}
    for key, value in merged:
        if isinstance(key, ScalarNode):
            if key.value in seen:
                continue
            seen.add(key.value)
        pairs.append((key, value))
    return pairs


#: Most nodes one document may decode to once aliases are expanded (yaml.v3 likewise refuses
#: "excessive aliasing"): a "billion laughs" document is a few lines that expand exponentially.
MAX_DECODED_NODES = 500_000


def construct(node: Node | None, _depth: int = 0, _budget: list[int] | None = None) -> Any:
    """Decode a node into plain Python values the way yaml.v3 decodes into Go's ``any``."""
    if node is None:
        return None
    if _depth > 10000:
        raise YAMLDecodeError("document is nested too deeply", line_of(node))
    budget = _budget if _budget is not None else [MAX_DECODED_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise YAMLDecodeError("document contains excessive aliasing", line_of(node))
    if isinstance(node, ScalarNode):
        return scalar_value(node)[1]
    if isinstance(node, SequenceNode):
        return [construct(item, _depth + 1, budget) for item in node.value]
    result: dict[Any, Any] = {}
    for key, value in mapping_pairs(node):
        k = construct(key, _depth + 1, budget)
        if isinstance(k, (list, dict)):
            raise YAMLDecodeError("invalid map key: a mapping key must be a scalar", line_of(key))
        result[k] = construct(value, _depth + 1, budget)
    return result


def loads(text: str) -> Any:
    """Parse the first document of ``text`` into Python values (yaml.v3 semantics)."""
    return construct(compose(text))


# -- dumping (yaml.v3 encoder + emitter, indent 2, unlimited width) ---------------------------------------

def _is_printable(ch: str) -> bool:
    c = ord(ch)
    return c == 0x0A or 0x20 <= c <= 0x7E or 0xA0 <= c <= 0xD7FF or (0xE000 <= c <= 0xFFFD and c != 0xFEFF)


_BREAKS = "\r\n\x85\u2028\u2029"


@dataclass(frozen=True)
class _Analysis:
    multiline: bool
    flow_plain: bool
    block_plain: bool
    single: bool
    block: bool


def _analyze(value: str) -> _Analysis:
    if not value:
        return _Analysis(False, False, True, True, False)
    flow_ind = block_ind = value.startswith(("---", "..."))
    line_breaks = special = tabs = False
    leading_space = leading_break = trailing_space = trailing_break = False
    break_space = space_break = previous_space = previous_break = False
    preceded_by_ws = True
    n = len(value)
    for i, ch in enumerate(value):
        followed_by_ws = i + 1 >= n or value[i + 1] in " \t" + _BREAKS
        if i == 0:
            if ch in "#,[]{}&*!|>'\"%@`":
                flow_ind = block_ind = True
            elif ch in "?:":
                flow_ind = True
                block_ind = block_ind or followed_by_ws
            elif ch == "-" and followed_by_ws:
                flow_ind = block_ind = True
        else:
            if ch in ",?[]{}":
                flow_ind = True
            elif ch == ":":
                flow_ind = True
                block_ind = block_ind or followed_by_ws
            elif ch == "#" and preceded_by_ws:
                flow_ind = block_ind = True
        if ch == "\t":
            tabs = True
        elif not _is_printable(ch):
            special = True
        if ch == " ":
            leading_space = leading_space or i == 0
            trailing_space = trailing_space or i == n - 1
            break_space = break_space or previous_break
            previous_space, previous_break = True, False
        elif ch in _BREAKS:
            line_breaks = True
            leading_break = leading_break or i == 0
            trailing_break = trailing_break or i == n - 1
            space_break = space_break or previous_space
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_ws = ch in " \t" + _BREAKS
    flow_plain = block_plain = single = block = True
    if leading_space or leading_break or trailing_space or trailing_break:
        flow_plain = block_plain = False
    if trailing_space:
        block = False
    if break_space:
        flow_plain = block_plain = single = False
    if space_break or tabs or special:
        flow_plain = block_plain = single = False
    if space_break or special:
        block = False
    if line_breaks:
        flow_plain = block_plain = False
    if flow_ind:
        flow_plain = False
    if block_ind:
        block_plain = False
    return _Analysis(line_breaks, flow_plain, block_plain, single, block)


_DQ_ESCAPES = {
    "\x00": "0", "\x07": "a", "\x08": "b", "\t": "t", "\n": "n", "\x0b": "v", "\x0c": "f", "\r": "r",
    "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\u2028": "L", "\u2029": "P",
}


def _double_quoted(value: str) -> str:
    out = ['"']
    # yaml.v3 tests for a byte-order mark at the start of the string, not at each character,
    # so a string that starts with one is escaped from end to end.
    escape_all = value.startswith("\ufeff")
    for ch in value:
        if escape_all or not _is_printable(ch) or ch in _BREAKS or ch in '"\\':
            if ch in _DQ_ESCAPES:
                out.append("\\" + _DQ_ESCAPES[ch])
            else:
                c = ord(ch)
                if 0xD800 <= c <= 0xDFFF:  # invalid UTF-8 byte smuggled through surrogateescape
                    c = c - 0xDC00 if c >= 0xDC80 else 0xFFFD
                out.append(f"\\x{c:02X}" if c <= 0xFF else f"\\u{c:04X}" if c <= 0xFFFF else f"\\U{c:08X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _single_quoted(value: str, indent: int) -> str:
    out = ["'"]
    after_break = False
    for ch in value:
        if ch in _BREAKS:
            out.append(ch)  # only the non-"\n" breaks reach here; the line restarts at column 0
            after_break = True
            continue
        if after_break:
            out.append(" " * indent)
            after_break = False
        out.append("''" if ch == "'" else ch)
    out.append("'")
    return "".join(out)


def _literal(value: str, indent: int) -> str:
    """A ``|`` block scalar as yaml.v3 writes it.

    Like yaml.v3, a leading line break doubles as the end of the header line, so it is not
    repeated (yaml.v3 loses one leading empty line here; copying that keeps the bytes equal).
    """
    hints = "2" if value[:1] == " " or value[:1] in _BREAKS else ""
    if value[-1:] not in _BREAKS:
        hints += "-"
    elif len(value) == 1 or value[-2] in _BREAKS:
        hints += "+"
    out = ["|" + hints]
    state = "header"
    for ch in value:
        if ch in _BREAKS:
            out.append(ch)
            state = "break"
        else:
            if state == "header":
                out.append("\n" + " " * indent)
            elif state == "break":
                out.append(" " * indent)
            state = "content"
            out.append(ch)
    return "".join(out)


def _go_g(value: float) -> str:
    """strconv.FormatFloat(v, 'g', -1, 64), which yaml.v3's encoder uses for floats."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = shortest_digits(value)
    exp = point - 1
    if exp < -4 or exp >= 6:  # shortest formatting uses precision 6 for this choice
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return sign + fixed_notation(digits, point)


def _scalar(value: Any, flow: bool, simple_key: bool, indent: int) -> str:
    """The text of a scalar; ``indent`` is where continuation lines of quoted/literal text start."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Timestamp):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_g(value)
    if not isinstance(value, str):
        raise TypeError(f"cannot write a {type(value).__name__} as YAML")
    style = "literal" if "\n" in value else "plain" if plain_resolves_to_string(value) else "double"
    a = _analyze(value)
    if simple_key and a.multiline:
        style = "double"
    if style == "plain":
        if (flow and not a.flow_plain) or (not flow and not a.block_plain):
            style = "single"
        if not value and (flow or simple_key):
            style = "single"
    if style == "single" and not a.single:
        style = "double"
    if style == "literal" and (not a.block or flow or simple_key):
        style = "double"
    if style == "plain":
        return value
    if style == "single":
        return _single_quoted(value, indent)
    if style == "double":
        return _double_quoted(value)
    return _literal(value, indent)


_KIND_ORDER = {bool: 1, int: 2, float: 14, str: 24}


def _key_less(a: Any, b: Any) -> bool:
    """yaml.v3's keyList.Less: numbers before strings, digit runs compared numerically."""
    def number(v: Any) -> float | None:
        if isinstance(v, bool):
            return 1.0 if v else 0.0
        if isinstance(v, (int, float)) and not isinstance(v, Timestamp):
            return float(v)
        return None

    def kind(v: Any) -> int:
        if isinstance(v, str):
            return 24
        for t, k in _KIND_ORDER.items():
            if isinstance(v, t):
                return k
        return 20

    af, bf = number(a), number(b)
    if af is not None and bf is not None:
        if af != bf:
            return af < bf
        if kind(a) != kind(b):
            return kind(a) < kind(b)
        return bool(a < b)
    if not (isinstance(a, str) and isinstance(b, str)):
        return kind(a) < kind(b)
    ar, br = a, b
    digits = False
    for i in range(min(len(ar), len(br))):
        if ar[i] == br[i]:
            digits = ar[i].isdecimal()
            continue
        al, bl = ar[i].isalpha(), br[i].isalpha()
        if al and bl:
            return ar[i] < br[i]
        if al or bl:
            return al if digits else bl
        an = bn = 0
        if ar[i] == "0" or br[i] == "0":
            j = i - 1
            while j >= 0 and ar[j].isdecimal():
                if ar[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(ar) and ar[ai].isdecimal():
            an = an * 10 + (ord(ar[ai]) - 48)
            ai += 1
        bi = i
        while bi < len(br) and br[bi].isdecimal():
            bn = bn * 10 + (ord(br[bi]) - 48)
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ar[i] < br[i]
    return len(ar) < len(br)


def sorted_keys(keys: list[Any]) -> list[Any]:
    """Keys in the order yaml.v3 writes a Go map."""
    import functools

    return sorted(keys, key=functools.cmp_to_key(lambda x, y: -1 if _key_less(x, y) else 1 if _key_less(y, x) else 0))


def _simple_key(key: Any) -> bool:
    """yaml.v3 writes ``? key`` for multi-line keys and keys longer than 128 bytes."""
    raw = key if isinstance(key, str) else _scalar(key, False, True, 0)
    return not any(ch in _BREAKS for ch in raw) and len(raw.encode("utf-8", "surrogateescape")) <= 128


class _Emitter:
    """Writes nodes line by line; indentation follows yaml.v3 with ``SetIndent(2)``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def node(self, value: Any, indent: int, prefix: str, scalar_indent: int) -> None:
        """Write ``value`` after ``prefix`` (``key:``, ``- ``, ``:`` or nothing).

        ``indent`` is where a nested block collection starts; ``scalar_indent`` where the lines of
        a multi-line scalar start.
        """
        after_key = prefix.endswith(":")
        sep = " " if after_key else ""
        if isinstance(value, Flow):
            items = ", ".join(self.flow_item(v, scalar_indent) for v in value)
            self.lines.append(f"{prefix}{sep}[{items}]")
        elif isinstance(value, dict):
            items = self._mapping_items(value)
            if not items:
                self.lines.append(f"{prefix}{sep}{{}}")
            elif after_key:  # value of a key: the block starts on the next line
                self.lines.append(prefix)
                self.mapping(items, indent + 2, None)
            else:  # sequence item or document: first key on the same line
                self.mapping(items, indent, prefix)
        elif isinstance(value, (list, tuple)):
            if not value:
                self.lines.append(f"{prefix}{sep}[]")
            elif after_key:
                self.lines.append(prefix)
                self.sequence(list(value), indent + 2, None)
            else:
                self.sequence(list(value), indent, prefix)
        else:
            self.lines.append(f"{prefix}{sep}{_scalar(value, False, False, scalar_indent)}")

    def flow_item(self, value: Any, indent: int) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{self.flow_item(k, indent)}: {self.flow_item(v, indent)}"
                                   for k, v in self._mapping_items(value)) + "}"
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(self.flow_item(v, indent) for v in value) + "]"
        return _scalar(value, True, False, indent)

    def _mapping_items(self, value: dict[Any, Any]) -> list[tuple[Any, Any]]:
        if isinstance(value, Struct):
            return list(value.items())
        return [(k, value[k]) for k in sorted_keys(list(value))]

    def mapping(self, items: list[tuple[Any, Any]], indent: int, first_prefix: str | None) -> None:
        for i, (key, value) in enumerate(items):
            lead = first_prefix if (i == 0 and first_prefix is not None) else " " * indent
            if _simple_key(key):
                key_text = _scalar(key, False, True, indent + 2)
                self.node(value, indent, f"{lead}{key_text}:", indent + 2)
            else:  # "? key" on its own, then ": value"
                self.lines.append(f"{lead}? {_scalar(key, False, False, indent + 2)}")
                self.node(value, indent, " " * indent + ":", indent + 2)

    def sequence(self, items: list[Any], indent: int, first_prefix: str | None) -> None:
        for i, value in enumerate(items):
            lead = first_prefix if (i == 0 and first_prefix is not None) else " " * indent
            self.node(value, indent + 2, lead + "- ", indent + 2)


def dump(value: Any) -> str:
    """One YAML document, as yaml.v3's Encoder (indent 2) writes ``value``; ends with a newline."""
    emitter = _Emitter()
    if isinstance(value, dict) and value:
        emitter.mapping(emitter._mapping_items(value), 0, None)
    elif isinstance(value, (list, tuple)) and value and not isinstance(value, Flow):
        emitter.sequence(list(value), 0, None)
    else:
        emitter.node(value, 0, "", 2)
    # A line that ends in a line break (a block scalar's last line) is not ended again; yaml.v3
    # also does not break after U+2028/U+2029/U+0085, so neither do we.
    return "".join(line if line[-1:] in _BREAKS else line + "\n" for line in emitter.lines)
