"""``RegistryClient``: the OCI distribution API over ``requests``, streaming every blob.

One client per registry host; it is thread-safe, so parallel blob transfers share its connection
pool (sized for ``concurrency``) and its token cache::

    client = RegistryClient("127.0.0.1:5000", plain_http=True)
    client.push_blob("team/model", digest, size, lambda: open(path, "rb"))   # False if already there
    client.put_manifest("team/model", "v1", manifest_bytes, OCI_MANIFEST)
    fetched = client.get_manifest("team/model", "v1")                      # verified bytes + digest
    client.fetch_blob("team/model", digest, size, Path("ingest/abc"))      # resumes, verifies

The protocol needed here is small (a dozen endpoints), so this package speaks it directly; why not
oras-py (measured), see docs/architecture.md, "Why our own registry client".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from .. import __version__
from ..descriptor import Descriptor
from ..digests import VerifyingReader
from ..errors import DigestMismatchError, KitopsError, RegistryError
from ..mediatypes import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from ..progress import ProgressReporter
from ..reference import is_digest, validate_digest
from .auth import Authenticator, delete_scope, pull_scope, push_scope
from .credentials import RegistryCredentials
from .errors import (
    RegistryHTTPError,
    RegistryNotFoundError,
    RegistryUnreachableError,
    describe_transport_error,
    error_from_response,
    is_connection_refused,
    read_error_body,
)
from .ranged import ParallelDownload, RangedDownload, RangeIgnored, remove_partial, state_path
from .retry import RETRY_STATUSES, RetryPolicy, TransientError, parse_retry_after
from .upload_policy import UploadPolicy

LOG = logging.getLogger("kitops_flows.registry")
T = TypeVar("T")

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])
MAX_MANIFEST_SIZE = 4 << 20  # the distribution spec's suggested limit; manifests are small JSON
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
SLOW_DISK_RATE = 32 << 20  # bytes/s a registry is assumed to hash/move a finished upload at
TRANSFER_CHUNK = 1 << 20
DOCKER_HUB_API = "registry-1.docker.io"
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class FetchedManifest:
    """Manifest bytes exactly as served (verified against ``digest``) and their media type."""

    data: bytes
    media_type: str
    digest: str


class RegistryClient:
    """Talks to one registry host (``host[:port]``); see the module docstring for usage.

    ``credentials`` None means anonymous (resolve them with ``resolve_credentials`` first if wanted).
    ``ca_cert`` is a PEM bundle to trust; ``client_cert`` a PEM file or a (cert, key) pair for mTLS.
    """

    def __init__(
        self,
        registry: str,
        *,
        credentials: RegistryCredentials | None = None,
        plain_http: bool = False,
        tls_verify: bool = True,
        ca_cert: str | Path | None = None,
        client_cert: str | Path | tuple[str | Path, str | Path] | None = None,
        retry: RetryPolicy | None = None,
        upload_policy: UploadPolicy | None = None,
        parallel_download: ParallelDownload | None = None,
        concurrency: int = 5,
        user_agent: str = f"kitops-flows/{__version__}",
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        login_hint: str | None = None,
    ) -> None:
        self.registry = registry
        self.plain_http = plain_http
        self.retry = retry or RetryPolicy()
        self.upload_policy = upload_policy or UploadPolicy()
        self.parallel_download = parallel_download or ParallelDownload()
        # connections beyond one per blob, shared by all blobs in flight: one big blob gets them all
        self._range_slots = threading.BoundedSemaphore(max(self.parallel_download.connections - 1, 1))
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        api_host = DOCKER_HUB_API if registry.lower() in ("docker.io", "index.docker.io") else registry
        self.base_url = f"{'http' if plain_http else 'https'}://{api_host}"
        self._netloc = urlsplit(self.base_url).netloc
        self._session = _make_session(concurrency + self.parallel_download.connections, user_agent, tls_verify,
                                      ca_cert, client_cert)
        # how to fix refused credentials; an orchestrator plugin names its own connection/block/resource
        self.login_hint = login_hint or (
            f"Log in with `kitops-flows login {registry}` (or set KITOPS_REGISTRY_USERNAME/PASSWORD)")
        self.auth = Authenticator(
            registry, credentials, self._session, plain_http=plain_http,
            timeout=(connect_timeout, read_timeout), login_hint=self.login_hint,
        )

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry!r}, plain_http={self.plain_http})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- registry ------------------------------------------------------------------------------------
    def ping(self) -> None:
        """``GET /v2/`` with the auth dance: raises if unreachable, not a registry, or credentials are refused."""
        def attempt() -> None:
            resp = self._attempt("GET", "/v2/", scopes=(), action=f"registry {self.registry} refused access")
            if resp.status_code == 200:
                resp.close()
                return
            if resp.status_code == 404:
                resp.close()
                raise RegistryHTTPError(
                    f"{self.base_url} is not an OCI registry (GET /v2/ answered 404); check the registry address",
                    404,
                )
            raise error_from_response(resp, f"registry {self.registry} refused access", login_hint=self.login_hint)

        self._retrying(attempt)

    # -- blobs ---------------------------------------------------------------------------------------
    def blob_exists(self, repo: str, digest: str) -> bool:
        """``HEAD`` the blob: True if ``repo`` has it."""
        return self._blob_exists(repo, digest, (pull_scope(repo),))

    def _blob_exists(self, repo: str, digest: str, scopes: Sequence[str]) -> bool:
        validate_digest(digest, "blob digest")

        def attempt() -> bool:
            resp = self._attempt("HEAD", f"/v2/{repo}/blobs/{digest}", scopes=scopes,
                                 action=f"registry {self.registry} refused HEAD of blob {digest} in {repo}",
                                 allow_redirects=False)
            resp.close()
            # a registry on object storage redirects a HEAD of a blob it has (presigned for GET: not followed)
            if resp.status_code == 200 or resp.status_code in REDIRECT_STATUSES:
                return True
            if resp.status_code == 404:
                return False
            raise error_from_response(resp, f"registry {self.registry} refused HEAD of blob {digest} in {repo}",
                                      login_hint=self.login_hint)

        return self._retrying(attempt)

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Ask the registry to link ``from_repo``'s blob into ``repo`` (no bytes sent); True if it did."""
        validate_digest(digest, "blob digest")
        action = f"registry {self.registry} refused mount of {digest} from {from_repo} into {repo}"
        query = urlencode({"mount": digest, "from": from_repo})

        def attempt() -> bool:
            resp = self._attempt("POST", f"/v2/{repo}/blobs/uploads/?{query}",
                                 scopes=(push_scope(repo), pull_scope(from_repo)), action=action,
                                 headers={"Content-Length": "0"})
            if resp.status_code == 201:
                resp.close()
                return True
            if resp.status_code == 202:  # not mounted: the registry opened an upload session instead
                location = resp.headers.get("Location")
                resp.close()
                if location:
                    self._cancel_upload(repo, urljoin(resp.url, location))
                return False
            raise error_from_response(resp, action, login_hint=self.login_hint)

        return self._retrying(attempt)

    def push_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        open_blob: Callable[[], BinaryIO],
        *,
        progress: ProgressReporter | None = None,
        mount_from: str | None = None,
    ) -> bool:
        """Upload a blob unless ``repo`` has it; False (and no bytes sent) when it was already there.

        ``open_blob`` is called once per upload attempt (a retry starts a new upload session and
        reads the file again from the start); the file is streamed, never read whole.
        """
        scopes = (push_scope(repo),)
        if self._blob_exists(repo, digest, scopes):
            return False
        if mount_from and mount_from != repo and self.mount_blob(repo, digest, mount_from):
            return True
        mode = self.upload_policy.mode_for(self.registry, size)
        tracker = _Progress(progress)
        self._retrying(lambda: self._upload_once(repo, digest, size, open_blob, mode, tracker))
        return True

    def _upload_once(self, repo: str, digest: str, size: int, open_blob: Callable[[], BinaryIO],
                     mode: str, tracker: _Progress) -> None:
        action = f"registry {self.registry} refused push of blob {digest} to {repo}"
        scopes = (push_scope(repo),)
        tracker.rewind_to(0)
        resp = self._attempt("POST", f"/v2/{repo}/blobs/uploads/", scopes=scopes, action=action,
                             headers={"Content-Length": "0"})
        if resp.status_code != 202 or not resp.headers.get("Location"):
            if resp.status_code == 202:
                resp.close()
                raise RegistryError(f"{action}: the upload session has no Location header")
            raise error_from_response(resp, action, login_hint=self.login_hint)
        location = urljoin(resp.url, resp.headers["Location"])
        # OCI distribution 1.1: a registry may require chunks of at least this many bytes
        min_chunk = _int_header(resp.headers.get("OCI-Chunk-Min-Length"))
        resp.close()
        try:
            with open_blob() as f:
                if mode == "monolithic":
                    body = _BodyReader(f, 0, size, tracker, what=f"blob {digest}")
                    resp = self._attempt(
                        "PUT", _with_query(location, digest=digest), scopes=scopes, action=action, body=body,
                        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                        read_timeout=self._read_timeout_for(size),
                    )
                else:
                    location = self._upload_chunks(f, location, size, scopes, action, tracker, digest, min_chunk)
                    resp = self._attempt(
                        "PUT", _with_query(location, digest=digest), scopes=scopes, action=action,
                        headers={"Content-Length": "0"}, read_timeout=self._read_timeout_for(size),
                    )
            if resp.status_code != 201:
                raise error_from_response(resp, action, login_hint=self.login_hint)
            resp.close()
        except BaseException:
            self._cancel_upload(repo, location)  # free the registry's half-written upload
            raise

    def _upload_chunks(self, f: BinaryIO, location: str, size: int, scopes: Sequence[str], action: str,
                       tracker: _Progress, digest: str, min_chunk: int = 0) -> str:
        chunk = max(self.upload_policy.chunk_size, min_chunk)
        for start in range(0, size, chunk):
            end = min(start + chunk, size) - 1
            body = _BodyReader(f, start, end - start + 1, tracker, what=f"blob {digest}")
            resp = self._attempt(
                "PATCH", location, scopes=scopes, action=action, body=body,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(end - start + 1),
                         "Content-Range": f"{start}-{end}"},
            )
            if resp.status_code != 202:
                raise error_from_response(resp, action, login_hint=self.login_hint)
            got_range, new_location = resp.headers.get("Range", ""), resp.headers.get("Location")
            resp.close()
            if got_range and got_range.replace("bytes=", "") != f"0-{end}":
                raise RegistryError(f"{action}: after bytes {start}-{end} the registry reports range {got_range!r}")
            if new_location:
                location = urljoin(location, new_location)
        return location

    def _cancel_upload(self, repo: str, location: str) -> None:
        """Best effort ``DELETE`` of an upload session we will not finish."""
        with contextlib.suppress(Exception):
            auth = self.auth.authorization((push_scope(repo),)) if self._same_host(location) else None
            headers = {"Authorization": auth} if auth else {}
            self._session.delete(location, headers=headers, timeout=(self.connect_timeout, 10.0)).close()

    def fetch_blob(self, repo: str, digest: str, size: int, dest: Path, *,
                   progress: ProgressReporter | None = None) -> None:
        """Download a blob to ``dest`` in chunks, hashing as it goes; resumes a partial ``dest``.

        Raises DigestMismatchError (``dest`` removed) when the bytes do not hash to ``digest``; a
        download that broke off is retried from where it stopped (Range) if the registry allows.
        A big blob is fetched in parts over several connections (``parallel_download``), resumable
        per part; a registry that ignores ``Range`` gets one stream. Redirects (to object storage)
        are followed without our ``Authorization``.
        """
        validate_digest(digest, "blob digest")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tracker = _Progress(progress)
        if self.parallel_download.use_for(size):
            try:
                self._fetch_ranged(repo, digest, size, dest, tracker)
                return
            except RangeIgnored:
                LOG.info("registry %s ignored Range for blob %s: downloading it with one stream", self.registry,
                         digest)
                remove_partial(dest)
        elif state_path(dest).exists():  # a ranged attempt's preallocated file is no prefix to resume
            remove_partial(dest)
        try:
            self._retrying(lambda: self._download_once(repo, digest, size, dest, tracker))
        except DigestMismatchError:
            dest.unlink(missing_ok=True)
            raise

    def _fetch_ranged(self, repo: str, digest: str, size: int, dest: Path, tracker: _Progress) -> None:
        what = f"blob {digest} in {self.registry}/{repo}"
        action = f"registry {self.registry} refused download of {what}"
        location: list[str] = []  # where the bytes are after a redirect (a presigned URL): one resolve, not one per part

        def open_range(start: int, end: int) -> _TransientBody:
            headers = {"Accept-Encoding": "identity", "Range": f"bytes={start}-{end}"}
            resp = self._get_blob(repo, digest, headers, action, location)
            if resp.status_code == 200:
                resp.close()
                raise RangeIgnored(f"{action}: the server ignored Range")
            if resp.status_code != 206:
                raise error_from_response(resp, action, login_hint=self.login_hint)
            got = resp.headers.get("Content-Range", "")
            if not got.startswith(f"bytes {start}-{end}/"):
                resp.close()
                raise RegistryError(f"{action}: asked for bytes {start}-{end}, the server sent {got or 'no range'}")
            return _TransientBody(resp, f"downloading {what}", self.registry, self.plain_http)

        extra = 0
        while extra < self.parallel_download.connections - 1 and self._range_slots.acquire(blocking=False):
            extra += 1
        try:
            for round_ in (1, 2):
                download = RangedDownload(dest, digest, size, self.parallel_download, open_range, self._retrying,
                                          tracker, what, workers=1 + extra)
                tracker.rewind_to(0)
                try:
                    download.run()
                    return
                except DigestMismatchError:
                    if round_ == 2 or not download.resumed:
                        raise
                    # the parts kept from an earlier attempt may have been the bad ones: once more from scratch
                    LOG.warning("%s: resumed download did not verify; downloading it again", what)
        finally:
            for _ in range(extra):
                self._range_slots.release()

    def _get_blob(self, repo: str, digest: str, headers: dict[str, str], action: str,
                  location: list[str] | None = None) -> requests.Response:
        """A streamed blob GET, following redirects ourselves: our Authorization goes to the registry only.

        ``location`` caches the final URL of a redirect (e.g. a presigned object-store URL) for the
        next call; a cached URL the other host refuses (expired) is dropped and the registry asked again.
        """
        scopes = (pull_scope(repo),)
        url = location[0] if location else f"/v2/{repo}/blobs/{digest}"
        hops = 0
        while True:
            resp = self._attempt("GET", url, scopes=scopes, action=action, headers=headers, stream=True,
                                 allow_redirects=False)
            if resp.status_code in REDIRECT_STATUSES and resp.headers.get("Location"):
                hops += 1
                url = urljoin(resp.url, resp.headers["Location"])
                resp.close()
                if hops > MAX_REDIRECTS:
                    raise RegistryError(f"{action}: more than {MAX_REDIRECTS} redirects")
                continue
            if location is not None and resp.status_code in (400, 401, 403, 404) and location \
                    and url == location[0]:
                resp.close()  # a presigned URL that expired: ask the registry for a fresh one
                location.clear()
                url, hops = f"/v2/{repo}/blobs/{digest}", 0
                continue
            if location is not None and resp.status_code in (200, 206) and not self._same_host(resp.url):
                location[:] = [resp.url]
            return resp

    def _download_once(self, repo: str, digest: str, size: int, dest: Path, tracker: _Progress) -> None:
        hasher = hashlib.sha256()
        have = dest.stat().st_size if dest.exists() else 0
        if have > size:
            dest.unlink()
            have = 0
        if have:
            with open(dest, "rb") as f:  # re-hash what an earlier attempt left (cheap next to the network)
                while block := f.read(TRANSFER_CHUNK):
                    hasher.update(block)
            if have == size:
                self._check_download(hasher, repo, digest, dest, resumed=True)
                tracker.rewind_to(size)
                return
        what = f"blob {digest} in {self.registry}/{repo}"
        action = f"registry {self.registry} refused download of {what}"
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        resp = self._get_blob(repo, digest, headers, action)
        if resp.status_code == 206 and have and resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            mode = "ab"
        elif resp.status_code == 200:
            mode, have, hasher = "wb", 0, hashlib.sha256()
        elif resp.status_code == 416 and have:
            resp.close()
            dest.unlink()
            raise TransientError(RegistryError(f"{action}: the registry refused to resume"), retry_after=0)
        else:
            raise error_from_response(resp, action, login_hint=self.login_hint)
        tracker.rewind_to(have)
        written = have
        try:
            with resp, open(dest, mode) as out:
                for block in resp.iter_content(TRANSFER_CHUNK):
                    written += len(block)
                    if written > size:
                        out.close()
                        dest.unlink(missing_ok=True)
                        raise DigestMismatchError(
                            f"{what}: the registry sent more than the expected {size} bytes; the descriptor "
                            "or the registry's copy is wrong (download removed)"
                        )
                    out.write(block)
                    hasher.update(block)
                    tracker.add(len(block))
        except requests.RequestException as e:  # broke off mid-body: the next attempt resumes
            raise TransientError(RegistryUnreachableError(
                f"downloading {what}: {describe_transport_error(e, self.registry, plain_http=self.plain_http)}"
            )) from None
        if written < size:
            raise TransientError(RegistryUnreachableError(
                f"downloading {what}: the registry sent {written} of {size} bytes"))
        self._check_download(hasher, repo, digest, dest, resumed=mode == "ab")

    def _check_download(self, hasher: hashlib._Hash, repo: str, digest: str, dest: Path, *, resumed: bool) -> None:
        actual = "sha256:" + hasher.hexdigest()
        if actual == digest:
            return
        dest.unlink(missing_ok=True)
        error = DigestMismatchError(
            f"blob {digest} from {self.registry}/{repo} hashes to {actual}: the registry's copy is corrupt or "
            "was altered (download removed; push the blob again or pull from another source)"
        )
        if resumed:  # the partial file from before may have been the bad part: once more from scratch
            raise TransientError(error, retry_after=0)
        raise error

    @contextlib.contextmanager
    def open_blob(self, repo: str, digest: str, size: int) -> Iterator[BinaryIO]:
        """A read stream of a blob (no local copy) that raises DigestMismatchError at EOF if wrong.

        Leaving the ``with`` block normally reads and checks whatever the consumer did not read.
        """
        validate_digest(digest, "blob digest")
        what = f"blob {digest} in {self.registry}/{repo}"
        action = f"registry {self.registry} refused download of {what}"

        def attempt() -> requests.Response:
            resp = self._get_blob(repo, digest, {"Accept-Encoding": "identity"}, action)
            if resp.status_code != 200:
                raise error_from_response(resp, action, login_hint=self.login_hint)
            return resp

        resp = self._retrying(attempt)
        raw = _SafeRaw(resp, what, self.registry, self.plain_http)
        reader = VerifyingReader(raw, digest, size, what)  # type: ignore[arg-type]
        try:
            yield reader  # type: ignore[misc]
            reader.verify()
        finally:
            resp.close()

    # -- manifests -----------------------------------------------------------------------------------
    def get_manifest(self, repo: str, reference: str, *, max_size: int = MAX_MANIFEST_SIZE) -> FetchedManifest:
        """Fetch a manifest or index by tag or digest, verified; NotFoundError if it is not there."""
        what = f"{repo}{'@' if is_digest(reference) else ':'}{reference}"
        action = f"registry {self.registry} refused pull of {what}"

        def attempt() -> FetchedManifest:
            resp = self._attempt("GET", f"/v2/{repo}/manifests/{reference}", scopes=(pull_scope(repo),),
                                 action=action, headers={"Accept": MANIFEST_ACCEPT}, stream=True)
            if resp.status_code == 404:
                resp.close()
                raise RegistryNotFoundError(f"manifest {what} not found in registry {self.registry}")
            if resp.status_code != 200:
                raise error_from_response(resp, action, login_hint=self.login_hint)
            with resp:
                data = self._bounded_body(resp, max_size, f"manifest {what}")
                digest = "sha256:" + hashlib.sha256(data).hexdigest()
                expected = reference if is_digest(reference) else resp.headers.get("Docker-Content-Digest", "")
                if expected.startswith("sha256:") and expected != digest:
                    raise DigestMismatchError(
                        f"manifest {what} from {self.registry} hashes to {digest}, but the registry "
                        f"{'was asked for' if is_digest(reference) else 'says it is'} {expected}"
                    )
                return FetchedManifest(data, _media_type(resp.headers.get("Content-Type", ""), data), digest)

        return self._retrying(attempt)

    def _bounded_body(self, resp: requests.Response, limit: int, what: str) -> bytes:
        """A streamed response's body, refused past ``limit`` bytes (declared or read); a broken read is transient."""
        declared = int(resp.headers.get("Content-Length") or 0)
        if declared > limit:
            raise RegistryError(self._too_big(what, declared, limit))
        buf = bytearray()
        try:
            for block in resp.iter_content(64 << 10):
                buf += block
                if len(buf) > limit:
                    raise RegistryError(self._too_big(what, len(buf), limit))
        except requests.RequestException as e:
            raise TransientError(RegistryUnreachableError(
                f"reading {what}: {describe_transport_error(e, self.registry, plain_http=self.plain_http)}")) from None
        return bytes(buf)

    @staticmethod
    def _too_big(what: str, size: int, limit: int) -> str:
        return (f"{what} is larger than {limit} bytes ({size}+): refusing to load it; it is "
                "not a ModelKit's metadata, or raise max_size")

    def manifest_digest(self, repo: str, tag: str) -> str | None:
        """Digest a tag points at (``HEAD``), or None if the tag does not exist."""
        action = f"registry {self.registry} refused HEAD of {repo}:{tag}"

        def attempt() -> str | None:
            resp = self._attempt("HEAD", f"/v2/{repo}/manifests/{tag}", scopes=(pull_scope(repo),),
                                 action=action, headers={"Accept": MANIFEST_ACCEPT})
            resp.close()
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise error_from_response(resp, action, login_hint=self.login_hint)
            return resp.headers.get("Docker-Content-Digest") or ""

        digest = self._retrying(attempt)
        if digest == "":  # the header is optional: fall back to hashing the manifest
            return self.get_manifest(repo, tag).digest
        return digest

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """Upload a manifest under a tag or its digest; returns its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if is_digest(reference) and reference != digest:
            raise DigestMismatchError(f"cannot push manifest as {repo}@{reference}: its bytes hash to {digest}")
        what = f"{repo}{'@' if is_digest(reference) else ':'}{reference}"
        action = f"registry {self.registry} refused push of {what}"

        def attempt() -> None:
            resp = self._attempt("PUT", f"/v2/{repo}/manifests/{reference}", scopes=(push_scope(repo),),
                                 action=action, body=data, headers={"Content-Type": media_type})
            if resp.status_code != 201:
                raise error_from_response(resp, action, login_hint=self.login_hint)
            served = resp.headers.get("Docker-Content-Digest")
            resp.close()
            if served and served.startswith("sha256:") and served != digest:
                raise DigestMismatchError(f"registry {self.registry} stored {what} as {served}, expected {digest}")

        self._retrying(attempt)
        return digest

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete a manifest (and so every tag on it) by digest."""
        validate_digest(digest, "manifest digest")
        action = f"registry {self.registry} refused delete of {repo}@{digest}"

        def attempt() -> None:
            resp = self._attempt("DELETE", f"/v2/{repo}/manifests/{digest}",
                                 scopes=(delete_scope(repo),), action=action)
            if resp.status_code in (200, 202, 204):
                resp.close()
                return
            if resp.status_code == 404:
                resp.close()
                raise RegistryNotFoundError(f"manifest {repo}@{digest} not found in registry {self.registry}")
            error = error_from_response(resp, action, login_hint=self.login_hint)
            if resp.status_code == 405:
                raise RegistryHTTPError(f"{error}; this registry has deletes disabled", 405)
            raise error

        self._retrying(attempt)

    def list_tags(self, repo: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of ``repo`` (following ``Link`` pagination); [] if the repository does not exist."""
        action = f"registry {self.registry} refused listing tags of {repo}"
        url = f"/v2/{repo}/tags/list" + (f"?n={page_size}" if page_size else "")
        tags: list[str] = []
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            resp = self._get_page(url, repo, action, ok=(200, 404))
            if resp.status_code == 404:
                resp.close()
                return tags
            try:
                page = resp.json().get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"{action}: the tag list is not JSON") from None
            tags.extend(str(t) for t in page)
            nxt = resp.links.get("next", {}).get("url")
            url = urljoin(resp.url, nxt) if nxt else ""
        return tags

    def referrers(self, repo: str, digest: str, artifact_type: str | None = None) -> list[Descriptor] | None:
        """Manifests whose ``subject`` is ``digest`` via the OCI 1.1 referrers API; None if there is no such API."""
        validate_digest(digest, "subject digest")
        action = f"registry {self.registry} refused listing referrers of {repo}@{digest}"
        url = f"/v2/{repo}/referrers/{digest}" + (f"?{urlencode({'artifactType': artifact_type})}"
                                                   if artifact_type else "")
        found: list[Descriptor] = []
        seen: set[str] = set()
        while url and url not in seen:
            seen.add(url)
            resp = self._get_page(url, repo, action, ok=(200, 404, 405), headers={"Accept": OCI_INDEX},
                                  stream=True)
            with resp:
                content_type = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if resp.status_code != 200 or content_type != OCI_INDEX:
                    # 404/405: no referrers API (distribution 2.8). The spec requires an OCI index on 200; a 200
                    # of anything else is a proxy or web UI answering an unknown path: no API either. Either
                    # way the caller falls back to the tag schema.
                    if resp.status_code == 200:
                        LOG.debug("%s answered GET %s with %r, not an OCI index: treating it as no referrers API",
                                  self.registry, url, content_type)
                    _drain(resp)
                    return None if not found else found
                body = self._bounded_body(resp, MAX_MANIFEST_SIZE, f"the referrers index of {repo}@{digest}")
                try:
                    doc = json.loads(body)
                    items = doc.get("manifests") or []
                    found.extend(Descriptor.from_dict(d, f"referrer of {repo}@{digest}") for d in items)
                except (ValueError, AttributeError, TypeError, RecursionError, KitopsError) as e:
                    raise RegistryError(f"{action}: the referrers response is not an OCI index ({e})") from None
                nxt = resp.links.get("next", {}).get("url")
            url = urljoin(resp.url, nxt) if nxt else ""
        if artifact_type:  # the registry may ignore the filter (no OCI-Filters-Applied): apply it here
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    # -- plumbing --------------------------------------------------------------------------------------
    def _get_page(self, url: str, repo: str, action: str, *, ok: Sequence[int],
                  headers: dict[str, str] | None = None, stream: bool = False) -> requests.Response:
        """GET one page of a paginated listing (retried); statuses outside ``ok`` raise."""
        def attempt() -> requests.Response:
            resp = self._attempt("GET", url, scopes=(pull_scope(repo),), action=action, headers=headers,
                                 stream=stream)
            if resp.status_code not in ok:
                raise error_from_response(resp, action, login_hint=self.login_hint)
            return resp

        return self._retrying(attempt)

    def _read_timeout_for(self, size: int) -> float:
        """Finishing an upload makes the registry hash/move the blob: allow time in proportion."""
        return self.read_timeout + size / SLOW_DISK_RATE

    def _same_host(self, url: str) -> bool:
        return urlsplit(url).netloc in ("", self._netloc)

    def _attempt(
        self,
        method: str,
        url: str,
        *,
        scopes: Sequence[str],
        action: str,
        headers: dict[str, str] | None = None,
        body: bytes | _BodyReader | None = None,
        stream: bool = False,
        read_timeout: float | None = None,
        allow_redirects: bool = True,
    ) -> requests.Response:
        """One request with the auth dance (at most one resend after a 401).

        Returns the response for any status the caller should judge; raises TransientError for
        429/5xx and network failures (the retry loop decides), and final errors otherwise.
        """
        full = url if url.startswith(("http://", "https://")) else self.base_url + url
        send_auth = self._same_host(full)  # never hand our credentials to a redirect/upload host elsewhere
        timeout = (self.connect_timeout, read_timeout or self.read_timeout)
        for round_ in (1, 2):
            hdrs = dict(headers or {})
            try:
                sent = self.auth.authorization(scopes) if send_auth else None
                if sent:
                    hdrs["Authorization"] = sent
                if isinstance(body, _BodyReader) and round_ == 2:
                    body.rewind()
                resp = self._session.request(method, full, headers=hdrs, data=body, stream=stream, timeout=timeout,
                                             allow_redirects=allow_redirects)
            except TransientError:
                raise
            except requests.exceptions.SSLError as e:
                raise RegistryUnreachableError(
                    describe_transport_error(e, self.registry, plain_http=self.plain_http)) from None
            except requests.RequestException as e:
                reason = describe_transport_error(e, self.registry, plain_http=self.plain_http)
                where = f"{method} {urlsplit(full).path}"  # the path only: a query may hold upload state
                raise TransientError(RegistryUnreachableError(f"{reason} ({where})"),
                                     refused=is_connection_refused(e)) from None
            if resp.status_code == 401 and round_ == 1 and send_auth and self.auth.learn(resp, scopes, sent):
                read_error_body(resp)
                continue
            break
        if resp.status_code in RETRY_STATUSES:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            raise TransientError(error_from_response(resp, action, login_hint=self.login_hint),
                                 retry_after=retry_after)
        return resp

    def _retrying(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` until it succeeds, a final error escapes, or the retry policy gives up."""
        # Each attempt is logged at debug level only: a request that fails for good says so once (a warning
        # naming the attempts, then the error), and one that recovers says so once at info level.
        started = time.monotonic()
        attempt = 0
        last: Exception | None = None
        while True:
            attempt += 1
            try:
                result = fn()
            except TransientError as t:
                last = t.error
                delay = self.retry.refused_delay if t.refused else self.retry.delay(attempt, t.retry_after)
                if not self.retry.allows(attempt, started, delay, refused=t.refused):
                    if attempt > 1:
                        t.error.args = (f"{t.error} (gave up after {attempt} attempts)", *t.error.args[1:])
                        LOG.warning("%s", t.error)
                    raise t.error from None
                LOG.debug("%s; retrying in %.1fs (attempt %d of %d)", t.error, delay, attempt + 1,
                          self.retry.refused_attempts if t.refused else self.retry.max_attempts)
                time.sleep(delay)
            else:
                if last is not None:
                    LOG.info("%s; succeeded on attempt %d", last, attempt)
                return result


def _make_session(concurrency: int, user_agent: str, tls_verify: bool, ca_cert: str | Path | None,
                  client_cert: str | Path | tuple[str | Path, str | Path] | None) -> requests.Session:
    session = requests.Session()
    pool = max(concurrency, 1) + 2  # parallel blob transfers + a manifest/token request on the side
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)  # we retry, not urllib3
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent
    session.auth = _no_netrc  # we choose Authorization ourselves; ~/.netrc must not add one
    if not tls_verify:
        session.verify = False
        import warnings

        from urllib3.exceptions import InsecureRequestWarning

        # the user asked for it (--tls-verify=false); one warning per request would flood task logs
        warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    elif ca_cert is not None:
        session.verify = str(ca_cert)
    if client_cert is not None:
        session.cert = (str(client_cert[0]), str(client_cert[1])) if isinstance(client_cert, tuple) \
            else str(client_cert)
    return session


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def _drain(resp: requests.Response, limit: int = 64 << 10) -> None:
    """Read a small unwanted body to its end, so the connection goes back to the pool instead of being dropped
    (a streamed response closed unread costs the next request a new connection); a big one is left unread."""
    with contextlib.suppress(requests.RequestException, ValueError):
        if int(resp.headers.get("Content-Length") or 0) > limit:
            return
        read = 0
        for block in resp.iter_content(16 << 10):
            read += len(block)
            if read > limit:
                return


