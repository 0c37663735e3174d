"""S3 sources and sinks: objects become ModelKit layers, layers go back to S3 (boto3).

Pack side (``KitOpsClient.pack(sources=...)`` calls ``s3_layer_sources``)::

    kit.pack("job/", reference="reg.example.com/team/churn:v7",
             sources={"train": "s3://ml-data/churn/2026-11-26/",            # prefix -> directory
                      "model.bin": "s3://ml-models/churn/7/model.bin"})      # key -> single file

A source maps a Kitfile entry (its ``name`` or literal ``path``) to ``s3://bucket/key`` or
``s3://bucket/prefix/``. The entry's ``path`` stays the relative path inside the ModelKit, so kit
unpacks the layer like any other. Layout of the layer's tar, identical to packing the same files
from a local directory (same Go ``archive/tar`` bytes, see tarformat.py):

* prefix ``s3://b/runs/7/`` for entry path ``data/train``: directories ``data``, ``data/train``,
  then ``data/train/<key minus prefix>`` for every object, with each object's sub-directories as
  directory entries, all in Go ``filepath.Walk`` order (bytewise per path component, depth first).
  Keys ending in ``/`` (console "folders") become empty directories.
* key ``s3://b/m/model.bin`` for entry path ``model/weights.bin``: directory ``model`` and the
  file ``model/weights.bin`` -- exactly what kit writes for a single-file ``path``. A URI without
  a trailing ``/`` that names no object but has objects under ``key/`` is read as that prefix.
* Files are mode 0644, directories 0755. Objects that fall inside another entry's path go to
  that (more specific) layer, as kit does for local files. ``.kitignore`` applies to the context
  directory only, not to S3 objects.

Objects are listed once (that listing is the ``S3Input`` lineage records), then streamed in tar
order: bodies come as ranged GETs of at most ``PART_SIZE`` with ``If-Match: <listed ETag>``, a few
parts in flight (bounded memory, no local copy). An ETag or VersionId that differs from the listing,
or an object deleted meanwhile, raises ``S3SourceError`` naming the URI; the error propagates out
of the store's ingest block, so no blob and no ModelKit is created.

Datasets may instead stay in S3 (kit's remote datasets): ``S3Source(uri, mode="reference")`` writes
``remotePath``/``remoteHash`` (the ETag) into the Kitfile and no layer; ``download_remote_datasets``
fetches and verifies them at unpack time (kit's ``--include-remote``).

Credentials and endpoint come from boto3's chain (env, profile, instance role,
``AWS_ENDPOINT_URL_S3``) or a ``boto3.Session`` passed in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import posixpath
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .compression import Sink, decompressing_reader
from .digests import CHUNK, VerifyingReader
from .errors import PackError, S3SourceError, UnpackError, UnsafeLayerError

if TYPE_CHECKING:
    from .api import KitOpsClient
    from .kitfile import Kitfile, LayerEntry
    from .manifest import PlannedLayer
    from .modelkit import ModelKitDescriptor
    from .pack import LayerSource

LOG = logging.getLogger("kitops_flows")

#: Layer annotations (values stay small: the full object list is in the lineage record).
ANNOTATION_SOURCE = "ml.kitops-flows.s3.source"
ANNOTATION_OBJECTS = "ml.kitops-flows.s3.objects"
ANNOTATION_SIZE = "ml.kitops-flows.s3.size"
ANNOTATION_FINGERPRINT = "ml.kitops-flows.s3.fingerprint"
#: Manifest annotation written by ``pack_if_changed``: one digest over every S3 input + the Kitfile.
ANNOTATION_INPUTS_FINGERPRINT = "ml.kitops-flows.s3.inputs-fingerprint"

PART_SIZE = 8 << 20  # ranged GET size; also the multipart chunk size for uploads
PARTS_IN_FLIGHT = 6  # read-ahead window in bytes: PARTS_IN_FLIGHT * PART_SIZE bounds memory
MAX_REQUESTS_IN_FLIGHT = 64  # many small objects: keep the workers busy despite per-request latency
WORKERS = 8
MODES = ("embed", "reference")
_GONE = ("NoSuchKey", "404", "NotFound")
_DENIED = ("AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch")
_CHANGED = ("PreconditionFailed", "412")


# -- value types ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class S3Uri:
    """``s3://bucket/key``; a key that is empty or ends in ``/`` is a prefix.

    >>> S3Uri.parse("s3://ml-data/churn/")
    S3Uri(bucket='ml-data', key='churn/')
    """

    bucket: str
    key: str

    @classmethod
    def parse(cls, text: str) -> S3Uri:
        if not isinstance(text, str) or not text.startswith("s3://"):
            raise S3SourceError(f"{text!r} is not an S3 URI: use s3://bucket/key or s3://bucket/prefix/")
        bucket, _, key = text[5:].partition("/")
        if len(bucket) < 3 or "?" in text or "#" in text:
            raise S3SourceError(f"{text!r} is not a valid S3 URI: expected s3://bucket/key (no query or fragment)")
        return cls(bucket, key)

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    def child(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def __str__(self) -> str:
        return self.child(self.key)


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


@dataclass(frozen=True)
class S3UnpackResult:
    """What ``unpack_to_s3`` did: destination prefix, layers (digests), every key of the ModelKit there now,
    and by key what was uploaded, replaced, skipped (same bytes), kept (``existing="skip"``) or deleted."""

    uri: str
    layers: tuple[str, ...]
    keys: tuple[str, ...]
    total_size: int
    uploaded: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    marker: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "layers": list(self.layers), "object_count": len(self.keys),
                "total_size": self.total_size, "keys": list(self.keys), "uploaded": len(self.uploaded),
                "replaced": len(self.replaced), "skipped": len(self.skipped), "kept": len(self.kept),
                "deleted": len(self.deleted), "marker": self.marker}


# -- client and errors ------------------------------------------------------------------------------------

def s3_client(session: Any = None) -> Any:
    """An S3 client from ``session`` (a ``boto3.Session`` or anything with ``.client("s3")``), else boto3's chain.

    boto3 reads ``AWS_ENDPOINT_URL_S3`` itself, so S3-compatible stores need no code.
    """
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=WORKERS + 4)
    if session is None:
        session = boto3.session.Session()
    try:
        return session.client("s3", config=config)
    except TypeError:  # a test double that takes no config
        return session.client("s3")


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code or str(status or "")
    return ""


def _s3_error(exc: BaseException, uri: str, action: str) -> S3SourceError:
    """Translate a botocore error into one that names the URI and the likely fix."""
    code = _error_code(exc)
    if code == "NoSuchBucket":
        return S3SourceError(f"{uri}: bucket {S3Uri.parse(uri).bucket} does not exist (while {action})")
    if code in _DENIED:
        return S3SourceError(
            f"{uri}: access denied while {action} ({code}); check the credentials boto3 found "
            "(env, profile, role or the session passed in) and the bucket policy"
        )
    if code in _CHANGED:
        return S3SourceError(f"{uri}: object changed while {action} (its ETag no longer matches the listing); "
                             "nothing was stored: retry once the writer has finished")
    if code in _GONE:
        return S3SourceError(f"{uri}: object not found while {action}")
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return S3SourceError(f"{uri}: no AWS credentials found while {action}; set AWS_ACCESS_KEY_ID/"
                             "AWS_SECRET_ACCESS_KEY, a profile, or pass a boto3 session")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return S3SourceError(f"{uri}: cannot reach the S3 endpoint while {action} ({exc}); "
                             "check AWS_ENDPOINT_URL_S3 / network")
    return S3SourceError(f"{uri}: {action} failed: {exc}")


@contextlib.contextmanager
def _translated(uri: str, action: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as e:
        raise _s3_error(e, uri, action) from e


def _etag(value: str | None) -> str:
    return (value or "").strip('"')


# -- listing ------------------------------------------------------------------------------------------------

def list_input(client: Any, uri: str | S3Uri, *, entry: str = "", mode: str = "embed") -> S3Input:
    """List what ``uri`` names now: one object (HEAD) or every object under a prefix.

    Versioned buckets are listed with ``ListObjectVersions`` so each object's VersionId is known
    without a HEAD per object. Raises S3SourceError for a missing bucket, no access, or nothing there.
    """
    loc = S3Uri.parse(uri) if isinstance(uri, str) else uri
    if not loc.is_prefix:
        head = _head(client, loc)
        if head is not None:
            version = str(head.get("VersionId") or "")
            obj = S3Object(loc.key, _etag(head.get("ETag")), int(head["ContentLength"]),
                           "" if version == "null" else version, _iso(head.get("LastModified")))
            return S3Input(loc.bucket, loc.key, "object", entry, mode, (obj,))
        below = S3Uri(loc.bucket, loc.key + "/")
        objects = _list_prefix(client, below, shown=loc)  # also tells a missing bucket from a missing key (HEAD cannot)
        if not objects or mode == "reference":
            raise S3SourceError(f"{loc}: no such object" + (
                f" (a referenced dataset must be one object; {below} is a prefix)" if objects else
                " and no objects under it; check the URI"))
        LOG.info("%s is not an object; packing the prefix %s", loc, below)
        return S3Input(loc.bucket, below.key, "prefix", entry, mode, tuple(objects))
    objects = _list_prefix(client, loc)
    if not objects:
        raise S3SourceError(f"{loc}: empty prefix (no objects); check the URI, or write the data first")
    return S3Input(loc.bucket, loc.key, "prefix", entry, mode, tuple(objects))


def _head(client: Any, loc: S3Uri) -> dict[str, Any] | None:
    """HEAD an object; None when it does not exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return client.head_object(Bucket=loc.bucket, Key=loc.key)  # type: ignore[no-any-return]
    except ClientError as e:
        if _error_code(e) in _GONE:
            return None
        raise _s3_error(e, str(loc), "reading the object's metadata (HEAD)") from e
    except BotoCoreError as e:
        raise _s3_error(e, str(loc), "reading the object's metadata (HEAD)") from e


