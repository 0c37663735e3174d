"""Same content, same ModelKit: find a known ModelKit identical to the one a pack is about to write.

A ModelKit's identity is its content. When a pack produces a config and layers identical to a
ModelKit already known, the pack returns that ModelKit (same manifest bytes, so the same digest and
the same ``created``) instead of minting a new manifest that differs only in its timestamp. Known
ModelKits are, in this order:

1. the ones the caller passes as ``previous`` (references, pinned or tagged);
2. the target tag and every other version of the target repository in the local store;
3. the target tag in the registry, when the reference names one (one manifest GET), so a fresh
   worker with an empty store re-running yesterday's pipeline lands on yesterday's digest.

"Identical" means: same config blob, same layers (media type, digest, size, in order), same
artifact type, and the same caller annotations. A ModelPack config carries its pack time
(``descriptor.createdAt``, as kit writes it), so ModelPack configs are compared without it
(``modelpack.config_content``); a known ModelPack found in a registry has its config fetched into the
local store. Build metadata a re-run changes without changing
the content (``created``, the tool version, the git revision and source, the parents annotation,
and the run id / S3 inputs fingerprint older versions wrote) is not compared; per-layer annotations
are descriptive (file mtimes of raw layers, S3 version ids) and not compared either.

>>> from kitops_flows.mediatypes import KIT_CONFIG
>>> from kitops_flows.store import Descriptor
>>> a = Manifest(config=Descriptor(KIT_CONFIG, "sha256:" + "1" * 64, 9), layers=[],
...              annotations={ANNOTATION_CREATED: "2026-11-01T00:00:00Z"})
>>> b = Manifest(config=a.config, layers=[], annotations={ANNOTATION_CREATED: "2026-11-29T00:00:00Z"})
>>> same_content(a, b)
True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .aws import credentials_named
from .errors import KitopsError, NotFoundError
from .kitfile import Kitfile
from .lineage.model import (
    ANNOTATION_PARENTS,
    ANNOTATION_REVISION,
    ANNOTATION_RUN_ID,
    ANNOTATION_SOURCE,
    NodeRef,
    sha256_of,
)
from .manifest import ANNOTATION_CLI_VERSION, ANNOTATION_CREATED, Manifest, ManifestError
from .mediatypes import MODELPACK_CONFIG
from .modelkit import ModelKitDescriptor, PushResult
from .modelpack import config_content
from .reference import Reference, parse_reference

if TYPE_CHECKING:
    from .api import KitOpsClient
    from .lineage import StageEvent

LOG = logging.getLogger("kitops_flows")

#: Manifest annotations that describe a build, not its content: a re-run may change them freely.
BUILD_METADATA = frozenset({
    ANNOTATION_CREATED, ANNOTATION_CLI_VERSION, ANNOTATION_SOURCE, ANNOTATION_REVISION, ANNOTATION_PARENTS,
    ANNOTATION_RUN_ID, "ml.kitops-flows.s3.inputs-fingerprint",
})


@dataclass(frozen=True)
class KnownModelKit:
    """A ModelKit found identical to a fresh pack: its exact manifest bytes and where it was found."""

    data: bytes
    manifest: Manifest
    source: str  # e.g. "local store localhost/team/m" or "registry 127.0.0.1:5000/team/m:v1"

    @property
    def digest(self) -> str:
        return sha256_of(self.data)


def content_key(m: Manifest) -> tuple[object, ...]:
    """What makes a ModelKit's content: config, layers, artifact type and the caller's annotations."""
    layers = tuple((l.media_type, l.digest, l.size) for l in m.layers)
    ann = tuple(sorted((k, v) for k, v in m.annotations.items() if k not in BUILD_METADATA))
    return (m.artifact_type, m.config.media_type, m.config.digest, m.config.size, layers, ann,
            m.subject.digest if m.subject else None)


def same_content(a: Manifest, b: Manifest) -> bool:
    """True when two manifests describe the same content (see the module docstring)."""
    return content_key(a) == content_key(b)


def _parse(data: bytes, what: str) -> Manifest | None:
    try:
        return Manifest.from_bytes(data, what)
    except ManifestError:
        return None


#: A candidate manifest: its bytes, where it was found, and the registry reference its blobs can come from.
Candidate = tuple[bytes, str, Reference | None]


def _local_candidates(client: KitOpsClient, ref: Reference) -> Iterator[Candidate]:
    """The target tag first, then every other version of the repository in the local store, newest index last."""
    store = client.store
    seen: set[str] = set()
    if not ref.is_digest:
        try:
            desc = store.resolve(ref)
        except KitopsError:  # not there (NotFoundError) or unreadable: compare with the other versions
            desc = None
        if desc is not None:
            seen.add(desc.digest)
            yield store.read_blob(desc.digest, desc.size), f"local store {ref.display()}", None
    for entry in reversed(store.list_entries(ref.repo_path)):
        digest = entry.descriptor.digest
        if digest in seen or not store.has_blob(digest):
            continue
        seen.add(digest)
        yield store.read_blob(digest, entry.descriptor.size), f"local store {ref.repo_path}@{digest}", None


def _previous_candidates(client: KitOpsClient, previous: Iterable[object]) -> Iterator[Candidate]:
    for item in previous:
        text = getattr(item, "pinned", None) or str(item)
        if not text:
            continue
        try:
            ref = parse_reference(text)
            yield _manifest_bytes(client, ref), f"previous version {text}", None if ref.is_local_only else ref
        except KitopsError as e:  # a previous version that is gone is not an error: pack fresh
            LOG.info("Previous version %s not readable (%s); not comparing with it", text, e)


def _manifest_bytes(client: KitOpsClient, ref: Reference) -> bytes:
    """Manifest bytes of a reference: local store first, else its registry (verified when pinned)."""
    try:
        desc = client.store.resolve(ref)
        return client.store.read_blob(desc.digest, desc.size)
    except NotFoundError:
        if ref.is_local_only:
            raise
    fetched = client.registry_client(ref.registry).get_manifest(ref.repository, ref.reference)
    if ref.is_digest and sha256_of(fetched.data) != ref.reference:
        raise KitopsError(f"manifest of {ref} hashes to {sha256_of(fetched.data)}, not {ref.reference}")
    return fetched.data


def _registry_candidate(client: KitOpsClient, ref: Reference) -> Iterator[Candidate]:
    if ref.is_local_only or ref.is_digest:
        return
    try:
        fetched = client.registry_client(ref.registry).get_manifest(ref.repository, ref.reference)
    except NotFoundError:
        return  # a new tag
    except KitopsError as e:  # unreachable or refused: pack fresh (a push will say what is wrong)
        LOG.warning("Could not read %s to compare with (%s); packing a new manifest", ref, e)
        return
    yield fetched.data, f"registry {ref}", ref


def find_identical(client: KitOpsClient, fresh: Manifest, reference: Reference,
                   previous: Sequence[object] = ()) -> KnownModelKit | None:
    """A known ModelKit with ``fresh``'s content (previous, local store, then registry tag), or None."""
    modelpack = fresh.config.media_type == MODELPACK_CONFIG
    key = _key_without_config(fresh) if modelpack else content_key(fresh)
    fresh_config = config_content(client.store.read_blob(fresh.config.digest, fresh.config.size)) if modelpack else b""
    sources: list[Iterator[Candidate]] = [
        _previous_candidates(client, previous), _local_candidates(client, reference),
        _registry_candidate(client, reference),
    ]
    for candidates in sources:
        for data, where, remote in candidates:
            known = _parse(data, f"manifest from {where}")
            if known is None:
                continue
            if modelpack:
                if _key_without_config(known) != key or _config_content(client, known, remote) != fresh_config:
                    continue
            elif content_key(known) != key:
                continue
            return KnownModelKit(data, known, where)
    return None