def _int_header(value: str | None) -> int:
    """A non-negative integer header (0 when absent or unreadable)."""
    try:
        return max(int((value or "0").strip()), 0)
    except ValueError:
        return 0


def _with_query(url: str, **params: str) -> str:
    """Add query parameters to an upload Location that may carry its own (``_state=…``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _media_type(content_type: str, data: bytes) -> str:
    media = content_type.split(";", 1)[0].strip()
    if media and media not in ("application/json", "text/plain", "application/octet-stream"):
        return media
    try:
        declared = json.loads(data).get("mediaType")
    except (ValueError, AttributeError, RecursionError):
        declared = None
    return declared if isinstance(declared, str) and declared else media or OCI_MANIFEST


class _Progress:
    """Reports to an optional ProgressReporter, able to step back when an attempt is retried."""

    def __init__(self, reporter: ProgressReporter | None) -> None:
        self._reporter = reporter
        self._lock = threading.Lock()
        self.done = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
            if self._reporter is not None:
                self._reporter.update(n)

    def rewind_to(self, n: int) -> None:
        self.add(n - self.done)


class _BodyReader:
    """A window ``[start, start+length)`` of an open blob file, streamed as a request body.

    requests/urllib3 read it in small blocks, so nothing is held in memory; ``__len__`` gives the
    Content-Length. A file shorter than its descriptor fails loudly instead of hanging the upload.
    """

    def __init__(self, f: BinaryIO, start: int, length: int, tracker: _Progress, *, what: str) -> None:
        self._f = f
        self._start = start
        self._length = length
        self._tracker = tracker
        self._what = what
        self._pos = 0
        f.seek(start)

    # Not an io.RawIOBase: requests would see its failing tell() and fall back to chunked encoding.
    def __len__(self) -> int:
        return self._length

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        left = self._length - self._pos
        if left <= 0:
            return b""
        n = left if n is None or n < 0 else min(n, left)
        data = self._f.read(min(n, TRANSFER_CHUNK))
        if not data:
            raise RegistryError(
                f"{self._what}: the local file ended after {self._start + self._pos} bytes, but the descriptor "
                f"says {self._start + self._length}+; the local copy is damaged (re-pack or re-pull it)"
            )
        self._pos += len(data)
        self._tracker.add(len(data))
        return data

    def rewind(self) -> None:
        self._tracker.add(-self._pos)
        self._pos = 0
        self._f.seek(self._start)


class _TransientBody:
    """A streamed response body whose mid-body network failures ask the retry loop for another attempt."""

    def __init__(self, resp: requests.Response, what: str, registry: str, plain_http: bool) -> None:
        self._resp = resp
        self._what = what
        self._registry = registry
        self._plain_http = plain_http

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from self._resp.iter_content(chunk_size)
        except requests.RequestException as e:
            raise TransientError(RegistryUnreachableError(
                f"{self._what}: {describe_transport_error(e, self._registry, plain_http=self._plain_http)}"
            )) from None

    def close(self) -> None:
        self._resp.close()


class _SafeRaw:
    """A response body as a plain ``read`` stream whose network errors become RegistryUnreachableError."""

    def __init__(self, resp: requests.Response, what: str, registry: str, plain_http: bool) -> None:
        self._resp = resp
        self._what = what
        self._registry = registry
        self._plain_http = plain_http

    def read(self, n: int = -1) -> bytes:
        try:
            return self._resp.raw.read(None if n is None or n < 0 else n, decode_content=True) or b""
        except Exception as e:  # noqa: BLE001 - urllib3 raises several unrelated types mid-body
            raise RegistryUnreachableError(
                f"reading {self._what}: {describe_transport_error(e, self._registry, plain_http=self._plain_http)}"
            ) from None

    def close(self) -> None:
        self._resp.close()
