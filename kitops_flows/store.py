"""The local ModelKit store: kit's own on-disk layout, so `kit list` sees what we pack and vice versa.

Layout under ``$KITOPS_HOME`` (spec §8)::

    storage/oci-layout                      {"imageLayoutVersion":"1.0.0"}
    storage/index.json                      every manifest in the store (oras' index, untagged)
    storage/blobs/sha256/<hex>              content-addressed blobs
    storage/ingest/                         in-flight writes; never visible as blobs until verified
    storage/<base64url(repo)>-index.json    manifests of one repository, e.g. localhost/mymodel
    storage/<base64url(repo)>-tags.json     tag -> manifest descriptor for that repository

Crash safety: a blob appears only by renaming a complete, verified file into ``blobs/``; index
files are replaced atomically (write to a temp file, fsync, rename). Index updates happen under
an exclusive ``flock`` so concurrent processes never lose each other's entries. A crash can at
worst leave unreferenced blobs or ingest leftovers, which ``gc()`` removes and ``verify()``
reports without calling them errors.

>>> store = LocalStore(Path(tmp))                              # doctest: +SKIP
>>> with store.ingest() as w:                                  # doctest: +SKIP
...     w.write(b"hello")
>>> w.digest                                                   # doctest: +SKIP
'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .atomicfile import write_atomic
from .descriptor import Descriptor
from .digests import CHUNK, VerifyingReader, file_digest
from .errors import DigestMismatchError, NotFoundError, StoreError
from .indexstore import LocalIndexStore
from .layout import RepoFiles
from .manifest import Manifest
from .mediatypes import OCI_MANIFEST
from .reference import DEFAULT_REGISTRY, DEFAULT_REPOSITORY, Reference, is_digest

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # a full disk or quota: the store can say what to do
LOG = logging.getLogger("kitops_flows")
MAX_MANIFEST_SIZE = 4 << 20
#: Seconds without a write after which gc treats an ingest file as a dead run's leftover (live writers
#: write every few seconds; a killed pull's partial download stays resumable until then).
STALE_INGEST_AGE = 3600.0


def default_kitops_home() -> Path:
    """``$KITOPS_HOME``, else kit's default for this OS (``$XDG_DATA_HOME/kitops`` or ``~/.local/share/kitops``)."""
    if env := os.environ.get("KITOPS_HOME"):
        return Path(env).expanduser()
    if os.uname().sysname == "Darwin":
        return Path.home() / "Library" / "Caches" / "kitops"
    if xdg := os.environ.get("XDG_DATA_HOME"):
        return Path(xdg) / "kitops"
    return Path.home() / ".local" / "share" / "kitops"


@dataclass
class BlobWriter:
    """Returned by ``LocalStore.ingest()``: write bytes, and on success they become a blob."""

    file: BinaryIO
    path: Path
    size: int = 0
    _hash: object = field(default_factory=hashlib.sha256)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)  # type: ignore[attr-defined]
        self.file.write(data)
        n = len(data)
        self.size += n
        return n

    def flush(self) -> None:
        self.file.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class RepoEntry:
    """One manifest in one repository, with its tags (what ``list`` shows)."""

    repo_path: str
    descriptor: Descriptor
    tags: tuple[str, ...]


@dataclass
class VerifyReport:
    """Result of ``LocalStore.verify()``: ``problems`` are errors; ``notes`` are harmless leftovers."""

    blobs_checked: int = 0
    manifests_checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class GcReport:
    """What ``gc`` deleted: unreferenced blobs, and leftover files of interrupted packs and pulls."""

    blobs_removed: int
    leftovers_removed: int


