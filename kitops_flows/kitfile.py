"""The Kitfile: kit's ModelKit description, read strictly and written byte-for-byte as kit writes it.

>>> kf = Kitfile.from_yaml('''
... manifestVersion: 1.0.0
... package: {name: churn, authors: [ml-team]}
... model: {name: churn, path: ./model/, parameters: {lr: 1.0e-3, epochs: 10}}
... datasets: [{name: train, path: data/train.csv}]
... ''')
>>> kf.to_json()
b'{"manifestVersion":"1.0.0","package":{"name":"churn","authors":["ml-team"]},"model":{"name":"churn","path":"./model/","parameters":{"epochs":10,"lr":0.001}},"datasets":[{"name":"train","path":"data/train.csv"}]}'
>>> [(e.kind, e.path) for e in kf.layer_entries()]
[('model', './model/'), ('dataset', 'data/train.csv')]
>>> kf.validate()
[]

The dataclasses mirror kit's ``pkg/artifact/kitfile.go`` (Python names in snake_case; YAML/JSON keys
in camelCase). Paths are kept verbatim (``./model/`` stays ``./model/``), as kit keeps them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import KitfileError, ReferenceFormatError
from .gojson import Struct, UnsupportedValueError, marshal
from .lazyimport import LazyModule
from .reference import parse_reference

yaml12 = LazyModule("kitops_flows.yaml12")  # YAML (and pyyaml) only when a Kitfile is read or written as YAML

LOG = logging.getLogger(__name__)

#: File names kit looks for in a context directory, in this order (kit's consts.go).
DEFAULT_KITFILE_NAMES = ("Kitfile", "kitfile", ".kitfile")
MANIFEST_VERSION = "1.0.0"
_MODELPART_TYPE_RE = re.compile(r"^\w[\w.-]*$", re.ASCII)
_MODELPART_TYPE_MAX_LEN = 64

__all__ = [
    "DEFAULT_KITFILE_NAMES",
    "CodeEntry",
    "DatasetEntry",
    "DocsEntry",
    "Kitfile",
    "LayerEntry",
    "LayerInfo",
    "McpServerEntry",
    "Model",
    "ModelPart",
    "Package",
    "PromptEntry",
    "clean_path",
    "is_modelkit_reference",
    "path_type",
]


# -- the model ------------------------------------------------------------------------------------------

@dataclass
class LayerInfo:
    """Digest (as stored) and diffId (uncompressed) of the layer holding an entry's files."""

    digest: str = ""
    diff_id: str = ""


@dataclass
class Package:
    name: str = ""
    version: str = ""
    description: str = ""
    license: str = ""
    authors: list[str] = field(default_factory=list)


@dataclass
class ModelPart:
    name: str = ""
    path: str = ""
    license: str = ""
    type: str = ""
    layer_info: LayerInfo | None = None


@dataclass
class Model:
    name: str = ""
    path: str = ""
    license: str = ""
    framework: str = ""
    format: str = ""
    version: str = ""
    description: str = ""
    parts: list[ModelPart] = field(default_factory=list)
    #: Any YAML value (None = absent). Maps have string keys; timestamps are yaml12.Timestamp.
    parameters: Any = None
    layer_info: LayerInfo | None = None


@dataclass
class CodeEntry:
    path: str = ""
    description: str = ""
    license: str = ""
    layer_info: LayerInfo | None = None


@dataclass
class DatasetEntry:
    name: str = ""
    path: str = ""
    remote_path: str = ""
    remote_hash: str = ""
    description: str = ""
    license: str = ""
    parameters: Any = None
    layer_info: LayerInfo | None = None


@dataclass
class DocsEntry:
    path: str = ""
    description: str = ""
    layer_info: LayerInfo | None = None


@dataclass
class PromptEntry:
    name: str = ""
    path: str = ""
    description: str = ""
    layer_info: LayerInfo | None = None


@dataclass
class McpServerEntry:
    name: str = ""
    path: str = ""
    description: str = ""
    layer_info: LayerInfo | None = None


Entry = Model | ModelPart | CodeEntry | DatasetEntry | DocsEntry | PromptEntry | McpServerEntry


