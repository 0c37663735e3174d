"""What S3 holds now: object versions listed once, the identity a layer is built from and compared with.

>>> inp = S3Input("b", "p/", "prefix", "train", "embed", (S3Object("p/a", "e1", 3),))
>>> S3Input.from_dict(inp.to_dict()) == inp, inp.object_count, inp.fingerprint()[:7]
(True, 1, 'sha256:')

Versioned buckets are listed with ``ListObjectVersions``, so each object's VersionId is known
without a HEAD per object.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import S3SourceError
from .uris import S3Uri, error_code, etag_of, iso_time, s3_client, s3_error, translated

LOG = logging.getLogger("kitops_flows")

#: Layer annotations (values stay small: the full object list is in the lineage record).
ANNOTATION_SOURCE = "ml.kitops-flows.s3.source"
ANNOTATION_OBJECTS = "ml.kitops-flows.s3.objects"
ANNOTATION_SIZE = "ml.kitops-flows.s3.size"
ANNOTATION_FINGERPRINT = "ml.kitops-flows.s3.fingerprint"
#: Manifest annotation written by ``pack_if_changed``: one digest over every S3 input + the Kitfile.
ANNOTATION_INPUTS_FINGERPRINT = "ml.kitops-flows.s3.inputs-fingerprint"
MODES = ("embed", "reference")
_GONE = ("NoSuchKey", "404", "NotFound")


@dataclass(frozen=True)
class S3Object:
    """One object version as listed: the identity a layer was built from."""

    key: str
    etag: str  # without the quotes S3 puts around it
    size: int
    version_id: str = ""
    last_modified: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "etag": self.etag, "size": self.size, "version_id": self.version_id,
                "last_modified": self.last_modified}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> S3Object:
        return cls(str(d["key"]), str(d["etag"]), int(d["size"]), str(d.get("version_id") or ""),
                   str(d.get("last_modified") or ""))


@dataclass(frozen=True)
class S3Input:
    """One S3 source of a pack: what lineage records (``to_dict``) and ``pack_if_changed`` compares.

    ``key`` is the object key, or the prefix (ending in ``/``) when ``kind == "prefix"``.
    ``objects`` is every object in listing order; only keys, sizes and ETags are kept in memory.

    >>> inp = S3Input("b", "p/", "prefix", "train", "embed", (S3Object("p/a", "e1", 3),))
    >>> S3Input.from_dict(inp.to_dict()) == inp, inp.object_count, inp.fingerprint()[:7]
    (True, 1, 'sha256:')
    """

    bucket: str
    key: str
    kind: str  # "object" | "prefix"
    entry: str  # the Kitfile entry (name or path) it feeds
    mode: str  # "embed" | "reference"
    objects: tuple[S3Object, ...]

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def object_count(self) -> int:
        return len(self.objects)

    @property
    def total_size(self) -> int:
        return sum(o.size for o in self.objects)

    def fingerprint(self) -> str:
        """sha256 over the sorted (key, ETag, VersionId) triples: equal iff the same object versions."""
        h = hashlib.sha256()
        for o in sorted(self.objects, key=lambda o: o.key):
            h.update(f"{o.key}\0{o.etag}\0{o.version_id}\n".encode())
        return "sha256:" + h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON. Single-object inputs also carry top-level ``etag``/``version_id``/``size``."""
        d: dict[str, Any] = {
            "uri": self.uri, "bucket": self.bucket, "key": self.key, "kind": self.kind, "entry": self.entry,
            "mode": self.mode, "object_count": self.object_count, "total_size": self.total_size,
        }
        if self.kind == "object" and len(self.objects) == 1:
            o = self.objects[0]
            d.update(etag=o.etag, version_id=o.version_id)
        d["objects"] = [o.to_dict() for o in self.objects]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> S3Input:
        return cls(str(d["bucket"]), str(d["key"]), str(d["kind"]), str(d.get("entry", "")),
                   str(d.get("mode", "embed")), tuple(S3Object.from_dict(o) for o in d.get("objects", ())))

    def annotations(self) -> dict[str, str]:
        """The compact per-layer summary."""
        return {ANNOTATION_SOURCE: self.uri, ANNOTATION_OBJECTS: str(self.object_count),
                ANNOTATION_SIZE: str(self.total_size), ANNOTATION_FINGERPRINT: self.fingerprint()}


@dataclass(frozen=True)
class S3Source:
    """A ``sources`` value with options. A plain string URI means ``S3Source(uri)`` (mode ``embed``).

    ``mode="reference"`` (datasets only) keeps the object in S3: kit's ``remotePath``/``remoteHash``.
    ``listing`` reuses an earlier listing (``pack_if_changed`` fingerprints exactly what it packs).
    """

    uri: str
    mode: str = "embed"
    listing: S3Input | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise S3SourceError(f"S3 source {self.uri}: mode {self.mode!r} is not one of {', '.join(MODES)}")



