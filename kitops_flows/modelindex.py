"""ModelKit indexes (kit's ``kit index``): the artifact, label edits and label selection.

An index is an OCI image index with kit's artifact type whose entries are ModelKit manifest descriptors
of one repository; each entry's labels live in kit's own ``modelMetadata`` key as raw JSON::

    idx = ModelKitIndex.from_bytes(data)                        # refuses anything but a ModelKit index
    entry = select_entry(idx, parse_selector(["device=cuda"]), index_ref)
    entry.digest                                                 # the ModelKit to pull or unpack

Serialisation is Go ``encoding/json`` byte for byte (kit-features-1.17.md §2.1), so an index edited here
has the digest kit would give it, and label values written by kit keep their exact bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from .errors import KitopsError
from .gojson import Struct, marshal, quote
from .mediatypes import KIT_INDEX_ARTIFACT_TYPE, OCI_INDEX
from .reference import DEFAULT_REGISTRY, Reference

ANNOTATION_PREFIX = "ml.kitops.modelkit."
ANNOTATION_ORIGINAL_TAG = "ml.kitops.modelkit.original-tag"
ANNOTATION_SIZE = "ml.kitops.modelkit.size"
RECORDED_ANNOTATIONS = (ANNOTATION_ORIGINAL_TAG, ANNOTATION_SIZE)
_LABEL_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z"
)
_PLATFORM_ORDER = ("architecture", "os", "os.version", "os.features", "variant")
_WS = " \t\n\r"


class ModelKitIndexError(KitopsError):
    """A ModelKit index is malformed, or a label edit or selector is invalid."""


class NotAnIndexError(ModelKitIndexError):
    """The artifact is not a ModelKit index (kit: ``artifact is not a ModelKit index``)."""


@dataclass
class IndexEntry:
    """One ModelKit in an index. ``labels`` maps a key to its raw, compact JSON value (as kit stores it)."""

    digest: str
    size: int
    media_type: str = "application/vnd.oci.image.manifest.v1+json"
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)  # urls, data, platform: kept as read

    @property
    def original_tag(self) -> str | None:
        return self.annotations.get(ANNOTATION_ORIGINAL_TAG) or None

    @property
    def recorded_size(self) -> int | None:
        text = self.annotations.get(ANNOTATION_SIZE, "")
        return int(text) if re.fullmatch(r"-?[0-9]+", text) else None

    @property
    def user_annotations(self) -> dict[str, str]:
        """Annotations without the two kit records itself (they have their own columns)."""
        return {k: v for k, v in self.annotations.items() if k not in RECORDED_ANNOTATIONS}

    def label_values(self) -> dict[str, str]:
        """Labels for display and matching: JSON strings unquoted, anything else as stored."""
        return {k: label_display(v) for k, v in self.labels.items()}

    def label_pairs(self) -> list[str]:
        return [f"{k}={label_display(self.labels[k])}" for k in sorted(self.labels)]

    def _go_json(self) -> str:
        parts = [f'"mediaType":{quote(self.media_type)}', f'"digest":{quote(self.digest)}', f'"size":{self.size}']
        if self.extra.get("urls"):
            parts.append(f'"urls":{marshal(self.extra["urls"]).decode()}')
        if self.annotations:
            parts.append(f'"annotations":{marshal(dict(self.annotations)).decode()}')
        if self.extra.get("data"):
            parts.append(f'"data":{marshal(self.extra["data"]).decode()}')
        platform = self.extra.get("platform")
        if isinstance(platform, dict) and platform:
            ordered = Struct((k, platform[k]) for k in _PLATFORM_ORDER if platform.get(k))
            parts.append(f'"platform":{marshal(ordered).decode()}')
        if self.artifact_type:
            parts.append(f'"artifactType":{quote(self.artifact_type)}')
        if self.labels:
            meta = ",".join(f"{quote(k)}:{go_compact(self.labels[k])}" for k in sorted(self.labels))
            parts.append(f'"modelMetadata":{{{meta}}}')
        return "{" + ",".join(parts) + "}"


@dataclass
class ModelKitIndex:
    """A ModelKit index. Entries are keyed by digest and keep their insertion order."""

    entries: list[IndexEntry] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)
    subject: dict[str, object] | None = None

    def to_bytes(self) -> bytes:
        """Compact Go JSON, exactly as ``kit index`` writes it."""
        parts = ['"schemaVersion":2', f'"mediaType":{quote(OCI_INDEX)}', f'"artifactType":{quote(KIT_INDEX_ARTIFACT_TYPE)}',
                 '"manifests":[' + ",".join(e._go_json() for e in self.entries) + "]"]
        if self.subject:
            parts.append(f'"subject":{marshal(Struct(self.subject.items())).decode()}')
        if self.annotations:
            parts.append(f'"annotations":{marshal(dict(self.annotations)).decode()}')
        return ("{" + ",".join(parts) + "}").encode()

    def get(self, digest: str) -> IndexEntry | None:
        return next((e for e in self.entries if e.digest == digest), None)

    def put(self, entry: IndexEntry) -> None:
        """Add ``entry``, replacing an entry of the same digest in place."""
        for i, existing in enumerate(self.entries):
            if existing.digest == entry.digest:
                self.entries[i] = entry
                return
        self.entries.append(entry)

    def remove(self, digest: str) -> bool:
        before = len(self.entries)
        self.entries = [e for e in self.entries if e.digest != digest]
        return len(self.entries) != before

    @classmethod
    def from_bytes(cls, data: bytes, what: str = "index") -> ModelKitIndex:
        """Parse an index; NotAnIndexError unless it is an OCI index with kit's index artifact type."""
        try:
            text = data.decode("utf-8")
            doc = json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ModelKitIndexError(f"failed to parse index: {what} is not valid JSON ({e})") from None
        if not isinstance(doc, dict):
            raise ModelKitIndexError(f"failed to parse index: {what} is not a JSON object")
        if doc.get("mediaType") != OCI_INDEX or doc.get("artifactType") != KIT_INDEX_ARTIFACT_TYPE:
            raise NotAnIndexError("artifact is not a ModelKit index")
        manifests = doc.get("manifests") or []
        if not isinstance(manifests, list):
            raise ModelKitIndexError(f"failed to parse index: manifests of {what} is not a list")
        raw_meta = _raw_model_metadata(text)
        entries = []
        for i, m in enumerate(manifests):
            entries.append(_entry_from_dict(m, raw_meta[i] if i < len(raw_meta) else {}, f"{what} entry {i}"))
        ann = doc.get("annotations") or {}
        subject = doc.get("subject") if isinstance(doc.get("subject"), dict) else None
        return cls(entries, {str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else {}, subject)


def empty_index_bytes() -> bytes:
    """The 151-byte empty index kit creates (the same digest in every repository)."""
    return ModelKitIndex().to_bytes()


def is_index(media_type: str, artifact_type: str | None) -> bool:
    return media_type == OCI_INDEX and artifact_type == KIT_INDEX_ARTIFACT_TYPE


def _entry_from_dict(m: object, labels: dict[str, str], what: str) -> IndexEntry:
    if not isinstance(m, dict):
        raise ModelKitIndexError(f"failed to parse index: {what} is not an object")
    digest, size = m.get("digest"), m.get("size")
    if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool):
        raise ModelKitIndexError(f"failed to parse index: {what} needs a digest string and an integer size")
    ann = m.get("annotations") or {}
    if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
        raise ModelKitIndexError(f"failed to parse index: annotations of {what} must map strings to strings")
    return IndexEntry(
        digest=digest, size=size, media_type=str(m.get("mediaType") or ""), annotations=dict(ann),
        artifact_type=str(m["artifactType"]) if m.get("artifactType") else None, labels=labels,
        extra={k: m[k] for k in ("urls", "data", "platform") if m.get(k)},
    )