@dataclass
class LayerEntry:
    """One Kitfile entry that becomes a layer. ``index`` is its position in its own Kitfile list."""

    kind: str  # model, modelpart, code, dataset, docs, prompt, mcpb
    entry: Entry
    path: str
    name: str
    index: int


# -- schema: (yaml/json key, attribute, kind, always emitted in JSON) in Go struct order ----------------------
# kinds: "str", "strlist", "any", or a dataclass (struct), or ("list", dataclass), ("ptr", dataclass)

_Spec = tuple[str, str, Any, bool]
_SCHEMA: dict[type, list[_Spec]] = {
    Package: [("name", "name", "str", False), ("version", "version", "str", False),
              ("description", "description", "str", False), ("license", "license", "str", False),
              ("authors", "authors", "strlist", False)],
    ModelPart: [("name", "name", "str", False), ("path", "path", "str", False),
                ("license", "license", "str", False), ("type", "type", "str", False)],
    Model: [("name", "name", "str", False), ("path", "path", "str", False), ("license", "license", "str", False),
            ("framework", "framework", "str", False), ("format", "format", "str", False),
            ("version", "version", "str", False), ("description", "description", "str", False),
            ("parts", "parts", ("list", ModelPart), False), ("parameters", "parameters", "any", False)],
    CodeEntry: [("path", "path", "str", False), ("description", "description", "str", False),
                ("license", "license", "str", False)],
    DatasetEntry: [("name", "name", "str", False), ("path", "path", "str", False),
                   ("remotePath", "remote_path", "str", False), ("remoteHash", "remote_hash", "str", False),
                   ("description", "description", "str", False), ("license", "license", "str", False),
                   ("parameters", "parameters", "any", False)],
    DocsEntry: [("path", "path", "str", True), ("description", "description", "str", False)],
    PromptEntry: [("name", "name", "str", False), ("path", "path", "str", False),
                  ("description", "description", "str", False)],
    McpServerEntry: [("name", "name", "str", False), ("path", "path", "str", False),
                     ("description", "description", "str", False)],
}
_KITFILE_SCHEMA: list[_Spec] = [
    ("manifestVersion", "manifest_version", "str", True),
    ("package", "package", Package, True),  # a struct: Go's omitempty never drops it from JSON
    ("model", "model", ("ptr", Model), False),
    ("code", "code", ("list", CodeEntry), False),
    ("datasets", "datasets", ("list", DatasetEntry), False),
    ("docs", "docs", ("list", DocsEntry), False),
    ("prompts", "prompts", ("list", PromptEntry), False),
    ("mcpServers", "mcp_servers", ("list", McpServerEntry), False),
]
_HAS_LAYER_INFO = (Model, ModelPart, CodeEntry, DatasetEntry, DocsEntry, PromptEntry, McpServerEntry)


# -- YAML decoding (strict, like yaml.v3 with KnownFields) ----------------------------------------------------

