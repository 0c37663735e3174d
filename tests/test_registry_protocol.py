"""RegistryClient against scripted HTTP servers: retries, pagination, referrers, error text, streaming.

Registry 2.8 cannot be made to answer 503, paginate tags or serve the referrers API, so these
protocol behaviours are checked against a small scripted server that records every request.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kitops_flows.errors import AuthenticationError, DigestMismatchError, RegistryError
from kitops_flows.mediatypes import OCI_INDEX, OCI_MANIFEST
from kitops_flows.registry import RegistryClient, RegistryCredentials, RetryPolicy, UploadPolicy
from kitops_flows.registry.errors import RegistryHTTPError, RegistryUnreachableError

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_elapsed=10)
Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body_len: int


@dataclass
class Scripted:
    """An HTTP server answering from ``routes`` ((METHOD, path regex) -> responder) and recording requests."""

    routes: list[tuple[str, str, Callable[[Seen], Reply]]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    host: str = ""
    _server: ThreadingHTTPServer | None = None

    def on(self, method: str, pattern: str, responder: Callable[[Seen], Reply]) -> None:
        self.routes.insert(0, (method, pattern, responder))

    def start(self) -> Scripted:
        script = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                n = 0
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    raise AssertionError("client sent a chunked body")
                left = int(self.headers.get("Content-Length") or 0)
                while left:
                    got = self.rfile.read(min(left, 1 << 20))
                    if not got:
                        break
                    n += len(got)
                    left -= len(got)
                req = Seen(self.command, self.path, dict(self.headers.items()), n)
                script.seen.append(req)
                for method, pattern, responder in script.routes:
                    if method == self.command and re.fullmatch(pattern, self.path.split("?")[0]):
                        status, headers, body = responder(req)
                        break
                else:
                    status, headers, body = 404, {}, b"404 page not found"
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    try:
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client refused the body part way (e.g. over a size limit): its business

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def count(self, method: str, fragment: str = "") -> int:
        return sum(1 for s in self.seen if s.method == method and fragment in s.path)


@pytest.fixture
def server() -> Iterator[Scripted]:
    s = Scripted().start()
    yield s
    s.stop()


def sequence(*replies: Reply) -> Callable[[Seen], Reply]:
    """Answer with each reply in turn, then keep repeating the last one."""
    left = list(replies)
    return lambda _req: left.pop(0) if len(left) > 1 else left[0]


MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
OK_MANIFEST: Reply = (200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": MANIFEST_DIGEST}, MANIFEST)
UNAVAILABLE: Reply = (503, {"Content-Type": "application/json"},
                      b'{"errors":[{"code":"UNAVAILABLE","message":"service unavailable"}]}')


# -- retries --------------------------------------------------------------------------------------------

def test_retries_through_503s(server: Scripted) -> None:
    server.on("GET", "/v2/r/manifests/v1", sequence(UNAVAILABLE, UNAVAILABLE, OK_MANIFEST))
    client = RegistryClient(server.host, plain_http=True, retry=FAST)
    assert client.get_manifest("r", "v1").digest == MANIFEST_DIGEST
    assert server.count("GET", "/manifests/v1") == 3


def test_permanent_500_gives_up_in_bounded_time(server: Scripted) -> None:
    server.on("GET", "/v2/r/manifests/v1", sequence((500, {"Content-Type": "application/json"},
                                                     b'{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}')))
    client = RegistryClient(server.host, plain_http=True,
                            retry=RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.1))
    started = time.monotonic()
    with pytest.raises(RegistryHTTPError) as err:
        client.get_manifest("r", "v1")
    assert time.monotonic() - started < 2
    assert server.count("GET", "/manifests/v1") == 3
    assert err.value.status == 500
    assert str(err.value) == (f"registry {server.host} refused pull of r:v1: unknown: disk on fire "
                              "(500 Internal Server Error) (gave up after 3 attempts)")


def test_max_elapsed_bounds_retries(server: Scripted) -> None:
    server.on("GET", "/v2/r/manifests/v1", sequence(UNAVAILABLE))
    client = RegistryClient(server.host, plain_http=True,
                            retry=RetryPolicy(max_attempts=100, base_delay=0.2, max_delay=0.2, max_elapsed=1.0))
    started = time.monotonic()
    with pytest.raises(RegistryHTTPError):
        client.get_manifest("r", "v1")
    assert time.monotonic() - started <= 1.5


def test_retry_after_is_honoured(server: Scripted) -> None:
    server.on("HEAD", "/v2/r/manifests/v1", sequence((429, {"Retry-After": "1"}, b""), OK_MANIFEST))
    client = RegistryClient(server.host, plain_http=True,
                            retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=5))
    started = time.monotonic()
    assert client.manifest_digest("r", "v1") == MANIFEST_DIGEST
    assert time.monotonic() - started >= 0.9


def test_connection_refused_fails_fast() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket closes
    client = RegistryClient(f"127.0.0.1:{port}", plain_http=True)  # default retry policy
    started = time.monotonic()
    with pytest.raises(RegistryUnreachableError) as err:
        client.blob_exists("r", "sha256:" + "5" * 64)
    assert time.monotonic() - started < 5
    assert f"127.0.0.1:{port}" in str(err.value) and "refused" in str(err.value)


def test_https_to_plain_http_registry_suggests_plain_http(server: Scripted) -> None:
    client = RegistryClient(server.host)  # https against an http server
    started = time.monotonic()
    with pytest.raises(RegistryUnreachableError, match="--plain-http"):
        client.ping()
    assert time.monotonic() - started < 5


def test_upload_retry_restarts_session_and_reopens_file(server: Scripted, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = tmp_path / "blob"
    path.write_bytes(data)
    uploads = iter(range(100))
    server.on("HEAD", r"/v2/r/blobs/.*", sequence((404, {}, b"")))
    server.on("POST", "/v2/r/blobs/uploads/", lambda _r: (202, {"Location": f"/v2/r/blobs/uploads/u{next(uploads)}"}, b""))
    server.on("PUT", r"/v2/r/blobs/uploads/u\d+", sequence(UNAVAILABLE, (201, {}, b"")))
    server.on("DELETE", r"/v2/r/blobs/uploads/u\d+", sequence((204, {}, b"")))
    opened: list[int] = []

    def opener():  # noqa: ANN202
        opened.append(1)
        return open(path, "rb")

    client = RegistryClient(server.host, plain_http=True, retry=FAST)
    assert client.push_blob("r", digest, len(data), opener)
    assert len(opened) == 2 and server.count("POST") == 2
    puts = [s for s in server.seen if s.method == "PUT"]
    assert [p.path.split("?")[0] for p in puts] == ["/v2/r/blobs/uploads/u0", "/v2/r/blobs/uploads/u1"]
    assert all(p.body_len == len(data) and p.headers["Content-Length"] == str(len(data)) for p in puts)
    assert f"digest={digest.replace(':', '%3A')}" in puts[-1].path
    assert server.count("DELETE", "/uploads/u0") == 1  # the failed session was cancelled


def test_chunked_upload_protocol(server: Scripted, tmp_path: Path) -> None:
    data = b"x" * 2500
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = tmp_path / "blob"
    path.write_bytes(data)
    received: list[int] = []

    def patch(req: Seen) -> Reply:
        start, end = map(int, req.headers["Content-Range"].split("-"))
        assert end - start + 1 == req.body_len
        received.append(req.body_len)
        return 202, {"Location": f"/v2/r/blobs/uploads/s{len(received)}", "Range": f"0-{end}"}, b""

    server.on("HEAD", r"/v2/r/blobs/.*", sequence((404, {}, b"")))
    server.on("POST", "/v2/r/blobs/uploads/", sequence((202, {"Location": "/v2/r/blobs/uploads/s0"}, b"")))
    server.on("PATCH", r"/v2/r/blobs/uploads/s\d+", patch)
    server.on("PUT", r"/v2/r/blobs/uploads/s3", sequence((201, {}, b"")))
    client = RegistryClient(server.host, plain_http=True, upload_policy=UploadPolicy(chunk_size=1000))
    assert client.push_blob("r", digest, len(data), lambda: open(path, "rb"))
    assert received == [1000, 1000, 500]
    patches = [s.path for s in server.seen if s.method == "PATCH"]
    assert patches == ["/v2/r/blobs/uploads/s0", "/v2/r/blobs/uploads/s1", "/v2/r/blobs/uploads/s2"]
    final = [s for s in server.seen if s.method == "PUT"][0]
    assert final.body_len == 0 and "digest=" in final.path


def test_short_local_file_fails_instead_of_hanging(server: Scripted, tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"abc")
    server.on("HEAD", r"/v2/r/blobs/.*", sequence((404, {}, b"")))
    server.on("POST", "/v2/r/blobs/uploads/", sequence((202, {"Location": "/v2/r/blobs/uploads/x"}, b"")))
    server.on("DELETE", r"/v2/r/blobs/uploads/x", sequence((204, {}, b"")))
    client = RegistryClient(server.host, plain_http=True, retry=FAST)
    with pytest.raises(RegistryError, match="local file ended after 3 bytes"):
        client.push_blob("r", "sha256:" + "6" * 64, 10, lambda: open(path, "rb"))


# -- error text ------------------------------------------------------------------------------------------

def test_error_body_one_line(server: Scripted) -> None:
    body = b'{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:x"}]}'
    server.on("PUT", "/v2/kitops/demo/manifests/v1", sequence((400, {"Content-Type": "application/json"}, body)))
    client = RegistryClient(server.host, plain_http=True, retry=FAST)
    with pytest.raises(RegistryHTTPError) as err:
        client.put_manifest("kitops/demo", "v1", MANIFEST, OCI_MANIFEST)
    assert str(err.value) == (f"registry {server.host} refused push of kitops/demo:v1: "
                              "manifest_blob_unknown: blob unknown to registry (400 Bad Request)")
    assert err.value.codes == ("MANIFEST_BLOB_UNKNOWN",)


def test_error_body_multiple_and_huge(server: Scripted) -> None:
    many = {"errors": [{"code": "DENIED", "message": "no"}, {"code": "UNSUPPORTED", "message": "nope"}]}
    server.on("DELETE", r"/v2/r/manifests/.*", sequence((400, {"Content-Type": "application/json"},
                                                         json.dumps(many).encode())))
    server.on("GET", "/v2/r/tags/list", sequence((400, {"Content-Type": "text/plain"}, b"A" * 100_000)))
    client = RegistryClient(server.host, plain_http=True, retry=FAST)
    with pytest.raises(RegistryError, match=r"multiple errors: denied: no; unsupported: nope \(400 Bad Request\)$"):
        client.delete_manifest("r", MANIFEST_DIGEST)
    with pytest.raises(RegistryError) as err:
        client.list_tags("r")
    assert len(str(err.value)) < 400  # the 100 KB body is cut, not pasted


def test_basic_challenge_followed(server: Scripted) -> None:
    creds = RegistryCredentials("u", "p@ss")

    def guarded(req: Seen) -> Reply:
        if req.headers.get("Authorization") == creds.basic_auth_value():
            return OK_MANIFEST
        return 401, {"WWW-Authenticate": 'Basic realm="test"', "Content-Type": "application/json"}, \
            b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'

    server.on("GET", "/v2/r/manifests/v1", guarded)
    assert RegistryClient(server.host, credentials=creds, plain_http=True).get_manifest("r", "v1").data == MANIFEST
    with pytest.raises(AuthenticationError, match="unauthorized: authentication required"):
        RegistryClient(server.host, plain_http=True).get_manifest("r", "v1")
    with pytest.raises(AuthenticationError) as err:
        RegistryClient(server.host, credentials=RegistryCredentials("u", "bad-secret"), plain_http=True) \
            .get_manifest("r", "v1")
    assert "bad-secret" not in str(err.value)


# -- manifests, listings ---------------------------------------------------------------------------------

def test_lying_docker_content_digest(server: Scripted) -> None:
    server.on("GET", "/v2/r/manifests/v1", sequence((200, {"Content-Type": OCI_MANIFEST,
                                                           "Docker-Content-Digest": "sha256:" + "7" * 64}, MANIFEST)))
    with pytest.raises(DigestMismatchError, match="r:v1"):
        RegistryClient(server.host, plain_http=True).get_manifest("r", "v1")


def test_manifest_by_digest_verified(server: Scripted) -> None:
    wrong = "sha256:" + "8" * 64
    server.on("GET", f"/v2/r/manifests/{wrong}", sequence(OK_MANIFEST))
    with pytest.raises(DigestMismatchError, match="was asked for"):
        RegistryClient(server.host, plain_http=True).get_manifest("r", wrong)


def test_list_tags_follows_link_pagination(server: Scripted) -> None:
    pages = {
        "": (["a", "b"], '</v2/r/tags/list?n=2&last=b>; rel="next"'),
        "b": (["c", "d"], f'<http://{server.host}/v2/r/tags/list?n=2&last=d>; rel="next"'),
        "d": (["e"], None),
    }

    def page(req: Seen) -> Reply:
        last = re.search(r"last=(\w+)", req.path)
        tags, link = pages[last.group(1) if last else ""]
        headers = {"Content-Type": "application/json", **({"Link": link} if link else {})}
        return 200, headers, json.dumps({"name": "r", "tags": tags}).encode()

    server.on("GET", "/v2/r/tags/list", page)
    assert RegistryClient(server.host, plain_http=True).list_tags("r", page_size=2) == ["a", "b", "c", "d", "e"]
    assert server.count("GET", "/tags/list") == 3


def test_referrers_api(server: Scripted) -> None:
    subject = MANIFEST_DIGEST

    def desc(n: int, artifact_type: str) -> dict[str, object]:
        return {"mediaType": OCI_MANIFEST, "digest": "sha256:" + f"{n}" * 64, "size": 100 + n,
                "artifactType": artifact_type}

    first = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(1, "application/a"), desc(2, "application/b")]}
    second = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(3, "application/a")]}

    def page(req: Seen) -> Reply:
        if "page=2" in req.path:
            return 200, {"Content-Type": OCI_INDEX}, json.dumps(second).encode()
        return 200, {"Content-Type": OCI_INDEX, "Link": f'</v2/r/referrers/{subject}?page=2>; rel="next"'}, \
            json.dumps(first).encode()

    server.on("GET", f"/v2/r/referrers/{subject}", page)
    client = RegistryClient(server.host, plain_http=True)
    found = client.referrers("r", subject)
    assert found is not None and [d.digest[-1] for d in found] == ["1", "2", "3"]
    assert found[1].artifact_type == "application/b" and found[1].size == 102
    only_a = client.referrers("r", subject, artifact_type="application/a")
    assert only_a is not None and [d.digest[-1] for d in only_a] == ["1", "3"]  # filtered even if the server did not
    assert client.referrers("other", subject) is None  # 404: no referrers API


def test_referrers_answer_that_is_not_an_index_means_no_api(server: Scripted) -> None:
    """A 200 that is not an OCI index (a web UI or proxy answering unknown paths) falls back like a 404; a
    huge or broken index is refused with the reference named, and never read whole into memory."""
    subject = MANIFEST_DIGEST
    server.on("GET", f"/v2/html/referrers/{subject}",
              lambda req: (200, {"Content-Type": "text/html; charset=utf-8"}, b"<html>Registry UI</html>"))
    huge = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [],
                       "annotations": {"x": "y" * (5 << 20)}}).encode()
    server.on("GET", f"/v2/huge/referrers/{subject}", lambda req: (200, {"Content-Type": OCI_INDEX}, huge))
    server.on("GET", f"/v2/bad/referrers/{subject}",
              lambda req: (200, {"Content-Type": f"{OCI_INDEX}; charset=utf-8"}, b"{not json"))
    client = RegistryClient(server.host, plain_http=True)
    assert client.referrers("html", subject) is None
    with pytest.raises(RegistryError, match=f"the referrers index of huge@{subject} is larger than"):
        client.referrers("huge", subject)
    with pytest.raises(RegistryError, match="the referrers response is not an OCI index"):
        client.referrers("bad", subject)


def test_redirected_blob_download_gets_no_authorization(server: Scripted, tmp_path: Path) -> None:
    data = b"blob bytes from a CDN"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    cdn = Scripted().start()
    try:
        cdn.on("GET", "/object", sequence((200, {}, data)))
        creds = RegistryCredentials("u", "p")
        server.on("GET", f"/v2/r/blobs/{digest}",
                  lambda req: (307, {"Location": f"http://{cdn.host}/object?sig=1"}, b"")
                  if req.headers.get("Authorization") else (401, {"WWW-Authenticate": 'Basic realm="x"'}, b""))
        RegistryClient(server.host, credentials=creds, plain_http=True).fetch_blob("r", digest, len(data),
                                                                                 tmp_path / "b")
        assert (tmp_path / "b").read_bytes() == data
        assert cdn.seen and all("Authorization" not in s.headers for s in cdn.seen)
    finally:
        cdn.stop()


def test_download_resumes_with_range(server: Scripted, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1024
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    ranges: list[str] = []

    def blob(req: Seen) -> Reply:
        ranges.append(req.headers.get("Range", ""))
        start = int(req.headers["Range"].split("=")[1].rstrip("-")) if "Range" in req.headers else 0
        if start == 0:
            return 200, {}, data
        return 206, {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}, data[start:]

    server.on("GET", f"/v2/r/blobs/{digest}", blob)
    dest = tmp_path / "b"
    dest.write_bytes(data[: len(data) // 2])  # what a download that broke off left behind
    RegistryClient(server.host, plain_http=True, retry=FAST).fetch_blob("r", digest, len(data), dest)
    assert dest.read_bytes() == data
    assert ranges == [f"bytes={len(data) // 2}-"]  # only the missing half was asked for


def test_download_restarts_when_range_ignored(server: Scripted, tmp_path: Path) -> None:
    data = b"0123456789" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    server.on("GET", f"/v2/r/blobs/{digest}", sequence((200, {}, data)))  # ignores Range: sends it all
    dest = tmp_path / "b"
    dest.write_bytes(data[:3000])
    RegistryClient(server.host, plain_http=True).fetch_blob("r", digest, len(data), dest)
    assert dest.read_bytes() == data