def _versioned(client: Any, loc: S3Uri, shown: S3Uri) -> bool:
    from botocore.exceptions import ClientError

    try:
        status = client.get_bucket_versioning(Bucket=loc.bucket).get("Status")
    except ClientError as e:
        if _error_code(e) == "NoSuchBucket":
            raise _s3_error(e, str(shown), "listing") from e
        return False  # no s3:GetBucketVersioning permission: list without versions
    return status in ("Enabled", "Suspended")


def _list_prefix(client: Any, loc: S3Uri, shown: S3Uri | None = None) -> list[S3Object]:
    """Every current object under ``loc`` (errors name ``shown``, the URI the user gave)."""
    with _translated(str(shown or loc), "listing the prefix"):
        if _versioned(client, loc, shown or loc):
            out = []
            for page in client.get_paginator("list_object_versions").paginate(Bucket=loc.bucket, Prefix=loc.key):
                for v in page.get("Versions", ()):
                    if v.get("IsLatest"):  # the current version; older ones and delete markers are history
                        version = str(v.get("VersionId") or "")
                        out.append(S3Object(v["Key"], _etag(v.get("ETag")), int(v["Size"]),
                                            "" if version == "null" else version, _iso(v.get("LastModified"))))
            # a key whose latest entry is a delete marker has no IsLatest version: already excluded
            return sorted(out, key=lambda o: o.key)
        out = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.key):
            for o in page.get("Contents", ()):
                out.append(S3Object(o["Key"], _etag(o.get("ETag")), int(o["Size"]), "", _iso(o.get("LastModified"))))
        return out


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