class _Problems:
    """Errors found while decoding, each with its line; reported together like yaml.v3 does."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[int, str]] = []

    def add(self, node: yaml12.Node, message: str) -> None:
        self.items.append((yaml12.line_of(node), message))

    def raise_if_any(self) -> None:
        if self.items:
            raise KitfileError("\n".join(f"{self.source} line {line}: {msg}" for line, msg in self.items))


def _kind_name(node: yaml12.Node) -> str:
    if isinstance(node, yaml12.MappingNode):
        return "a mapping"
    if isinstance(node, yaml12.SequenceNode):
        return "a list"
    return f"{node.value!r}"


def _decode_string(node: yaml12.Node, where: str, problems: _Problems) -> str | None:
    """Any scalar goes into a string field as its literal text (``1.0`` stays ``"1.0"``); null is ``""``."""
    if not isinstance(node, yaml12.ScalarNode):
        problems.add(node, f"{where} must be a string, not {_kind_name(node)}")
        return None
    try:
        tag, value = yaml12.scalar_value(node)
    except yaml12.YAMLDecodeError as e:
        problems.add(node, f"{where}: {e.problem}")
        return None
    if tag == yaml12.NULL:
        return ""
    return value if tag == yaml12.STR else node.value


def _decode_any(node: yaml12.Node, where: str, problems: _Problems) -> Any:
    try:
        value = yaml12.construct(node)
    except yaml12.YAMLDecodeError as e:
        problems.items.append((e.line or yaml12.line_of(node), f"{where}: {e.problem}"))
        return None
    _check_string_keys(node, value, where, problems)
    return value


def _check_string_keys(node: yaml12.Node, value: Any, where: str, problems: _Problems) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.add(node, f"{where} has the map key {key!r}, which is not a string; kit cannot store it "
                                   f"in the ModelKit config (quote it: \"{key}\")")
            else:
                _check_string_keys(node, item, f"{where}.{key}", problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_string_keys(node, item, f"{where}[{i}]", problems)


def _decode_struct(node: yaml12.Node, cls: type, where: str, problems: _Problems) -> Any:
    obj = cls()
    if not isinstance(node, yaml12.MappingNode):
        problems.add(node, f"{where} must be a mapping, not {_kind_name(node)}")
        return obj
    specs = _KITFILE_SCHEMA if cls is Kitfile else _SCHEMA[cls]
    by_key = {s[0]: s for s in specs}
    try:
        pairs = yaml12.mapping_pairs(node)
    except yaml12.YAMLDecodeError as e:
        problems.items.append((e.line, f"{e.problem} (in {where})"))
        return obj
    for key_node, value_node in pairs:
        key = key_node.value if isinstance(key_node, yaml12.ScalarNode) else None
        spec = by_key.get(key) if key is not None else None
        if spec is None:
            known = ", ".join(s[0] for s in specs)
            problems.add(key_node, f'unknown field "{key}" in {where} (known fields: {known})'
                         if key is not None else f"{where} has a non-scalar key (known fields: {known})")
            continue
        _, attr, kind, _ = spec
        child = key if cls is Kitfile else f"{where}.{key}"
        setattr(obj, attr, _decode_value(value_node, kind, child, problems, getattr(obj, attr)))
    return obj


def _decode_value(node: yaml12.Node, kind: Any, where: str, problems: _Problems, default: Any) -> Any:
    null = yaml12.is_null(node) if isinstance(node, yaml12.ScalarNode) else False
    if kind == "str":
        value = _decode_string(node, where, problems)
        return default if value is None else value
    if kind == "any":
        return None if null else _decode_any(node, where, problems)
    if null:  # null leaves lists empty, model absent and package untouched, as yaml.v3 does
        return default
    if kind == "strlist":
        if not isinstance(node, yaml12.SequenceNode):
            problems.add(node, f"{where} must be a list of strings, not {_kind_name(node)}")
            return default
        out = []  # yaml.v3 drops null items from slices
        for i, n in enumerate(node.value):
            if isinstance(n, yaml12.ScalarNode) and yaml12.is_null(n):
                continue
            value = _decode_string(n, f"{where}[{i}]", problems)
            if value is not None:
                out.append(value)
        return out
    if isinstance(kind, tuple) and kind[0] == "ptr":
        return _decode_struct(node, kind[1], where, problems)
    if isinstance(kind, tuple) and kind[0] == "list":
        if not isinstance(node, yaml12.SequenceNode):
            problems.add(node, f"{where} must be a list, not {_kind_name(node)}")
            return default
        return [
            _decode_struct(n, kind[1], f"{where}[{i}]", problems)
            for i, n in enumerate(node.value)
            if not (isinstance(n, yaml12.ScalarNode) and yaml12.is_null(n))
        ]
    return _decode_struct(node, kind, where, problems)


# -- JSON decoding (config blobs: lenient like Go's json.Unmarshal, but unknown keys are reported) -------------

def _json_struct(data: Any, cls: type, where: str, source: str, unknown: list[str]) -> Any:
    obj = cls()
    if data is None:
        return obj
    if not isinstance(data, dict):
        raise KitfileError(f"{source}: {where} must be a JSON object, not {type(data).__name__}")
    specs = _KITFILE_SCHEMA if cls is Kitfile else _SCHEMA[cls]
    exact = {s[0]: s for s in specs}
    folded = {s[0].lower(): s for s in specs}
    info = LayerInfo()
    has_info = False
    for key, value in data.items():
        child = key if cls is Kitfile else f"{where}.{key}"
        if cls in _HAS_LAYER_INFO and key.lower() in ("digest", "diffid"):
            if value is not None:
                if not isinstance(value, str):
                    raise KitfileError(f"{source}: {child} must be a string")
                has_info = True
                setattr(info, "digest" if key.lower() == "digest" else "diff_id", value)
            continue
        spec = exact.get(key) or folded.get(key.lower())  # Go matches field names case-insensitively
        if spec is None:
            unknown.append(child)
            continue
        _, attr, kind, _ = spec
        setattr(obj, attr, _json_value(value, kind, child, source, unknown, getattr(obj, attr)))
    if has_info:
        obj.layer_info = info
    return obj


def _json_value(value: Any, kind: Any, where: str, source: str, unknown: list[str], default: Any) -> Any:
    if kind == "any":
        return value
    if value is None:
        return default if kind != ("ptr", Model) else None
    if kind == "str":
        if not isinstance(value, str):
            raise KitfileError(f"{source}: {where} must be a string, not {json.dumps(value)[:40]}")
        return value
    if kind == "strlist":
        if not isinstance(value, list) or not all(isinstance(v, str) or v is None for v in value):
            raise KitfileError(f"{source}: {where} must be a list of strings")
        return [v or "" for v in value]
    if isinstance(kind, tuple) and kind[0] == "list":
        if not isinstance(value, list):
            raise KitfileError(f"{source}: {where} must be a JSON array")
        return [_json_struct(v, kind[1], f"{where}[{i}]", source, unknown) for i, v in enumerate(value)]
    cls = kind[1] if isinstance(kind, tuple) else kind
    return _json_struct(value, cls, where, source, unknown)


# -- encoding ------------------------------------------------------------------------------------------------

def _to_tree(obj: Any, json_mode: bool) -> Struct:
    """The struct as Go's encoding/json (json_mode) or yaml.v3 encoder sees it, omitempty applied."""
    specs = _KITFILE_SCHEMA if isinstance(obj, Kitfile) else _SCHEMA[type(obj)]
    out = Struct()
    for key, attr, kind, always in specs:
        value = getattr(obj, attr)
        if kind == "str":
            if value or always:
                out[key] = value
        elif kind == "strlist":
            if value:
                out[key] = list(value) if json_mode else yaml12.Flow(value)
        elif kind == "any":
            if value is not None:
                out[key] = value
        elif isinstance(kind, tuple) and kind[0] == "list":
            if value:
                out[key] = [_to_tree(v, json_mode) for v in value]
        elif isinstance(kind, tuple) and kind[0] == "ptr":
            if value is not None:
                out[key] = _to_tree(value, json_mode)
        else:  # embedded struct (package): JSON always, YAML only when not all-zero
            tree = _to_tree(value, json_mode)
            if json_mode or tree:
                out[key] = tree
    info = getattr(obj, "layer_info", None)
    if json_mode and info is not None:  # flattened *LayerInfo; yaml:"-" keeps it out of YAML
        if info.digest:
            out["digest"] = info.digest
        if info.diff_id:
            out["diffId"] = info.diff_id
    return out


