"""Safe writes of a ModelKit's files into an S3 prefix: a failed call loses nothing that was there.

``unpack_to_s3`` drives one ``S3PrefixWriter`` per call::

    writer = S3PrefixWriter(s3, S3Uri.parse("s3://serve/churn/"), files, existing="overwrite", delete=True)
    writer.prepare()                 # list the prefix, classify every file, refuse conflicts
    try:
        for name, reader, size in verified_files():   # the layers, read again and verified
            writer.write(name, reader, size)
        result = writer.commit({"reference": ..., "digest": ...})
    except BaseException:
        writer.rollback()
        raise

``files`` (name, size, sha256, md5 of every file) comes from the verification pass, so the whole
plan is known before the first byte is written. Against what the prefix holds, each file is

* **new** (no such key): uploaded straight to its key; a failure deletes it again (it did not exist);
* **same** (same size, and a plain-MD5 ETag equal to its MD5 or our recorded sha256 in the object's
  metadata ``x-amz-meta-kitops-sha256``): not uploaded at all, as ``aws s3 sync`` skips it;
* **different**: with ``existing="error"`` (default) the call is refused before anything is written,
  naming the keys; ``"skip"`` keeps the existing object; ``"overwrite"`` uploads the new bytes to a
  staging key and replaces the object only once every upload is done and verified.

Commit order, each step undone by ``rollback`` if a later one fails:

1. back up each object about to be replaced: on a versioned bucket S3 keeps the previous version
   (restored by deleting the version we wrote); otherwise a server-side copy goes to
   ``<prefix>.kitops-flows/staging/<run>/old/``, and a ``journal.json`` beside it lists the backups,
   so even a SIGKILLed run leaves every previous object recoverable;
2. place the staged objects (server-side copy);
3. write the completion marker ``<prefix>.kitops-flows/complete.json`` (reference, manifest digest,
   layers, every key with size and sha256) -- last, so a marker means a complete, verified copy. The
   previous marker is removed before the first write and put back by a rollback;
4. with ``delete=True``, delete the keys under the prefix this ModelKit does not have (only now,
   after success; a failure here is reported, and a re-run finishes it);
5. remove the staging area (best effort).

Every upload carries its sha256 as metadata; single PUTs send ``Content-MD5`` and multipart uploads
are checked with a HEAD, and the bytes read are hashed and compared with the verification pass.

Round trips overlap (``parallel.BoundedPool``, ``WORKERS`` threads): a small file is read and
verified in the caller's thread (the layer is one tar stream), then its PUT goes to a worker, with at
most ``UPLOAD_BYTES_IN_FLIGHT`` read and not yet sent; a large file uploads in the caller's thread
(multipart, concurrent parts) while the small ones in flight go on. The backup and placing copies of
the commit run on the same workers, one step after the other. The first failure stops new work;
``commit`` raises it (naming the key) before placing anything, and ``rollback`` first waits for every
call in flight, so no object appears after it. What was written is recorded under a lock, as calls end
in any order.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..digests import CHUNK
from ..errors import S3SourceError, UnsafeLayerError
from .parallel import BoundedPool
from .uris import WORKERS, S3Uri, s3_error

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

LOG = logging.getLogger("kitops_flows")

EXISTING_POLICIES = ("error", "overwrite", "skip")
#: Object metadata (``x-amz-meta-kitops-sha256``) recording the sha256 of what we uploaded.
META_SHA256 = "kitops-sha256"
#: Our keys under the destination prefix: marker and staging area. Layers may not contain it.
CONTROL_DIR = ".kitops-flows"
MARKER_NAME = f"{CONTROL_DIR}/complete.json"
STAGING_DIR = f"{CONTROL_DIR}/staging"
MARKER_KIND = "kitops-flows/s3-unpack"
SINGLE_PUT_LIMIT = 8 << 20  # files up to this size go in one PUT with Content-MD5
COPY_LIMIT = 5 << 30  # CopyObject's limit; larger objects use the managed multipart copy
#: Small files read and verified but not yet uploaded (memory stays flat whatever the layer's size).
UPLOAD_BYTES_IN_FLIGHT = 64 << 20
_SHOWN = 5  # keys named in an error message


@dataclass(frozen=True)
class PlannedFile:
    """One file of the ModelKit as the verification pass read it. ``name`` is relative to the prefix."""

    name: str
    size: int
    sha256: str  # hex
    md5: str  # hex


@dataclass
class _Placed:
    key: str
    backup_key: str = ""  # unversioned: where the previous object was copied
    new_version: str = ""  # versioned: the version we wrote (deleting it restores the previous one)


@dataclass
class SyncOutcome:
    """What a commit did, by key (full S3 keys)."""

    keys: list[str] = field(default_factory=list)  # every key of this ModelKit now at the prefix
    uploaded: list[str] = field(default_factory=list)  # new keys written
    replaced: list[str] = field(default_factory=list)  # existing keys overwritten
    skipped: list[str] = field(default_factory=list)  # already held the same bytes
    kept: list[str] = field(default_factory=list)  # held different bytes, kept (existing="skip")
    deleted: list[str] = field(default_factory=list)  # extra keys removed (delete=True)
    marker: str = ""  # s3:// URI of the completion marker


class S3PrefixWriter:
    """Write planned files under one S3 prefix with the guarantees in the module doc. One use only."""

    def __init__(self, s3: Any, loc: S3Uri, files: Sequence[PlannedFile], *, existing: str = "error",
                 delete: bool = False) -> None:
        if existing == "ignore":  # the directory unpack's name for the same policy
            existing = "skip"
        if existing not in EXISTING_POLICIES:
            raise S3SourceError(f"invalid existing-object policy {existing!r}: use one of {', '.join(EXISTING_POLICIES)}")
        self.s3, self.loc, self.existing, self.delete = s3, loc, existing, delete
        counts = Counter(f.name for f in files)
        self._files = {f.name: f for f in files}  # a later layer's file with the same name wins, as in a directory
        self._occurrences = dict(counts)
        self._seen: Counter[str] = Counter()
        for name in self._files:
            if name == CONTROL_DIR or name.startswith(CONTROL_DIR + "/"):
                raise UnsafeLayerError(f"{loc.child(loc.key + name)}: the ModelKit has a file under {CONTROL_DIR}/, "
                                       "which unpack_to_s3 keeps for its marker and staging area")
        self.run = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
        self.staging = f"{loc.key}{STAGING_DIR}/{self.run}/"
        self.marker_key = loc.key + MARKER_NAME
        self.versioned = False
        self._action: dict[str, str] = {}  # name -> "new" | "same" | "replace" | "keep"
        self._extras: list[str] = []
        self._old_marker: tuple[bytes, str] | None = None
        self._marker_removed = False
        # what was written, recorded by the worker threads as their calls start and end (under _lock)
        self._lock = threading.Lock()
        self._created: dict[str, str] = {}  # key -> version id, of keys that did not exist before
        self._staged: list[str] = []
        self._backups: list[str] = []
        self._placed: list[_Placed] = []
        self._written: set[str] = set()
        # the module's sizes are read here, per writer, so a test or bench can change them
        self._pool = BoundedPool(WORKERS, UPLOAD_BYTES_IN_FLIGHT)
        self._done = False

    # -- plan ------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """List the prefix, classify every file, refuse conflicts; then remove the previous marker."""
        self.versioned = self._bucket_versioned()
        listing = self._list()
        conflicts = []
        for name, f in self._files.items():
            key = self.loc.key + name
            have = listing.get(key)
            if have is None:
                self._action[name] = "new"
            elif have[0] == f.size and self._same(key, have[1], f):
                self._action[name] = "same"
            elif self.existing == "overwrite":
                self._action[name] = "replace"
            elif self.existing == "skip":
                self._action[name] = "keep"
            else:
                conflicts.append(key)
        if conflicts:
            shown = ", ".join(self.loc.child(k) for k in sorted(conflicts)[:_SHOWN])
            more = f" and {len(conflicts) - _SHOWN} more" if len(conflicts) > _SHOWN else ""
            raise S3SourceError(
                f"{self.loc}: {len(conflicts)} existing object(s) hold different bytes and would be overwritten: "
                f"{shown}{more}; nothing was written. Use existing='overwrite' (CLI --existing overwrite) to "
                "replace them (the previous objects are kept until the new copy is complete) or 'skip' to keep them")
        if self.delete:
            ours = {self.loc.key + n for n in self._files}
            control = self.loc.key + CONTROL_DIR + "/"
            self._extras = sorted(k for k in listing if k not in ours and not k.startswith(control) and k != self.loc.key)
        self._remove_old_marker()

    def _bucket_versioned(self) -> bool:
        try:
            status = self.s3.get_bucket_versioning(Bucket=self.loc.bucket).get("Status")
        except Exception:  # noqa: BLE001 - no permission to ask: back up by copying, which is safe either way
            return False
        return status == "Enabled"  # "Suspended" overwrites the null version in place: treat as unversioned

    def _list(self) -> dict[str, tuple[int, str]]:
        out: dict[str, tuple[int, str]] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.loc.bucket, Prefix=self.loc.key):
            for o in page.get("Contents", ()):
                out[o["Key"]] = (int(o["Size"]), str(o.get("ETag") or "").strip('"'))
        return out

    def _same(self, key: str, etag: str, f: PlannedFile) -> bool:
        """Same bytes: a plain-MD5 ETag equal to the file's MD5, else our recorded sha256 (one HEAD)."""
        if len(etag) == 32 and "-" not in etag and etag == f.md5:
            return True
        head = self.s3.head_object(Bucket=self.loc.bucket, Key=key)
        return str((head.get("Metadata") or {}).get(META_SHA256, "")) == f.sha256

    def _remove_old_marker(self) -> None:
        try:
            resp = self.s3.get_object(Bucket=self.loc.bucket, Key=self.marker_key)
        except Exception as e:  # noqa: BLE001
            if _code(e) in ("NoSuchKey", "404", "NotFound"):
                return
            raise
        self._old_marker = (resp["Body"].read(), str(resp.get("ContentType") or "application/json"))
        self.s3.delete_object(Bucket=self.loc.bucket, Key=self.marker_key)
        self._marker_removed = True

    # -- upload ----------------------------------------------------------------------------------------

    def write(self, name: str, reader: Any, size: int) -> None:
        """Upload one file as planned (called for each file the layer reader yields; it drains what is left)."""
        self._seen[name] += 1
        if self._seen[name] != self._occurrences.get(name):
            return  # an earlier copy of a name a later layer overrides
        f = self._files[name]
        action = self._action[name]
        if action in ("same", "keep"):
            return
        key = self.loc.key + name if action == "new" else self.staging + "new/" + name
        if f.size <= SINGLE_PUT_LIMIT:  # read and verified here (the tar stream is sequential), PUT on a worker
            self._pool.submit_bytes(f.size, lambda: self._read_verified(key, reader, f),
                                    lambda body: self._recorded(name, action, key, lambda: self._put(key, body, f)))
        else:  # multipart, its parts already concurrent: here, beside the small PUTs in flight
            self._pool.check()  # an earlier failure stops the rest before a long upload starts
            self._recorded(name, action, key, lambda: self._upload_large(key, reader, f))

    def _recorded(self, name: str, action: str, key: str, upload: Callable[[], str]) -> None:
        """Run ``upload`` (returns the version id), recording the key before it starts and the result after."""
        with self._lock:  # recorded before: a failed or interrupted upload may still have written
            if action == "new":
                self._created[key] = ""  # the key did not exist: deleting it on failure loses nothing
            else:
                self._staged.append(key)
        version = upload()
        with self._lock:
            if action == "new" and version:
                self._created[key] = version  # deleting this version leaves no trace on a versioned bucket
            self._written.add(name)

    def _read_verified(self, key: str, reader: Any, f: PlannedFile) -> bytes:
        data = _read_exact(reader, f.size)
        if hashlib.sha256(data).hexdigest() != f.sha256:
            raise S3SourceError(f"{self.loc.child(key)}: the layer's bytes changed since they were verified")
        return data

    def _put(self, key: str, data: bytes, f: PlannedFile) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        try:
            resp = self.s3.put_object(Bucket=self.loc.bucket, Key=key, Body=data, ContentMD5=md5,
                                      Metadata={META_SHA256: f.sha256})
        except (ClientError, BotoCoreError) as e:  # raised in the caller's thread later: name the key now
            raise s3_error(e, self.loc.child(key), "uploading") from e
        return str(resp.get("VersionId") or "")

    def _upload_large(self, key: str, reader: Any, f: PlannedFile) -> str:
        from boto3.s3.transfer import TransferConfig

        meta = {META_SHA256: f.sha256}
        # a small upload failing meanwhile stops this one at its next read (s3transfer aborts the multipart
        # upload) instead of after the whole file has gone
        hashing = _HashingReader(reader, self._pool.check)
        config = TransferConfig(multipart_threshold=SINGLE_PUT_LIMIT, multipart_chunksize=SINGLE_PUT_LIMIT,
                                max_concurrency=4)
        config.max_in_memory_upload_chunks = 4  # s3transfer's knob (boto3 does not expose it): bounds buffered parts
        self.s3.upload_fileobj(hashing, self.loc.bucket, key, ExtraArgs={"Metadata": meta}, Config=config)
        if hashing.count != f.size or hashing.sha256.hexdigest() != f.sha256:
            raise S3SourceError(f"{self.loc.child(key)}: the layer's bytes changed since they were verified")
        head = self.s3.head_object(Bucket=self.loc.bucket, Key=key)
        if int(head["ContentLength"]) != f.size or (head.get("Metadata") or {}).get(META_SHA256) != f.sha256:
            raise S3SourceError(f"{self.loc.child(key)}: S3 holds {head['ContentLength']} bytes after the upload, "
                                f"expected {f.size}")
        return str(head.get("VersionId") or "")

    # -- commit ----------------------------------------------------------------------------------------

    def commit(self, marker: Mapping[str, Any]) -> SyncOutcome:
        """Back up, place, write the marker, delete extras, clean up. ``marker`` adds fields to the marker."""
        self._pool.wait()  # every upload done; the first failure stops here, before anything is placed
        unwritten = [n for n, a in self._action.items() if a in ("new", "replace") and n not in self._written]
        if unwritten:
            raise S3SourceError(f"{self.loc}: {len(unwritten)} planned file(s) were never read back "
                                f"(first: {unwritten[0]}); nothing was placed")
        replace = sorted(n for n, a in self._action.items() if a == "replace")
        if replace and not self.versioned:
            self._journal(replace)
            for name in replace:  # every backup done before the first object is replaced
                backup = self.staging + "old/" + name
                self._backups.append(backup)  # removing a backup that was never written loses nothing
                self._placed.append(_Placed(self.loc.key + name, backup_key=backup))
                self._pool.submit(lambda src=self.loc.key + name, dst=backup: self._copy(src, dst))
            self._pool.wait()
        for i, name in enumerate(replace):
            self._pool.submit(lambda i=i, name=name: self._place(i, name))
        self._pool.wait()
        self._pool.close()
        self._write_marker(marker)
        self._done = True  # the copy is complete: no rollback from here on
        out = self._outcome()
        try:
            self._delete_extras(out)
        finally:
            self._cleanup_staging()
        return out

    def _place(self, i: int, name: str) -> None:
        key = self.loc.key + name
        if self.versioned:
            version = self._copy(self.staging + "new/" + name, key)
            with self._lock:
                self._placed.append(_Placed(key, new_version=version))
        else:
            with self._lock:
                self._placed[i].new_version = "placing"  # from here on the key holds (or may hold) new bytes
            self._copy(self.staging + "new/" + name, key)

    def _journal(self, replace: list[str]) -> None:
        doc = {"prefix": str(self.loc), "run": self.run,
               "backups": [{"key": self.loc.key + n, "backup": self.staging + "old/" + n} for n in replace]}
        self.s3.put_object(Bucket=self.loc.bucket, Key=self.staging + "journal.json",
                           Body=json.dumps(doc, indent=1).encode(), ContentType="application/json")
        self._staged.append(self.staging + "journal.json")

    def _copy(self, src: str, dst: str, src_version: str = "") -> str:
        """Server-side copy, metadata included; returns the new version id (versioned buckets)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._copy_object(src, dst, src_version)
        except (ClientError, BotoCoreError) as e:  # may be raised in the caller's thread later: name both keys
            raise s3_error(e, self.loc.child(dst), f"copying {self.loc.child(src)} there") from e

    def _copy_object(self, src: str, dst: str, src_version: str) -> str:
        source: dict[str, str] = {"Bucket": self.loc.bucket, "Key": src}
        if src_version:
            source["VersionId"] = src_version
        head = self.s3.head_object(**{"Bucket": self.loc.bucket, "Key": src,
                                      **({"VersionId": src_version} if src_version else {})})
        if int(head["ContentLength"]) < COPY_LIMIT:
            resp = self.s3.copy_object(CopySource=source, Bucket=self.loc.bucket, Key=dst, MetadataDirective="COPY")
            return str(resp.get("VersionId") or "")
        extra = {"Metadata": head.get("Metadata") or {}}
        if head.get("ContentType"):
            extra["ContentType"] = head["ContentType"]
        self.s3.copy(source, self.loc.bucket, dst, ExtraArgs=extra)
        return str(self.s3.head_object(Bucket=self.loc.bucket, Key=dst).get("VersionId") or "")

    def _write_marker(self, extra: Mapping[str, Any]) -> None:
        doc = {
            "kind": MARKER_KIND, "version": 1, **extra, "prefix": str(self.loc),
            "completed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "objects": [{"key": self.loc.key + f.name, "size": f.size, "sha256": f.sha256}
                        for f in sorted(self._files.values(), key=lambda f: f.name)
                        if self._action[f.name] != "keep"],
            "kept_existing": sorted(self.loc.key + n for n, a in self._action.items() if a == "keep"),
        }
        self.s3.put_object(Bucket=self.loc.bucket, Key=self.marker_key, ContentType="application/json",
                           Body=json.dumps(doc, indent=1, sort_keys=True).encode())
        self._marker_removed = False  # replaced by ours

    def _outcome(self) -> SyncOutcome:
        by = {a: sorted(self.loc.key + n for n, x in self._action.items() if x == a)
              for a in ("new", "replace", "same", "keep")}
        return SyncOutcome(keys=sorted(self.loc.key + n for n in self._files), uploaded=by["new"],
                           replaced=by["replace"], skipped=by["same"], kept=by["keep"],
                           marker=self.loc.child(self.marker_key))

    def _delete_extras(self, out: SyncOutcome) -> None:
        failed: list[str] = []
        for start in range(0, len(self._extras), 1000):
            batch = self._extras[start:start + 1000]
            try:
                resp = self.s3.delete_objects(Bucket=self.loc.bucket,
                                              Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
            except Exception as e:  # noqa: BLE001 - reported below with every key left
                LOG.debug("delete_objects failed: %s", e)
                failed.extend(batch)
                continue
            errors = {str(e.get("Key")) for e in resp.get("Errors", ())}
            failed.extend(k for k in batch if k in errors)
            out.deleted.extend(k for k in batch if k not in errors)
        if failed:
            raise S3SourceError(
                f"{self.loc}: the copy is complete ({self.loc.child(self.marker_key)} written) but {len(failed)} extra "
                f"object(s) could not be deleted (first: {self.loc.child(failed[0])}); check s3:DeleteObject "
                "permission and run again to finish")

    def _cleanup_staging(self) -> None:
        keys = self._staged + self._backups
        if keys and not _delete_keys(self.s3, self.loc.bucket, [(k, "") for k in keys]):
            LOG.warning("could not remove the staging area %s; delete it by hand", self.loc.child(self.staging))

    # -- rollback --------------------------------------------------------------------------------------

    def rollback(self) -> list[str]:
        """Undo everything this call wrote; returns problems (empty when the prefix is as it was).

        Restores replaced objects (from the backup, or by deleting the version we wrote), deletes the
        keys that did not exist before, puts the previous marker back, and removes the staging area
        except backups that could not be restored.
        """
        if self._done:
            return []
        self._pool.cancel()  # drop what has not started, wait for what has: nothing is written after this
        self._pool.close()
        problems: list[str] = []
        kept_backups: set[str] = set()
        for p in reversed(self._placed):
            if not p.new_version:
                continue  # backed up, not yet replaced
            try:
                if self.versioned:
                    self.s3.delete_object(Bucket=self.loc.bucket, Key=p.key, VersionId=p.new_version)
                else:
                    self._copy(p.backup_key, p.key)
            except Exception as e:  # noqa: BLE001 - keep going: restore as much as possible
                where = self.loc.child(p.backup_key) if p.backup_key else "its previous version"
                problems.append(f"could not restore {self.loc.child(p.key)} ({e}); the previous object is at {where}")
                kept_backups.add(p.backup_key)
        if not _delete_keys(self.s3, self.loc.bucket, list(self._created.items())):
            problems.append(f"could not delete every new object this call wrote under {self.loc}")
        if self._marker_removed and self._old_marker is not None:
            try:
                body, ctype = self._old_marker
                self.s3.put_object(Bucket=self.loc.bucket, Key=self.marker_key, Body=body, ContentType=ctype)
            except Exception as e:  # noqa: BLE001
                problems.append(f"could not restore the previous marker {self.loc.child(self.marker_key)} ({e})")
        # a backup that could not be restored stays, with the journal that says whose it is
        leftovers = [(k, "") for k in self._staged + self._backups
                     if k not in kept_backups and not (kept_backups and k.endswith("/journal.json"))]
        if not _delete_keys(self.s3, self.loc.bucket, leftovers):
            LOG.warning("could not remove the staging area %s", self.loc.child(self.staging))
        self._done = True
        return problems


class _HashingReader:
    """File-like view that hashes what s3transfer reads; ``check`` runs before every read (it may raise)."""

    def __init__(self, raw: Any, check: Callable[[], None] | None = None) -> None:
        self._raw = raw
        self._check = check
        self.sha256 = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        if self._check is not None:
            self._check()
        data = self._raw.read(CHUNK if n is None or n < 0 else n)
        self.sha256.update(data)
        self.count += len(data)
        return data  # type: ignore[no-any-return]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def hash_file(reader: Any) -> tuple[int, str, str]:
    """Read ``reader`` to the end: ``(size, sha256 hex, md5 hex)``."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    while chunk := reader.read(CHUNK):
        sha.update(chunk)
        md5.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest(), md5.hexdigest()


def _read_exact(reader: Any, size: int) -> bytes:
    parts, left = [], size
    while left > 0:
        chunk = reader.read(min(left, CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _delete_keys(s3: Any, bucket: str, keys: Sequence[tuple[str, str]]) -> bool:
    """Delete (key, version id) pairs; a version id deletes that version (no delete marker). True if all went."""
    ok = True
    for start in range(0, len(keys), 1000):
        batch = [{"Key": k, **({"VersionId": v} if v else {})} for k, v in keys[start:start + 1000]]
        try:
            resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            ok = ok and not resp.get("Errors")
        except Exception as e:  # noqa: BLE001 - callers report what is left
            LOG.debug("delete_objects failed: %s", e)
            ok = False
    return ok


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "") or response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return ""


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


__all__ = ["CONTROL_DIR", "EXISTING_POLICIES", "MARKER_NAME", "META_SHA256", "PlannedFile", "S3PrefixWriter",
           "S3UnpackResult", "SyncOutcome", "hash_file"]