# -- planning the tar --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TarMember:
    """One entry of an S3-sourced layer: a directory (``obj is None``) or an object's file."""

    name: str
    obj: S3Object | None = None


def plan_members(inp: S3Input, entry_path: str, other_layer_paths: Sequence[str] = ()) -> list[TarMember]:
    """The tar entries of ``inp`` under ``entry_path``, in Go ``filepath.Walk`` order.

    S3 lists keys in plain byte order (``a-b``, ``a.txt``, ``a/x``); Walk visits a directory's
    children right after it (``a``, ``a/x``, ``a-b``, ``a.txt``), i.e. the order of the path
    *components*. Files inside another (more specific) layer's path are left to that layer.
    """
    from .kitfile import clean_path

    base = clean_path(entry_path)
    if base.startswith("/") or base == ".." or base.startswith("../"):
        raise PackError(f"entry path {entry_path!r} for {inp.uri} must be a relative path inside the ModelKit")
    base_parts = () if base == "." else tuple(base.split("/"))
    others = [tuple(p.split("/")) for p in map(clean_path, other_layer_paths) if p != "."]
    others = [o for o in others if base_parts[: len(o)] != o]  # an ancestor layer does not claim our files

    files: dict[tuple[str, ...], S3Object] = {}
    top = len(base_parts) if inp.kind == "prefix" else len(base_parts) - 1  # a single object is the file itself
    dirs: set[tuple[str, ...]] = {base_parts[:i] for i in range(1, top + 1)}
    for obj in inp.objects:
        if inp.kind == "object":
            if not base_parts:
                raise PackError(f"{inp.uri} is a single object; map it to an entry whose path is a file name, not '.'")
            rel_parts: tuple[str, ...] = ()
        else:
            rel = obj.key[len(inp.key):]
            if rel == "":
                continue  # the prefix's own "folder" marker
            is_dir = rel.endswith("/")
            rel_parts = tuple(rel.rstrip("/").split("/")) if is_dir else tuple(rel.split("/"))
            if any(p in ("", ".", "..") or "\0" in p for p in rel_parts):
                raise S3SourceError(
                    f"s3://{inp.bucket}/{obj.key}: key has an empty, "
                    "'.' or '..' path component and cannot become a file name in a layer; rename the object"
                )
            if is_dir:
                parts = base_parts + rel_parts
                if not _claimed(parts, others):
                    dirs.update(parts[:i] for i in range(len(base_parts) + 1, len(parts) + 1))
                continue
        parts = base_parts + rel_parts
        if _claimed(parts, others):
            continue
        files[parts] = obj
        dirs.update(parts[:i] for i in range(len(base_parts) + 1, len(parts)))
    for parts in files.keys() & dirs:
        raise S3SourceError(f"{inp.uri}: {'/'.join(parts)} is both an object and a prefix of other objects; "
                            "a layer cannot hold a file and a directory with the same name")
    members = [TarMember("/".join(d)) for d in dirs if d]
    members += [TarMember("/".join(p), o) for p, o in files.items()]
    return sorted(members, key=lambda m: m.name.split("/"))


