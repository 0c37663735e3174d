"""Where referrer records live: the local store (our own small index) and registries (API or tag schema).

Local: referrer manifests are ordinary blobs kept alive by ``store.add_root`` (never in kit's
per-repository index files, so ``kit list`` does not show them), and
``storage/kitops-flows-referrers.json`` maps a subject digest to its referrer descriptors::

    {"version": 1,
     "referrers": {"sha256:<modelkit>": [{"mediaType": …, "digest": …, "size": …, "artifactType": …,
                                          "annotations": {…}}]},
     "stageLogs": {"127.0.0.1:5000/team/churn": "sha256:<newest stage event>"}}

Registries: the OCI 1.1 referrers API when the registry has one, else the referrers tag schema
(tag ``sha256-<hex>`` holding an image index of the referrers; read-modify-write).

>>> fallback_tag("sha256:" + "ab" * 32)[:12]
'sha256-ababa'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomicfile import write_atomic
from ..errors import NotFoundError, StoreError
from ..manifest import Manifest
from ..mediatypes import OCI_INDEX, OCI_MANIFEST
from ..sources import ModelKitSource, as_source

if TYPE_CHECKING:
    from ..registry import RegistryClient
from ..store import Descriptor, LocalStore
from .model import EMPTY_BYTES, EMPTY_DESCRIPTOR, NodeRef, check_bytes, sha256_of

INDEX_FILE = "kitops-flows-referrers.json"
MAX_RECORD_SIZE = 4 << 20  # records are small JSON; refuse anything bigger instead of buffering it


def fallback_tag(digest: str) -> str:
    """The referrers tag schema name for a subject digest (``<alg>-<hex>``, at most 128 characters)."""
    algo, _, hexpart = digest.partition(":")
    return f"{algo}-{hexpart}"[:128]


@dataclass
class LocalReferrers:
    """The local store's referrers index (see the module docstring).

    >>> local = LocalReferrers(LocalStore(tmp))                     # doctest: +SKIP
    >>> local.put(manifest_bytes, subject_digest)                   # doctest: +SKIP
    """

    store: LocalStore

    @property
    def path(self) -> Path:
        return self.store.storage / INDEX_FILE

    def _load(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"version": 1, "referrers": {}, "stageLogs": {}}
        except ValueError as e:
            raise StoreError(f"{self.path} is not valid JSON ({e}); restore it or delete it to drop local lineage") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("referrers", {}), dict):
            raise StoreError(f"{self.path} should hold a JSON object with a 'referrers' map")
        doc.setdefault("referrers", {})
        doc.setdefault("stageLogs", {})
        return doc

    def list(self, subject_digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        """Referrers of a subject, optionally of one artifact type, in the order they were added."""
        items = self._load()["referrers"].get(subject_digest) or []
        descs = [Descriptor.from_dict(d, f"referrer of {subject_digest} in {self.path.name}") for d in items]
        return [d for d in descs if artifact_type is None or d.artifact_type == artifact_type]

    def put(self, manifest_bytes: bytes, subject_digest: str, desc: Descriptor,
            blobs: Iterable[bytes] = ()) -> Descriptor:
        """Store a referrer manifest (and its small blobs), keep it from gc, and index it under its subject."""
        for blob in (EMPTY_BYTES, *blobs):
            self.store.put_bytes(blob)
        self.store.put_bytes(manifest_bytes)
        self.store.add_root(desc.digest)  # takes the store lock itself: call it before ours
        with self.store.lock():
            doc = self._load()
            items = doc["referrers"].setdefault(subject_digest, [])
            if all(d.get("digest") != desc.digest for d in items):
                items.append(desc.to_dict())
                write_atomic(self.path, json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())
        return desc

    def stage_log_head(self, repo_path: str) -> str | None:
        return self._load()["stageLogs"].get(repo_path)

    def set_stage_log_head(self, repo_path: str, digest: str, expected: str | None) -> bool:
        """Move a repository's stage-log head; False (nothing written) if someone else moved it first."""
        with self.store.lock():
            doc = self._load()
            if doc["stageLogs"].get(repo_path) != expected:
                return False
            doc["stageLogs"][repo_path] = digest
            write_atomic(self.path, json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())
        return True


# -- registries ------------------------------------------------------------------------------------------

def remote_referrers(rc: RegistryClient, repository: str, digest: str) -> list[Descriptor]:
    """Referrers of ``repository@digest`` in a registry: referrers API if it has one, else the tag schema."""
    listed = rc.referrers(repository, digest)
    if listed is not None:
        return list(listed)
    return [d for d in _fallback_index(rc, repository, digest)[1] if d.media_type in ("", OCI_MANIFEST)]


def _fallback_index(rc: RegistryClient, repository: str, digest: str) -> tuple[dict[str, Any], list[Descriptor]]:
    tag = fallback_tag(digest)
    try:
        fetched = rc.get_manifest(repository, tag)
    except NotFoundError:
        return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}, []
    try:
        doc = json.loads(fetched.data)
        items = doc["manifests"] or []
        descs = [Descriptor.from_dict(d, f"entry of {repository}:{tag}") for d in items]
    except (ValueError, KeyError, TypeError, StoreError) as e:
        raise StoreError(
            f"the referrers tag {repository}:{tag} does not hold an OCI image index ({e}); delete that tag "
            "and push the ModelKit again to rebuild it"
        ) from None
    return doc, descs


