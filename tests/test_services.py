"""The test services themselves: real docker-registry, moto S3 and the counting proxy behave as the other
tests rely on (status codes, auth, byte counts, injected faults, restarts that keep data, clean shutdown)."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
import requests
from services import CountingProxy, MotoS3Server, RegistryServer, ServiceError, http_status


def _push_blob(base_url: str, repo: str, data: bytes, auth: tuple[str, str] | None = None) -> str:
    """Monolithic blob upload over the raw distribution API; returns the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = requests.post(f"{base_url}/v2/{repo}/blobs/uploads/", auth=auth, timeout=10)
    assert start.status_code == 202, start.text
    location = start.headers["Location"]
    sep = "&" if "?" in location else "?"
    done = requests.put(f"{location}{sep}digest={digest}", data=data, auth=auth, timeout=10,
                        headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 201, done.text
    return digest


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): read its state
    state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    return state != "Z"


# -- registry --------------------------------------------------------------------------------------------------


def test_anonymous_registry_answers_and_logs_sizes(registry: RegistryServer) -> None:
    assert registry.host.startswith("127.0.0.1:") and registry.url == f"http://{registry.host}"
    mark = registry.log_offset()
    resp = requests.get(f"{registry.url}/v2/", timeout=5)
    assert (resp.status_code, resp.json()) == (200, {})
    data = os.urandom(4096 + 17)
    digest = _push_blob(registry.url, "services/anon", data)
    got = requests.get(f"{registry.url}/v2/services/anon/blobs/{digest}", timeout=5)
    assert got.content == data
    entries = registry.access_log(since=mark)
    blob_gets = [e for e in entries if e.method == "GET" and e.path.endswith(digest)]
    assert [(e.status, e.size) for e in blob_gets] == [(200, len(data))]
    assert ("GET", "/v2/", 200, 2) in [(e.method, e.path, e.status, e.size) for e in entries]
    # storage is where tests can tamper with it
    assert registry.blob_path(digest).read_bytes() == data
    assert str(registry.blob_path(digest)).startswith(str(registry.data_dir / "docker/registry/v2/blobs/sha256"))


def test_auth_registry_needs_credentials(auth_registry: RegistryServer) -> None:
    assert auth_registry.username == "ciuser" and auth_registry.password
    bare = requests.get(f"{auth_registry.url}/v2/", timeout=5)
    assert bare.status_code == 401
    assert bare.headers["WWW-Authenticate"].startswith("Basic realm=")
    wrong = requests.get(f"{auth_registry.url}/v2/", auth=("ciuser", auth_registry.password + "x"), timeout=5)
    assert wrong.status_code == 401
    ok = requests.get(f"{auth_registry.url}/v2/", auth=("ciuser", auth_registry.password), timeout=5)
    assert ok.status_code == 200
    # the htpasswd file holds a bcrypt hash, never the password, and only the owner may read it
    htpasswd = auth_registry.htpasswd_path.read_text()
    assert htpasswd.startswith("ciuser:$2y$") and auth_registry.password not in htpasswd
    assert stat.S_IMODE(auth_registry.htpasswd_path.stat().st_mode) == 0o600
    assert [e.status for e in auth_registry.access_log() if e.path == "/v2/"][-3:] == [401, 401, 200]


def test_registry_restart_keeps_port_and_data(registry_factory: Callable[..., RegistryServer]) -> None:
    reg = registry_factory()
    data = b"weights that must survive a restart"
    digest = _push_blob(reg.url, "services/restart", data)
    host, pid = reg.host, reg.pid
    assert pid is not None and _pid_alive(pid)
    reg.stop()
    assert not _pid_alive(pid) and not reg.running
    assert http_status(f"{reg.url}/v2/") is None  # nothing listens any more
    reg.start()
    assert reg.host == host and reg.pid != pid
    got = requests.get(f"{reg.url}/v2/services/restart/blobs/{digest}", timeout=5)
    assert (got.status_code, got.content) == (200, data)


def test_registry_start_failure_reports_log_tail(tmp_path: Path) -> None:
    fake = tmp_path / "fake-registry"
    fake.write_text("#!/bin/sh\necho 'configuration error: storage driver exploded' >&2\nexit 3\n")
    fake.chmod(0o755)
    server = RegistryServer(tmp_path / "reg", binary=fake)
    with pytest.raises(ServiceError, match=r"(?s)exited \(code 3\).*storage driver exploded"):
        server.start()
    assert not server.running


# -- S3 --------------------------------------------------------------------------------------------------------


def test_moto_round_trip_and_reset(s3: MotoS3Server) -> None:
    assert os.environ["AWS_ENDPOINT_URL_S3"] == s3.endpoint_url
    plain = boto3.client("s3")  # configured only by the environment the fixture set
    plain.create_bucket(Bucket="svc-bucket")
    body = os.urandom(10_000)
    plain.put_object(Bucket="svc-bucket", Key="a/b.bin", Body=body)
    assert s3.client().get_object(Bucket="svc-bucket", Key="a/b.bin")["Body"].read() == body
    s3.reset()
    assert s3.client().list_buckets()["Buckets"] == []


def test_s3_fixture_resets_the_server(s3_server: MotoS3Server, request: pytest.FixtureRequest) -> None:
    s3_server.client().create_bucket(Bucket="leftover-from-another-test")
    s3 = request.getfixturevalue("s3")
    assert s3 is s3_server and s3.client().list_buckets()["Buckets"] == []