class LocalStore:
    """kit-compatible local storage rooted at a KitOps home directory."""

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home).expanduser().absolute()
        self.storage = self.home / "storage"
        self.blobs = self.storage / "blobs" / "sha256"
        self.ingest_dir = self.storage / "ingest"
        self._repo_files = RepoFiles(self.storage)

    @classmethod
    def default(cls) -> LocalStore:
        return cls(default_kitops_home())

    def __repr__(self) -> str:
        return f"LocalStore({str(self.home)!r})"

    # -- layout -----------------------------------------------------------------------------
    def _ensure_layout(self) -> None:
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)
        layout = self.storage / "oci-layout"
        if not layout.exists():
            write_atomic(layout, b'{"imageLayoutVersion":"1.0.0"}')

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive inter-process lock for index/tag updates (blobs need none: they are immutable)."""
        self._ensure_layout()
        with open(self.storage / ".kitops-flows.lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def write_error(self, e: OSError, what: str) -> StoreError:
        """The error for a failed write of ``what`` into the store: names the store and the errno, and how to fix
        a full disk (the bare OSError of a full disk names neither)."""
        code = errno.errorcode.get(e.errno or 0, "")
        hint = "; free some space there or point KITOPS_HOME at a larger disk" if e.errno in NO_SPACE else ""
        return StoreError(f"cannot write {what} into the local store {self.storage}: "
                          f"{e.strerror or e}{f' ({code})' if code else ''}{hint}")

    # -- blobs ------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise StoreError(f"invalid blob digest {digest!r}")
        return self.blobs / digest.split(":", 1)[1]

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def open_blob(self, digest: str, size: int | None = None, what: str | None = None) -> VerifyingReader:
        """Open a blob for streaming; reading to the end verifies size and digest."""
        path = self.blob_path(digest)
        try:
            raw = open(path, "rb")  # noqa: SIM115 - ownership passes to the reader
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} is not in the local store {self.storage}") from None
        return VerifyingReader(raw, digest, size, what or f"blob {digest} in {self.storage}")

    def read_blob(self, digest: str, size: int | None = None, max_size: int = MAX_MANIFEST_SIZE) -> bytes:
        """Read a small blob (manifest, config) whole, verified."""
        path = self.blob_path(digest)
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} is not in the local store {self.storage}") from None
        if actual > max_size:
            raise StoreError(f"blob {digest} is {actual} bytes, over the {max_size}-byte limit for metadata")
        data = path.read_bytes()
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != digest or (size is not None and len(data) != size):
            raise DigestMismatchError(
                f"blob {digest} in {self.storage} is corrupted (hashes to {got}); "
                "run `kitops-flows verify` and re-pull or re-pack it"
            )
        return data

    @contextlib.contextmanager
    def ingest(self, expected_digest: str | None = None, expected_size: int | None = None) -> Iterator[BlobWriter]:
        """Write a new blob. It becomes visible (renamed into blobs/) only if the block finishes and it verifies.

        If the blob already exists, the new copy is discarded: content-addressed, so nothing changes.
        """
        self._ensure_layout()
        fd, tmp = tempfile.mkstemp(dir=self.ingest_dir, prefix="ingest-")
        tmp_path = Path(tmp)
        try:
            # A 1 MiB buffer turns the many small writes of a tar of small files into few syscalls.
            with os.fdopen(fd, "wb", buffering=1 << 20) as f:
                writer = BlobWriter(f, tmp_path)
                yield writer
                f.flush()
                os.fsync(f.fileno())
            self._commit(tmp_path, writer.digest, writer.size, expected_digest, expected_size)
        except OSError as e:
            if e.errno not in NO_SPACE:
                raise  # e.g. an unreadable source file: its own message names it
            raise self.write_error(e, "a new blob") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()

    def ingest_path(self, digest: str) -> Path:
        """A stable in-flight path for a download of ``digest`` (kit names ingest files by digest hex: resumable)."""
        self._ensure_layout()
        return self.ingest_dir / digest.split(":", 1)[1]


    @contextlib.contextmanager
    def download_lock(self, digest: str) -> Iterator[None]:
        """Exclusive ``flock`` on ``<ingest>/<hex>.lock``: one downloader of ``digest`` at a time across processes.

        The lock file is removed while still held, so ``ingest/`` does not fill with them. A waiter that then
        gets the lock on the removed file opens the path again: otherwise it and a newcomer (who created a
        fresh file) would both hold "the" lock and write one ingest file at once. ``gc`` follows the same rule.
        """
        path = self.ingest_path(digest).with_name(digest.split(":", 1)[1] + ".lock")
        while True:
            fh = open(path, "a+b")  # noqa: SIM115 - closed below, or by the with
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            mine = os.fstat(fh.fileno())
            if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
                break
            fh.close()  # the holder before us removed this file: lock the one at the path now
        with fh:
            try:
                yield
            finally:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def commit_file(self, path: Path, digest: str, size: int | None = None, *, verified: bool = False) -> None:
        """Move a downloaded file into the store; the file is consumed either way.

        ``verified=True`` means the caller hashed the bytes while writing them (the registry client
        does), so they are not read a second time; otherwise the digest is checked here.
        """
        try:
            if verified:
                got, got_size = digest, path.stat().st_size
            else:
                got, got_size = file_digest(path)
            self._commit(path, got, got_size, digest, size)
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _commit(self, tmp: Path, digest: str, size: int, expected: str | None, expected_size: int | None) -> None:
        if expected is not None and digest != expected:
            raise DigestMismatchError(f"blob content hashes to {digest}, expected {expected}; nothing was stored")
        if expected_size is not None and size != expected_size:
            raise DigestMismatchError(f"blob {digest} has {size} bytes, expected {expected_size}; nothing was stored")
        final = self.blob_path(digest)
        if final.exists():
            return
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        with self.ingest() as w:
            w.write(data)
        return w.digest, w.size

    # -- per-repository index and tags (kit's files, shared with the index store: layout.RepoFiles) -----
    def _load_json(self, path: Path, default: object) -> object:
        return self._repo_files.load_json(path, default)

    def _repo_manifests(self, repo_path: str) -> list[Descriptor]:
        return self._repo_files.manifests(repo_path)

    def _repo_tags(self, repo_path: str) -> dict[str, Descriptor]:
        return self._repo_files.tags(repo_path)

    def _save_repo(self, repo_path: str, manifests: list[Descriptor], tags: dict[str, Descriptor]) -> None:
        self._repo_files.save(repo_path, manifests, tags)

    def _update_global_index(self, add: Descriptor | None = None) -> None:
        """Keep storage/index.json (oras' view) listing every manifest still referenced by some repository."""
        path = self.storage / "index.json"
        data = self._load_json(path, {})
        current = data.get("manifests", []) if isinstance(data, dict) else []
        live = {d.digest for repo in self.list_repos() for d in self._repo_manifests(repo)}
        kept = [d for d in current if isinstance(d, dict) and d.get("digest") in live]
        digests = {d["digest"] for d in kept}
        if add is not None and add.digest not in digests:
            kept.append(Descriptor(add.media_type, add.digest, add.size).to_dict())
        body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": kept}
        write_atomic(path, json.dumps(body, separators=(",", ":")).encode())

    # -- manifests ------------------------------------------------------------------------------------
    def put_manifest(self, repo_path: str, data: bytes, tags: list[str] | tuple[str, ...] = (),
                     media_type: str = OCI_MANIFEST) -> Descriptor:
        """Store manifest bytes (their blobs must already be present) and add them to ``repo_path`` with ``tags``."""
        desc = Descriptor(media_type, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
        if not self.has_blob(desc.digest):
            self.put_bytes(data)
        with self.lock():
            manifests = self._repo_manifests(repo_path)
            tag_map = self._repo_tags(repo_path)
            if all(d.digest != desc.digest for d in manifests):
                manifests.append(desc)
            for tag in tags:
                tag_map[tag] = desc
            self._save_repo(repo_path, manifests, tag_map)
            self._update_global_index(add=desc)
        return desc

    def resolve(self, ref: Reference) -> Descriptor:
        """Find the manifest a reference names in the store, or raise NotFoundError."""
        repo_path = ref.repo_path
        if ref.is_digest:
            if ref.repository == DEFAULT_REPOSITORY and ref.registry == DEFAULT_REGISTRY:
                for repo in self.list_repos():  # a bare digest may live in any repository
                    for d in self._repo_manifests(repo):
                        if d.digest == ref.reference:
                            return d
            for d in self._repo_manifests(repo_path):
                if d.digest == ref.reference:
                    return d
        else:
            tags = self._repo_tags(repo_path)
            if ref.reference in tags:
                return tags[ref.reference]
        raise NotFoundError(f"{ref.display()} not found in the local store {self.storage}")

    def tags_of(self, repo_path: str, digest: str) -> list[str]:
        return sorted(t for t, d in self._repo_tags(repo_path).items() if d.digest == digest)

    def tag(self, src: Reference, dest: Reference) -> Descriptor:
        """``kit tag``: add ``dest``'s tag to the manifest ``src`` names (across repositories too)."""
        if dest.is_digest:
            raise StoreError(f"cannot tag with a digest ({dest}); give a tag such as repo:v2")
        desc = self.resolve(src)
        with self.lock():
            manifests = self._repo_manifests(dest.repo_path)
            tag_map = self._repo_tags(dest.repo_path)
            if all(d.digest != desc.digest for d in manifests):
                manifests.append(desc)
            for tag in dest.tags:
                tag_map[tag] = desc
            self._save_repo(dest.repo_path, manifests, tag_map)
        return desc

    def remove(self, ref: Reference, *, force: bool = False) -> list[str]:
        """``kit remove``: a tag is untagged (with ``force``, its manifest and all other tags go too); a digest
        removes the manifest and all its tags. Unreferenced blobs are then garbage-collected.
        Returns what was removed, for messages."""
        desc = self.resolve(ref)
        removed: list[str] = []
        with self.lock():
            manifests = self._repo_manifests(ref.repo_path)
            tag_map = self._repo_tags(ref.repo_path)
            if ref.is_digest or force:
                for t in [t for t, d in tag_map.items() if d.digest == desc.digest]:
                    del tag_map[t]
                    removed.append(f"{ref.repo_path}:{t}")
                manifests = [d for d in manifests if d.digest != desc.digest]
                removed.append(f"{ref.repo_path}@{desc.digest}")
            else:
                del tag_map[ref.reference]
                removed.append(str(ref))
            self._save_repo(ref.repo_path, manifests, tag_map)
            self._update_global_index()
            self._gc_locked()
        return removed

    def list_repos(self) -> list[str]:
        """Every ``registry/repository`` with a per-repository index in the store."""
        return self._repo_files.repos()

    def list_entries(self, repo_path: str | None = None) -> list[RepoEntry]:
        """Manifests with their tags, for one repository or all."""
        out = []
        for repo in [repo_path] if repo_path else self.list_repos():
            tags = self._repo_tags(repo)
            for d in self._repo_manifests(repo):
                out.append(RepoEntry(repo, d, tuple(sorted(t for t, td in tags.items() if td.digest == d.digest))))
        return out

    # -- maintenance ------------------------------------------------------------------------------------
    def _referenced_blobs(self) -> tuple[set[str], list[str]]:
        """Digests reachable from any manifest in any repository (plus extra roots), and read problems."""
        keep: set[str] = set()
        problems: list[str] = []
        roots = {d.digest for repo in self.list_repos() for d in self._repo_manifests(repo)}
        roots |= self._extra_roots()
        keep |= LocalIndexStore(self).digests()  # ModelKit indexes: kept, but they are not ModelKit manifests
        for digest in roots:
            keep.add(digest)
            try:
                m = Manifest.from_bytes(self.read_blob(digest), f"manifest {digest}")
            except Exception as e:  # noqa: BLE001 - reported, not fatal, while collecting
                problems.append(str(e))
                continue
            keep.update(d.digest for d in m.blobs())
        return keep, problems

    def _extra_roots(self) -> set[str]:
        """Manifests kept alive by kitops-flows' own records (lineage referrers) outside kit's repo indexes."""
        path = self.storage / "kitops-flows-roots.json"
        data = self._load_json(path, [])
        return {d for d in data if isinstance(d, str) and is_digest(d)} if isinstance(data, list) else set()

    def add_root(self, digest: str) -> None:
        """Keep a manifest (and its blobs) from garbage collection without listing it in any kit repository."""
        with self.lock():
            roots = self._extra_roots()
            roots.add(digest)
            write_atomic(self.storage / "kitops-flows-roots.json", json.dumps(sorted(roots)).encode())

    def gc(self, stale_after: float = STALE_INGEST_AGE) -> GcReport:
        """Delete blobs no manifest references, and ingest files untouched for ``stale_after`` seconds that no
        download holds (what killed packs and pulls left).

        >>> LocalStore("/srv/kitops").gc()        # doctest: +SKIP
        GcReport(blobs_removed=3, leftovers_removed=1)
        """
        with self.lock():
            return GcReport(self._gc_locked(), self._sweep_ingest(stale_after))

    def _sweep_ingest(self, stale_after: float) -> int:
        """Unlink stale ingest files; a partial download whose ``<hex>.lock`` is flocked (being resumed) is kept."""
        if not self.ingest_dir.is_dir():
            return 0
        cutoff = time.time() - stale_after
        names = sorted(os.listdir(self.ingest_dir), key=lambda n: n.endswith(".lock"))  # data files first
        swept = 0
        for name in names:
            path = self.ingest_dir / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_mtime > cutoff:
                continue
            is_lock = name.endswith(".lock")
            if is_lock and (self.ingest_dir / name[: -len(".lock")]).exists():
                continue  # its download is still here (fresh or held): the lock goes with it
            # a ranged download's part list (<hex>.parts) is guarded by its blob's lock, like the data file
            lock_path = path if is_lock else path.with_name(name.split(".", 1)[0] + ".lock")
            had_lock = not is_lock and lock_path.exists()
            try:
                with open(lock_path, "a+b") as lock:
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a download of this blob is running right now
                    path.unlink(missing_ok=True)
                    lock_path.unlink(missing_ok=True)  # download_lock's protocol: unlink while holding it
                swept += 1 + had_lock
            except OSError as e:
                LOG.warning("gc: could not remove %s: %s", path, e.strerror)
        return swept

    def _gc_locked(self) -> int:
        keep, problems = self._referenced_blobs()
        if problems:  # never delete when we could not read the graph: we might drop live blobs
            return 0
        removed = 0
        for name in os.listdir(self.blobs) if self.blobs.is_dir() else []:
            if "sha256:" + name not in keep:
                (self.blobs / name).unlink(missing_ok=True)
                removed += 1
        return removed

    def verify(self) -> VerifyReport:
        """Re-hash every blob and check every repository's manifests, blobs and tags."""
        report = VerifyReport()
        if not self.storage.is_dir():
            return report
        corrupted: set[str] = set()
        for name in sorted(os.listdir(self.blobs)) if self.blobs.is_dir() else []:
            path = self.blobs / name
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
            report.blobs_checked += 1
            if h.hexdigest() != name:
                corrupted.add("sha256:" + name)
                report.problems.append(f"blob sha256:{name} is corrupted (hashes to sha256:{h.hexdigest()})")
        for repo in self.list_repos():
            try:
                manifests, tags = self._repo_manifests(repo), self._repo_tags(repo)
            except StoreError as e:
                report.problems.append(str(e))
                continue
            known = {d.digest for d in manifests}
            for tag, d in tags.items():
                if d.digest not in known:
                    report.problems.append(f"{repo}:{tag} points at {d.digest}, which is not in {repo}'s index")
            for d in manifests:
                report.manifests_checked += 1
                if not self.has_blob(d.digest):
                    report.problems.append(f"{repo}@{d.digest}: manifest blob is missing")
                    continue
                if d.digest in corrupted:
                    continue
                try:
                    m = Manifest.from_bytes(self.read_blob(d.digest), f"manifest {repo}@{d.digest}")
                except Exception as e:  # noqa: BLE001 - collected into the report
                    report.problems.append(str(e))
                    continue
                for b in m.blobs():
                    if not self.has_blob(b.digest):
                        report.problems.append(f"{repo}@{d.digest}: blob {b.digest} is missing")
                    elif not self.has_blob(b.digest, b.size):
                        report.problems.append(f"{repo}@{d.digest}: blob {b.digest} has the wrong size")
        leftovers = os.listdir(self.ingest_dir) if self.ingest_dir.is_dir() else []
        if leftovers:
            report.notes.append(f"{len(leftovers)} unfinished download(s) in {self.ingest_dir} (resumable; "
                                f"`gc` removes them once untouched for {STALE_INGEST_AGE / 3600:g}h)")
        keep, _ = self._referenced_blobs()
        orphans = [n for n in os.listdir(self.blobs) if "sha256:" + n not in keep] if self.blobs.is_dir() else []
        if orphans:
            report.notes.append(f"{len(orphans)} unreferenced blob(s) (e.g. from an interrupted pack); `gc` removes them")
        return report