def _key_without_config(m: Manifest) -> tuple[object, ...]:
    """``content_key`` with the config blob left out (compared by ``config_content`` instead)."""
    key = content_key(m)
    return (*key[:2], *key[4:])


def _config_content(client: KitOpsClient, known: Manifest, remote: Reference | None) -> bytes | None:
    """A known ModelPack's config without its pack time; fetched (verified) into the store from ``remote`` when
    missing, so a reused manifest is complete locally. None when it cannot be read."""
    store, config = client.store, known.config
    try:
        if not store.has_blob(config.digest, config.size):
            if remote is None:
                return None
            client.source.fetch_blob(client.registry_client(remote.registry), remote.repository, config)
        return config_content(store.read_blob(config.digest, config.size))
    except KitopsError as e:
        LOG.info("Config %s of a known ModelPack not readable (%s); not comparing with it", config.digest, e)
        return None


def reuse_identical(client: KitOpsClient, reference: Reference,
                    previous: Sequence[object] = ()) -> Callable[[Manifest], KnownModelKit | None]:
    """The hook ``pack.pack`` calls with the manifest it built, before storing it."""
    return lambda fresh: find_identical(client, fresh, reference, previous)


# -- skip unchanged inputs, pack, push: the one call the orchestrator plugins make ---------------------------

@dataclass(frozen=True)
class PackOutcome:
    """What ``pack_and_push`` did.

    ``packed``: False when the inputs were unchanged and nothing was packed (``skip_if_unchanged``);
    ``push``: the push's result (None without a push, or when skipped). ``new_to_repository`` is what
    orchestrators announce downstream on: a digest the repository did not hold before.
    """

    descriptor: ModelKitDescriptor
    packed: bool
    push: PushResult | None = None
    fingerprint: str = ""

    @property
    def new_to_repository(self) -> bool:
        return self.push is not None and self.push.new_to_repository


