"""RegistryClient against real registries: anonymous, htpasswd (basic) and token (bearer) auth.

Fixtures ``registry`` / ``auth_registry`` come from tests/conftest.py (Debian docker-registry 2.8);
``token_registry`` from tests/token_issuer.py. Every blob is random, so nothing is left over from
another test, and every assertion reads back what the registry really stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from token_issuer import token_registry  # noqa: F401 - pytest fixture

from kitops_flows.errors import AuthenticationError, DigestMismatchError, NotFoundError, RegistryError
from kitops_flows.mediatypes import OCI_INDEX, OCI_MANIFEST
from kitops_flows.progress import ProgressReporter
from kitops_flows.registry import RegistryClient, RegistryCredentials, RetryPolicy, UploadPolicy

pytestmark = pytest.mark.integration

EMPTY_CONFIG = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_CONFIG).hexdigest()


def make_blob(tmp_path: Path, size: int, name: str = "blob") -> tuple[Path, str]:
    path = tmp_path / name
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n
    return path, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_for(layer_digest: str, layer_size: int, **extra: object) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.kitops.modelkit.config.v1+json", "digest": EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": "application/vnd.kitops.modelkit.model.v1.tar", "digest": layer_digest,
                    "size": layer_size}],
        **extra,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def push_modelkit(client: RegistryClient, repo: str, tag: str, tmp_path: Path, size: int = 4096) -> tuple[str, str]:
    """Push config + one layer + manifest; (manifest digest, layer digest)."""
    path, digest = make_blob(tmp_path, size, f"layer-{tag}")
    client.push_blob(repo, EMPTY_DIGEST, 2, lambda: _bytes_io(EMPTY_CONFIG))
    client.push_blob(repo, digest, size, lambda: open(path, "rb"))
    return client.put_manifest(repo, tag, manifest_for(digest, size), OCI_MANIFEST), digest


def _bytes_io(data: bytes):  # noqa: ANN202
    import io

    return io.BytesIO(data)


@pytest.fixture(params=["anonymous", "htpasswd", "token"])
def any_registry(request: pytest.FixtureRequest) -> tuple[object, RegistryCredentials | None]:
    """(registry fixture, credentials) for each kind of auth."""
    if request.param == "anonymous":
        return request.getfixturevalue("registry"), None
    reg = request.getfixturevalue("auth_registry" if request.param == "htpasswd" else "token_registry")
    return reg, RegistryCredentials(reg.username, reg.password)


# -- blobs ------------------------------------------------------------------------------------------------

def test_push_head_fetch_multi_mb_blob(any_registry, tmp_path: Path) -> None:  # noqa: ANN001
    reg, creds = any_registry
    client = RegistryClient(reg.host, credentials=creds, plain_http=True)
    path, digest = make_blob(tmp_path, 3 << 20)
    repo = f"roundtrip/{tmp_path.name.lower().replace('_', '-')}"
    seen: list[tuple[str, int, int | None]] = []
    reporter = ProgressReporter("push", total=3 << 20, on_update=lambda *a: seen.append(a))

    assert client.blob_exists(repo, digest) is False
    assert client.push_blob(repo, digest, 3 << 20, lambda: open(path, "rb"), progress=reporter) is True
    assert client.blob_exists(repo, digest) is True
    assert seen[-1][1] == 3 << 20  # progress saw every byte once
    assert reg.blob_path(digest).read_bytes() == path.read_bytes()  # what the registry stored

    dest = tmp_path / "fetched"
    client.fetch_blob(repo, digest, 3 << 20, dest)
    assert dest.read_bytes() == path.read_bytes()
    with client.open_blob(repo, digest, 3 << 20) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == digest.split(":")[1]


def test_repush_is_skipped(any_registry, tmp_path: Path) -> None:  # noqa: ANN001
    reg, creds = any_registry
    client = RegistryClient(reg.host, credentials=creds, plain_http=True)
    path, digest = make_blob(tmp_path, 1 << 20)
    repo = "skip/repush"
    client.push_blob(repo, digest, 1 << 20, lambda: open(path, "rb"))
    opened: list[int] = []

    def opener():  # noqa: ANN202
        opened.append(1)
        return open(path, "rb")

    assert client.push_blob(repo, digest, 1 << 20, opener) is False
    assert opened == []  # the file was not even opened: HEAD said the blob is there


def test_chunked_upload_with_small_chunk_size(registry, tmp_path: Path) -> None:  # noqa: ANN001
    size = (3 << 20) + 12345  # not a multiple of the chunk size: the last PATCH is short
    path, digest = make_blob(tmp_path, size)
    policy = UploadPolicy(chunk_size=1 << 20)
    assert policy.mode_for(registry.host, size) == "chunked"
    client = RegistryClient(registry.host, plain_http=True, upload_policy=policy)
    assert client.push_blob("chunked/blob", digest, size, lambda: open(path, "rb"))
    assert registry.blob_path(digest).read_bytes() == path.read_bytes()


def test_chunked_upload_through_token_registry(token_registry, tmp_path: Path) -> None:  # noqa: ANN001, F811
    size = (2 << 20) + 1
    path, digest = make_blob(tmp_path, size)
    creds = RegistryCredentials(token_registry.username, token_registry.password)
    client = RegistryClient(token_registry.host, credentials=creds, plain_http=True,
                            upload_policy=UploadPolicy(chunk_size=1 << 20))
    assert client.push_blob("chunked/token", digest, size, lambda: open(path, "rb"))
    out = tmp_path / "out"
    client.fetch_blob("chunked/token", digest, size, out)
    assert out.read_bytes() == path.read_bytes()


def test_mount_across_repositories(any_registry, tmp_path: Path) -> None:  # noqa: ANN001
    reg, creds = any_registry
    client = RegistryClient(reg.host, credentials=creds, plain_http=True)
    path, digest = make_blob(tmp_path, 256 << 10)
    client.push_blob("mount/source", digest, 256 << 10, lambda: open(path, "rb"))
    assert client.blob_exists("mount/target", digest) is False
    assert client.mount_blob("mount/target", digest, "mount/source") is True
    assert client.blob_exists("mount/target", digest) is True

    # a blob the source does not have is not mounted, and the upload session that opened is cancelled
    _, other = make_blob(tmp_path, 1000, "other")
    assert client.mount_blob("mount/target2", other, "mount/source") is False
    assert client.blob_exists("mount/target2", other) is False

    # push_blob with mount_from never opens the file when the mount works
    assert client.push_blob("mount/target3", digest, 256 << 10, lambda: pytest.fail("file opened"),
                            mount_from="mount/source") is True
    assert client.blob_exists("mount/target3", digest)


def test_tampered_blob_is_detected_and_removed(registry, tmp_path: Path) -> None:  # noqa: ANN001
    client = RegistryClient(registry.host, plain_http=True)
    path, digest = make_blob(tmp_path, 2 << 20)
    client.push_blob("tamper/blob", digest, 2 << 20, lambda: open(path, "rb"))
    stored = registry.blob_path(digest)
    data = bytearray(stored.read_bytes())
    data[1 << 20] ^= 0xFF  # same size, one bit different
    stored.write_bytes(bytes(data))

    dest = tmp_path / "dest"
    with pytest.raises(DigestMismatchError) as err:
        client.fetch_blob("tamper/blob", digest, 2 << 20, dest)
    assert digest in str(err.value) and "tamper/blob" in str(err.value)
    assert not dest.exists()

    with pytest.raises(DigestMismatchError), client.open_blob("tamper/blob", digest, 2 << 20) as stream:
        while stream.read(64 << 10):
            pass


def test_resume_partial_download(registry, tmp_path: Path) -> None:  # noqa: ANN001
    client = RegistryClient(registry.host, plain_http=True)
    size = 3 << 20
    path, digest = make_blob(tmp_path, size)
    client.push_blob("resume/blob", digest, size, lambda: open(path, "rb"))
    dest = tmp_path / "partial"
    dest.write_bytes(path.read_bytes()[: (1 << 20) + 7])  # an earlier download that broke off
    seen: list[int] = []
    reporter = ProgressReporter("pull", total=size, on_update=lambda _l, done, _t: seen.append(done))
    client.fetch_blob("resume/blob", digest, size, dest, progress=reporter)
    assert dest.read_bytes() == path.read_bytes()
    # the first progress report already counts the bytes on disk: only the rest came over the wire
    assert seen[0] >= (1 << 20) + 7 and seen[-1] == size

    # a partial file with wrong bytes is detected, dropped and downloaded again from scratch
    bad = bytearray(path.read_bytes()[: 1 << 20])
    bad[5] ^= 1
    dest.write_bytes(bytes(bad))
    client.fetch_blob("resume/blob", digest, size, dest)
    assert dest.read_bytes() == path.read_bytes()


def test_missing_blob_is_not_found(registry, tmp_path: Path) -> None:  # noqa: ANN001
    client = RegistryClient(registry.host, plain_http=True)
    digest = "sha256:" + "0" * 64
    with pytest.raises(NotFoundError) as err:
        client.fetch_blob("missing/blob", digest, 10, tmp_path / "x")
    assert "blob_unknown" in str(err.value) and registry.host in str(err.value)


# -- manifests, tags ------------------------------------------------------------------------------------

def test_manifest_put_get_head_delete(any_registry, tmp_path: Path) -> None:  # noqa: ANN001
    reg, creds = any_registry
    client = RegistryClient(reg.host, credentials=creds, plain_http=True)
    digest, _ = push_modelkit(client, "manifests/kit", "v1", tmp_path)

    by_tag = client.get_manifest("manifests/kit", "v1")
    by_digest = client.get_manifest("manifests/kit", digest)
    assert by_tag == by_digest
    assert by_tag.digest == digest == "sha256:" + hashlib.sha256(by_tag.data).hexdigest()
    assert by_tag.media_type == OCI_MANIFEST
    assert client.manifest_digest("manifests/kit", "v1") == digest
    assert client.manifest_digest("manifests/kit", "nope") is None

    client.delete_manifest("manifests/kit", digest)
    assert client.manifest_digest("manifests/kit", "v1") is None
    with pytest.raises(NotFoundError):
        client.get_manifest("manifests/kit", digest)
    with pytest.raises(NotFoundError):
        client.delete_manifest("manifests/kit", digest)


def test_put_manifest_with_missing_blob_names_registry_and_reference(registry) -> None:  # noqa: ANN001
    client = RegistryClient(registry.host, plain_http=True)
    data = manifest_for("sha256:" + "1" * 64, 5)
    with pytest.raises(RegistryError) as err:
        client.put_manifest("kitops/demo", "v1", data, OCI_MANIFEST)
    assert str(err.value).startswith(f"registry {registry.host} refused push of kitops/demo:v1: ")
    assert "manifest_blob_unknown" in str(err.value) or "blob_unknown" in str(err.value)


def test_index_manifest_roundtrip(registry, tmp_path: Path) -> None:  # noqa: ANN001
    client = RegistryClient(registry.host, plain_http=True)
    child, _ = push_modelkit(client, "index/kit", "child", tmp_path)
    size = len(client.get_manifest("index/kit", child).data)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": size}]}).encode()
    digest = client.put_manifest("index/kit", "all", index, OCI_INDEX)
    fetched = client.get_manifest("index/kit", "all")
    assert (fetched.media_type, fetched.digest, fetched.data) == (OCI_INDEX, digest, index)


def test_manifest_size_cap(registry, tmp_path: Path) -> None:  # noqa: ANN001
    client = RegistryClient(registry.host, plain_http=True)
    digest, _ = push_modelkit(client, "cap/kit", "v1", tmp_path)
    with pytest.raises(RegistryError, match="larger than 100 bytes"):
        client.get_manifest("cap/kit", "v1", max_size=100)


def test_list_tags(registry, tmp_path: Path) -> None:  # noqa: ANN001
    # registry 2.8 ignores ?n= (pagination is tested against a scripted server in test_registry_protocol)
    client = RegistryClient(registry.host, plain_http=True)
    digest, _ = push_modelkit(client, "tags/kit", "t0", tmp_path)
    data = client.get_manifest("tags/kit", digest).data
    want = {f"t{i}" for i in range(7)}
    for tag in sorted(want - {"t0"}):
        client.put_manifest("tags/kit", tag, data, OCI_MANIFEST)
    assert sorted(client.list_tags("tags/kit", page_size=3)) == sorted(want)
    assert client.list_tags("tags/never-pushed") == []


def test_referrers_absent_on_registry_2_8(registry, tmp_path: Path) -> None:  # noqa: ANN001
    client = RegistryClient(registry.host, plain_http=True)
    digest, _ = push_modelkit(client, "refs/kit", "v1", tmp_path)
    assert client.referrers("refs/kit", digest) is None


def test_skopeo_reads_manifest_we_pushed(registry, tmp_path: Path) -> None:  # noqa: ANN001
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    client = RegistryClient(registry.host, plain_http=True)
    digest, layer = push_modelkit(client, "skopeo/kit", "v1", tmp_path)
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{registry.host}/skopeo/kit:v1"], capture_output=True, check=True, timeout=60)
    assert "sha256:" + hashlib.sha256(out.stdout).hexdigest() == digest
    assert json.loads(out.stdout)["layers"][0]["digest"] == layer


# -- auth failures ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["auth_registry", "token_registry"])
def test_wrong_password_is_authentication_error(which: str, request: pytest.FixtureRequest) -> None:
    reg = request.getfixturevalue(which)
    secret = "definitely-wrong-Pa55"
    client = RegistryClient(reg.host, credentials=RegistryCredentials(reg.username, secret), plain_http=True)
    with pytest.raises(AuthenticationError) as err:
        client.blob_exists("auth/check", "sha256:" + "2" * 64)
    text = str(err.value) + repr(err.value)
    assert secret not in text and "kitops-flows login" in text and reg.host in text
    with pytest.raises(AuthenticationError):
        client.ping()


@pytest.mark.parametrize("which", ["auth_registry", "token_registry"])
def test_anonymous_on_protected_registry(which: str, request: pytest.FixtureRequest) -> None:
    reg = request.getfixturevalue(which)
    with pytest.raises(AuthenticationError, match="kitops-flows login"):
        RegistryClient(reg.host, plain_http=True).get_manifest("auth/check", "latest")


def test_token_cached_per_scope(token_registry, tmp_path: Path) -> None:  # noqa: ANN001, F811
    creds = RegistryCredentials(token_registry.username, token_registry.password)
    client = RegistryClient(token_registry.host, credentials=creds, plain_http=True)
    before = len(token_registry.issuer.requests)
    for _ in range(5):
        client.blob_exists("cache/one", "sha256:" + "3" * 64)
    asked = token_registry.issuer.requests[before:]
    assert asked == [(creds.username, ["repository:cache/one:pull"])]  # one token, reused
    client.blob_exists("cache/two", "sha256:" + "3" * 64)
    assert token_registry.issuer.requests[-1] == (creds.username, ["repository:cache/two:pull"])


def test_expired_token_is_refreshed(token_registry, tmp_path: Path) -> None:  # noqa: ANN001, F811
    creds = RegistryCredentials(token_registry.username, token_registry.password)
    clock = [1000.0]
    client = RegistryClient(token_registry.host, credentials=creds, plain_http=True)
    client.auth._clock = lambda: clock[0]  # noqa: SLF001 - drive token expiry without sleeping
    client.blob_exists("expiry/repo", "sha256:" + "4" * 64)
    n = len(token_registry.issuer.requests)
    clock[0] += 10_000  # far past expires_in
    client.blob_exists("expiry/repo", "sha256:" + "4" * 64)
    assert len(token_registry.issuer.requests) == n + 1


# -- through the counting / fault-injecting proxy ----------------------------------------------------------

def test_repush_sends_no_upload_requests(registry, proxy_factory, tmp_path: Path) -> None:  # noqa: ANN001
    proxy = proxy_factory(registry.host)
    client = RegistryClient(proxy.host, plain_http=True)
    path, digest = make_blob(tmp_path, 2 << 20)
    assert client.push_blob("proxy/repush", digest, 2 << 20, lambda: open(path, "rb")) is True
    assert proxy.count("/blobs/uploads/", method="POST") == 1
    proxy.reset()
    assert client.push_blob("proxy/repush", digest, 2 << 20, lambda: open(path, "rb")) is False
    assert [(r.method, r.path.split("?")[0]) for r in proxy.requests] == [("HEAD", f"/v2/proxy/repush/blobs/{digest}")]


def test_injected_503s_on_real_registry_are_retried(registry, proxy_factory, tmp_path: Path) -> None:  # noqa: ANN001
    proxy = proxy_factory(registry.host)
    fast = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05)
    client = RegistryClient(proxy.host, plain_http=True, retry=fast)
    path, digest = make_blob(tmp_path, 1 << 20)
    proxy.fail_next(2, status=503, path_contains="/blobs/uploads/", method="PUT")
    assert client.push_blob("proxy/retry", digest, 1 << 20, lambda: open(path, "rb"))
    assert proxy.count("/blobs/uploads/", method="POST") == 3  # each retry opened a new upload session
    proxy.fail_next(3, status=503, path_contains="/manifests/")
    client.push_blob("proxy/retry", EMPTY_DIGEST, 2, lambda: _bytes_io(EMPTY_CONFIG))
    mdigest = client.put_manifest("proxy/retry", "v1", manifest_for(digest, 1 << 20), OCI_MANIFEST)
    assert client.get_manifest("proxy/retry", "v1").digest == mdigest

    proxy.fail_next(100, status=500, path_contains="/manifests/")
    started = time.monotonic()
    with pytest.raises(RegistryError, match="gave up after 5 attempts"):
        client.get_manifest("proxy/retry", "v1")
    assert time.monotonic() - started < 3


def test_truncated_download_resumes_with_range(registry, proxy_factory, tmp_path: Path) -> None:  # noqa: ANN001
    path, digest = make_blob(tmp_path, 3 << 20)
    RegistryClient(registry.host, plain_http=True).push_blob("proxy/resume", digest, 3 << 20,
                                                             lambda: open(path, "rb"))
    proxy = proxy_factory(registry.host)
    client = RegistryClient(proxy.host, plain_http=True, retry=RetryPolicy(base_delay=0.01, max_delay=0.05))
    proxy.truncate_next(1, after_bytes=1 << 20, path_contains="/blobs/sha256:", method="GET")
    dest = tmp_path / "dest"
    client.fetch_blob("proxy/resume", digest, 3 << 20, dest)
    assert dest.read_bytes() == path.read_bytes()
    gets = proxy.matching("/blobs/sha256:", method="GET")
    assert len(gets) == 2
    # the second request only fetched what was missing
    assert sum(r.body_bytes for r in gets) < (3 << 20) + (1 << 20) + (64 << 10)


def test_registry_down_fails_fast(registry_factory) -> None:  # noqa: ANN001
    reg = registry_factory()
    client = RegistryClient(reg.host, plain_http=True)
    client.ping()
    reg.stop()
    started = time.monotonic()
    with pytest.raises(RegistryError) as err:
        client.get_manifest("down/kit", "v1")
    assert time.monotonic() - started < 5
    assert reg.host in str(err.value)
