"""Where ModelKits come from: the local store, with registries behind it.

The one interface that ``api``, ``lineage`` and the S3 sink use to resolve a reference, read a
manifest and its Kitfile, open a verified blob and make sure the layers they need are present
(fetched once into the store, content-addressed). It knows nothing about packing, pushing or S3.

>>> src = ModelKitSource(LocalStore(tempfile.mkdtemp()), registry=lambda host: None)
>>> src.load(parse_reference("team/churn:v1"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kitops_flows.errors.NotInLocalStoreError: cannot load team/churn:v1: team/churn:v1 names no registry, ...

A ``KitOpsClient`` hands out its source as ``kit.source``; functions that take "a client or a
source" (lineage) call :func:`as_source`.
"""

from __future__ import annotations

import tempfile  # noqa: F401 - used by the module doctest
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from .digests import VerifyingReader
from .errors import KitopsError, NotFoundError
from .filters import LayerFilter
from .kitfile import Kitfile
from .manifest import Manifest, ManifestError, PlannedLayer, kitfile_from_manifest
from .mediatypes import OCI_INDEX, OCI_MANIFEST
from .progress import ProgressCallback, ProgressReporter
from .reference import Reference, parse_reference
from .store import NO_SPACE, Descriptor, LocalStore
from .unpack import select_layers

if TYPE_CHECKING:
    from .registry import RegistryClient
from .worker_store import not_in_store

__all__ = ["HasModelKitSource", "LoadedModelKit", "ModelKitSource", "SourceLike", "as_source"]

T = TypeVar("T")


@dataclass(frozen=True)
class LoadedModelKit:
    """A resolved ModelKit: where it is, its manifest (bytes and parsed) and its Kitfile."""

    ref: Reference
    manifest_desc: Descriptor
    manifest_bytes: bytes
    manifest: Manifest
    kitfile: Kitfile
    kitfile_in_artifact: bool