def recorded_fingerprints(client: KitOpsClient, node: NodeRef) -> set[str]:
    """Inputs fingerprints of every run recorded on a ModelKit (local store, and its registry when it names one)."""
    from .lineage.records import statements_of
    from .lineage.referrers import RecordReader

    found = set()
    for statement in statements_of(RecordReader(client, remote=True), node):
        external = statement.get("predicate", {}).get("buildDefinition", {}).get("externalParameters", {})
        if isinstance(external, dict) and external.get("inputsFingerprint"):
            found.add(str(external["inputsFingerprint"]))
    return found


def _current(client: KitOpsClient, ref: Reference) -> NodeRef | None:
    """The ModelKit the tag holds now: in the registry when the reference names one (workers start empty)."""
    if ref.is_local_only:
        try:
            return NodeRef(ref.registry, ref.repository, client.store.resolve(ref).digest)
        except NotFoundError:
            return None
    digest = client.registry_client(ref.registry).manifest_digest(ref.repository, ref.reference)
    return NodeRef(ref.registry, ref.repository, digest) if digest else None


def _listed_sources(client: KitOpsClient, sources: Mapping[str, object] | None) -> tuple[dict[str, Any], list[Any]]:
    """S3 sources listed once: the pack then reads exactly the object versions fingerprinted."""
    if not sources:
        return {}, []
    from .s3 import S3Source, list_input, s3_client

    s3 = s3_client(client.s3_session)
    specs: dict[str, Any] = {}
    inputs = []
    with credentials_named(client.s3_session):
        for label, value in sources.items():
            spec = value if isinstance(value, S3Source) else S3Source(str(value))
            listing = spec.listing or list_input(s3, spec.uri, entry=label, mode=spec.mode)
            inputs.append(listing)
            specs[label] = replace(spec, listing=listing)
    return specs, inputs


def pack_and_push(
    client: KitOpsClient,
    context_dir: Path | str,
    *,
    reference: str | None,
    skip_if_unchanged: bool = False,
    push: bool = False,
    sources: Mapping[str, object] | None = None,
    kitfile: Path | str | Kitfile | None = None,
    **pack_kwargs: Any,
) -> PackOutcome:
    """Pack (unless ``skip_if_unchanged`` and the inputs are unchanged), then push when ``push``.

    Unchanged means: the ModelKit ``reference``'s tag holds (in the registry when the reference
    names one, else in the local store) has a provenance record whose inputs fingerprint equals the
    fingerprint of the inputs now (``fingerprint.fingerprint_inputs``: local files, S3 object
    versions, Kitfile, options, annotations, parents). Packing unchanged content gives the same
    digest anyway (see the module docstring); skipping saves reading it. The push is a no-op when
    the tag already holds the digest (``PushResult.new_to_repository`` is then False).

    ``local_copy=False`` streams the layers to the registry without writing them to the store; it
    is the default when the client's store is ephemeral (only a staging area), else the store keeps
    a copy. An explicit ``local_copy`` always wins.

    >>> out = pack_and_push(kit, "job/", reference="reg.example.com/team/churn:nightly",
    ...                     skip_if_unchanged=True, push=True)                          # doctest: +SKIP
    >>> out.packed, out.new_to_repository                                                # doctest: +SKIP
    (False, False)
    """
    from .fingerprint import fingerprint_inputs
    from .pack import load_kitfile

    context = Path(context_dir).expanduser().absolute()
    kf, _ = load_kitfile(context, kitfile)
    fingerprint = ""
    if skip_if_unchanged:
        if reference is None:
            raise KitopsError("skip_if_unchanged needs a reference whose tag holds the last version, e.g. team/m:nightly")
        ref = parse_reference(reference)
        if ref.is_digest:
            raise KitopsError(f"skip_if_unchanged needs a tag to compare with, not a digest ({reference})")
        sources, inputs = _listed_sources(client, sources)
        options = {k: pack_kwargs.get(k, d) for k, d in (("compression", "none"), ("layer_format", "tar"))}
        if pack_kwargs.get("use_model_pack"):  # another format from the same inputs (absent: Kit-format prints stay)
            options["use_model_pack"] = True
        fingerprint = fingerprint_inputs(
            client.store, context, kf, s3_inputs=inputs, options=options,
            annotations=pack_kwargs.get("annotations"), parents=[str(p) for p in pack_kwargs.get("parents", ())],
        ).digest
        current = _current(client, ref)
        if current is not None and fingerprint in recorded_fingerprints(client, current):
            LOG.info("Inputs unchanged since %s: not packing", current.pinned)
            desc = client.resolve(current.pinned)
            return PackOutcome(replace(desc, tags=(ref.reference,)), packed=False, fingerprint=fingerprint)
    sign = pack_kwargs.pop("sign", None)
    if pack_kwargs.get("local_copy") is None and client.ephemeral_store:
        pack_kwargs["local_copy"] = False  # a throwaway store is only a staging area: stream to the registry
    if push and reference is not None and not pack_kwargs.get("use_model_pack") \
            and pack_kwargs.get("local_copy") is False:  # stream to the registry, no local copy
        pushed: list[PushResult] = []
        client.pack(context, kitfile=kf, reference=reference, sources=sources, inputs_fingerprint=fingerprint,
                    push=True, sign=sign, on_push=pushed.append, **pack_kwargs)
        result = pushed[0] if pushed else client.push_result(reference)  # pack pushed already if it did not stream
        return PackOutcome(result.descriptor, packed=True, push=result, fingerprint=fingerprint)
    desc = client.pack(context, kitfile=kf, reference=reference, sources=sources or None,
                       inputs_fingerprint=fingerprint, **pack_kwargs)
    if not push:
        return PackOutcome(desc, packed=True, fingerprint=fingerprint)
    if reference is None:
        raise KitopsError("push=True needs a reference naming a registry, e.g. reg.example.com/team/m:v1")
    result = client.push_result(reference, sign=sign)
    return PackOutcome(result.descriptor, packed=True, push=result, fingerprint=fingerprint)


