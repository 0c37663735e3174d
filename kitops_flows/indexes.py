"""``kit index`` operations and label-selected variants, over a KitOpsClient.

Pack several variants of one model, gather them in one index, and let a downstream task take the
variant it needs by labels::

    kit = KitOpsClient(plain_http=True)
    indexes = ModelKitIndexes(kit)
    indexes.publish("reg.example.com/team/llm:all", {
        "reg.example.com/team/llm:cpu": {"device": "cpu"},
        "reg.example.com/team/llm:cuda": {"device": "cuda", "gpuArchs": ["sm_80", "sm_90"]},
    }, push=True)
    # downstream, anywhere:
    kit.unpack("reg.example.com/team/llm:all", "/srv/llm", labels={"device": "cuda"})

Local indexes live in kit's layout (``indexes/`` beside ModelKit bookkeeping, see ``indexstore``); remote
ones are plain OCI image indexes with kit's artifact type, readable by any OCI client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import KitopsError, NotFoundError
from .indexstore import LocalIndexStore, StoredIndex
from .manifest import Manifest
from .mediatypes import KIT_ARTIFACT_TYPE, MODELPACK_ARTIFACT_TYPE, OCI_INDEX, OCI_MANIFEST
from .modelindex import (
    ANNOTATION_ORIGINAL_TAG,
    ANNOTATION_SIZE,
    IndexEntry,
    ModelKitIndex,
    ModelKitIndexError,
    NotAnIndexError,
    empty_index_bytes,
    entry_reference,
    labels_to_edits,
    parse_annotation_edits,
    parse_label_edits,
    parse_selector,
    select_entry,
)
from .reference import DEFAULT_REGISTRY, Reference, parse_reference
from .store import Descriptor

if TYPE_CHECKING:
    from .api import KitOpsClient
    from .modelkit import ModelKitDescriptor

LOG = logging.getLogger("kitops_flows")
Labels = Mapping[str, object] | Sequence[str]


@dataclass(frozen=True)
class IndexInfo:
    """What ``index info`` shows: the index, where it was read, and each entry's size if known."""

    ref: Reference
    descriptor: Descriptor
    index: ModelKitIndex
    sizes: tuple[int | None, ...]

    def to_dict(self) -> dict[str, object]:
        """kit's ``index info --format json`` document."""
        import json

        out: dict[str, object] = {}
        if not self.ref.is_digest:
            out["reference"] = display(self.ref)
        out["digest"] = self.descriptor.digest
        kits = []
        for entry, size in zip(self.index.entries, self.sizes, strict=True):
            item: dict[str, object] = {}
            if reference := entry_reference(entry, self.ref):
                item["reference"] = reference
            item.update(digest=entry.digest, size=size,
                        labels={k: json.loads(entry.labels[k]) for k in sorted(entry.labels)},
                        annotations=dict(sorted(entry.user_annotations.items())))
            kits.append(item)
        out["modelKits"] = kits
        return out


def display(ref: Reference) -> str:
    """kit's FormatRepositoryForDisplay of a reference."""
    return ref.display()


def index_reference(text: str, *, announce: bool = True) -> Reference:
    """An index reference: a tag (``latest`` when none, as kit says), never a digest or extra tags."""
    ref = parse_reference(text)
    if ref.extra_tags:
        raise ModelKitIndexError(f"invalid index reference: extra tags are not supported: {', '.join(ref.extra_tags)}")
    if ref.is_digest:
        raise ModelKitIndexError(f"index reference must be a tag, not a digest: {text}")
    if not _names_tag(text) and announce:
        LOG.info("No tag specified for index. Using 'latest' as default ('%s:latest')", text)
    return ref


def _names_tag(text: str) -> bool:
    return ":" in text.rsplit("/", 1)[-1] or "@" in text


def modelkit_size(manifest: Manifest) -> int:
    """kit's ModelKitSize: the manifest's layers, config excluded."""
    return sum(l.size for l in manifest.layers)


