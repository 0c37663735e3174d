"""``kit info --filter``: one node of a Kitfile, selected by Go struct field names, printed as YAML.

>>> from kitops_flows.kitfile import Kitfile
>>> kf = Kitfile.from_yaml("manifestVersion: 1.0.0\\npackage: {name: churn}\\nmodel: {path: m.bin}\\n")
>>> filter_kitfile(kf, ".package.name")
'churn\\n'
>>> filter_kitfile(kf, "model")
'path: m.bin\\n'

Like kit, each dot-separated segment is title-cased and looked up as a field of kit's Go ``KitFile``
struct, so ``.datasets`` does not resolve (the Go field is ``DataSets``) and lists cannot be indexed.
"""

from __future__ import annotations

import re
from typing import Any

from . import yaml12
from .errors import KitopsError
from .kitfile import _KITFILE_SCHEMA, _SCHEMA, Kitfile, LayerInfo, _to_tree

_VALID = re.compile(r"^\.?[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*\Z")
_GO_NAMES = {"datasets": "DataSets"}  # the one Kitfile field whose Go name is not its key title-cased


class FilterError(KitopsError):
    """An invalid ``--filter``, or one naming no field (kit's messages)."""


def _go_name(key: str) -> str:
    return _GO_NAMES.get(key, key[:1].upper() + key[1:])


def _title(segment: str) -> str:
    """x/text cases.Title(language.Und, cases.NoLower) on one identifier: first letter of each word upper."""
    return re.sub(r"(^|[^A-Za-z0-9'])([a-z])", lambda m: m.group(1) + m.group(2).upper(), segment)


def _field(value: Any, name: str) -> tuple[bool, Any]:
    """``reflect.Value.FieldByName`` on the Python mirror of kit's structs (promoted LayerInfo fields too)."""
    if isinstance(value, LayerInfo):
        fields = {"Digest": value.digest, "DiffId": value.diff_id}
        return (name in fields, fields.get(name))
    specs = _KITFILE_SCHEMA if isinstance(value, Kitfile) else _SCHEMA.get(type(value))
    if specs is None:
        return False, None
    for key, attr, _kind, _always in specs:
        if _go_name(key) == name:
            return True, getattr(value, attr)
    info = getattr(value, "layer_info", None)
    if name == "LayerInfo" and hasattr(value, "layer_info"):
        return True, info
    if info is not None and name in ("Digest", "DiffId"):
        return _field(info, name)
    return False, None


def filter_kitfile(kf: Kitfile, text: str) -> str:
    """The YAML kit prints for ``kit info --filter text``."""
    if "[" in text:
        raise FilterError("invalid filter: array access using '[]' is not currently supported")
    if not _VALID.match(text):
        raise FilterError(f"invalid filter: invalid filter: {text}")
    value: Any = kf
    for segment in text.removeprefix(".").split("."):
        found, value = _field(value, _title(segment))
        if not found:
            raise FilterError("error filtering output: cannot find required node")
    return yaml12.dump(_yaml_tree(value))


def _yaml_tree(value: Any) -> Any:
    if isinstance(value, LayerInfo):
        return {}  # yaml:"-" on both fields
    if isinstance(value, list):
        return [_yaml_tree(v) for v in value]
    if type(value) in _SCHEMA or isinstance(value, Kitfile):
        return _to_tree(value, json_mode=False)
    return value
