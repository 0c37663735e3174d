"""Local storage of ModelKit indexes, in kit's layout (kit-features-1.17.md §2.6).

Index blobs live in the store's shared ``blobs/``; their bookkeeping is separate from ModelKits', so one
tag (``team/model:all``) can name a ModelKit and an index at once::

    storage/indexes/<base64url(registry/repo)>-index.json   {"schemaVersion":2,"manifests":[<index descriptors>]}
    storage/indexes/<base64url(registry/repo)>-tags.json    {"all": <index descriptor>}

>>> idx = LocalIndexStore(LocalStore("/srv/kitops"))                 # doctest: +SKIP
>>> desc = idx.write(ref, empty_index_bytes())                       # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .descriptor import Descriptor
from .errors import NotFoundError
from .layout import RepoFiles
from .mediatypes import OCI_INDEX
from .reference import Reference

if TYPE_CHECKING:
    from .store import LocalStore

LOG = logging.getLogger("kitops_flows")
MAX_INDEX_SIZE = 4 << 20


@dataclass(frozen=True)
class StoredIndex:
    """An index in local storage: its repository, descriptor and tags."""

    repo_path: str
    descriptor: Descriptor
    tags: tuple[str, ...]


class LocalIndexStore:
    """``storage/indexes/`` of a LocalStore: resolve, write (moving a tag), untag, delete, list."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.dir = store.storage / "indexes"
        self._files = RepoFiles(self.dir)

    def _load(self, repo_path: str) -> tuple[list[Descriptor], dict[str, Descriptor]]:
        return self._files.load(repo_path)

    def _save(self, repo_path: str, manifests: list[Descriptor], tags: dict[str, Descriptor]) -> None:
        self._files.save(repo_path, manifests, tags)

    # -- reading ---------------------------------------------------------------------------------------------
    def resolve(self, ref: Reference) -> Descriptor:
        """The index descriptor ``ref`` (tag or digest) names; NotFoundError if there is none."""
        manifests, tags = self._load(ref.repo_path)
        if ref.is_digest:
            for d in manifests:
                if d.digest == ref.reference:
                    return d
        elif ref.reference in tags:
            return tags[ref.reference]
        raise NotFoundError(f"index {ref.display()} not found in local storage")

    def read(self, ref: Reference) -> tuple[Descriptor, bytes]:
        desc = self.resolve(ref)
        return desc, self.store.read_blob(desc.digest, desc.size, max_size=MAX_INDEX_SIZE)

    def tags_of(self, repo_path: str, digest: str) -> list[str]:
        return sorted(t for t, d in self._load(repo_path)[1].items() if d.digest == digest)

    def repos(self) -> list[str]:
        return self._files.repos()

    def list(self) -> list[StoredIndex]:
        """Every local index, by repository then digest."""
        out = []
        for repo in self.repos():
            manifests, tags = self._load(repo)
            for d in sorted(manifests, key=lambda d: d.digest):
                out.append(StoredIndex(repo, d, tuple(sorted(t for t, td in tags.items() if td.digest == d.digest))))
        return out

    def digests(self) -> set[str]:
        """Every index blob some repository lists (gc keeps them; they are not ModelKit manifests)."""
        return {d.digest for repo in self.repos() for d in self._load(repo)[0]}

    # -- writing ---------------------------------------------------------------------------------------------
    def write(self, ref: Reference, data: bytes, previous: Descriptor | None = None) -> Descriptor:
        """Store ``data`` unchanged, point ``ref``'s tag at it, then drop ``previous`` if nothing names it."""
        desc = Descriptor(OCI_INDEX, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
        if not self.store.has_blob(desc.digest, desc.size):
            self.store.put_bytes(data)
        with self.store.lock():
            manifests, tags = self._load(ref.repo_path)
            if all(d.digest != desc.digest for d in manifests):
                manifests.append(desc)
            tags[ref.reference] = desc
            if previous is not None and previous.digest != desc.digest \
                    and not any(d.digest == previous.digest for d in tags.values()):
                manifests = [d for d in manifests if d.digest != previous.digest]
                self._save(ref.repo_path, manifests, tags)
                self._delete_blob_if_unlisted(previous.digest)
            else:
                self._save(ref.repo_path, manifests, tags)
        return desc

    def untag(self, ref: Reference) -> None:
        with self.store.lock():
            manifests, tags = self._load(ref.repo_path)
            tags.pop(ref.reference, None)
            self._save(ref.repo_path, manifests, tags)

    def delete(self, repo_path: str, digest: str) -> list[str]:
        """Forget an index and all its tags (its blob goes unless another repository lists it); the ModelKits
        it references are untouched. Returns the removed tags."""
        with self.store.lock():
            manifests, tags = self._load(repo_path)
            removed = sorted(t for t, d in tags.items() if d.digest == digest)
            for t in removed:
                del tags[t]
            self._save(repo_path, [d for d in manifests if d.digest != digest], tags)
            self._delete_blob_if_unlisted(digest)
        return removed

    def _delete_blob_if_unlisted(self, digest: str) -> None:
        """Called under the store lock: unlink an index blob no index or ModelKit bookkeeping lists."""
        if digest in self.digests() or any(e.descriptor.digest == digest for e in self.store.list_entries()):
            return
        try:
            self.store.blob_path(digest).unlink(missing_ok=True)
        except OSError as e:
            LOG.warning("Failed to remove previous version of index %s: %s", digest, e)
