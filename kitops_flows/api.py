"""The public API: what the CLI and the Airflow, Prefect and Dagster plugins call.

>>> import pathlib, tempfile
>>> work = pathlib.Path(tempfile.mkdtemp())
>>> kit = KitOpsClient.from_home(work / "kitops")          # KitOpsClient(): the store at $KITOPS_HOME, like kit
>>> (work / "job").mkdir(); _ = (work / "job" / "model.bin").write_bytes(b"weights")
>>> _ = (work / "job" / "Kitfile").write_text("manifestVersion: 1.0.0\\nmodel: {name: churn, path: model.bin}\\n")
>>> mk = kit.pack(work / "job", reference="team/churn:v3")
>>> [(layer.kind, layer.path) for layer in mk.layers], mk.tags
([('model', 'model.bin')], ('v3',))
>>> kit.pull_layer("team/churn:v3", ["model"], work / "serve").paths[0].read_bytes()
b'weights'

With a registry in the reference, ``kit.push(mk.reference)`` copies it there, and ``pull_layer``
on another machine fetches only the layers it extracts.

One client holds one store and the registry settings; it keeps no global state, so plugins can
build one per task from their own connection/block/resource config.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from .aws import credentials_named
from .errors import KitopsError, NotFoundError, NotInLocalStoreError, RegistryError, TagExistsError
from .filters import LayerFilter, parse_filter_list
from .kitfile import Kitfile, is_modelkit_reference
from .kitfile_args import KitfileArguments
from .lazyimport import LazyModule
from .manifest import ANNOTATION_CLI_VERSION, ManifestError
from .mediatypes import OCI_MANIFEST
from .modelkit import LayerSummary, ModelKitDescriptor, PushResult, describe
from .progress import ProgressCallback, ProgressReporter
from .reference import Reference, is_internal_tag, parse_reference
from .registry import ParallelDownload, RegistryCredentials, RetryPolicy, UploadPolicy, resolve_credentials
from .sources import LoadedModelKit, ModelKitSource, require_registry
from .store import Descriptor, LocalStore, VerifyReport
from .unpack import UnpackResult, unpack_layers
from .worker_store import not_in_store

if TYPE_CHECKING:
    from .lineage import RunContext
    from .pack import LayerSource
    from .registry import RegistryClient  # imported when first used: it brings in requests
    from .signing import KeySpec, SigningKey, SignResult, Verification, VerifyKey

LOG = logging.getLogger("kitops_flows")
lineage = LazyModule("kitops_flows.lineage")  # provenance and records load on first use (`list` needs none)
MAX_MODEL_REF_CHAIN = 10  # kit's MaxModelRefChain
IMMUTABLE_TAG_SETTLE = 0.25  # seconds between writing an immutable tag and reading it back


@dataclass(frozen=True)
class ListEntry:
    """A row of ``list``, with kit's JSON keys (``to_dict``)."""

    repo: str  # registry/repository
    digest: str
    tags: tuple[str, ...]
    model_name: str
    size: int  # bytes of the manifest's layers (config excluded), as kit's list --format json
    author: str

    def to_dict(self) -> dict[str, object]:
        """kit's JSON row: repository as kit displays it, ``tags`` null when untagged, ``<none>`` for unknown names."""
        return {"repo": self.repo.removeprefix("localhost/"), "digest": self.digest,
                "tags": list(self.tags) if self.tags else None, "modelName": self.model_name or "<none>",
                "size": self.size, "author": self.author or "<none>"}


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _names_s3_credentials(method: Callable[Concatenate[KitOpsClient, _P], _R]
                          ) -> Callable[Concatenate[KitOpsClient, _P], _R]:
    """S3 credential errors raised by ``method`` name the client's ``s3_session`` source (``aws.credentials_named``)."""
    @functools.wraps(method)
    def wrapper(self: KitOpsClient, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with credentials_named(self.s3_session):
            return method(self, *args, **kwargs)
    return wrapper


@dataclass
class KitOpsClient:
    """Pack, store, push, pull and unpack ModelKits.

    ``credentials`` is one RegistryCredentials for every registry, or a mapping of registry host to
    credentials; registries not covered fall back to env vars, kit's credentials.json and the
    docker config. ``immutable_tags`` refuses to move an existing remote tag to another digest.
    ``retry`` tunes how transient registry failures (429/5xx, resets) are retried. ``upload_policy``
    replaces kit's per-registry upload table, e.g. smaller chunks for a registry behind a proxy that
    limits request bodies::

        KitOpsClient(upload_policy=UploadPolicy(chunk_size=32 << 20))   # PATCHes of 32 MiB at most
    """

    store: LocalStore = field(default_factory=LocalStore.default)
    plain_http: bool = False
    tls_verify: bool = True
    credentials: RegistryCredentials | Mapping[str, RegistryCredentials] | None = None
    concurrency: int = 4
    immutable_tags: bool = False
    progress: ProgressCallback | None = None
    s3_session: object | None = None  # a boto3.Session; None = boto3's default credential chain
    retry: RetryPolicy | None = None  # registry retries/backoff; None = RetryPolicy()'s defaults
    parallel_download: ParallelDownload | None = None  # connections per big blob; None = ParallelDownload()
    upload_policy: UploadPolicy | None = None  # monolithic vs chunked uploads and chunk size; None = kit's table
    ca_cert: str | Path | None = None  # a PEM bundle of CAs to trust for registries (CLI --tls-cert)
    login_hint: str | None = None  # how to fix refused credentials (plugins name their connection/block/resource)
    # a throwaway per-task store (kitops_home="ephemeral"): only a staging area, so pushing packs stream past it
    ephemeral_store: bool = False
    _clients: dict[str, RegistryClient] = field(default_factory=dict, repr=False)

    @classmethod
    def from_home(cls, kitops_home: Path | str | None = None, **options: object) -> KitOpsClient:
        """A client on the store at ``kitops_home`` (default: ``$KITOPS_HOME`` or kit's default location).

        >>> kit = KitOpsClient.from_home("/srv/kitops", plain_http=True)      # doctest: +SKIP
        """
        store = LocalStore(kitops_home) if kitops_home else LocalStore.default()
        return cls(store=store, **options)  # type: ignore[arg-type]

    # -- registry plumbing -------------------------------------------------------------------------
    def registry_client(self, registry: str) -> RegistryClient:
        """The (cached) client for one registry host."""
        if registry not in self._clients:
            from .registry import RegistryClient

            creds = self._credentials_for(registry)
            self._clients[registry] = RegistryClient(
                registry, credentials=creds, plain_http=self.plain_http, tls_verify=self.tls_verify,
                concurrency=self.concurrency, retry=self.retry, parallel_download=self.parallel_download,
                ca_cert=self.ca_cert, login_hint=self.login_hint, upload_policy=self.upload_policy,
            )
        return self._clients[registry]

    @property
    def source(self) -> ModelKitSource:
        """Where this client's ModelKits come from: its store, and registries through ``registry_client``."""
        return ModelKitSource(self.store, self.registry_client, progress=self.progress, concurrency=self.concurrency)

    def _credentials_for(self, registry: str) -> RegistryCredentials | None:
        if isinstance(self.credentials, RegistryCredentials):
            return self.credentials
        if isinstance(self.credentials, Mapping) and registry in self.credentials:
            return self.credentials[registry]
        return resolve_credentials(registry, kitops_home=self.store.home)

    def _reporter(self, label: str, total: int | None) -> ProgressReporter:
        return ProgressReporter(label, total=total, on_update=self.progress)

    # -- pack / local store ---------------------------------------------------------------------------
    @_names_s3_credentials
    def pack(
        self,
        context_dir: Path | str,
        *,
        kitfile: Path | str | Kitfile | None = None,
        reference: str | None = None,
        compression: str = "none",
        layer_format: str = "tar",
        annotations: Mapping[str, str] | None = None,
        sources: Mapping[str, str] | None = None,
        run: RunContext | None = None,
        parents: Sequence[str] = (),
        record_lineage: bool = True,
        push: bool = False,
        sign: SigningKey | None = None,
        previous: Sequence[str | ModelKitDescriptor] = (),
        inputs_fingerprint: str = "",
        use_model_pack: bool = False,
        local_copy: bool | None = None,
        on_push: Callable[[PushResult], None] | None = None,
    ) -> ModelKitDescriptor:
        """Pack a directory into the local store (and push it when ``push``).

        With ``push`` and ``local_copy=False`` no layer is written to the local store: each is hashed
        while it streams to the registry (``stream_push``). That is the default (``local_copy=None``)
        where the store would only be a staging area: ``sources`` are given (S3 data), or the client's
        store is ephemeral (``ephemeral_store``). ``local_copy=True`` keeps the layers in the store.
        ``on_push`` receives what that streamed push changed (``PushResult``; ``pack_and_push`` uses it).

        Same content, same ModelKit: when the config and layers equal those of a known ModelKit
        (``previous``, the target repository in the local store, or the target tag in the registry),
        that ModelKit is returned with its manifest, digest and ``created`` unchanged; this run is
        added to its provenance (see ``kitops_flows.idempotent``). ``inputs_fingerprint`` is recorded
        in the provenance (``pack_if_changed`` compares it with the next run's).

        ``sources`` maps a Kitfile entry (its name or literal path) to an ``s3://bucket/key`` or
        ``s3://bucket/prefix/`` URI whose objects become that layer's files, streamed without a local
        copy. ``run`` and ``parents`` feed the provenance record (orchestrator run, parent ModelKits);
        the code checkout, user, host and S3 object versions are collected automatically.

        >>> kit.pack("job/", reference="reg.example.com/team/churn:v7",
        ...          sources={"train": "s3://ml-data/churn/2026-11-26/"}, push=True)      # doctest: +SKIP
        """
        context = Path(context_dir).expanduser().absolute()
        from .pack import PackOptions, load_kitfile, target_reference  # not loaded for list/inspect/pull
        from .pack import pack as _pack

        kf, _ = load_kitfile(context, kitfile)
        layer_sources: dict[int, LayerSource] = {}
        s3_inputs: list[object] = []
        if sources:
            from .s3 import s3_layer_sources

            layer_sources, s3_inputs = s3_layer_sources(
                kf, sources, session=self.s3_session, layer_format=layer_format
            )
        if any(d.remote_path.startswith("s3://") for d in kf.datasets):
            from .s3 import check_remote_datasets

            check_remote_datasets(kf, session=self.s3_session)  # kit checks remote datasets exist at pack time
        extra = dict(annotations or {})
        provenance = None
        if record_lineage:
            provenance = lineage.collect_provenance(
                self, context, kf, run=run, parents=parents, s3_inputs=s3_inputs
            )
            provenance.inputs_fingerprint = inputs_fingerprint
            extra.update(provenance.annotations())
        from .idempotent import reuse_identical

        target = target_reference(reference)
        if push and not use_model_pack and (local_copy is False or (local_copy is None and (bool(sources) or self.ephemeral_store))):
            if reference is None:
                raise KitopsError("pack(push=True) needs a reference naming a registry, e.g. reg.example.com/team/m:v1")
            from .stream_push import stream_pack

            pushed = stream_pack(self, context, kitfile=kf, reference=reference, annotations=extra,
                                 options=PackOptions(compression=compression, layer_format=layer_format),
                                 layer_sources=layer_sources, s3_inputs=s3_inputs,  # type: ignore[arg-type]
                                 provenance=provenance, immutable=self.immutable_tags,
                                 reuse=reuse_identical(self, target, previous))
            if sign is not None:
                self.sign(pushed.descriptor.pinned, sign)
            if on_push is not None:
                on_push(pushed)
            return pushed.descriptor
        desc = _pack(
            self.store, context, kitfile=kf, reference=reference,
            options=PackOptions(compression=compression, layer_format=layer_format, use_model_pack=use_model_pack),
            annotations=extra, layer_sources=layer_sources, reuse=reuse_identical(self, target, previous),
        )
        if provenance is not None:
            lineage.record_local(self, desc, provenance)
        if push:
            if reference is None:
                raise KitopsError("pack(push=True) needs a reference naming a registry, e.g. reg.example.com/team/m:v1")
            return self.push(reference, sign=sign)
        return desc

    def describe(self, reference: str) -> ModelKitDescriptor:
        """Descriptor of a ModelKit in the local store."""
        ref = parse_reference(reference)
        loaded = self.source.load_local(ref)
        tags = self.store.tags_of(ref.repo_path, loaded.manifest_desc.digest)
        return describe(ref.registry, ref.repository, loaded.manifest_desc, loaded.manifest, loaded.kitfile, tags)

    def list(self, repository: str | None = None) -> list[ListEntry]:
        """Local ModelKits (``kit list``), or a remote repository's tags when ``repository`` names a registry."""
        if repository is not None:
            ref = parse_reference(repository)
            if not ref.is_local_only:
                return self._list_remote(ref)
        entries = []
        for entry in self.store.list_entries(parse_reference(repository).repo_path if repository else None):
            try:
                loaded = self.source.load_local(Reference(*entry.repo_path.split("/", 1), entry.descriptor.digest))
            except (KitopsError, ManifestError) as e:
                LOG.warning("skipping %s@%s: %s", entry.repo_path, entry.descriptor.digest, e)
                continue
            entries.append(self._list_entry(entry.repo_path, entry.descriptor.digest, entry.tags, loaded))
        return sorted(entries, key=lambda e: (e.repo, e.digest))  # kit: repository by repository, then digest

    def _list_remote(self, ref: Reference) -> list[ListEntry]:
        client = self.registry_client(ref.registry)
        rows: dict[str, list[str]] = {}
        for tag in client.list_tags(ref.repository):
            if is_internal_tag(tag):
                continue
            digest = client.manifest_digest(ref.repository, tag)
            if digest:
                rows.setdefault(digest, []).append(tag)
        out = []
        for digest, tags in rows.items():
            try:
                loaded = self.source.load_remote(ref.with_reference(digest))
            except (KitopsError, ManifestError):
                continue  # not a ModelKit (kit's list skips those too)
            out.append(self._list_entry(ref.repo_path, digest, tuple(sorted(tags)), loaded))
        return sorted(out, key=lambda e: e.digest)

    @staticmethod
    def _list_entry(repo_path: str, digest: str, tags: Iterable[str], loaded: LoadedModelKit) -> ListEntry:
        kf = loaded.kitfile
        size = sum(l.size for l in loaded.manifest.layers)
        return ListEntry(
            repo=repo_path, digest=digest, tags=tuple(tags),
            model_name=kf.package.name,
            size=size, author=kf.package.authors[0] if kf.package.authors else "",
        )

    def inspect(self, reference: str, *, remote: bool = False) -> dict[str, object]:
        """``kit inspect``: ``{"digest", "cliVersion", "kitfile", "manifest"}``."""
        ref = parse_reference(reference)
        loaded = self.source.load_remote(ref) if remote else self.source.load_local(ref)
        return {
            "digest": loaded.manifest_desc.digest,
            "cliVersion": loaded.manifest.annotations.get(ANNOTATION_CLI_VERSION, ""),
            "kitfile": json.loads(loaded.kitfile.to_json()),
            "manifest": json.loads(loaded.manifest_bytes),
        }

    def info(self, reference: str, *, remote: bool = False) -> Kitfile:
        """``kit info``: the Kitfile of a ModelKit."""
        ref = parse_reference(reference)
        return (self.source.load_remote(ref) if remote else self.source.load_local(ref)).kitfile

    def tag(self, source: str, destination: str) -> ModelKitDescriptor:
        """``kit tag``: add a local tag (across repositories too)."""
        self.store.tag(parse_reference(source), parse_reference(destination))
        return self.describe(destination)

    def remove(self, reference: str, *, force: bool = False, remote: bool = False) -> list[str]:
        """``kit remove``: untag or delete locally, or delete a manifest/tag in a registry (``remote``)."""
        ref = parse_reference(reference)
        if not remote:
            return self.store.remove(ref, force=force)
        require_registry(ref, "remove")
        client = self.registry_client(ref.registry)
        digest = ref.digest or client.manifest_digest(ref.repository, ref.reference)
        if digest is None:
            raise NotFoundError(f"{ref} not found in the registry")
        client.delete_manifest(ref.repository, digest)
        return [f"{ref.repo_path}@{digest}"]

    def verify(self) -> VerifyReport:
        """Re-hash every blob in the local store and check every manifest, blob and tag."""
        return self.store.verify()

    # -- registry: push ----------------------------------------------------------------------------------
    def push(self, source: str, destination: str | None = None, *, immutable: bool | None = None,
             sign: SigningKey | None = None) -> ModelKitDescriptor:
        """Copy a local ModelKit to a registry: blobs (skipping those present), then the manifest, then tags.

        Tags are written last, so a registry never has a tag pointing at a manifest with missing blobs.
        A tag already holding this digest is left alone (also with immutable tags), and a repository
        already holding the manifest gets no blob requests: re-pushing unchanged content is a no-op
        apart from new lineage records. ``push_result`` also says what the push changed.
        ``sign``: sign the pushed digest (and attest its provenance) with this key, see ``sign``.
        """
        return self.push_result(source, destination, immutable=immutable, sign=sign).descriptor

    def push_result(self, source: str, destination: str | None = None, *,
                    immutable: bool | None = None, sign: SigningKey | None = None) -> PushResult:
        """``push``, returning what it changed: whether the digest was new to the repository, tags moved, uploads.

        >>> res = kit.push_result("reg.example.com/team/churn:v3")     # doctest: +SKIP
        >>> res.new_to_repository, res.moved_tags, res.blobs_uploaded   # doctest: +SKIP
        (False, (), 0)
        """
        src = parse_reference(source)
        dst = parse_reference(destination) if destination else src
        require_registry(dst, "push")
        try:
            loaded = self.source.load_local(src)
        except NotInLocalStoreError:
            raise
        except NotFoundError:
            raise not_in_store(src.display(), self.store.home, f"push {src.display()}", local_only=False) from None
        client = self.registry_client(dst.registry)
        repo, digest = dst.repository, loaded.manifest_desc.digest
        tags = dst.tags if destination else (src.tags or [])
        immutable = immutable if immutable is not None else self.immutable_tags
        # fail fast, before uploading anything; a tag already holding this digest needs no write at all
        held = {tag: self._refuse_to_move(client, dst, tag, digest) if immutable
                else client.manifest_digest(repo, tag) == digest for tag in tags}
        to_tag = [tag for tag in tags if not held[tag]]
        present = any(held.values()) or client.manifest_digest(repo, digest) is not None
        blobs = list({b.digest: b for b in loaded.manifest.blobs()}.values())
        mount_from = self._known_remote_copy(dst, digest)
        uploaded: list[str] = []
        if not present:  # a registry holding the manifest holds its blobs: no blob requests then
            self.source.parallel(lambda b: self._push_blob(client, repo, b, mount_from, uploaded), blobs)
            self._put_manifest(client, repo, digest, loaded.manifest_bytes, blobs, mount_from)
        for tag in to_tag:
            # again: another push may have taken the tag while we uploaded
            ours_already = immutable and self._refuse_to_move(client, dst, tag, digest)
            self._put_manifest(client, repo, tag, loaded.manifest_bytes, blobs, mount_from)
            if immutable and not ours_already:
                self._confirm_tag(client, dst, tag, digest)
        if present and not to_tag:
            LOG.info("%s@%s is already in the registry%s: nothing to push", dst.repo_path, digest,
                     f" as {', '.join(tags)}" if tags else "")
        else:
            LOG.info("Pushed %s@%s%s", dst.repo_path, digest, f" as {', '.join(to_tag)}" if to_tag else "")
        lineage.push_records(self, loaded.manifest_desc, dst)
        if sign is not None:
            self.sign(f"{dst.repo_path}@{digest}", sign)
        desc = describe(dst.registry, dst.repository, loaded.manifest_desc, loaded.manifest, loaded.kitfile, tags)
        return PushResult(desc, new_to_repository=not present, moved_tags=tuple(to_tag),
                          blobs_uploaded=len(uploaded))

    @staticmethod
    def _refuse_to_move(client: RegistryClient, dst: Reference, tag: str, digest: str) -> bool:
        """Raise TagExistsError if ``tag`` points at another digest; True if it points at ``digest`` already."""
        current = client.manifest_digest(dst.repository, tag)
        if current is not None and current != digest:
            raise TagExistsError(
                f"tag {dst.repo_path}:{tag} already points at {current}; refusing to move it to {digest} "
                "(tags are immutable here: push a new tag, or allow moving tags)"
            )
        return current == digest

    @staticmethod
    def _confirm_tag(client: RegistryClient, dst: Reference, tag: str, digest: str) -> None:
        """Re-read an immutable tag just written: OCI registries have no conditional tag write (docker-registry
        2.8 ignores If-None-Match/If-Match on manifest PUTs), so of two pushes racing for a new tag both may
        write it; the one whose digest the tag does not hold afterwards lost and must not report success.
        The re-read waits IMMUTABLE_TAG_SETTLE first, so a PUT racing ours has landed by then; two successes
        remain possible only if the other push stalls longer than that between its check and its PUT.
        """
        time.sleep(IMMUTABLE_TAG_SETTLE)
        now = client.manifest_digest(dst.repository, tag)
        if now != digest:
            raise TagExistsError(
                f"tag {dst.repo_path}:{tag} was taken by another push at the same moment: it now points at "
                f"{now or 'nothing (deleted)'}, not at {digest}. This ModelKit is in the registry as "
                f"{dst.repo_path}@{digest}; push a new tag (tags are immutable here)"
            )

    def _put_manifest(self, client: RegistryClient, repo: str, reference: str, data: bytes,
                      blobs: Sequence[Descriptor], mount_from: str | None) -> None:
        """PUT the manifest; on a momentary "blob unknown" push (or mount) the blobs again and retry."""
        from .registry.manifest_put import put_manifest_recovering

        put_manifest_recovering(client, repo, reference, data, OCI_MANIFEST, recover=lambda: self.source.parallel(
            lambda b: self._push_blob(client, repo, b, mount_from), blobs))

    def _known_remote_copy(self, dst: Reference, digest: str) -> str | None:
        """Another repository of the destination registry known (from the local store) to hold this ModelKit.

        Its blobs can then be cross-repository mounted instead of uploaded again.
        """
        for entry in self.store.list_entries():
            registry, _, repository = entry.repo_path.partition("/")
            if registry == dst.registry and repository != dst.repository and entry.descriptor.digest == digest:
                return repository
        return None

    def _push_blob(self, client: RegistryClient, repo: str, blob: Descriptor, mount_from: str | None = None,
                   uploaded: list[str] | None = None) -> None:
        path = self.store.blob_path(blob.digest)
        if not self.store.has_blob(blob.digest, blob.size):
            raise NotFoundError(f"blob {blob.digest} is missing from the local store; re-pack or re-pull the ModelKit")
        reporter = self._reporter(f"push {blob.digest[:19]}", blob.size)
        sent = client.push_blob(repo, blob.digest, blob.size, lambda: open(path, "rb"), progress=reporter,
                                mount_from=mount_from)
        reporter.finish()
        if sent and uploaded is not None:
            uploaded.append(blob.digest)

    # -- registry: pull ----------------------------------------------------------------------------------
    def pull(self, reference: str, *, labels: Mapping[str, str] | Sequence[str] | None = None,
             verify_key: KeySpec | None = None) -> ModelKitDescriptor:
        """Download a ModelKit (every blob, verified) into the local store and tag it as in the registry.

        Parents referenced by ``model.path`` are pulled too, as ``kit pull`` does. With ``labels`` the
        reference names a ModelKit index: the one entry carrying those labels is pulled and tagged
        locally with the index's tag (``kit pull -l``); see ``kitops_flows.indexes``. ``verify_key``
        (a public key, its path/PEM, or a ``SignaturePolicy``): refuse, before any layer is fetched,
        a ModelKit (or parent, or the selected variant) not signed by it.
        """
        policy = _policy(verify_key)
        if labels:
            from .indexes import pull_variant, select_variant

            if policy is not None:
                from .signing import verified_reference

                verified_reference(self, parse_reference(select_variant(self, reference, labels)), policy)  # type: ignore[arg-type]
            return pull_variant(self, reference, labels)
        return self._pull(parse_reference(reference), chain=[], policy=policy)

    def _pull(self, ref: Reference, chain: list[str], policy: object = None) -> ModelKitDescriptor:
        if str(ref) in chain:
            raise KitopsError(f"found cycle in modelkit references: [{'=>'.join([*chain, str(ref)])}]")
        if len(chain) >= MAX_MODEL_REF_CHAIN:
            raise KitopsError(f"reached maximum number of model references ({MAX_MODEL_REF_CHAIN}) at {ref}")
        source = ref
        if policy is not None:  # checked before any blob is fetched; then fetch the verified digest only
            from .signing import verified_reference

            source = verified_reference(self, ref, policy)  # type: ignore[arg-type]
        loaded = self.source.load_remote(source)
        self.source.ensure_blobs(source, loaded.manifest.layers)
        tags = [] if ref.is_digest else [ref.reference]
        desc = self.store.put_manifest(ref.repo_path, loaded.manifest_bytes, tags)
        lineage.pull_records(self, desc, ref)  # provenance and downstream records travel with the ModelKit
        kf = loaded.kitfile
        if kf.model is not None and is_modelkit_reference(kf.model.path):
            self._pull(parse_reference(kf.model.path), [*chain, str(ref)], policy)
        LOG.info("Pulled %s@%s", ref.repo_path, desc.digest)
        return describe(ref.registry, ref.repository, desc, loaded.manifest, kf, tags)

    def resolve(self, reference: str) -> ModelKitDescriptor:
        """Descriptor of a ModelKit: from the local store if it is there, else from its registry (no layers fetched)."""
        ref = parse_reference(reference)
        try:
            return self.describe(reference)
        except NotFoundError:
            if ref.is_local_only:
                raise not_in_store(ref.display(), self.store.home, f"resolve {ref.display()}", local_only=True) from None
        loaded = self.source.load_remote(ref)
        tags = [] if ref.is_digest else [ref.reference]
        return describe(ref.registry, ref.repository, loaded.manifest_desc, loaded.manifest, loaded.kitfile, tags)

    def remote_digest(self, reference: str) -> str | None:
        """The manifest digest a registry tag points at now, or None if the tag does not exist (one HEAD)."""
        ref = parse_reference(reference)
        require_registry(ref, "look up")
        if ref.is_digest:
            return ref.reference
        return self.registry_client(ref.registry).manifest_digest(ref.repository, ref.reference)

    def list_tags(self, repository: str) -> dict[str, str]:
        """``{tag: manifest digest}`` of a repository (registry or local store), without fetching configs.

        Bookkeeping tags (``reference.is_internal_tag``: referrers fallback, ``.sig``/``.att``, the stage log) are
        left out.
        """
        ref = parse_reference(repository)
        if ref.is_local_only:
            return {t: e.descriptor.digest for e in self.store.list_entries(ref.repo_path) for t in e.tags}
        client = self.registry_client(ref.registry)
        out = {}
        for tag in client.list_tags(ref.repository):
            if is_internal_tag(tag):
                continue
            digest = client.manifest_digest(ref.repository, tag)
            if digest is not None:
                out[tag] = digest
        return out

    # -- unpack -------------------------------------------------------------------------------------------
    @_names_s3_credentials
    def unpack(
        self,
        reference: str,
        dest: Path | str,
        *,
        filters: Sequence[str | LayerFilter] | str | None = None,
        existing: str = "error",
        write_kitfile: bool = True,
        include_remote: bool = False,
        labels: Mapping[str, str] | Sequence[str] | None = None,
        verify_key: KeySpec | None = None,
    ) -> UnpackResult:
        """Extract selected layers of a ModelKit into ``dest``.

        From the local store when the ModelKit is there; otherwise only the selected layers (plus
        the manifest and config) are fetched from the registry into the store cache, so the
        downstream task that needs the dataset never downloads the 5 GB model.

        ``verify_key`` (a public key, its path/PEM, or a ``SignaturePolicy``): the ModelKit must be
        signed by it, checked in its registry before any layer is fetched or extracted.

        >>> kit.unpack("reg.example.com/team/churn@sha256:…", "/data", filters=["datasets:train"])   # doctest: +SKIP

        ``labels`` select one ModelKit of the index ``reference`` names (``kit unpack -l``).
        """
        if labels:
            from .indexes import select_variant

            reference = select_variant(self, reference, labels)
        ref = parse_reference(reference)
        policy = _policy(verify_key)
        if policy is not None:
            from .signing import verified_reference

            ref = verified_reference(self, ref, policy)
        parsed = parse_filter_list(filters)
        try:
            loaded, _ = self.source.selected_layers(ref, parsed)
        except NotFoundError as e:
            from .indexes import index_instead

            raise index_instead(self, ref, e, "unpack") from None
        result = unpack_layers(
            self.store, loaded.manifest, loaded.kitfile, dest, filters=parsed, existing=existing,
            write_kitfile=write_kitfile and loaded.kitfile_in_artifact, what=str(ref.display()),
        )
        remote = [d for d in loaded.kitfile.datasets if d.remote_path.startswith("s3://")]
        if remote and include_remote:
            from .s3 import download_remote_datasets

            download_remote_datasets(loaded.kitfile, result.dest, self.s3_session, overwrite=existing == "overwrite")
        elif remote:
            LOG.warning("ModelKit contains remote datasets. To unpack, specify the --include-remote flag")
        return result

    def pull_layer(self, reference: str, filters: Sequence[str] | str, dest: Path | str, *,
                   existing: str = "error", labels: Mapping[str, str] | Sequence[str] | None = None,
                   verify_key: KeySpec | None = None) -> UnpackResult:
        """Fetch and extract only the layers ``filters`` select (no Kitfile written). Same as ``unpack``."""
        return self.unpack(reference, dest, filters=filters, existing=existing, write_kitfile=False, labels=labels,
                           verify_key=verify_key)

    # -- signatures ---------------------------------------------------------------------------------------
    def sign(self, reference: str, key: SigningKey, *, mode: str = "auto", attest: bool = True) -> SignResult:
        """Sign a pushed ModelKit, cosign-compatibly (``signing.sign_modelkit``); attests its provenance too.

        >>> kit.sign("reg.example.com/team/churn:v3", load_private_key("cosign.key", pw))   # doctest: +SKIP
        """
        from .signing import sign_modelkit

        return sign_modelkit(self, reference, key, mode=mode, attest=attest, provenance=self._provenance_of)

    def _provenance_of(self, pinned: str) -> dict[str, object] | None:
        """The verified provenance statement of a ModelKit, or None when it has none (what ``sign`` attests)."""
        try:
            return lineage.read_provenance(self, pinned)
        except NotFoundError:
            return None

    def verify_signature(self, reference: str, key: VerifyKey | KeySpec, *,
                         attestation: bool = False) -> Verification:
        """Check a ModelKit's signature (and with ``attestation`` its provenance attestation) in its registry.

        Raises ``SignatureError`` with one line per rejected signature; see ``signing.verify``.
        """
        policy = _policy(key)
        assert policy is not None
        from .signing import verify_modelkit

        result = verify_modelkit(self, reference, policy.keys)
        if attestation or policy.require_attestation:
            from .signing import verify_attestation

            verify_attestation(self, result.reference, policy.keys)
        return result

    # -- S3 -----------------------------------------------------------------------------------------------
    def pack_if_changed(self, context_dir: Path | str, *, reference: str, sources: Mapping[str, object] | None = None,
                        **pack_kwargs: object) -> tuple[ModelKitDescriptor, bool]:
        """``pack`` unless every input (local files, S3 object versions, Kitfile, options) is unchanged.

        Returns ``(descriptor, packed)``; see ``kitops_flows.idempotent.pack_and_push``.

        >>> mk, packed = kit.pack_if_changed("job/", reference="reg.example.com/team/data:nightly",
        ...                                  sources={"train": "s3://ml-data/churn/"}, push=True)  # doctest: +SKIP
        """
        from .idempotent import pack_if_changed

        return pack_if_changed(self, context_dir, reference=reference, sources=sources, **pack_kwargs)

    @_names_s3_credentials
    def unpack_to_s3(self, reference: str, filters: Sequence[str] | str | None, dest: str, *,
                     existing: str = "error", delete: bool = False,
                     ) -> S3UnpackResult:  # noqa: F821 - imported lazily (boto3 is optional)
        """Extract the selected layers to ``s3://bucket/prefix/`` (verified first); returns an S3UnpackResult.

        ``existing`` ("error", "overwrite", "skip") decides about keys holding other bytes; ``delete``
        removes keys the ModelKit does not have. A failed call leaves the prefix as it was (see ``s3.write``).

        >>> kit.unpack_to_s3(mk.pinned, ["datasets:train"], "s3://serving/churn/")   # doctest: +SKIP
        """
        from .unpack_s3 import unpack_to_s3

        return unpack_to_s3(self, reference, filters, dest, existing=existing, delete=delete)

    @_names_s3_credentials
    def download_remote_datasets(self, reference: str, dest: Path | str, *, overwrite: bool = False) -> list[Path]:
        """Fetch a ModelKit's ``remotePath: s3://`` datasets into ``dest`` (kit's ``--include-remote``), verified."""
        from .s3 import download_remote_datasets

        try:
            kf = self.info(reference)
        except NotFoundError:
            if parse_reference(reference).is_local_only:
                raise
            kf = self.info(reference, remote=True)
        return download_remote_datasets(kf, dest, self.s3_session, overwrite=overwrite)


def source_fingerprints(sources: Mapping[str, object], session: object | None = None) -> dict[str, str]:
    """Fingerprints of S3 sources' current object versions, for content-based cache keys (see ``s3``)."""
    from .s3 import source_fingerprints as fingerprints

    return fingerprints(sources, session=session)


def _policy(value: object) -> object:
    """``verify_key=`` as a SignaturePolicy (None: no check); imported lazily, like the S3 code."""
    if value is None:
        return None
    from .signing import SignaturePolicy

    return SignaturePolicy.of(value)  # type: ignore[arg-type]




__all__ = [
    "Kitfile",
    "KitOpsClient",
    "KitfileArguments",
    "LayerFilter",
    "LayerSummary",
    "ListEntry",
    "LocalStore",
    "ModelKitDescriptor",
    "ProgressCallback",
    "PushResult",
    "RegistryCredentials",
    "RegistryError",
    "RunContext",
    "UnpackResult",
    "parse_reference",
    "source_fingerprints",
]


def __getattr__(name: str) -> object:
    """``RunContext`` is re-exported from ``lineage``, which loads on first use (``list`` never needs it)."""
    if name == "RunContext":
        from .lineage import RunContext

        return RunContext
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