# -- paths (Go's path/filepath semantics, POSIX) -------------------------------------------------------------

def clean_path(path: str) -> str:
    """Go's ``filepath.Clean`` on a slash-separated path (``""`` -> ``.``, ``./a/`` -> ``a``)."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(comp)
    joined = "/".join(parts)
    return "/" + joined if rooted else joined or "."


def _is_local(cleaned: str) -> bool:
    return not cleaned.startswith("/") and cleaned != ".." and not cleaned.startswith("../")


def _rel(base: str, target: str) -> str:
    """Go's ``filepath.Rel`` for cleaned paths; raises ValueError when Go returns an error."""
    if target == base:
        return "."
    b = "" if base == "." else base
    if b.startswith("/") != target.startswith("/"):
        raise ValueError(f"Rel: can't make {target} relative to {base}")
    b_parts = b.split("/") if b else []
    t_parts = target.split("/") if target else []
    i = 0
    while i < len(b_parts) and i < len(t_parts) and b_parts[i] == t_parts[i]:
        i += 1
    if i < len(b_parts) and b_parts[i] == "..":
        raise ValueError(f"Rel: can't make {target} relative to {base}")
    up = [".."] * (len(b_parts) - i)
    return "/".join(up + t_parts[i:]) or "."


def kitfile_arg(value: str) -> Path | Kitfile:
    """A ``-f/--file`` argument: ``-`` reads the Kitfile from stdin (as kit does), anything else is a path.

    >>> kitfile_arg("ml/Kitfile")
    PosixPath('ml/Kitfile')
    """
    if value == "-":
        if sys.stdin.isatty():
            raise KitfileError("No input file specified and no data piped")
        return Kitfile.from_yaml(sys.stdin.read(), source="<stdin>")
    return Path(value)