# -- proxy -----------------------------------------------------------------------------------------------------


def test_proxy_counts_response_bytes_per_path(registry: RegistryServer,
                                              proxy_factory: Callable[[str], CountingProxy]) -> None:
    proxy = proxy_factory(registry.host)
    big, small = os.urandom(300_000), os.urandom(1_000)
    d_big = _push_blob(proxy.url, "services/proxy", big)  # uploads go through the proxy too (Location -> proxy)
    d_small = _push_blob(proxy.url, "services/proxy", small)
    assert proxy.count("/blobs/uploads/", method="PUT") == 2
    proxy.reset()
    head = requests.head(f"{proxy.url}/v2/services/proxy/blobs/{d_big}", timeout=5)
    assert int(head.headers["Content-Length"]) == len(big)  # HEAD keeps the upstream's length header
    got = requests.get(f"{proxy.url}/v2/services/proxy/blobs/{d_small}", timeout=5)
    assert got.content == small
    assert proxy.bytes_for(d_small, method="GET") == len(small)
    assert proxy.bytes_for(d_big) == 0  # only the HEAD: no body bytes
    with requests.get(f"{proxy.url}/v2/services/proxy/blobs/{d_big}", stream=True, timeout=5) as resp:
        assert hashlib.sha256(b"".join(resp.iter_content(8192))).hexdigest() == d_big.split(":")[1]
    assert proxy.bytes_for(d_big, method="GET") == len(big)
    assert [(r.method, r.status) for r in proxy.requests] == [("HEAD", 200), ("GET", 200), ("GET", 200)]


def test_proxy_injects_status_drop_and_truncation(registry: RegistryServer,
                                                  proxy_factory: Callable[[str], CountingProxy]) -> None:
    proxy = proxy_factory(registry.host)
    data = os.urandom(50_000)
    digest = _push_blob(registry.url, "services/faults", data)
    url = f"{proxy.url}/v2/services/faults/blobs/{digest}"

    proxy.fail_next(2, status=503, path_contains="/blobs/", retry_after="1")
    assert requests.get(f"{proxy.url}/v2/", timeout=5).status_code == 200  # not matching: forwarded
    first = requests.get(url, timeout=5)
    assert (first.status_code, first.headers["Retry-After"]) == (503, "1")
    assert requests.get(url, timeout=5).status_code == 503
    assert requests.get(url, timeout=5).content == data  # the fault is used up
    assert [r.fault for r in proxy.matching(digest)] == ["status", "status", ""]

    proxy.drop_next(1)
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
    proxy.truncate_next(1, after_bytes=1000)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # requests' name for a short body
        requests.get(url, timeout=5).content  # noqa: B018 - reading the body is the point
    assert proxy.requests[-1].body_bytes == 1000 and proxy.requests[-1].fault == "truncate"
    assert requests.get(url, timeout=5).content == data


def test_proxy_fault_fraction_is_seeded(registry: RegistryServer,
                                        proxy_factory: Callable[[str], CountingProxy]) -> None:
    statuses: list[list[int]] = []
    for _ in range(2):
        proxy = proxy_factory(registry.host)
        proxy.fail_fraction(0.5, status=429, seed=7)
        statuses.append([requests.get(f"{proxy.url}/v2/", timeout=5).status_code for _ in range(30)])
    assert statuses[0] == statuses[1]  # same seed, same sequence
    assert set(statuses[0]) == {200, 429}


def test_proxy_answers_502_when_upstream_is_down(registry_factory: Callable[..., RegistryServer],
                                                 proxy_factory: Callable[[str], CountingProxy]) -> None:
    reg = registry_factory()
    proxy = proxy_factory(reg.host)
    reg.stop()
    assert requests.get(f"{proxy.url}/v2/", timeout=5).status_code == 502
    reg.start()
    assert requests.get(f"{proxy.url}/v2/", timeout=5).status_code == 200


def test_proxy_stop_frees_its_port(registry: RegistryServer) -> None:
    with CountingProxy(registry.host) as proxy:
        url = proxy.url
        session = requests.Session()  # keeps a connection open across stop()
        assert session.get(f"{url}/v2/", timeout=5).status_code == 200
    assert http_status(f"{url}/v2/") is None
    session.close()


# -- fixtures' plumbing ----------------------------------------------------------------------------------------


def test_kitops_home_isolates_user_files(kitops_home: Path) -> None:
    assert os.environ["KITOPS_HOME"] == str(kitops_home) and kitops_home.is_dir()
    home = Path(os.environ["HOME"])
    assert home.is_dir() and Path("~").expanduser() == home and home != kitops_home
    assert os.environ["DOCKER_CONFIG"] == str(home / ".docker")


def test_service_fixtures_mark_integration(request: pytest.FixtureRequest, s3: MotoS3Server) -> None:
    assert request.node.get_closest_marker("integration") is not None


@pytest.mark.parametrize("registry", ["not-a-fixture.example"])
def test_parameter_named_like_a_fixture_is_not_integration(request: pytest.FixtureRequest, registry: str) -> None:
    assert registry == "not-a-fixture.example"
    assert request.node.get_closest_marker("integration") is None


def test_orchestrator_environment_is_set_before_imports() -> None:
    for name in ("AIRFLOW_HOME", "PREFECT_HOME", "PREFECT_MEMO_STORE_PATH"):
        assert os.environ[name]
    assert Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).is_dir()
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert int(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]) >= 60
