"""Upload a blob whose bytes are produced on the fly: hashed while sent, digest given at the final PUT.

``RegistryClient.push_blob`` needs the digest (and a re-readable file) up front. A layer streamed
from S3 has neither until its last byte, so this upload is fed by ``write`` calls instead::

    with StreamingBlobUpload(client, "team/data") as up:     # POST: opens an upload session
        write_tar_layer(..., up)                             # bytes -> PATCHes, hashed on the way
        desc = up.finish()                                   # last PATCH, PUT ?digest=sha256:<hash>
    # an exception inside the block DELETEs the session: the registry keeps nothing

Memory is bounded by ``chunk_size``: two buffers of that size are allocated once; the producer
fills one while a sender thread uploads the other from it in place (1 MiB reads), so producing and
uploading overlap without a copy per chunk. Two modes, chosen by the client's ``UploadPolicy`` like
every upload:

* ``chunked``: one ``PATCH`` per chunk with ``Content-Range``. A chunk whose PATCH fails
  transiently is resumed: the upload's status (``GET`` on the session) says whether the registry
  has it, and the chunk (still in memory) is sent again only if not.
* ``monolithic`` registries (ghcr.io, Google, ECR: no ranged PATCHes) get the whole blob as one
  streamed ``PATCH`` (chunked transfer encoding, as go-containerregistry streams layers). It cannot
  be resumed; a failure fails the layer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar
from urllib.parse import urljoin

from ..errors import RegistryError
from ..progress import ProgressReporter
from ..store import Descriptor
from .auth import push_scope
from .client import RegistryClient, _BodyReader, _Progress, _with_query
from .errors import error_from_response
from .retry import TransientError

LOG = logging.getLogger("kitops_flows.registry")

T = TypeVar("T")
STREAM_CHUNK = 8 << 20
_DONE = object()


class StreamingBlobUpload:
    """A ``Sink`` that uploads what is written to it as one blob; see the module doc."""

    def __init__(self, client: RegistryClient, repo: str, *, chunk_size: int = STREAM_CHUNK,
                 media_type: str = "application/octet-stream", progress: ProgressReporter | None = None,
                 mode: str | None = None) -> None:
        self.client = client
        self.repo = repo
        self.chunk_size = chunk_size
        self.media_type = media_type
        self.mode = mode or client.upload_policy.mode_for(client.registry, 1 << 62)  # size unknown: "large"
        self._scopes = (push_scope(repo),)
        self._action = f"registry {client.registry} refused streamed push of a blob to {repo}"
        self._tracker = _Progress(progress)
        self._hash = hashlib.sha256()
        self.size = 0
        # Two buffers, allocated once: the producer fills one while the sender thread uploads the other.
        self._buf = bytearray(chunk_size)
        self._fill = 0
        self._free: queue.Queue[bytearray] = queue.Queue()
        self._free.put(bytearray(chunk_size))
        self._full: queue.Queue[object] = queue.Queue(maxsize=1)  # (buffer, length) or _DONE
        self._sent = 0  # bytes the registry has acknowledged (chunked mode)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._location = ""
        self._finished = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> StreamingBlobUpload:
        self.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._finished:
            self.abort()

    def start(self) -> None:
        """Open the upload session (POST) and start the sender thread."""
        resp = self.client._retrying(lambda: self.client._attempt(  # noqa: SLF001 - the client's own retry/auth
            "POST", f"/v2/{self.repo}/blobs/uploads/", scopes=self._scopes, action=self._action,
            headers={"Content-Length": "0"}))
        if resp.status_code != 202 or not resp.headers.get("Location"):
            if resp.status_code == 202:
                resp.close()
                raise RegistryError(f"{self._action}: the upload session has no Location header")
            raise error_from_response(resp, self._action, login_hint=self.client.login_hint)
        self._location = urljoin(resp.url, resp.headers["Location"])
        resp.close()
        target = self._send_chunks if self.mode == "chunked" else self._send_stream
        self._thread = threading.Thread(target=self._run, args=(target,), name="kitops-stream-upload", daemon=True)
        self._thread.start()

    def abort(self) -> None:
        """Stop sending and DELETE the upload session (best effort)."""
        self._finished = True
        if self._thread is not None and self._thread.is_alive():
            if self._error is None:
                self._error = RegistryError(f"{self._action}: upload aborted")
            with contextlib.suppress(queue.Empty):
                self._full.get_nowait()  # make room, then tell the sender to stop
            with contextlib.suppress(queue.Full):
                self._full.put_nowait(_DONE)
            self._thread.join(timeout=30)
        if self._location:
            self.client._cancel_upload(self.repo, self._location)  # noqa: SLF001

    # -- the Sink ------------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._raise_if_failed()
        with memoryview(data) as view, view.cast("B") as src:
            n = len(src)
            self._hash.update(src)
            self.size += n
            pos = 0
            while pos < n:
                take = min(n - pos, self.chunk_size - self._fill)
                self._buf[self._fill:self._fill + take] = src[pos:pos + take]
                self._fill += take
                pos += take
                if self._fill == self.chunk_size:
                    self._hand_over()
        return n

    def flush(self) -> None:  # a file-like courtesy for writers that flush their sink
        return None

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def finish(self, expected_digest: str | None = None) -> Descriptor:
        """Send the rest and commit the blob under the digest of everything written; returns its descriptor.

        ``expected_digest`` (a second pass over bytes hashed before) must match, or nothing is committed.
        """
        if self._thread is None:
            raise RegistryError("StreamingBlobUpload.finish() before start()")
        if self._fill:
            self._hand_over()
        self._wait(lambda: self._full.put(_DONE, timeout=0.5))
        self._thread.join()
        self._raise_if_failed()
        digest = self.digest
        if expected_digest and expected_digest != digest:
            raise RegistryError(f"{self._action}: the bytes hash to {digest}, not {expected_digest} as in the "
                                "first pass; the input changed while it was being packed")
        self._commit(digest)
        self._finished = True
        return Descriptor(self.media_type, digest, self.size)

    # -- producer side -------------------------------------------------------------------------------

    def _hand_over(self) -> None:
        """Queue the filled buffer for the sender and continue in the other one (once the sender freed it)."""
        item = (self._buf, self._fill)
        self._wait(lambda: self._full.put(item, timeout=0.5))
        self._buf = self._wait(lambda: self._free.get(timeout=0.5))
        self._fill = 0

    def _wait(self, step: Callable[[], T]) -> T:
        """Run a blocking queue step, re-raising the sender's failure instead of waiting forever."""
        while True:
            self._raise_if_failed()
            try:
                return step()
            except (queue.Full, queue.Empty):
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    # -- sender thread ------------------------------------------------------------------------------

    def _run(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as e:  # noqa: BLE001 - handed to the producer thread
            self._error = e

    def _chunks(self) -> Iterator[memoryview]:
        """Filled buffers as memoryviews; a buffer goes back to the producer when the next one is asked for."""
        while True:
            item = self._full.get()
            if item is _DONE or self._error is not None:
                return
            buf, length = item  # type: ignore[misc]
            with memoryview(buf) as whole, whole[:length] as chunk:
                yield chunk
            self._free.put(buf)

    def _send_chunks(self) -> None:
        for chunk in self._chunks():
            self._patch_chunk(chunk)

    def _patch_chunk(self, chunk: memoryview) -> None:
        """PATCH one chunk; after a transient failure, ask the registry how far it got and resume.

        The body is streamed from the buffer in TRANSFER_CHUNK reads, so a chunk is never copied whole.
        """
        start, end = self._sent, self._sent + len(chunk) - 1
        started, attempt = time.monotonic(), 0
        while True:
            attempt += 1
            self._tracker.rewind_to(start)
            body = _BodyReader(_ViewFile(chunk), 0, len(chunk), self._tracker,
                               what=f"chunk {start}-{end} of a streamed blob")
            try:
                resp = self.client._attempt(  # noqa: SLF001
                    "PATCH", self._location, scopes=self._scopes, action=self._action, body=body,
                    headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                             "Content-Range": f"{start}-{end}"})
            except TransientError as t:
                delay = self.client.retry.delay(attempt, t.retry_after)
                if not self.client.retry.allows(attempt, started, delay, refused=t.refused):
                    raise t.error from None
                LOG.warning("%s; checking the upload and retrying in %.1fs", t.error, delay)
                time.sleep(delay)
                if self._registry_offset() == end + 1:
                    break  # the chunk arrived; only the answer was lost
                continue
            if resp.status_code != 202:
                raise error_from_response(resp, self._action, login_hint=self.client.login_hint)
            got_range, location = resp.headers.get("Range", ""), resp.headers.get("Location")
            resp.close()
            if location:
                self._location = urljoin(self._location, location)
            if got_range and got_range.replace("bytes=", "") != f"0-{end}":
                raise RegistryError(f"{self._action}: after bytes {start}-{end} the registry reports range {got_range!r}")
            break
        self._sent = end + 1
        self._tracker.rewind_to(self._sent)

    def _registry_offset(self) -> int:
        """Bytes the upload session holds (``GET`` on it: ``Range: 0-<last>``); -1 if it cannot tell."""
        try:
            resp = self.client._attempt("GET", self._location, scopes=self._scopes, action=self._action)  # noqa: SLF001
        except TransientError:
            return -1
        got, location = resp.headers.get("Range", ""), resp.headers.get("Location")
        status = resp.status_code
        resp.close()
        if status != 204 or "-" not in got:
            return -1
        if location:
            self._location = urljoin(self._location, location)
        last = int(got.replace("bytes=", "").split("-", 1)[1])
        return 0 if last == 0 and self._sent == 0 else last + 1

    def _send_stream(self) -> None:
        def body() -> Iterator[bytes]:
            for chunk in self._chunks():
                self._tracker.add(len(chunk))
                yield chunk.tobytes()  # one copy: the generator's value must outlive the buffer's reuse

        try:
            resp = self.client._attempt(  # noqa: SLF001 - one streamed PATCH: no retry possible
                "PATCH", self._location, scopes=self._scopes, action=self._action, body=body(),  # type: ignore[arg-type]
                headers={"Content-Type": "application/octet-stream"})
        except TransientError as t:
            raise t.error from None
        if resp.status_code != 202:
            raise error_from_response(resp, self._action, login_hint=self.client.login_hint)
        location = resp.headers.get("Location")
        resp.close()
        if location:
            self._location = urljoin(self._location, location)

    def _commit(self, digest: str) -> None:
        action = f"registry {self.client.registry} refused push of blob {digest} to {self.repo}"

        def attempt() -> None:
            resp = self.client._attempt(  # noqa: SLF001
                "PUT", _with_query(self._location, digest=digest), scopes=self._scopes, action=action,
                headers={"Content-Length": "0"}, read_timeout=self.client._read_timeout_for(self.size))  # noqa: SLF001
            if resp.status_code == 201:
                resp.close()
                return
            if resp.status_code == 404 and self.client.blob_exists(self.repo, digest):
                resp.close()  # a retried PUT whose first try landed: the session is gone, the blob is there
                return
            raise error_from_response(resp, action, login_hint=self.client.login_hint)

        self.client._retrying(attempt)  # noqa: SLF001


class _ViewFile:
    """``seek``/``read`` over a memoryview, for ``_BodyReader``: reads copy at most ``n`` bytes, never the whole."""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    def seek(self, pos: int) -> None:
        self._pos = pos

    def read(self, n: int) -> bytes:
        data = bytes(self._view[self._pos:self._pos + n])
        self._pos += len(data)
        return data


__all__ = ["STREAM_CHUNK", "StreamingBlobUpload"]