def pack_if_changed(client: KitOpsClient, context_dir: Path | str, *, reference: str,
                    sources: Mapping[str, object] | None = None, **pack_kwargs: Any) -> tuple[ModelKitDescriptor, bool]:
    """``pack_and_push(skip_if_unchanged=True)`` as ``(descriptor, packed)``."""
    out = pack_and_push(client, context_dir, reference=reference, sources=sources, skip_if_unchanged=True,
                        **pack_kwargs)
    return out.descriptor, out.packed


def reachable(client: KitOpsClient, desc: ModelKitDescriptor, *, local_only: bool = False) -> bool:
    """True while a ModelKit can still be used: complete in the local store, or (unless ``local_only``)
    in its registry repository. Caches of pack results (Prefect) are valid only while this holds."""
    store = client.store
    if store.has_blob(desc.digest) and store.has_blob(desc.config_digest) and all(
            store.has_blob(layer.digest, layer.size) for layer in desc.layers):
        return True
    if local_only or parse_reference(desc.pinned).is_local_only:
        return False
    try:
        return client.registry_client(desc.registry).manifest_digest(desc.repository, desc.digest) == desc.digest
    except KitopsError as e:
        LOG.info("Could not check %s in its registry (%s): treating it as unreachable", desc.pinned, e)
        return False


def push_unless_there(client: KitOpsClient, modelkit: ModelKitDescriptor | str, destination: str | None = None, *,
                      immutable: bool | None = None) -> PushResult:
    """``push_result``; a ModelKit gone from the local store whose digest the destination tag already holds is
    a no-op (a fresh worker re-running a push of yesterday's pack), not a NotFoundError."""
    source = modelkit.reference if isinstance(modelkit, ModelKitDescriptor) else modelkit
    try:
        return client.push_result(source, destination, immutable=immutable)
    except NotFoundError:
        if not isinstance(modelkit, ModelKitDescriptor):
            raise
        dst = parse_reference(destination or source)
        if dst.is_local_only or client.remote_digest(str(dst)) != modelkit.digest:
            raise
        LOG.info("%s is not in the local store, but %s already holds it: nothing to push", modelkit.pinned, dst)
        tags = tuple(dst.tags) if not dst.is_digest else ()
        return PushResult(replace(modelkit, registry=dst.registry, repository=dst.repository, tags=tags),
                          new_to_repository=False)


def promote_unless_there(client: KitOpsClient, reference: str, stage: str, **options: Any) -> tuple[StageEvent, bool]:
    """``lineage.promote`` unless the stage tag already holds the ModelKit: then its last stage event and False."""
    from .lineage import history, pin, promote, where

    node = pin(client, reference)
    current = where(client, node.repo_path, stage)
    if current is not None and current.digest == node.digest:
        for event in history(client, node.repo_path):
            if event.stage == stage and event.digest == node.digest:
                LOG.info("%s is already in %s: not promoting again", node.pinned, stage)
                return event, False
    return promote(client, reference, stage, **options), True


__all__ = ["BUILD_METADATA", "KnownModelKit", "PackOutcome", "content_key", "find_identical", "pack_and_push",
           "pack_if_changed", "promote_unless_there", "push_unless_there", "reachable", "recorded_fingerprints",
           "reuse_identical", "same_content"]