@dataclass(frozen=True)
class ModelKitSource:
    """The local store plus a way to reach registries (``registry(host)`` gives a configured client).

    Everything read is verified against its digest; blobs fetched from a registry land in the store
    once (one downloader per blob across processes) and are reused from there.
    """

    store: LocalStore
    registry: Callable[[str], RegistryClient]
    progress: ProgressCallback | None = None
    concurrency: int = 4

    # -- manifests -----------------------------------------------------------------------------------
    def load_local(self, ref: Reference) -> LoadedModelKit:
        """A ModelKit in the local store (NotFoundError if it is not there)."""
        desc = self.store.resolve(ref)
        data = self.store.read_blob(desc.digest, desc.size)
        manifest = Manifest.from_bytes(data, f"manifest of {ref.display()}")
        config = self.store.read_blob(manifest.config.digest, manifest.config.size)
        kitfile, in_artifact = kitfile_from_manifest(manifest, config, ref.display())
        return LoadedModelKit(ref, desc, data, manifest, kitfile, in_artifact)

    def load_remote(self, ref: Reference) -> LoadedModelKit:
        """Fetch and verify the manifest and config (into the store cache); the layers are not fetched."""
        require_registry(ref, "pull")
        client = self.registry(ref.registry)
        fetched = client.get_manifest(ref.repository, ref.reference)
        if fetched.media_type == OCI_INDEX:
            from .modelindex import index_media_error

            raise ManifestError(index_media_error(fetched.data, str(ref)))
        manifest = Manifest.from_bytes(fetched.data, f"manifest of {ref}")
        manifest.format  # raises "not a modelkit" early  # noqa: B018
        self.fetch_blob(client, ref.repository, manifest.config)
        config = self.store.read_blob(manifest.config.digest, manifest.config.size)
        kitfile, in_artifact = kitfile_from_manifest(manifest, config, str(ref))
        desc = Descriptor(OCI_MANIFEST, fetched.digest, len(fetched.data))
        return LoadedModelKit(ref, desc, fetched.data, manifest, kitfile, in_artifact)

    def load(self, ref: Reference) -> LoadedModelKit:
        """From the local store when it is there, else from its registry.

        A manifest read from a registry is cached in the store and kept out of gc, so the layers
        fetched for it afterwards stay cached too.
        """
        try:
            return self.load_local(ref)
        except NotFoundError:
            if ref.is_local_only:  # on separate workers: packed in another task's store, never pushed
                raise not_in_store(ref.display(), self.store.home, f"load {ref.display()}", local_only=True) from None
        loaded = self.load_remote(ref)
        self.store.put_bytes(loaded.manifest_bytes)
        self.store.add_root(loaded.manifest_desc.digest)  # keep the cached layers out of gc
        return loaded

    # -- blobs ---------------------------------------------------------------------------------------
    def open_blob(self, digest: str, size: int | None = None, what: str | None = None) -> VerifyingReader:
        """A blob of the local store for streaming; reading to its end verifies size and digest."""
        return self.store.open_blob(digest, size, what=what)

    def fetch_blob(self, client: RegistryClient, repo: str, blob: Descriptor) -> None:
        """Download a blob into the store unless it is there already (content-addressed cache)."""
        if self.store.has_blob(blob.digest, blob.size):
            return
        ingest = self.store.ingest_path(blob.digest)
        with self.store.download_lock(blob.digest):  # one downloader per blob across processes
            try:
                if self.store.has_blob(blob.digest, blob.size):
                    return
                reporter = ProgressReporter(f"pull {blob.digest[:19]}", total=blob.size, on_update=self.progress)
                client.fetch_blob(repo, blob.digest, blob.size, ingest, progress=reporter)
                reporter.finish()
                self.store.commit_file(ingest, blob.digest, blob.size, verified=True)
            except OSError as e:  # disk full, quota, read-only store: say where, and give the space back
                if e.errno in NO_SPACE:
                    ingest.unlink(missing_ok=True)  # a partial download that cannot grow only holds space
                raise self.store.write_error(e, f"blob {blob.digest} ({blob.size} bytes)") from None

    def ensure_blobs(self, ref: Reference, blobs: Iterable[Descriptor]) -> None:
        """Make sure every blob is in the store, fetching the missing ones from ``ref``'s registry in parallel."""
        missing = [b for b in {b.digest: b for b in blobs}.values() if not self.store.has_blob(b.digest, b.size)]
        if not missing:
            return
        if ref.is_local_only:
            raise NotFoundError(f"blobs of {ref.display()} are missing from the local store; run verify")
        client = self.registry(ref.registry)
        self.parallel(lambda b: self.fetch_blob(client, ref.repository, b), missing)

    def selected_layers(self, reference: str | Reference, filters: Sequence[LayerFilter] = ()
                        ) -> tuple[LoadedModelKit, list[PlannedLayer]]:
        """Resolve a ModelKit and make sure the layers ``filters`` select are in the store (kit's unpack order)."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        loaded = self.load(ref)
        planned = select_layers(loaded.kitfile, loaded.manifest, filters, str(ref))
        self.ensure_blobs(ref, [p.layer for p in planned])
        return loaded, planned

    def parallel(self, fn: Callable[[T], object], items: Sequence[T]) -> None:
        """Run ``fn`` over ``items`` on up to ``concurrency`` threads; re-raise the first failure."""
        if len(items) <= 1 or self.concurrency <= 1:
            for item in items:
                fn(item)
            return
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            for future in [pool.submit(fn, item) for item in items]:
                future.result()


def require_registry(ref: Reference, action: str) -> None:
    """Refuse a reference that names no registry for an action that needs one."""
    if ref.is_local_only:
        raise KitopsError(
            f"cannot {action} {ref.display()}: it names no registry. Use a reference such as "
            f"registry.example.com/{ref.repository}:{ref.tag or 'latest'}"
        )


class HasModelKitSource(Protocol):
    """Anything that hands out a ModelKitSource (``KitOpsClient`` does)."""

    @property
    def source(self) -> ModelKitSource: ...


SourceLike = ModelKitSource | HasModelKitSource


def as_source(obj: SourceLike) -> ModelKitSource:
    """The ModelKitSource itself, or the one a client hands out."""
    return obj if isinstance(obj, ModelKitSource) else obj.source