def is_modelkit_reference(path: str) -> bool:
    """kit's IsModelKitReference: contains ``:`` or ``@`` and parses as a ModelKit reference.

    >>> is_modelkit_reference("myorg/base:v1"), is_modelkit_reference("./model"), is_modelkit_reference("s3://b/k")
    (True, False, False)
    """
    if ":" not in path and "@" not in path:
        return False
    try:
        parse_reference(path)
    except (ReferenceFormatError, ValueError):
        return False
    return True


_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def path_type(path: str) -> tuple[str, str | None]:
    """kit's GetPathType: ``("local"|"reference"|"s3"|"unknown", error or None)``."""
    if is_modelkit_reference(path):
        return "reference", None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return "local", None  # Go's url.Parse rejects control characters: treated as a local path
    m = _SCHEME_RE.match(path)
    if m:
        scheme = m[1].lower()
    elif path.startswith(":"):
        return "local", None
    else:
        scheme = ""
        if not path.startswith("//") or path[2:].split("/", 1)[0] == "":
            return "local", None  # neither a scheme nor a host
    if scheme == "s3":
        return "s3", None
    if scheme in ("http", "https"):
        return "unknown", f"HTTP urls are not supported in paths ({path})"
    return "unknown", f"unrecognized URL in path: {path}"


# -- the Kitfile -----------------------------------------------------------------------------------------------