def list_input(s3: Any, uri: str | S3Uri, *, entry: str = "", mode: str = "embed") -> S3Input:
    """List what ``uri`` names now: one object (HEAD) or every object under a prefix.

    Versioned buckets are listed with ``ListObjectVersions`` so each object's VersionId is known
    without a HEAD per object. Raises S3SourceError for a missing bucket, no access, or nothing there.
    """
    loc = S3Uri.parse(uri) if isinstance(uri, str) else uri
    if not loc.is_prefix:
        head = _head(s3, loc)
        if head is not None:
            version = str(head.get("VersionId") or "")
            obj = S3Object(loc.key, etag_of(head.get("ETag")), int(head["ContentLength"]),
                           "" if version == "null" else version, iso_time(head.get("LastModified")))
            return S3Input(loc.bucket, loc.key, "object", entry, mode, (obj,))
        below = S3Uri(loc.bucket, loc.key + "/")
        objects = _list_prefix(s3, below, shown=loc)  # also tells a missing bucket from a missing key (HEAD cannot)
        if not objects or mode == "reference":
            raise S3SourceError(f"{loc}: no such object" + (
                f" (a referenced dataset must be one object; {below} is a prefix)" if objects else
                " and no objects under it; check the URI"))
        LOG.info("%s is not an object; packing the prefix %s", loc, below)
        return S3Input(loc.bucket, below.key, "prefix", entry, mode, tuple(objects))
    objects = _list_prefix(s3, loc)
    if not objects:
        raise S3SourceError(f"{loc}: empty prefix (no objects); check the URI, or write the data first")
    return S3Input(loc.bucket, loc.key, "prefix", entry, mode, tuple(objects))


def _head(s3: Any, loc: S3Uri) -> dict[str, Any] | None:
    """HEAD an object; None when it does not exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return s3.head_object(Bucket=loc.bucket, Key=loc.key)  # type: ignore[no-any-return]
    except ClientError as e:
        if error_code(e) in _GONE:
            return None
        raise s3_error(e, str(loc), "reading the object's metadata (HEAD)") from e
    except BotoCoreError as e:
        raise s3_error(e, str(loc), "reading the object's metadata (HEAD)") from e


def _versioned(s3: Any, loc: S3Uri, shown: S3Uri) -> bool:
    from botocore.exceptions import ClientError

    try:
        status = s3.get_bucket_versioning(Bucket=loc.bucket).get("Status")
    except ClientError as e:
        if error_code(e) == "NoSuchBucket":
            raise s3_error(e, str(shown), "listing") from e
        return False  # no s3:GetBucketVersioning permission: list without versions
    return status in ("Enabled", "Suspended")


def _list_prefix(s3: Any, loc: S3Uri, shown: S3Uri | None = None) -> list[S3Object]:
    """Every current object under ``loc`` (errors name ``shown``, the URI the user gave)."""
    with translated(str(shown or loc), "listing the prefix"):
        if _versioned(s3, loc, shown or loc):
            out = []
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=loc.bucket, Prefix=loc.key):
                for v in page.get("Versions", ()):
                    if v.get("IsLatest"):  # the current version; older ones and delete markers are history
                        version = str(v.get("VersionId") or "")
                        out.append(S3Object(v["Key"], etag_of(v.get("ETag")), int(v["Size"]),
                                            "" if version == "null" else version, iso_time(v.get("LastModified"))))
            # a key whose latest entry is a delete marker has no IsLatest version: already excluded
            return sorted(out, key=lambda o: o.key)
        out = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.key):
            for o in page.get("Contents", ()):
                out.append(S3Object(o["Key"], etag_of(o.get("ETag")), int(o["Size"]), "", iso_time(o.get("LastModified"))))
        return out


def source_fingerprints(sources: Mapping[str, Any], session: Any = None) -> dict[str, str]:
    """``{entry: "<uri> <mode> <fingerprint>"}`` of each S3 source's current object versions.

    Uses the same listing a pack reads (HEAD for one object, a listing for a prefix), so a cache
    key built from it changes exactly when a pack would read different bytes.
    """
    s3 = s3_client(session)
    out: dict[str, str] = {}
    for entry, value in sorted(sources.items()):
        uri = str(getattr(value, "uri", value))
        mode = str(getattr(value, "mode", "embed"))
        out[entry] = f"{uri} {mode} {list_input(s3, uri, entry=entry, mode=mode).fingerprint()}"
    return out


def inputs_fingerprint(inputs: Sequence[S3Input], kitfile_text: str = "", options: Mapping[str, Any] | None = None) -> str:
    """One digest over every S3 input (entry, URI, mode, object versions), the Kitfile and the pack options."""
    doc = {
        "inputs": sorted([i.entry, i.uri, i.mode, i.fingerprint()] for i in inputs),
        "kitfile": hashlib.sha256(kitfile_text.encode()).hexdigest(),
        "options": {k: str(v) for k, v in sorted((options or {}).items())},
    }
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


__all__ = [
    "ANNOTATION_FINGERPRINT", "ANNOTATION_INPUTS_FINGERPRINT", "ANNOTATION_OBJECTS", "ANNOTATION_SIZE",
    "ANNOTATION_SOURCE", "MODES", "S3Input", "S3Object", "S3Source", "inputs_fingerprint", "list_input",
    "source_fingerprints",
]