def supports_referrers_api(rc: RegistryClient, repository: str, digest: str) -> bool:
    return rc.referrers(repository, digest) is not None


@dataclass
class RemoteWriter:
    """Pushes referrer manifests to one registry, remembering per repository whether it has the API."""

    source: ModelKitSource
    registry: str
    _api: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.source = as_source(self.source)  # a KitOpsClient is accepted too

    @property
    def rc(self) -> RegistryClient:
        return self.source.registry(self.registry)

    def push(self, repository: str, manifest_bytes: bytes, desc: Descriptor, subject_digest: str) -> None:
        """Upload the referrer's blobs and manifest, then list it under its subject (unless already there)."""
        store = self.source.store
        m = Manifest.from_bytes(manifest_bytes, f"referrer {desc.digest}")
        # a record pushed before (a re-run pushing the same ModelKit again) is not written twice
        if self.rc.manifest_digest(repository, desc.digest) != desc.digest:
            for blob in {b.digest: b for b in m.blobs()}.values():
                if blob.digest == EMPTY_DESCRIPTOR.digest and not store.has_blob(blob.digest):
                    store.put_bytes(EMPTY_BYTES)
                path = store.blob_path(blob.digest)
                self.rc.push_blob(repository, blob.digest, blob.size, lambda p=path: open(p, "rb"))
            self.rc.put_manifest(repository, desc.digest, manifest_bytes, OCI_MANIFEST)
        if repository not in self._api:
            self._api[repository] = supports_referrers_api(self.rc, repository, subject_digest)
        if not self._api[repository]:
            self._add_to_fallback(repository, subject_digest, desc)

    def _add_to_fallback(self, repository: str, subject_digest: str, desc: Descriptor) -> None:
        # Read-modify-write: two writers racing can drop an entry; pushing again restores it.
        doc, descs = _fallback_index(self.rc, repository, subject_digest)
        if any(d.digest == desc.digest for d in descs):
            return
        doc["manifests"] = [*(doc.get("manifests") or []), desc.to_dict()]
        doc.setdefault("schemaVersion", 2)
        doc["mediaType"] = OCI_INDEX
        data = json.dumps(doc, separators=(",", ":")).encode()
        self.rc.put_manifest(repository, fallback_tag(subject_digest), data, OCI_INDEX)


# -- reading ------------------------------------------------------------------------------------------------

@dataclass
class RecordReader:
    """Reads ModelKit manifests, referrers and record blobs from the local store and (``remote``) registries.

    Every byte read is checked against its digest; the local store is a cache in front of registries.
    """

    source: ModelKitSource
    remote: bool = True

    def __post_init__(self) -> None:
        self.source = as_source(self.source)  # a KitOpsClient is accepted too

    def _remote_ok(self, node: NodeRef) -> bool:
        return self.remote and not node.is_local_only

    def manifest_bytes(self, node: NodeRef, digest: str | None = None) -> bytes:
        """A manifest (the node's own, or ``digest`` in the node's repository), verified."""
        digest = digest or node.digest
        store = self.source.store
        if store.has_blob(digest):
            return store.read_blob(digest)
        if not self._remote_ok(node):
            raise NotFoundError(f"manifest {node.repo_path}@{digest} is not in the local store {store.storage}")
        fetched = self.source.registry(node.registry).get_manifest(node.repository, digest)
        return check_bytes(fetched.data, digest, f"manifest {node.repo_path}@{digest}")

    def blob(self, node: NodeRef, desc: Descriptor) -> bytes:
        """A small record blob from the node's repository, verified (and cached in the local store)."""
        store = self.source.store
        if desc.size > MAX_RECORD_SIZE:
            raise StoreError(f"record blob {desc.digest} is {desc.size} bytes, over the {MAX_RECORD_SIZE}-byte limit")
        if not store.has_blob(desc.digest) and self._remote_ok(node):
            ingest = store.ingest_path(desc.digest)
            self.source.registry(node.registry).fetch_blob(node.repository, desc.digest, desc.size, ingest)
            store.commit_file(ingest, desc.digest, desc.size)
        return store.read_blob(desc.digest, desc.size, max_size=MAX_RECORD_SIZE)

    def referrers(self, node: NodeRef, artifact_type: str | None = None) -> list[Descriptor]:
        """Local and registry referrers of a node (deduplicated by digest)."""
        found = {d.digest: d for d in LocalReferrers(self.source.store).list(node.digest)}
        if self._remote_ok(node):
            rc = self.source.registry(node.registry)
            for d in remote_referrers(rc, node.repository, node.digest):
                found.setdefault(d.digest, d)
        return [d for d in found.values() if artifact_type is None or d.artifact_type == artifact_type]


__all__ = ["LocalReferrers", "RecordReader", "RemoteWriter", "fallback_tag", "remote_referrers", "sha256_of"]