@dataclass
class Kitfile:
    """A Kitfile. See the module docstring for an example."""

    manifest_version: str = ""
    package: Package = field(default_factory=Package)
    model: Model | None = None
    code: list[CodeEntry] = field(default_factory=list)
    datasets: list[DatasetEntry] = field(default_factory=list)
    docs: list[DocsEntry] = field(default_factory=list)
    prompts: list[PromptEntry] = field(default_factory=list)
    mcp_servers: list[McpServerEntry] = field(default_factory=list)

    DEFAULT_NAMES: ClassVar[tuple[str, ...]] = DEFAULT_KITFILE_NAMES

    # -- reading --

    @classmethod
    def from_yaml(cls, text: str, source: str = "Kitfile") -> Kitfile:
        """Parse Kitfile YAML strictly: unknown keys and wrong types are errors naming line and field."""
        try:
            root = yaml12.compose(text)
        except yaml12.YAMLDecodeError as e:
            where = f"{source} line {e.line}" if e.line else source
            raise KitfileError(f"{where}: invalid YAML: {e.problem}") from None
        if root is None:
            raise KitfileError(f"{source} is empty; a Kitfile needs at least 'manifestVersion: 1.0.0'")
        problems = _Problems(source)
        kitfile = _decode_struct(root, cls, "the Kitfile", problems)
        problems.raise_if_any()
        return kitfile  # type: ignore[no-any-return]

    @classmethod
    def load(cls, path: str | Path) -> Kitfile:
        """Read and parse a Kitfile from disk (error messages name the file)."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise KitfileError(f"Kitfile {p} does not exist") from None
        except OSError as e:
            raise KitfileError(f"cannot read Kitfile {p}: {e.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise KitfileError(f"{p} is not UTF-8 text (byte {e.start}); save the Kitfile as UTF-8") from None
        return cls.from_yaml(text, source=str(p))

    @classmethod
    def find(cls, directory: str | Path) -> Path:
        """The Kitfile kit would use in ``directory``: ``Kitfile``, ``kitfile`` or ``.kitfile``."""
        d = Path(directory)
        for name in DEFAULT_KITFILE_NAMES:
            candidate = d / name
            if candidate.is_file():
                return candidate
        raise KitfileError(f"No Kitfile found in {d}. Consider using the -f flag to specify its path")

    @classmethod
    def from_json(cls, data: bytes | str, source: str = "Kitfile config") -> Kitfile:
        """Read a config blob (kit's Kitfile JSON), keeping each entry's digest/diffId.

        Like Go's json.Unmarshal, numbers in ``parameters`` become floats and unknown keys are
        ignored, but each ignored key is logged as a warning so that nothing is lost silently.
        """
        try:
            doc = json.loads(data, parse_int=float)
        except (ValueError, RecursionError) as e:  # RecursionError: hostile deep nesting
            raise KitfileError(f"{source} is not valid JSON: {e}") from None
        unknown: list[str] = []
        kitfile = _json_struct(doc, cls, "the Kitfile", source, unknown)
        if unknown:
            LOG.warning("%s: ignoring unknown Kitfile field(s) %s (written by a newer kit?)",
                        source, ", ".join(unknown))
        return kitfile  # type: ignore[no-any-return]

    # -- writing --

    def to_json(self) -> bytes:
        """The config blob bytes kit writes (``json.Marshal``): struct order, omitempty, sorted maps."""
        try:
            return marshal(_to_tree(self, json_mode=True))
        except UnsupportedValueError as e:
            raise KitfileError(
                f"the Kitfile cannot be stored as a ModelKit config: {e} "
                "(parameters must be JSON-compatible: no .inf/.nan, string map keys)"
            ) from None

    def to_yaml(self) -> str:
        """The Kitfile as kit's MarshalToYAML writes it (yaml.v3, indent 2, no digests)."""
        return yaml12.dump(_to_tree(self, json_mode=False))

    # -- layers --

    def layer_entries(self) -> list[LayerEntry]:
        """Entries that produce layers, in kit's manifest order (spec §2)."""
        out: list[LayerEntry] = []
        if self.model is not None:
            if self.model.path and not is_modelkit_reference(self.model.path):
                out.append(LayerEntry("model", self.model, self.model.path, self.model.name, 0))
            out += [LayerEntry("modelpart", p, p.path, p.name, i) for i, p in enumerate(self.model.parts)]
        out += [LayerEntry("code", c, c.path, "", i) for i, c in enumerate(self.code)]
        out += [LayerEntry("dataset", d, d.path, d.name, i) for i, d in enumerate(self.datasets) if not d.remote_path]
        out += [LayerEntry("docs", d, d.path, "", i) for i, d in enumerate(self.docs)]
        out += [LayerEntry("prompt", p, p.path, p.name, i) for i, p in enumerate(self.prompts)]
        out += [LayerEntry("mcpb", m, m.path, m.name, i) for i, m in enumerate(self.mcp_servers)]
        return out

    # -- validation --

    def validate(self, source: str = "Kitfile") -> list[str]:
        """kit's Kitfile.Validate: return warnings, raise KitfileError listing every problem."""
        warnings: list[str] = []
        if self.manifest_version != MANIFEST_VERSION:
            warnings.append(f"Unrecognized manifestVersion {self.manifest_version}: treating Kitfile as 1.0.0")
        errors: list[str] = []
        add = errors.append
        paths: dict[str, list[str]] = {}

        def add_path(path: str, owner: str) -> None:
            paths.setdefault(clean_path(path), []).append(owner)

        def check_local(path: str, what: str) -> None:
            kind, err = path_type(path)
            if err:
                add(f"invalid path for {what} ({path}): {err}")
            if kind != "local":
                add(f"invalid path for {what} ({path}): only local paths are permitted")

        remote_dataset_paths: list[str] = []
        if self.model is not None:
            add_path(self.model.path, f"model {self.model.name}")
            kind, err = path_type(self.model.path)
            if err:
                add(f"invalid path for model: {err}")
            if kind not in ("local", "reference"):
                add("invalid path for model: only local paths and ModelKit references are permitted")
            for part in self.model.parts:
                add_path(part.path, f"modelpart {part.name}")
                check_local(part.path, "model part")
                if part.type:
                    if not _MODELPART_TYPE_RE.match(part.type):
                        add(f"modelpart {part.name} has invalid type (must be alphanumeric with dots, dashes, "
                            "and underscores)")
                    if len(part.type.encode()) > _MODELPART_TYPE_MAX_LEN:
                        add(f"modelpart {part.name} type is too long (must be fewer than "
                            f"{_MODELPART_TYPE_MAX_LEN} characters)")
        for i, code in enumerate(self.code):
            add_path(code.path, f"code layer {i}")
            check_local(code.path, "code")
        for i, ds in enumerate(self.datasets):
            add_path(ds.path, f"dataset layer {i}")
            check_local(ds.path, "dataset")
            if ds.remote_path:
                kind, err = path_type(ds.remote_path)
                if err:
                    add(f"invalid remote path for dataset ({ds.remote_path}): {err}")
                if kind == "s3":
                    if not ds.remote_hash:
                        add(f"remoteHash is required when remote dataset paths are used ({ds.remote_path})")
                elif kind == "reference":
                    if ds.remote_hash:
                        warnings.append(f"remoteHash is ignored for ModelKit references in datasets ({ds.path})")
                    remote_dataset_paths.append(clean_path(ds.path))
                else:
                    add(f"only S3 URLs and ModelKit references are supported for remote dataset paths "
                        f"({ds.remote_path})")
            elif ds.remote_hash:
                add("remote hash is only applicable when remotePath is set")
        for i, doc in enumerate(self.docs):
            add_path(doc.path, f"docs layer {i}")
            check_local(doc.path, "doc")
        for i, prompt in enumerate(self.prompts):
            add_path(prompt.path, f"prompt layer {i}")
            check_local(prompt.path, "prompt")
        names: set[str] = set()
        for i, server in enumerate(self.mcp_servers):
            add_path(server.path, f"mcpServer layer {i}")
            kind, err = path_type(server.path)
            if err:
                add(f"invalid path for mcpServer ({server.path}): {err}")
            if kind != "local":
                add(f"invalid path for mcpServer ({server.path}): only local paths are permitted")
            elif not server.path.endswith(".mcpb"):
                add(f"invalid path for mcpServer ({server.path}): path must point to a single .mcpb file")
            if not server.name:
                add(f"mcpServer with path {server.path} must have a name")
            elif server.name in names:
                add(f"duplicate mcpServer name {server.name}: names must be unique")
            else:
                names.add(server.name)

        for layer_path, owners in paths.items():
            if len(owners) > 1:
                add(f"{', '.join(owners[:-1])} and {owners[-1]} use the same path {layer_path}")
            if layer_path.startswith("/"):
                add(f"absolute paths are not supported in a Kitfile (path {layer_path} in {owners[0]})")
            elif path_type(layer_path)[0] == "local" and not _is_local(layer_path):
                add(f"paths outside the context directory are not supported in a Kitfile "
                    f"(path {layer_path} in {owners[0]})")
            for remote in remote_dataset_paths:
                if remote == layer_path:
                    continue
                try:
                    rel = _rel(remote, layer_path)
                except ValueError as e:
                    add(f"error calculating relative path for remote dataset: {e}")
                    continue
                if rel != ".." and not rel.startswith("../"):
                    add(f"{owners[0]} uses a path ({layer_path}) that is within the path for a remote dataset")

        try:
            self.to_json()
        except KitfileError as e:  # kit only fails later, at pack; say so before any layer is built
            add(str(e))
        if errors:
            body = "\n".join(f"  * {e}" for e in sorted(errors))
            raise KitfileError(f"{source}: errors while validating Kitfile: \n{body}")
        return warnings

