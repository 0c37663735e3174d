"""Shared fixtures: real services on loopback, started lazily once per session and stopped at its end.

    def test_push(registry, kitops_home): ...        # anonymous docker-registry; $KITOPS_HOME and $HOME in tmp
    def test_login(auth_registry): ...                # htpasswd registry: .username == "ciuser", random .password
    def test_sink(s3): ...                            # moto S3, reset; AWS_* env points boto3 at it
    def test_retry(registry, proxy_factory):          # proxy in front of the registry: counts bytes, injects faults
        proxy = proxy_factory(registry.host); proxy.fail_next(1, 503)
    def test_far(registry, wan_factory):              # a long-haul link: 20 MB/s per connection, 30 ms rtt
        wan = wan_factory(registry.host, rate=20e6, rtt=0.030)
    def test_dag(airflow_db): ...                     # `airflow db migrate` done once; returns $AIRFLOW_HOME
    def test_flow(prefect_server): ...                # one Prefect API (prefect_test_harness) for the session

Tests that use any of these are marked ``integration`` automatically: ``pytest -m "not integration"`` runs
only the unit tests. Without /usr/bin/docker-registry the registry fixtures skip locally but fail when
``CI`` is set, so CI never passes by skipping.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from services import (  # pytest puts conftest.py's directory (tests/) on sys.path
    REGISTRY_BINARY,
    REGISTRY_INSTALL_HINT,
    CountingProxy,
    MotoS3Server,
    RegistryServer,
    ServiceError,
    log_tail,
)
from wan_proxy import WanProxy

# Orchestrator homes must be in the environment before any test module imports airflow or prefect (they read
# their settings at import time), so this runs at conftest import. setdefault: CI or a developer may override.
_ORCHESTRATOR_TMP = Path(tempfile.mkdtemp(prefix="kitops-flows-tests-"))
for _name, _value in {
    "AIRFLOW_HOME": str(_ORCHESTRATOR_TMP / "airflow"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(_ORCHESTRATOR_TMP / "airflow" / "dags"),
    "PREFECT_HOME": str(_ORCHESTRATOR_TMP / "prefect"),
    "PREFECT_MEMO_STORE_PATH": str(_ORCHESTRATOR_TMP / "prefect" / "memo_store.toml"),
    # task results and cache records: Prefect defaults them to ~/.prefect/storage whatever PREFECT_HOME says,
    # so cache hits would carry over from one pytest session to the next
    "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(_ORCHESTRATOR_TMP / "prefect" / "storage"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}.items():
    os.environ.setdefault(_name, _value)
Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).mkdir(parents=True, exist_ok=True)
Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)

# Fixtures that start real services (or need them): a test using any of them is an integration test.
INTEGRATION_FIXTURES = frozenset({"registry", "auth_registry", "registry_factory", "s3_server", "s3",
                                  "proxy_factory", "wan_factory", "airflow_db", "prefect_server"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        # a parametrize argument that happens to share a fixture's name (e.g. "registry") is not the fixture
        callspec = getattr(item, "callspec", None)
        params = set(callspec.params) if callspec is not None else set()
        if (INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ()))) - params:
            item.add_marker(pytest.mark.integration)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_ORCHESTRATOR_TMP, ignore_errors=True)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require(path: Path, what: str, hint: str) -> None:
    """Skip (developer machine) or fail (CI) when a service binary is missing."""
    if path.exists():
        return
    message = f"{what} needs {path}, which is missing: {hint}"
    if _in_ci():
        pytest.fail(message + " (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(message)


def _require_registry() -> None:
    _require(REGISTRY_BINARY, "the registry fixture", REGISTRY_INSTALL_HINT)


# -- registries ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An anonymous docker-registry for the whole session. Push under a repository name unique to your test."""
    _require_registry()
    with RegistryServer(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A docker-registry with htpasswd basic auth: user "ciuser" and a password made fresh for each session,
    so tests can check that it never shows up in logs or output."""
    _require_registry()
    _require(Path(shutil.which("htpasswd") or "/usr/bin/htpasswd"), "the auth_registry fixture",
             REGISTRY_INSTALL_HINT)
    password = "kfp-" + secrets.token_urlsafe(18)
    with RegistryServer(tmp_path_factory.mktemp("auth-registry"), username="ciuser", password=password) as server:
        yield server


@pytest.fixture
def registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RegistryServer]]:
    """Private registries for one test (e.g. to stop and restart without disturbing the shared one)::

        reg = registry_factory()                          # anonymous
        reg = registry_factory(username="u", password="p")
    """
    _require_registry()
    made: list[RegistryServer] = []

    def make(username: str | None = None, password: str | None = None) -> RegistryServer:
        server = RegistryServer(tmp_path_factory.mktemp("private-registry"), username=username, password=password)
        made.append(server)
        return server.start()

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def proxy_factory() -> Iterator[Callable[[str], CountingProxy]]:
    """CountingProxy instances in front of a HOST:PORT, stopped after the test::

        proxy = proxy_factory(registry.host)
        proxy.fail_next(2, status=503)
    """
    made: list[CountingProxy] = []

    def make(upstream: str) -> CountingProxy:
        proxy = CountingProxy(upstream)
        made.append(proxy)
        return proxy.start()

    yield make
    for proxy in made:
        proxy.stop()


@pytest.fixture
def wan_factory() -> Iterator[Callable[..., WanProxy]]:
    """WanProxy instances (per-connection bandwidth cap + added latency) in front of a HOST:PORT::

        wan = wan_factory(registry.host, rate=4e6, rtt=0.02)
        RegistryClient(wan.host, plain_http=True); wan.connections, wan.bytes_down
    """
    made: list[WanProxy] = []

    def make(upstream: str, *, rate: float = 20e6, rtt: float = 0.030) -> WanProxy:
        proxy = WanProxy(upstream, rate=rate, rtt=rtt)
        made.append(proxy)
        return proxy.start()

    yield make
    for proxy in made:
        proxy.stop()


# -- S3 --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3Server]:
    """moto_server for the whole session (prefer the function-scoped ``s3``, which also resets it)."""
    server = MotoS3Server(tmp_path_factory.mktemp("moto"))
    _require(server.binary, "the s3_server fixture", "run `make venv` (moto[s3], flask, flask-cors)")
    with server:
        yield server


@pytest.fixture
def s3(s3_server: MotoS3Server, monkeypatch: pytest.MonkeyPatch,
       tmp_path_factory: pytest.TempPathFactory) -> MotoS3Server:
    """The moto server, emptied, with the AWS_* environment pointing plain ``boto3.client("s3")`` at it."""
    s3_server.reset()
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    # nothing from the developer's own AWS setup may leak in (profiles, tokens, ignore-endpoint switches)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    aws_dir = tmp_path_factory.mktemp("aws")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_dir / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws_dir / "credentials"))
    return s3_server


# -- homes -----------------------------------------------------------------------------------------------------


@pytest.fixture
def kitops_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $KITOPS_HOME; $HOME and $DOCKER_CONFIG also point into tmp, so nothing reads or writes the
    real ~/.docker/config.json (oras-py and credential helpers look there)."""
    home = tmp_path_factory.mktemp("kitops-home")
    user_home = tmp_path_factory.mktemp("user-home")
    monkeypatch.setenv("KITOPS_HOME", str(home))
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.setenv("DOCKER_CONFIG", str(user_home / ".docker"))
    return home


# -- orchestrators ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Run ``airflow db migrate`` once for the session (about 5 s) and return $AIRFLOW_HOME."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    if not airflow.exists():
        pytest.fail(f"{airflow} is missing: run `make venv` to install apache-airflow", pytrace=False)
    log = home / "db-migrate.log"
    with open(log, "wb") as out:
        try:
            done = subprocess.run([str(airflow), "db", "migrate"], stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, env=dict(os.environ), timeout=600, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"`airflow db migrate` took over 600 s\n--- {log} ---\n{log_tail(log)}") from exc
    if done.returncode != 0:
        raise ServiceError(f"`airflow db migrate` failed with code {done.returncode} (AIRFLOW_HOME={home})\n"
                           f"--- {log} ---\n{log_tail(log)}")
    return home


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put every logger's handlers, level and propagation back after the test. For a test that runs
    ``dag.test()`` under ``capfd``: Airflow then configures logging with handlers on that test's capture
    file, which is closed once the test ends, so a later test's log line (Prefect's, say) fails in logging."""
    loggers = [logging.getLogger(), *(lg for lg in logging.root.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    saved = {id(lg): (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers}
    yield
    for lg in [logging.getLogger(), *logging.root.manager.loggerDict.values()]:
        if isinstance(lg, logging.Logger):
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = saved.get(
                id(lg), ([], logging.NOTSET, True, False))


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A Prefect API for the whole session: ``prefect_test_harness`` (a server subprocess on a temporary sqlite
    database). It takes about 20 s to start on 2 cores, hence one for every test file and a long timeout."""
    pytest.importorskip("prefect")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