class ModelKitIndexes:
    """``kit index`` over one client's local store and registries."""

    def __init__(self, kit: KitOpsClient) -> None:
        self.kit = kit
        self.local = LocalIndexStore(kit.store)

    # -- reading indexes ---------------------------------------------------------------------------------------
    def read_local(self, ref: Reference) -> tuple[Descriptor, bytes, ModelKitIndex]:
        desc, data = self.local.read(ref)
        return desc, data, ModelKitIndex.from_bytes(data, f"index {display(ref)}")

    def read_remote(self, ref: Reference) -> tuple[Descriptor, bytes, ModelKitIndex]:
        if ref.is_local_only:
            raise ModelKitIndexError(f"can not check remote: {display(ref)} does not contain registry")
        fetched = self.kit.registry_client(ref.registry).get_manifest(ref.repository, ref.reference)
        if fetched.media_type != OCI_INDEX:
            raise NotAnIndexError("artifact is not a ModelKit index")
        index = ModelKitIndex.from_bytes(fetched.data, f"index {ref}")
        return Descriptor(OCI_INDEX, fetched.digest, len(fetched.data)), fetched.data, index

    def read(self, reference: str | Reference, *, remote: bool = False) -> tuple[Descriptor, bytes, ModelKitIndex]:
        ref = reference if isinstance(reference, Reference) else parse_reference(reference)
        if remote:
            return self.read_remote(ref)
        try:
            return self.read_local(ref)
        except NotFoundError:
            raise NotFoundError(f"could not find index {display(ref)} in local storage; use 'kit index pull' to "
                                "download it, or --remote to read it from its registry") from None

    # -- editing local indexes ---------------------------------------------------------------------------------
    def create(self, reference: str) -> tuple[Reference, Descriptor]:
        """An empty index under a tag; refuses a tag that already names an index."""
        ref = index_reference(reference)
        try:
            self.local.resolve(ref)
        except NotFoundError:
            return ref, self.local.write(ref, empty_index_bytes())
        raise ModelKitIndexError(f"index {display(ref)} already exists")

    def add(self, index: str, modelkit: str, *, labels: Labels = (), annotations: Iterable[str] = (),
            remote: bool = False) -> Descriptor:
        """Add (or update) a ModelKit's entry; labels/annotations merge into what the entry has.

        ``labels``: kit's ``-l`` arguments (``k=v``, ``k:=<json>``, ``k-``) or a mapping of values."""
        index_ref = index_reference(index)
        model_ref = parse_reference(modelkit)
        if model_ref.extra_tags:
            raise ModelKitIndexError(f"invalid ModelKit reference: extra tags are not supported: {', '.join(model_ref.extra_tags)}")
        if remote and model_ref.is_local_only:
            raise ModelKitIndexError(f"can not check remote: {display(model_ref)} does not contain registry")
        if model_ref.repo_path != index_ref.repo_path:
            raise ModelKitIndexError(f"ModelKit {display(model_ref)} is not in the same repository as index "
                              f"{display(index_ref)}; an index may only reference ModelKits in its own repository")
        label_edits = labels_to_edits(labels) if isinstance(labels, Mapping) else parse_label_edits(labels)
        annotation_edits = parse_annotation_edits(annotations)
        desc, manifest = self._resolve_modelkit(model_ref, remote=remote)
        try:
            previous, _, idx = self.read_local(index_ref)
        except NotFoundError:
            raise NotFoundError(f"could not find index {display(index_ref)} in local storage; use 'kit index create' "
                                "to create it") from None
        existing = idx.get(desc.digest)
        recorded = dict(existing.annotations) if existing else {}
        if not model_ref.is_digest:
            recorded[ANNOTATION_ORIGINAL_TAG] = model_ref.reference
        recorded[ANNOTATION_SIZE] = str(modelkit_size(manifest))
        artifact_type = MODELPACK_ARTIFACT_TYPE if manifest.format == "modelpack" else KIT_ARTIFACT_TYPE
        idx.put(IndexEntry(desc.digest, desc.size, OCI_MANIFEST, annotation_edits.apply(recorded), artifact_type,
                           label_edits.apply(existing.labels if existing else {}),
                           dict(existing.extra) if existing else {}))
        return self.local.write(index_ref, idx.to_bytes(), previous)

    def _resolve_modelkit(self, ref: Reference, *, remote: bool) -> tuple[Descriptor, Manifest]:
        if remote:
            fetched = self.kit.registry_client(ref.registry).get_manifest(ref.repository, ref.reference)
            return (Descriptor(OCI_MANIFEST, fetched.digest, len(fetched.data)),
                    Manifest.from_bytes(fetched.data, f"manifest of {ref}"))
        try:
            desc = self.kit.store.resolve(ref)
        except NotFoundError:
            raise NotFoundError(f"could not find ModelKit {display(ref)} in local storage; use --remote to resolve "
                                "it in its registry") from None
        data = self.kit.store.read_blob(desc.digest, desc.size)
        return Descriptor(OCI_MANIFEST, desc.digest, desc.size), Manifest.from_bytes(data, f"manifest of {ref}")

    def remove(self, index: str, modelkit: str) -> tuple[str, Descriptor]:
        """Drop a ModelKit's entry (by tag, resolved locally, or by digest); the ModelKit stays."""
        index_ref = index_reference(index)
        if modelkit.startswith("sha256:"):
            digest, shown = modelkit, modelkit
        else:
            model_ref = parse_reference(modelkit)
            shown = display(model_ref)
            if model_ref.is_digest:
                digest = model_ref.reference
            else:
                try:
                    digest = self.kit.store.resolve(model_ref).digest
                except NotFoundError as e:
                    raise NotFoundError(f"could not resolve {shown} in local storage: {e}; specify the entry by "
                                        "digest instead") from None
        previous, _, idx = self.read_local(index_ref)
        if not idx.remove(digest):
            raise ModelKitIndexError(f"index {display(index_ref)} does not contain {digest}")
        return shown, self.local.write(index_ref, idx.to_bytes(), previous)

    def delete(self, index: str | None = None, *, force: bool = False, all_untagged: bool = False) -> list[str]:
        """kit index delete: untag, delete one index, or (``all_untagged``) every untagged one (``force``: all).
        Returns kit's message lines. ModelKits are never removed."""
        if all_untagged and index:
            raise ModelKitIndexError("index should not be specified when --all flag is used")
        if not all_untagged and not index:
            raise ModelKitIndexError("index is required for delete unless --all is specified")
        if all_untagged:
            lines = []
            for stored in self.local.list():
                if stored.tags and not force:
                    continue
                self.local.delete(stored.repo_path, stored.descriptor.digest)
                lines.append(f"Deleted index {_repo_display(stored.repo_path)}@{stored.descriptor.digest}")
            return lines
        ref = parse_reference(index or "")
        try:
            desc, _, _ = self.read_local(ref)
        except NotAnIndexError:
            raise ModelKitIndexError(f"{display(ref)} is not a ModelKit index; use 'kit remove' to remove a ModelKit") from None
        tags = self.local.tags_of(ref.repo_path, desc.digest)
        if not ref.is_digest and len(tags) > 1 and not force:
            self.local.untag(ref)
            return [f"Untagged index {display(ref)} (digest {desc.digest})"]
        removed = self.local.delete(ref.repo_path, desc.digest)
        lines = [f"Deleted index {display(ref)} (digest {desc.digest})"]
        if removed:
            lines.append(f"Removed tags: {', '.join(removed)}")
        return lines

    def list(self) -> list[tuple[StoredIndex, int | None]]:
        """Local indexes with their entry counts (None when unreadable)."""
        out = []
        for stored in self.local.list():
            try:
                data = self.kit.store.read_blob(stored.descriptor.digest, stored.descriptor.size)
                count: int | None = len(ModelKitIndex.from_bytes(data).entries)
            except KitopsError:
                count = None
            out.append((stored, count))
        return out

    def info(self, index: str, *, remote: bool = False) -> IndexInfo:
        ref = parse_reference(index)
        desc, _, idx = self.read(ref, remote=remote)
        return IndexInfo(ref, desc, idx, tuple(self._entry_size(ref, e, remote) for e in idx.entries))

    def _entry_size(self, ref: Reference, entry: IndexEntry, remote: bool) -> int | None:
        if (recorded := entry.recorded_size) is not None:
            return recorded
        try:
            if remote:
                data = self.kit.registry_client(ref.registry).get_manifest(ref.repository, entry.digest).data
            else:
                data = self.kit.store.read_blob(entry.digest)
            return modelkit_size(Manifest.from_bytes(data))
        except KitopsError:
            return None

    def inspect(self, index: str, *, remote: bool = False) -> bytes:
        """The index bytes exactly as stored (validated as a ModelKit index)."""
        return self.read(index, remote=remote)[1]

    # -- registry ----------------------------------------------------------------------------------------------
    def push(self, source: str, destination: str | None = None) -> tuple[Reference, Descriptor]:
        """PUT the index blob under the destination tag; the ModelKits it lists must be in that repository."""
        from .registry import RegistryHTTPError

        src = index_reference(source)
        dst = index_reference(destination) if destination else src
        if dst.is_local_only:
            raise ModelKitIndexError("registry is required when pushing")
        desc, data, _ = self.read(src)
        try:
            self.kit.registry_client(dst.registry).put_manifest(dst.repository, dst.reference, data, OCI_INDEX)
        except RegistryHTTPError as e:
            if {"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "MANIFEST_UNKNOWN"} & set(e.codes):
                raise ModelKitIndexError(f"remote rejected the index: {dst.repo_path} does not contain every ModelKit the "
                                  f"index references. Push those ModelKits first, then retry: {e}") from None
            raise
        return dst, desc

    def pull(self, index: str) -> tuple[Reference, Descriptor]:
        """Store a remote index's bytes unchanged under its tag (the ModelKits are not pulled)."""
        ref = index_reference(index)
        if ref.is_local_only:
            raise ModelKitIndexError(f"registry is required when pulling: {display(ref)}")
        _, data, _ = self.read_remote(ref)
        try:
            previous = self.local.resolve(ref)
        except NotFoundError:
            previous = None
        return ref, self.local.write(ref, data, previous)

    # -- variants ----------------------------------------------------------------------------------------------
    def publish(self, index: str, variants: Mapping[str, Mapping[str, object]], *, push: bool = False,
                annotations: Mapping[str, Mapping[str, str]] | None = None) -> Descriptor:
        """Make ``index`` list exactly ``variants`` (ModelKit reference -> labels), starting from an empty index.

        With ``push``, local ModelKits are pushed first, then the index. Returns the index descriptor."""
        ref = index_reference(index, announce=False)
        try:
            previous: Descriptor | None = self.local.resolve(ref)
        except NotFoundError:
            previous = None
        self.local.write(ref, empty_index_bytes(), previous)
        desc = None
        for modelkit, labels in variants.items():
            model_ref = parse_reference(modelkit)
            local = self._is_local(model_ref)
            if push and local:
                self.kit.push(modelkit)
            extra = [f"{k}={v}" for k, v in ((annotations or {}).get(modelkit) or {}).items()]
            desc = self.add(str(ref), modelkit, labels=labels, annotations=extra, remote=not local)
        if push:
            self.push(str(ref))
        return desc or self.local.resolve(ref)

    def _is_local(self, ref: Reference) -> bool:
        try:
            self.kit.store.resolve(ref)
            return True
        except NotFoundError:
            return False

    def select(self, reference: str, labels: Labels) -> tuple[Reference, IndexEntry]:
        """The ModelKit (pinned by digest, in the index's repository) whose labels match; the index is read from
        local index storage, else from its registry."""
        ref = parse_reference(reference)
        selector = parse_selector(labels if isinstance(labels, Mapping) else list(labels))
        try:
            _, _, idx = self.read_local(ref)
        except NotFoundError as local_miss:
            if ref.is_local_only:
                raise NotFoundError(f"failed to find ModelKit index {display(ref)}: {local_miss}") from None
            try:
                _, _, idx = self.read_remote(ref)
            except NotFoundError as e:
                raise NotFoundError(f"failed to find ModelKit index {display(ref)}: {e}") from None
        entry = select_entry(idx, selector, ref)
        LOG.info("Index %s refers to ModelKit %s", display(ref), entry_reference(entry, ref) or entry.digest)
        return ref.with_reference(entry.digest), entry


def _repo_display(repo_path: str) -> str:
    return repo_path.removeprefix(f"{DEFAULT_REGISTRY}/")


def select_variant(kit: KitOpsClient, reference: str, labels: Labels) -> str:
    """``repo@digest`` of the index entry ``labels`` select (kit's ``unpack -l``)."""
    return ModelKitIndexes(kit).select(reference, labels)[0].display()  # display() parses back (str() of localhost/… does not)


def pull_variant(kit: KitOpsClient, reference: str, labels: Labels) -> ModelKitDescriptor:
    """``kit pull -l``: the reference is read once from its registry; a ModelKit index's matching entry is pulled
    by digest and tagged locally with the index's tag. Labels on a plain ModelKit are ignored, with a warning."""
    ref = parse_reference(reference)
    if ref.is_local_only:
        raise ModelKitIndexError(f"cannot pull {display(ref)}: it names no registry")
    selector = parse_selector(labels if isinstance(labels, Mapping) else list(labels))
    fetched = kit.registry_client(ref.registry).get_manifest(ref.repository, ref.reference)
    if fetched.media_type != OCI_INDEX:
        LOG.warning("Labels are ignored: %s is a ModelKit, not a ModelKit index", display(ref))
        return kit.pull(reference)
    try:
        idx = ModelKitIndex.from_bytes(fetched.data, f"index {ref}")
    except NotAnIndexError:
        raise ModelKitIndexError(f"reference {ref} is not an image manifest") from None
    entry = select_entry(idx, selector, ref)
    LOG.info("Index %s refers to ModelKit %s", display(ref), entry_reference(entry, ref) or entry.digest)
    pinned = ref.with_reference(entry.digest)
    kit.pull(pinned.display())
    if ref.is_digest:
        return kit.describe(pinned.display())
    kit.store.tag(pinned, ref)
    return kit.describe(ref.display())


def index_instead(kit: KitOpsClient, ref: Reference, error: NotFoundError, action: str) -> NotFoundError:
    """``error`` for a ModelKit that is not there, saying so when a local index has that tag (kit's hint)."""
    if ref.is_digest:
        return error
    try:
        LocalIndexStore(kit.store).resolve(ref)
    except (NotFoundError, KitopsError):
        return error
    return NotFoundError(f"{error}; {display(ref)} is a ModelKit index: select the ModelKit to {action} with "
                         "--label (-l) key=value ('kitops-flows index info' lists its labels)")