def _claimed(parts: tuple[str, ...], others: list[tuple[str, ...]]) -> bool:
    return any(parts[: len(o)] == o for o in others)


# -- reading objects ---------------------------------------------------------------------------------------

@dataclass
class _Part:
    obj: S3Object
    start: int
    end: int  # exclusive
    whole: bool


class ObjectStreamer:
    """Yields readers over objects in the given order, reading ahead a bounded window of parts.

    The window holds at most ``window * part_size`` bytes (and ``MAX_REQUESTS_IN_FLIGHT`` requests),
    so memory stays flat whether the prefix holds one 50 GB object or 100,000 small ones.

    Every GET carries ``If-Match`` with the listed ETag and its answer is checked against the listed
    ETag, VersionId and size, so a layer is never built from an object that changed after listing.
    """

    def __init__(self, client: Any, bucket: str, objects: Sequence[S3Object], *,
                 part_size: int = PART_SIZE, window: int = PARTS_IN_FLIGHT, workers: int = WORKERS) -> None:
        self._client = client
        self._bucket = bucket
        self._objects = objects
        self._part_size = part_size
        self._window = max(1, window)
        self._workers = workers

    def _parts(self) -> Iterator[_Part]:
        for obj in self._objects:
            if obj.size <= self._part_size:
                yield _Part(obj, 0, obj.size, True)
                continue
            for start in range(0, obj.size, self._part_size):
                yield _Part(obj, start, min(obj.size, start + self._part_size), False)

    def _fetch(self, part: _Part) -> bytes:
        obj = part.obj
        uri = f"s3://{self._bucket}/{obj.key}"
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Key": obj.key, "IfMatch": f'"{obj.etag}"'}
        if not part.whole:
            kwargs["Range"] = f"bytes={part.start}-{part.end - 1}"
        with _translated(uri, "reading the object"):
            resp = self._client.get_object(**kwargs)
            body = resp["Body"]
            try:
                data = body.read()
            finally:
                body.close()
        version = str(resp.get("VersionId") or "")
        if _etag(resp.get("ETag")) != obj.etag or (obj.version_id and version and version != obj.version_id):
            raise S3SourceError(
                f"{uri}: object changed while reading (listed ETag {obj.etag} version {obj.version_id or '-'}, "
                f"now {_etag(resp.get('ETag'))} version {version or '-'}); nothing was stored: retry the pack"
            )
        if len(data) != part.end - part.start:
            raise S3SourceError(f"{uri}: expected {part.end - part.start} bytes at offset {part.start}, "
                                f"got {len(data)} (object changed or truncated response)")
        return data

    def readers(self) -> Iterator[tuple[S3Object, _PartReader]]:
        """(object, reader) in order; read each reader to its end before taking the next."""
        pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="kitops-s3")
        pending: deque[tuple[_Part, Future[bytes]]] = deque()
        parts = self._parts()
        try:
            def refill() -> None:
                while len(pending) < MAX_REQUESTS_IN_FLIGHT and (
                    not pending or sum(p.end - p.start for p, _ in pending) < self._window * self._part_size
                ):
                    part = next(parts, None)
                    if part is None:
                        return
                    pending.append((part, pool.submit(self._fetch, part)))

            refill()
            for obj in self._objects:
                reader = _PartReader(obj, pending, refill)
                yield obj, reader
                reader.finish()
        finally:
            for _, fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


class _PartReader:
    """File-like view of one object's parts as they arrive from the read-ahead window."""

    def __init__(self, obj: S3Object, pending: deque[tuple[_Part, Future[bytes]]], refill: Callable[[], None]) -> None:
        self._obj = obj
        self._pending = pending
        self._refill = refill
        self._buf = memoryview(b"")
        self._remaining = obj.size

    def _next_part(self) -> None:
        part, fut = self._pending.popleft()
        assert part.obj is self._obj, "parts consumed out of order"
        data = fut.result()
        self._refill()
        self._buf = memoryview(data)

    def finish(self) -> None:
        """Called before the next object: an empty object's (only) GET is still checked here."""
        if self._remaining > 0:
            raise S3SourceError(f"s3://…/{self._obj.key}: reader closed with {self._remaining} bytes unread")
        while self._pending and self._pending[0][0].obj is self._obj:
            self._next_part()

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._remaining
        if not self._buf and self._remaining > 0:
            self._next_part()
        out = bytes(self._buf[:n])
        self._buf = self._buf[len(out):]
        self._remaining -= len(out)
        return out

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


# -- the pack hook -----------------------------------------------------------------------------------------