# -- raw JSON: label values keep the bytes they were written with ------------------------------------------

def _json_tokens(raw: str) -> Iterator[str]:
    """JSON text as tokens, whitespace outside strings dropped: each string literal whole (escapes verbatim),
    every other character alone."""
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == '"':
            j = i + 1
            while j < n and raw[j] != '"':
                j += 2 if raw[j] == "\\" else 1
            yield raw[i:j + 1]
            i = j + 1
            continue
        if ch not in _WS:
            yield ch
        i += 1


def _html_escape(token: str) -> str:
    return "".join(f"\\u{ord(c):04x}" if c in "<>&\u2028\u2029" else c for c in token)


def go_compact(raw: str) -> str:
    """Go's compaction of a json.RawMessage during Marshal: whitespace outside strings dropped, ``<>&`` and
    U+2028/U+2029 escaped; everything else (number spelling, string escapes, key order) kept verbatim."""
    return "".join(_html_escape(t) for t in _json_tokens(raw))


def label_display(raw: str) -> str:
    """kit's FormatLabelValue: a JSON string shown unquoted, any other JSON as written."""
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in _WS:
        i += 1
    return i


_DECODER = json.JSONDecoder()


def _member_spans(s: str, i: int, opener: str) -> list[tuple[str | None, int, int]]:
    """(key, start, end) of each member of the object (``{``) or array (``[``, key None) starting at ``s[i]``."""
    i = _skip_ws(s, i)
    if i >= len(s) or s[i] != opener:
        return []
    closer = "}" if opener == "{" else "]"
    spans: list[tuple[str | None, int, int]] = []
    i = _skip_ws(s, i + 1)
    while i < len(s) and s[i] != closer:
        key = None
        if opener == "{":
            key, i = _DECODER.raw_decode(s, i)
            i = _skip_ws(s, _skip_ws(s, i) + 1)  # past the ':'
        _, end = _DECODER.raw_decode(s, i)
        spans.append((key, i, end))
        i = _skip_ws(s, end)
        if i < len(s) and s[i] == ",":
            i = _skip_ws(s, i + 1)
    return spans


def _object_spans(s: str, i: int) -> dict[str, tuple[int, int]]:
    """Key -> (start, end) of each value of the JSON object starting at ``s[i]`` (last duplicate wins, as Go)."""
    return {str(key): (a, b) for key, a, b in _member_spans(s, i, "{")}


def _raw_model_metadata(text: str) -> list[dict[str, str]]:
    """Each entry's ``modelMetadata`` as key -> compact raw JSON (the document was already validated)."""
    top = _object_spans(text, 0)
    if "manifests" not in top:
        return []
    out = []
    for _, start, _end in _member_spans(text, top["manifests"][0], "["):
        entry = _object_spans(text, start)
        meta = _object_spans(text, entry["modelMetadata"][0]) if "modelMetadata" in entry else {}
        out.append({k: go_compact(text[a:b]) for k, (a, b) in meta.items()})
    return out


# -- label and annotation edits (kit index add -l / --annotate) ----------------------------------------------

@dataclass(frozen=True)
class KeyValueEdits:
    """Values to set (raw JSON for labels, strings for annotations) and keys to remove."""

    set: dict[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()

    def apply(self, current: Mapping[str, str]) -> dict[str, str]:
        merged = {**current, **self.set}
        for key in self.remove:
            merged.pop(key, None)
        return merged


def _parse_key_values(args: Iterable[str], kind: str) -> list[tuple[str, str, bool, bool]]:
    parsed: list[tuple[str, str, bool, bool]] = []
    seen: set[str] = set()
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.endswith(":"):
            kv = (key[:-1], value, True, False)
        elif sep:
            kv = (key, value, False, False)
        elif arg.endswith("-"):
            kv = (arg[:-1], "", False, True)
        else:
            raise ModelKitIndexError(f"invalid {kind} {_go_q(arg)}: expected key=value to set, or key- to remove")
        if not kv[0]:
            raise ModelKitIndexError(f"invalid {kind} {_go_q(arg)}: key cannot be empty")
        if kv[0] in seen:
            raise ModelKitIndexError(f"invalid {kind} {_go_q(arg)}: each key can be specified only once")
        seen.add(kv[0])
        parsed.append(kv)
    return parsed


def parse_label_edits(args: Iterable[str]) -> KeyValueEdits:
    """``key=value`` (a JSON string), ``key:=<json>`` (any JSON, compacted) and ``key-`` (remove)."""
    sets: dict[str, str] = {}
    removes: list[str] = []
    for key, value, is_json, remove in _parse_key_values(args, "label"):
        if remove:
            removes.append(key)
            continue
        if not _LABEL_KEY_RE.match(key):
            raise ModelKitIndexError(
                f"invalid label key {_go_q(key)}: must be a name of letters, digits, '-', '_', and '.' that starts "
                "and ends with a letter or digit, optionally prefixed by a DNS subdomain and '/' (e.g. example.com/gpu)"
            )
        if not is_json:
            sets[key] = quote(value)
            continue
        try:
            json.loads(value)
        except ValueError:
            raise ModelKitIndexError(f"invalid label {key}:={value}: value is not valid JSON") from None
        sets[key] = go_compact(value)
    return KeyValueEdits(sets, tuple(removes))


def parse_annotation_edits(args: Iterable[str]) -> KeyValueEdits:
    """``key=value`` and ``key-``; the ``ml.kitops.modelkit.`` namespace is kit's own."""
    sets: dict[str, str] = {}
    removes: list[str] = []
    for key, value, is_json, remove in _parse_key_values(args, "annotation"):
        if key.startswith(ANNOTATION_PREFIX):
            raise ModelKitIndexError(f"invalid annotation {_go_q(key)}: the {ANNOTATION_PREFIX} namespace is reserved for "
                              "annotations kit records itself")
        if remove:
            removes.append(key)
        elif is_json:
            raise ModelKitIndexError(f"invalid annotation {key}:={value}: annotation values are strings; use key=value")
        else:
            sets[key] = value
    return KeyValueEdits(sets, tuple(removes))


def labels_to_edits(labels: Mapping[str, object]) -> KeyValueEdits:
    """Labels given in code: strings become ``key=value``; other values are stored as their JSON."""
    args = [f"{k}={v}" if isinstance(v, str) else f"{k}:={json.dumps(v, separators=(',', ':'))}"
            for k, v in labels.items()]
    return parse_label_edits(args)


# -- selection (kit pull -l / unpack -l) -------------------------------------------------------------------

def parse_selector(args: Iterable[str] | Mapping[str, str]) -> dict[str, str]:
    """``key=value`` selectors; each key once."""
    if isinstance(args, Mapping):
        args = [f"{k}={v}" for k, v in args.items()]
    selector: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ModelKitIndexError(f"invalid label {_go_q(arg)}: expected key=value")
        if key in selector:
            raise ModelKitIndexError(f"invalid label {_go_q(arg)}: {key} is already set to {_go_q(selector[key])}; "
                              "each label can be specified only once")
        selector[key] = value
    return selector


def entry_reference(entry: IndexEntry, index_ref: Reference) -> str:
    """The reference an entry was added under, in the index's repository ('' without a recorded tag)."""
    tag = entry.original_tag
    if not tag:
        return ""
    repo = f"{index_ref.registry}/{index_ref.repository}".removeprefix(f"{DEFAULT_REGISTRY}/")
    return f"{repo}:{tag}"


def describe_entries(entries: Sequence[IndexEntry], index_ref: Reference) -> str:
    lines = []
    for e in entries:
        labels = ", ".join(e.label_pairs()) if e.labels else "no labels"
        lines.append(f"  {entry_reference(e, index_ref) or e.digest}  ({labels})")
    return "\n".join(lines)


def select_entry(index: ModelKitIndex, selector: Mapping[str, str], index_ref: Reference) -> IndexEntry:
    """The one entry whose labels include every selector ``key=value``; kit's errors for none or several."""
    matches = [e for e in index.entries
               if all(k in e.labels and label_display(e.labels[k]) == v for k, v in selector.items())]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        if not index.entries:
            raise ModelKitIndexError("index contains no ModelKits")
        wanted = ", ".join(f"{k}={selector[k]}" for k in sorted(selector)) or "no labels"
        raise ModelKitIndexError(f"no ModelKit in the index has {wanted}. The index contains:\n"
                          f"{describe_entries(index.entries, index_ref)}")
    raise ModelKitIndexError(f"{len(matches)} ModelKits in the index match; add labels to select one of:\n"
                      f"{describe_entries(matches, index_ref)}")


def _go_q(text: str) -> str:
    """Go's %q for the plain strings kit quotes in errors."""
    return json.dumps(text, ensure_ascii=False)


def go_indent(raw: str) -> str:
    """Go's ``json.Indent(raw, "", "  ")`` of compact JSON: key order and string bytes as stored."""
    out: list[str] = []
    depth = 0
    tokens = list(_json_tokens(raw))
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("{", "["):
            if i + 1 < len(tokens) and tokens[i + 1] in ("}", "]"):
                out.append(tok + tokens[i + 1])
                i += 1
            else:
                depth += 1
                out.append(tok + "\n" + "  " * depth)
        elif tok in ("}", "]"):
            depth -= 1
            out.append("\n" + "  " * depth + tok)
        elif tok == ",":
            out.append(",\n" + "  " * depth)
        elif tok == ":":
            out.append(": ")
        else:
            out.append(tok)
        i += 1
    return "".join(out)


def index_media_error(data: bytes, ref: str) -> str:
    """What ``pull`` says about an image index where a ModelKit was expected (kit's wording)."""
    try:
        ModelKitIndex.from_bytes(data)
    except KitopsError:
        return f"reference {ref} is not an image manifest"
    return (f"reference {ref} is a ModelKit index; select the ModelKit to pull with --label (-l). "
            "'kit index info --remote' lists its ModelKits and their labels")