def s3_layer_sources(
    kf: Kitfile,
    sources: Mapping[str, str | S3Source],
    *,
    session: Any = None,
    layer_format: str = "tar",
    client: Any = None,
) -> tuple[dict[int, LayerSource], list[S3Input]]:
    """Resolve ``sources`` against ``kf``: LayerSources by index in ``kf.layer_entries()``, and the S3Inputs.

    Everything is listed (and ``reference`` datasets HEAD-checked) here, before any layer is written,
    so a missing bucket, denied access or empty prefix fails the pack before it starts. Datasets in
    ``reference`` mode get ``remotePath``/``remoteHash`` set in ``kf`` (they leave
    ``layer_entries()``), which is why indices are computed afterwards.

    >>> srcs, inputs = s3_layer_sources(kf, {"train": "s3://ml-data/churn/"})   # doctest: +SKIP
    """
    from .kitfile import clean_path

    client = client if client is not None else s3_client(session)
    entries = kf.layer_entries()
    chosen: list[tuple[LayerEntry, S3Input]] = []
    for label, value in sources.items():
        spec = value if isinstance(value, S3Source) else S3Source(str(value))
        entry = _find_entry(entries, label, spec.uri)
        if spec.mode == "reference" and entry.kind != "dataset":
            raise PackError(f"source {label!r} -> {spec.uri}: mode 'reference' is only for datasets "
                            f"(kit's remotePath), not {entry.kind} entries")
        if entry.kind == "mcpb":
            raise PackError(f"source {label!r} -> {spec.uri}: MCP bundles cannot come from S3; copy the .mcpb locally")
        inp = spec.listing if spec.listing is not None else list_input(client, spec.uri, entry=label, mode=spec.mode)
        if spec.mode == "reference":
            if inp.kind != "object":
                raise PackError(f"{spec.uri}: a referenced dataset (remotePath) must be a single object, not a prefix; "
                                "use mode 'embed' for prefixes")
            entry.entry.remote_path = inp.uri
            entry.entry.remote_hash = inp.objects[0].etag
        chosen.append((entry, inp))
    _check_remote_datasets(kf, client, skip={inp.uri for _, inp in chosen if inp.mode == "reference"})

    after = kf.layer_entries()
    index = {id(e.entry): i for i, e in enumerate(after)}
    all_paths = [clean_path(e.path) for e in after]
    layer_sources: dict[int, LayerSource] = {}
    for entry, inp in chosen:
        if inp.mode == "reference":
            continue
        i = index[id(entry.entry)]
        others = all_paths[:i] + all_paths[i + 1:]
        layer_sources[i] = _layer_source(client, inp, others, layer_format)
    return layer_sources, [inp for _, inp in chosen]


def _find_entry(entries: list[LayerEntry], label: str, uri: str) -> LayerEntry:
    matches = [e for e in entries if label in (e.name, e.path) and (e.name or e.path)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(sorted({e.name or e.path for e in entries})) or "(none)"
    if not matches:
        raise PackError(f"source {label!r} -> {uri}: no Kitfile entry has that name or path (entries: {known})")
    raise PackError(f"source {label!r} -> {uri}: several Kitfile entries match; use a unique name or path")


def _layer_source(client: Any, inp: S3Input, other_paths: list[str], layer_format: str) -> LayerSource:
    def write(entry: LayerEntry, out: Sink) -> Mapping[str, str]:
        if layer_format == "raw":
            return _write_raw(client, inp, entry, out)
        write_s3_tar(client, inp, entry.path, out, other_paths)
        return inp.annotations()

    return write


def write_s3_tar(client: Any, inp: S3Input, entry_path: str, out: Sink, other_layer_paths: Sequence[str] = ()) -> int:
    """Stream ``inp``'s objects as the tar of an entry at ``entry_path`` into ``out``; returns the member count."""
    from .tarformat import GoTarWriter

    members = plan_members(inp, entry_path, other_layer_paths)
    files = [m.obj for m in members if m.obj is not None]
    writer = GoTarWriter(out)
    streamer = ObjectStreamer(client, inp.bucket, files)
    readers = streamer.readers()
    try:
        for m in members:
            if m.obj is None:
                writer.add_dir(m.name, 0o755)
                continue
            obj, reader = next(readers)
            writer.add_file(m.name, 0o644, obj.size, reader)
        writer.close()
    finally:
        readers.close()  # stops read-ahead and joins the worker threads, also on error
    return len(members)


def _write_raw(client: Any, inp: S3Input, entry: LayerEntry, out: Sink) -> dict[str, str]:
    from .manifest import ANNOTATION_FILE_METADATA

    if inp.kind != "object":
        raise PackError(f"{inp.uri}: raw layers hold exactly one file; a prefix needs layer_format='tar'")
    obj = inp.objects[0]
    readers = ObjectStreamer(client, inp.bucket, [obj]).readers()
    try:
        _, reader = next(readers)
        while chunk := reader.read(CHUNK):
            out.write(chunk)
    finally:
        readers.close()
    meta = {"name": posixpath.basename(entry.path.rstrip("/")), "mode": 0o644, "uid": 0, "gid": 0,
            "size": obj.size, "mtime": obj.last_modified, "typeflag": 48}
    return {**inp.annotations(), ANNOTATION_FILE_METADATA: json.dumps(meta, separators=(",", ":"))}


# -- kit's remote datasets ---------------------------------------------------------------------------------

def _check_remote_datasets(kf: Kitfile, client: Any, skip: Collection[str] = ()) -> None:
    """kit checks at pack time that every ``remotePath: s3://...`` exists; we also check ``remoteHash``."""
    for ds in kf.datasets:
        if not ds.remote_path.startswith("s3://") or ds.remote_path in skip:
            continue
        loc = S3Uri.parse(ds.remote_path)
        if loc.is_prefix:
            raise PackError(f"dataset {ds.name or ds.path}: remotePath {ds.remote_path} must name one object, not a prefix")
        with _translated(ds.remote_path, "checking the remote dataset"):
            head = client.head_object(Bucket=loc.bucket, Key=loc.key)
        etag = _etag(head.get("ETag"))
        if ds.remote_hash and _etag(ds.remote_hash) != etag:
            raise S3SourceError(f"{ds.remote_path}: remoteHash {ds.remote_hash} in the Kitfile does not match the "
                                f"object's ETag {etag}; update remoteHash or restore the object")


def check_remote_datasets(kf: Kitfile, *, session: Any = None, client: Any = None) -> None:
    """Pack-time check of a Kitfile's S3 ``remotePath`` datasets (exists, ETag == ``remoteHash``)."""
    _check_remote_datasets(kf, client if client is not None else s3_client(session))


def download_remote_datasets(
    kitfile: Kitfile, dest: Path | str, session: Any = None, *, overwrite: bool = False, client: Any = None,
) -> list[Path]:
    """Download every ``remotePath: s3://...`` dataset of ``kitfile`` to ``dest/<path>``, verified.

    Each object is fetched with ``If-Match: <remoteHash>`` (a changed object fails with S3SourceError
    instead of being downloaded), its size is checked and, when the ETag is a plain MD5 (single-part,
    not KMS-encrypted), its content too. Bytes go to a temp file next to the target, renamed into
    place only when verified. ModelKit-reference remote datasets are not handled here.

    >>> download_remote_datasets(kit.info("reg.example.com/team/churn:v7"), "/data")   # doctest: +SKIP
    """
    from .kitfile import clean_path

    client = client if client is not None else s3_client(session)
    root = Path(dest).expanduser().absolute()
    written = []
    for ds in kitfile.datasets:
        if not ds.remote_path.startswith("s3://"):
            continue
        loc = S3Uri.parse(ds.remote_path)
        if loc.is_prefix:
            raise S3SourceError(f"{ds.remote_path}: remote datasets must name one object")
        rel = clean_path(ds.path or posixpath.basename(loc.key))
        if rel in (".", "..") or rel.startswith(("/", "../")):
            raise UnsafeLayerError(f"dataset {ds.name or rel}: path {ds.path!r} for {ds.remote_path} leaves {root}")
        target = root / rel
        if target.exists() and not overwrite:
            raise S3SourceError(f"{target} already exists (remote dataset {ds.remote_path}); pass overwrite=True")
        target.parent.mkdir(parents=True, exist_ok=True)
        _download_verified(client, loc, _etag(ds.remote_hash), target)
        written.append(target)
        LOG.info("Downloaded remote dataset %s to %s", ds.remote_path, target)
    return written


def _download_verified(client: Any, loc: S3Uri, etag: str, target: Path) -> None:
    kwargs: dict[str, Any] = {"Bucket": loc.bucket, "Key": loc.key}
    if etag:
        kwargs["IfMatch"] = f'"{etag}"'
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, _translated(str(loc), "downloading the remote dataset"):
            resp = client.get_object(**kwargs)
            got = _etag(resp.get("ETag"))
            if etag and got != etag:
                raise S3SourceError(f"{loc}: ETag {got} does not match remoteHash {etag}; the object changed since packing")
            md5 = hashlib.md5(usedforsecurity=False)
            size = 0
            for chunk in resp["Body"].iter_chunks(CHUNK):
                md5.update(chunk)
                size += len(chunk)
                f.write(chunk)
        if size != int(resp["ContentLength"]):
            raise S3SourceError(f"{loc}: downloaded {size} bytes, expected {resp['ContentLength']}")
        plain_md5 = len(got) == 32 and "-" not in got and resp.get("ServerSideEncryption") != "aws:kms"
        if plain_md5 and md5.hexdigest() != got:
            raise S3SourceError(f"{loc}: content MD5 {md5.hexdigest()} does not match ETag {got} (corrupted download)")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


# -- pack_if_changed -----------------------------------------------------------------------------------------

def source_fingerprints(sources: Mapping[str, Any], session: Any = None) -> dict[str, str]:
    """``{entry: "<uri> <mode> <fingerprint>"}`` of each S3 source's current object versions.

    Uses the same listing a pack reads (HEAD for one object, a listing for a prefix), so a cache
    key built from it changes exactly when a pack would read different bytes.
    """
    client = s3_client(session)
    out: dict[str, str] = {}
    for entry, value in sorted(sources.items()):
        uri = str(getattr(value, "uri", value))
        mode = str(getattr(value, "mode", "embed"))
        out[entry] = f"{uri} {mode} {list_input(client, uri, entry=entry, mode=mode).fingerprint()}"
    return out


def inputs_fingerprint(inputs: Sequence[S3Input], kitfile_text: str = "", options: Mapping[str, Any] | None = None) -> str:
    """One digest over every S3 input (entry, URI, mode, object versions), the Kitfile and the pack options."""
    doc = {
        "inputs": sorted([i.entry, i.uri, i.mode, i.fingerprint()] for i in inputs),
        "kitfile": hashlib.sha256(kitfile_text.encode()).hexdigest(),
        "options": {k: str(v) for k, v in sorted((options or {}).items())},
    }
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def pack_if_changed(
    client: KitOpsClient,
    context_dir: Path | str,
    *,
    reference: str,
    sources: Mapping[str, str | S3Source],
    **pack_kwargs: Any,
) -> tuple[ModelKitDescriptor, bool]:
    """Pack (and push, with ``push=True``) unless the inputs are unchanged: ``idempotent.pack_if_changed``.

    >>> desc, packed = pack_if_changed(kit, "job/", reference="reg.example.com/team/data:nightly",
    ...                                sources={"train": "s3://ml-data/churn/"}, push=True)  # doctest: +SKIP
    """
    from .idempotent import pack_if_changed as pack_unless_unchanged

    return pack_unless_unchanged(client, context_dir, reference=reference, sources=sources, **pack_kwargs)


# -- unpack_to_s3 ---------------------------------------------------------------------------------------------

def unpack_to_s3(
    client: KitOpsClient,
    reference: str,
    filters: Sequence[str] | str | None,
    dest: str,
    *,
    session: Any = None,
    existing: str = "error",
    delete: bool = False,
) -> S3UnpackResult:
    """Extract the layers ``filters`` select straight into ``dest`` (an ``s3://bucket/prefix/``).

    Each file lands at ``<prefix><path in the layer>``, the same names ``unpack`` would write under
    a directory; directories are implicit in S3 and not written.

    Verification before visibility: every selected blob is first read once locally, hashing it
    (digest, and diffId when compressed), checking every member name and type, and hashing each
    file (sha256, MD5). Only then is the prefix listed and anything written, by an
    ``s3_write.S3PrefixWriter``: objects already holding the same bytes are skipped (sync);
    different ones are refused (``existing="error"``, the default), kept (``"skip"``) or replaced
    only after every new object is uploaded and verified (``"overwrite"``); ``delete=True`` then
    removes keys the ModelKit does not have. A completion marker ``<prefix>.kitops-flows/complete.json``
    is written last. If anything fails, every object that existed before is as it was.

    >>> unpack_to_s3(kit, "reg.example.com/team/churn@sha256:…", ["datasets:train"], "s3://serve/churn/")  # doctest: +SKIP
    """
    from .s3_write import PlannedFile, S3PrefixWriter, hash_file

    loc = S3Uri.parse(dest)
    if not loc.is_prefix:
        raise S3SourceError(f"{dest}: the destination must be a prefix ending in '/' (e.g. s3://bucket/path/)")
    planned, manifest_digest = _selected_layers(client, reference, filters)
    s3 = s3_client(session if session is not None else client.s3_session)
    files: list[PlannedFile] = []

    def plan(name: str, reader: Any, _size: int) -> None:
        files.append(PlannedFile(name, *hash_file(reader)))

    for p in planned:  # pass 1: verify and hash, nothing written anywhere
        _walk_layer(client, p, reference, plan)
    writer = S3PrefixWriter(s3, loc, files, existing=existing, delete=delete)
    _check_bucket(s3, loc)
    with _translated(str(loc), "listing the destination"):
        writer.prepare()
    total = 0
    try:
        for p in planned:
            total += _walk_layer(client, p, reference, writer.write)
        outcome = writer.commit({"reference": reference, "digest": manifest_digest,
                                 "layers": [p.layer.digest for p in planned]})
    except BaseException as e:
        from botocore.exceptions import BotoCoreError, ClientError

        problems = writer.rollback()  # every object that existed before is as it was (else: problems say where)
        err = _s3_error(e, str(loc), "writing") if isinstance(e, (ClientError, BotoCoreError)) else e
        for problem in problems:
            err.add_note(problem)
        if err is e:
            raise
        raise err from e
    LOG.info("Unpacked %d file(s) of %s to %s (%d uploaded, %d replaced, %d already there, %d deleted)",
             len(outcome.keys), reference, loc, len(outcome.uploaded), len(outcome.replaced),
             len(outcome.skipped), len(outcome.deleted))
    return S3UnpackResult(str(loc), tuple(p.layer.digest for p in planned), tuple(outcome.keys), total,
                          uploaded=tuple(outcome.uploaded), replaced=tuple(outcome.replaced),
                          skipped=tuple(outcome.skipped), kept=tuple(outcome.kept), deleted=tuple(outcome.deleted),
                          marker=outcome.marker)


def _check_bucket(s3: Any, loc: S3Uri) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3.head_bucket(Bucket=loc.bucket)
    except ClientError as e:
        if _error_code(e) in ("404", "NoSuchBucket", "NotFound"):
            raise S3SourceError(f"{loc}: bucket {loc.bucket} does not exist; create it first") from e
        raise _s3_error(e, str(loc), "checking the destination bucket") from e
    except BotoCoreError as e:
        raise _s3_error(e, str(loc), "checking the destination bucket") from e


def _selected_layers(client: KitOpsClient, reference: str,
                     filters: Sequence[str] | str | None) -> tuple[list[PlannedLayer], str]:
    """Resolve the ModelKit (local store, else registry) and make sure the selected blobs are in the store."""
    from .api import _parse_filter_list

    loaded, planned = client.source.selected_layers(reference, _parse_filter_list(filters))
    return planned, loaded.manifest_desc.digest


FileSink = Callable[[str, Any, int], None]


def _walk_layer(client: KitOpsClient, p: PlannedLayer, reference: str, sink: FileSink | None) -> int:
    """Read one layer blob, verified; hand each regular file to ``sink`` (None = verify only). Returns bytes."""
    from .kitfile import clean_path
    from .manifest import ANNOTATION_FILEPATH

    label = f"{p.entry.kind} layer {p.layer.digest} ({p.entry.path!r}) of {reference}"
    total = 0
    with client.store.open_blob(p.layer.digest, p.layer.size, what=label) as blob:
        stream = decompressing_reader(blob, p.media.compression)
        info = p.entry.entry.layer_info
        if p.media.compression != "none" and info is not None and info.diff_id:
            stream = VerifyingReader(stream, info.diff_id, None, f"uncompressed {label}")  # type: ignore[assignment]
        if p.media.format == "raw":
            name = _safe_name((p.layer.annotations or {}).get(ANNOTATION_FILEPATH) or clean_path(p.entry.path), label)
            reader = _Bounded(stream, None)
            if sink is not None:
                sink(name, reader, -1)
            while reader.read(CHUNK):
                pass
            total += reader.count
        else:
            try:
                total += _walk_tar(stream, label, sink)
            except tarfile.TarError as e:
                raise UnpackError(f"{label}: not a readable tar ({e})") from None
        if isinstance(stream, VerifyingReader):
            stream.verify()
        blob.verify()
    return total


def _walk_tar(stream: Any, label: str, sink: FileSink | None) -> int:
    total = 0
    with tarfile.open(fileobj=stream, mode="r|") as tf:
        for member in tf:
            name = _safe_name(member.name, label)
            if member.isdir():
                continue  # S3 has no directories
            if not member.isreg():
                raise UnsafeLayerError(f"{label}: entry {member.name!r} is not a regular file or directory")
            reader = _Bounded(tf.extractfile(member), member.size)
            if sink is not None:
                sink(name, reader, member.size)
            while reader.read(CHUNK):  # drain what the sink did not read, so the stream stays in step
                pass
            total += member.size
    return total


def _safe_name(name: str, label: str) -> str:
    """A layer member name as an S3 key suffix: relative, no ``..``, no empty or ``.`` components."""
    parts = name.split("/")
    while parts and parts[-1] == "":
        parts.pop()  # directory names may end in '/'
    if name.startswith("/") or "\\" in name or not parts or any(p in ("", ".", "..") for p in parts) or "\0" in name:
        raise UnsafeLayerError(f"{label}: illegal file path {name!r} (absolute, '..' or empty components)")
    return "/".join(parts)


class _Bounded:
    """Read-only, non-seekable view of a tar member (s3transfer then streams it in bounded chunks)."""

    def __init__(self, raw: Any, size: int | None) -> None:
        self._raw = raw
        self._left = size
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = CHUNK
        if self._left is not None:
            n = min(n, self._left)
            if n == 0:
                return b""
        data = self._raw.read(n)
        self.count += len(data)
        if self._left is not None:
            self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


__all__ = [
    "ANNOTATION_FINGERPRINT", "ANNOTATION_INPUTS_FINGERPRINT", "ANNOTATION_OBJECTS", "ANNOTATION_SIZE",
    "ANNOTATION_SOURCE", "ObjectStreamer", "S3Input", "S3Object", "S3Source", "S3UnpackResult", "S3Uri",
    "TarMember", "check_remote_datasets", "download_remote_datasets", "inputs_fingerprint", "list_input",
    "pack_if_changed", "plan_members", "s3_client", "s3_layer_sources", "unpack_to_s3", "write_s3_tar",
]
