"""No secret leaks: the registry password (and its basic-auth form), bearer tokens, the S3 secret key and the
ModelKit signing key (cosign PEM, its decrypted PKCS#8 form, its password) never show up in logs, exceptions,
CLI output, the local store, the registry, Airflow XCom/logs/DB, Prefect artifacts/results/logs or Dagster
events/storage. The orchestrator runs sign what they push and verify it before pulling it back.

Every test first proves the credentials were really used (an authenticated push that an anonymous client
could not have made, a registry access log naming the user, non-empty sinks), then scans each sink for every
needle with :class:`Needles`, which reports *where* a needle was found::

    needles = Needles.for_registry(auth_registry)          # password + base64("ciuser:password")
    found = needles.scan("caplog", caplog.text) + needles.scan_tree("KITOPS_HOME", home, allowed={creds})
    assert not found, found                                # e.g. ["password in caplog (offset 120)"]
"""

from __future__ import annotations

import base64
import json
import logging
import logging.handlers
import os
import secrets
import subprocess
import sys
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from token_issuer import TokenIssuer, token_registry  # noqa: F401 - pytest fixture

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import AuthenticationError, KitopsError
from kitops_flows.registry import RegistryClient, RegistryCredentials, login
from kitops_flows.registry.retry import RetryPolicy
from kitops_flows.signing import generate_key_pair, load_private_key
from kitops_flows.store import LocalStore

SCAN_CHUNK = 1 << 20
# loggers whose DEBUG output could carry headers, URLs or request parameters
DEBUG_LOGGERS = ("", "urllib3", "requests", "botocore", "boto3", "s3transfer", "oras", "kitops_flows",
                 "kitops_flows.registry", "kitops_flows_airflow", "kitops_flows_prefect", "kitops_flows_dagster")
KITFILE = ("manifestVersion: 1.0.0\npackage:\n  name: secret-test\nmodel:\n  name: tiny\n  path: weights.bin\n"
           "datasets:\n  - name: train\n    path: data/train.csv\n")


# -- the scanner -----------------------------------------------------------------------------------------------


@dataclass
class Needles:
    """Named secret values; ``scan*`` return one line per hit: ``"<needle> in <where> (offset N)"``."""

    values: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def for_registry(cls, registry: Any) -> Needles:
        needles = cls()
        needles.add("password", registry.password)
        needles.add("basic-auth", base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode())
        return needles

    def add_signing_key(self, key: Any, password: str) -> str:
        """The key's cosign PEM (returned, to hand to the code under test), its password, and every body line
        of both its encrypted and its decrypted (PKCS#8) PEM: a leak of any form is found."""
        pem = key.to_cosign_pem(password).decode()
        self.add("signing-key-password", password)
        for form, text in (("cosign", pem), ("pkcs8", key.to_pkcs8_pem().decode())):
            for i, line in enumerate(text.splitlines()[1:-1]):
                if len(line) >= 16:
                    self.add(f"signing-key {form} line {i}", line)
        return pem

    def add(self, name: str, value: str) -> None:
        assert len(value) >= 8, f"needle {name} is too short to be a meaningful secret"
        self.values[name] = value.encode()

    def scan(self, where: str, data: object) -> list[str]:
        """Hits in a str/bytes, or in the JSON (else repr) of anything else."""
        if isinstance(data, str):
            raw = data.encode("utf-8", "surrogateescape")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            raw = bytes(data)
        else:
            try:
                raw = json.dumps(data, default=repr).encode()
            except (TypeError, ValueError):
                raw = repr(data).encode()
        return [f"{name} in {where} (offset {raw.find(value)})" for name, value in self.values.items() if value in raw]

    def scan_file(self, where: str, path: Path) -> list[str]:
        """Hits in a file, read in chunks that overlap by the longest needle (a hit never splits)."""
        overlap = max(map(len, self.values.values())) - 1
        hits: set[str] = set()
        with open(path, "rb") as f:
            tail = b""
            while block := f.read(SCAN_CHUNK):
                window = tail + block
                hits.update(name for name, value in self.values.items() if value in window)
                tail = window[-overlap:]
        return [f"{name} in {where}" for name in sorted(hits)]

    def scan_tree(self, where: str, root: Path, *, allowed: Iterable[Path] = ()) -> list[str]:
        """Hits in every regular file under ``root`` except ``allowed`` ones (checked separately)."""
        skip = {Path(p).resolve() for p in allowed}
        hits: list[str] = []
        for path in sorted(_files(root)):
            if path.resolve() not in skip:
                hits += self.scan_file(f"{where}/{path.relative_to(root)}", path)
        return hits

    def scan_exception(self, where: str, exc: BaseException) -> list[str]:
        """str, repr, the formatted traceback (causes, contexts, notes) and args/attributes of every link."""
        hits = self.scan(f"{where}: str", str(exc)) + self.scan(f"{where}: repr", repr(exc))
        hits += self.scan(f"{where}: traceback", "".join(traceback.format_exception(exc)))
        for i, link in enumerate(_exception_chain(exc)):
            hits += self.scan(f"{where}: chain[{i}] {type(link).__name__}.args", repr(link.args))
            hits += self.scan(f"{where}: chain[{i}] {type(link).__name__} attributes", repr(vars(link)))
            hits += self.scan(f"{where}: chain[{i}] __notes__", repr(getattr(link, "__notes__", [])))
        return hits


def _files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def _exception_chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        e = todo.pop()
        if isinstance(e, BaseException) and not any(e is s for s in seen):
            seen.append(e)
            todo += [e.__cause__, e.__context__, getattr(e, "error", None), *e.args]
    return seen


def debug_logging(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, propagating to caplog (the CLI may have switched propagation off in-process)."""
    caplog.set_level(logging.DEBUG)
    for name in DEBUG_LOGGERS:
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "level", logging.DEBUG)
        monkeypatch.setattr(logger, "propagate", True)
        monkeypatch.setattr(logger, "disabled", False)
    return caplog


def scan_logs(needles: Needles, caplog: pytest.LogCaptureFixture) -> list[str]:
    hits = needles.scan("caplog text", caplog.text)
    for record in caplog.records:
        hits += needles.scan(f"log record {record.name}", f"{record.getMessage()} {record.args!r} {record.exc_text}")
    return hits


def make_context(root: Path, weights: str = "weights") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "weights.bin").write_text(weights)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "train.csv").write_text("a,b\n1,2\n")
    (root / "Kitfile").write_text(KITFILE)
    return root


def authenticated_writes(registry: Any, since: int) -> list[str]:
    """Manifest PUTs accepted after log offset ``since`` by a registry that answered 401 first (it wants auth)."""
    log = registry.access_log(since)
    assert any(e.status == 401 for e in log), "the registry never asked for credentials"
    return [e.path for e in log if e.method == "PUT" and "/manifests/" in e.path and e.status == 201]


def expect_anonymous_refused(reference: str, home: Path) -> None:
    """An empty home and no KITOPS_REGISTRY_* env: the registry must refuse (so the flow did authenticate)."""
    assert "KITOPS_REGISTRY_PASSWORD" not in os.environ
    with pytest.raises(AuthenticationError):
        KitOpsClient(store=LocalStore(home), plain_http=True).resolve(reference)


# -- core: API, store, registry, S3 ----------------------------------------------------------------------------


@pytest.mark.integration
def test_login_pack_push_pull_leave_the_secret_only_in_credentials_json(
        auth_registry: Any, s3: Any, kitops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    import boto3

    needles = Needles.for_registry(auth_registry)
    s3_secret = "kfs3-" + secrets.token_urlsafe(24)  # moto accepts any key: a random one is a needle too
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_secret)
    needles.add("s3-secret-key", s3_secret)
    assert boto3.session.Session().get_credentials().secret_key == s3_secret  # what kitops_flows.s3 will sign with
    debug_logging(caplog, monkeypatch)
    boto3.client("s3").create_bucket(Bucket="secret-data")
    boto3.client("s3").put_object(Bucket="secret-data", Key="train.csv", Body=b"x,y\n3,4\n")
    host, ref = auth_registry.host, f"{auth_registry.host}/secrets/api:v1"
    since = auth_registry.log_offset()

    # login writes credentials.json; pack streams the dataset from S3; push resolves credentials from the file
    creds_file = login(host, auth_registry.username, auth_registry.password, kitops_home=kitops_home, plain_http=True)
    kit = KitOpsClient.from_home(kitops_home, plain_http=True)
    desc = kit.pack(make_context(tmp_path / "ctx"), reference=ref, sources={"train": "s3://secret-data/train.csv"},
                    push=True)
    # pull into a second home with the credentials from KITOPS_REGISTRY_USERNAME/PASSWORD, and unpack
    pull_home = tmp_path / "pull-home"
    monkeypatch.setenv("KITOPS_REGISTRY_USERNAME", auth_registry.username)
    monkeypatch.setenv("KITOPS_REGISTRY_PASSWORD", auth_registry.password)
    puller = KitOpsClient.from_home(pull_home, plain_http=True)
    pulled = puller.pull(desc.pinned)
    puller.unpack(desc.pinned, tmp_path / "unpacked")
    monkeypatch.delenv("KITOPS_REGISTRY_PASSWORD")

    # the credentials were used: the user pushed, an anonymous client is refused, the bytes came back
    assert pulled.digest == desc.digest
    assert (tmp_path / "unpacked" / "data" / "train.csv").read_bytes() == b"x,y\n3,4\n"
    assert authenticated_writes(auth_registry, since), auth_registry.access_log(since)
    expect_anonymous_refused(desc.pinned, tmp_path / "anon-home")
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # DEBUG capture really is on
    assert any(r.name.startswith("botocore") for r in caplog.records)

    # credentials.json holds the basic-auth form (that is its job), owner-only; nothing else has any needle
    assert creds_file.parent == kitops_home and needles.scan_file("credentials.json", creds_file) == [
        "basic-auth in credentials.json"]
    assert creds_file.stat().st_mode & 0o077 == 0
    store_files = list(_files(kitops_home / "storage")) + list(_files(pull_home))
    assert len(store_files) > 10  # manifests, configs, layers, referrers, provenance, indexes
    out, err = capfd.readouterr()
    found = (scan_logs(needles, caplog) + needles.scan("stdout", out) + needles.scan("stderr", err)
             + needles.scan_tree("KITOPS_HOME", kitops_home, allowed=[creds_file])
             + needles.scan_tree("pull KITOPS_HOME", pull_home)
             + needles.scan_tree("unpacked", tmp_path / "unpacked")
             + needles.scan_tree("registry work dir", auth_registry.work_dir)
             + needles.scan("descriptors", [desc.to_dict(), pulled.to_dict()])
             + needles.scan("clients", repr(kit) + repr(kit.registry_client(host)) + repr(puller)))
    assert not found, found


def test_the_scanner_finds_needles_in_every_form(tmp_path: Path) -> None:
    needles = Needles()
    needles.add("pw", "kfp-needle-123")
    assert needles.scan("text", "x kfp-needle-123 y") == ["pw in text (offset 2)"]
    assert [hit.split(" (")[0] for hit in needles.scan("obj", {"k": [b"kfp-needle-123"]})] == ["pw in obj"]
    assert needles.scan("clean", "kfp-needle-12") == []
    big = tmp_path / "d" / "big.bin"
    big.parent.mkdir()
    big.write_bytes(b"0" * (SCAN_CHUNK - 5) + b"kfp-needle-123" + b"0" * 10)  # straddles a chunk boundary
    assert needles.scan_tree("tree", tmp_path) == ["pw in tree/d/big.bin"]
    assert needles.scan_tree("tree", tmp_path, allowed=[big]) == []
    try:
        try:
            raise ValueError("inner", {"token": "kfp-needle-123"})
        except ValueError as inner:
            outer = KitopsError("outer")
            outer.add_note("hint kfp-needle-123")
            raise outer from inner
    except KitopsError as exc:
        hits = needles.scan_exception("exc", exc)
    assert "pw in exc: traceback (offset" in " ".join(hits)
    assert any("ValueError.args" in h for h in hits) and any("__notes__" in h for h in hits)


# -- the command line at -vv, failures included -----------------------------------------------------------------


def run_cli(home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cli = Path(sys.executable).with_name("kitops-flows")
    return subprocess.run([str(cli), "-vv", "--config", str(home), *args], input=stdin, capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, **(env or {})})


@pytest.mark.integration
def test_cli_at_debug_prints_no_secret_on_success_or_failure(auth_registry: Any, kitops_home: Path,
                                                            proxy_factory: Any, tmp_path: Path) -> None:
    needles = Needles.for_registry(auth_registry)
    host, user, pw = auth_registry.host, auth_registry.username, auth_registry.password
    ref = f"{host}/secrets/cli:v1"
    since = auth_registry.log_offset()
    down = proxy_factory(host)
    down_host = down.host  # an address where the registry is "down"
    down.stop()
    runs = {
        "login wrong password": run_cli(kitops_home, "login", host, "-u", user, "--password-stdin", "--plain-http",
                                        stdin="wrong-" + pw + "\n"),
        "login": run_cli(kitops_home, "login", host, "-u", user, "--password-stdin", "--plain-http", stdin=pw + "\n"),
        "pack": run_cli(kitops_home, "pack", str(make_context(tmp_path / "ctx")), "-t", ref),
        "push": run_cli(kitops_home, "push", ref, "--plain-http"),
        "push to a registry that is down": run_cli(kitops_home, "push", ref, f"{down_host}/secrets/cli:v1",
                                                   "--plain-http"),
        "pull (env credentials)": run_cli(tmp_path / "pull-home", "pull", ref, "--plain-http",
                                          env={"KITOPS_REGISTRY_USERNAME": user, "KITOPS_REGISTRY_PASSWORD": pw}),
        "pull (wrong env credentials)": run_cli(tmp_path / "wrong-home", "pull", ref, "--plain-http", env={
            "KITOPS_REGISTRY_USERNAME": user, "KITOPS_REGISTRY_PASSWORD": pw + "-wrong"}),
    }
    codes = {name: done.returncode for name, done in runs.items()}
    assert codes == {"login wrong password": 1, "login": 0, "pack": 0, "push": 0,
                     "push to a registry that is down": 1, "pull (env credentials)": 0,
                     "pull (wrong env credentials)": 1}, {n: d.stderr[-500:] for n, d in runs.items()}
    assert "Log in successful" in runs["login"].stderr
    assert authenticated_writes(auth_registry, since)
    assert KitOpsClient.from_home(tmp_path / "pull-home").describe(ref).digest == KitOpsClient.from_home(
        kitops_home).describe(ref).digest
    # the failures explain themselves (so the output we scan is the real error path)
    assert "refused" in runs["login wrong password"].stderr and "connection refused" in runs[
        "push to a registry that is down"].stderr
    # sign-off at -vv: a key pair, a signature, a wrong key password, a verification
    key_password = "cli-sign-" + secrets.token_hex(8)
    prefix = tmp_path / "keys" / "release"
    prefix.parent.mkdir()
    cosign_env = {"COSIGN_PASSWORD": key_password}
    signing = {
        "generate-key-pair": run_cli(kitops_home, "generate-key-pair", "--output-key-prefix", str(prefix), env=cosign_env),
        "sign": run_cli(kitops_home, "sign", ref, "--key", f"{prefix}.key", "--plain-http", env=cosign_env),
        "sign (wrong key password)": run_cli(kitops_home, "sign", ref, "--key", f"{prefix}.key", "--plain-http",
                                             env={"COSIGN_PASSWORD": key_password + "-wrong"}),
        "verify": run_cli(kitops_home, "verify", ref, "--key", f"{prefix}.pub", "--attestation", "--plain-http"),
    }
    assert {n: d.returncode for n, d in signing.items()} == {
        "generate-key-pair": 0, "sign": 0, "sign (wrong key password)": 1, "verify": 0}, \
        {n: d.stderr[-500:] for n, d in signing.items()}
    assert "wrong password" in signing["sign (wrong key password)"].stderr
    needles.add_signing_key(load_private_key(f"{prefix}.key", key_password), key_password)
    for i, line in enumerate(Path(f"{prefix}.key").read_text().splitlines()[1:-1]):
        needles.add(f"cosign.key line {i}", line)  # the file as written (its salt and nonce are random)
    runs.update(signing)
    found = [hit for name, done in runs.items()
             for hit in needles.scan(f"`{name}` stdout", done.stdout) + needles.scan(f"`{name}` stderr", done.stderr)]
    found += needles.scan_tree("KITOPS_HOME", kitops_home, allowed=[kitops_home / "credentials.json"])
    found += needles.scan_tree("pull KITOPS_HOME", tmp_path / "pull-home")
    assert not found, found
    assert not (tmp_path / "wrong-home" / "credentials.json").exists()


# -- exceptions and logs on failure paths -----------------------------------------------------------------------


@pytest.mark.integration
def test_failures_carry_no_secret_in_exceptions_or_logs(auth_registry: Any, kitops_home: Path, proxy_factory: Any,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    needles = Needles.for_registry(auth_registry)
    debug_logging(caplog, monkeypatch)
    host, user, pw = auth_registry.host, auth_registry.username, auth_registry.password
    good = RegistryCredentials(user, pw)
    ctx = make_context(tmp_path / "ctx")
    errors: dict[str, BaseException] = {}

    def client(registry: str, creds: RegistryCredentials, **options: Any) -> KitOpsClient:
        return KitOpsClient(store=LocalStore(kitops_home), plain_http=True, credentials={registry: creds}, **options)

    def expect(name: str, kind: type[BaseException], fn: Any) -> None:
        with pytest.raises(kind) as info:
            fn()
        errors[name] = info.value

    local = client(host, good).pack(ctx, reference=f"{host}/secrets/fail:v1")
    proxy = proxy_factory(host)
    via_proxy = f"{proxy.host}/secrets/fail:v1"
    expect("login with a wrong password", AuthenticationError,
           lambda: login(host, user, "wrong-" + pw, kitops_home=tmp_path / "no-login", plain_http=True))
    expect("push with a wrong password", AuthenticationError,
           lambda: client(host, RegistryCredentials(user, pw[::-1])).push(local.reference))
    # the password is right but the registry answers 401 to the manifest PUT (a revoked token, say)
    proxy.fail_next(1, status=401, path_contains="/manifests/", method="PUT")
    expect("401 on push", AuthenticationError, lambda: client(proxy.host, good).push(local.reference, via_proxy))

    def exploding_progress(label: str, done: int, total: int | None) -> None:
        if done:
            raise RuntimeError(f"disk full while reporting {label}")

    tmp_repo = f"{proxy.host}/secrets/explode:v1"
    expect("exception raised mid-push", RuntimeError,
           lambda: client(proxy.host, good, progress=exploding_progress).push(local.reference, tmp_repo))
    # a connection dropped mid-upload is retried (the reason logged: per attempt at debug, the recovery at info),
    # then the push succeeds
    proxy.drop_next(1, path_contains="/blobs/uploads/", method="PUT")
    pushed = client(proxy.host, good).push(local.reference, f"{proxy.host}/secrets/retried:v1")
    assert any("retrying" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
    assert any("succeeded on attempt 2" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    proxy_host = proxy.host
    proxy.stop()
    expect("registry down", KitopsError, lambda: client(proxy_host, good).push(local.reference, via_proxy))
    expect("pull with a wrong password", AuthenticationError,
           lambda: client(host, RegistryCredentials(user, "x" + pw)).pull(f"{host}/secrets/fail:v1"))

    # the failures are the ones intended, and the requests carried the credentials
    assert "connection refused" in str(errors["registry down"])
    assert "refused push" in str(errors["401 on push"]) and "injected by CountingProxy" in str(errors["401 on push"])
    assert "disk full" in str(errors["exception raised mid-push"])
    assert client(host, good).resolve(pushed.pinned.replace(proxy_host, host)).digest == local.digest
    expect_anonymous_refused(pushed.pinned.replace(proxy_host, host), tmp_path / "anon")
    out, err = capfd.readouterr()
    found = [hit for name, exc in errors.items() for hit in needles.scan_exception(name, exc)]
    found += scan_logs(needles, caplog) + needles.scan("stdout", out) + needles.scan("stderr", err)
    assert not found, found


@pytest.mark.integration
def test_bearer_tokens_and_token_service_password_never_leak(token_registry: Any, kitops_home: Path,  # noqa: F811
                                                             tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    needles = Needles.for_registry(token_registry)
    issued: list[str] = []
    original_reply = TokenIssuer._reply

    def recording_reply(h: Any, status: int, body: bytes) -> None:  # every token the issuer hands out
        if status == 200:
            issued.append(json.loads(body)["token"])
        original_reply(h, status, body)

    monkeypatch.setattr(TokenIssuer, "_reply", staticmethod(recording_reply))
    debug_logging(caplog, monkeypatch)
    host = token_registry.host
    good = RegistryCredentials(token_registry.username, token_registry.password)
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True, credentials={host: good})
    desc = kit.pack(make_context(tmp_path / "ctx"), reference=f"{host}/secrets/bearer:v1", push=True)
    pulled = KitOpsClient(store=LocalStore(tmp_path / "pull-home"), plain_http=True,
                          credentials={host: good}).pull(desc.pinned)
    errors: dict[str, BaseException] = {}
    wrong = KitOpsClient(store=LocalStore(kitops_home), plain_http=True,
                         credentials={host: RegistryCredentials(token_registry.username, "not-" + good.password)})
    with pytest.raises(AuthenticationError) as info:
        wrong.push(desc.reference, f"{host}/secrets/bearer:v2")
    errors["token service refuses a wrong password"] = info.value
    with RegistryClient(host, credentials=good, plain_http=True, retry=RetryPolicy(max_attempts=1)) as rc:
        with pytest.raises(KitopsError) as info:  # a token is sent, then the manifest is missing
            rc.get_manifest("secrets/bearer", "no-such-tag")
        errors["missing manifest with a bearer token"] = info.value

    assert pulled.digest == desc.digest and len(issued) >= 2, issued
    assert {user for user, _ in token_registry.issuer.requests} >= {token_registry.username}
    for i, token in enumerate(issued):
        needles.add(f"bearer token #{i}", token)
    out, err = capfd.readouterr()
    found = [hit for name, exc in errors.items() for hit in needles.scan_exception(name, exc)]
    found += scan_logs(needles, caplog) + needles.scan("stdout", out) + needles.scan("stderr", err)
    found += needles.scan_tree("KITOPS_HOME", kitops_home) + needles.scan_tree("pull KITOPS_HOME", tmp_path / "pull-home")
    found += needles.scan_tree("registry work dir", token_registry.data_dir.parent)  # data, config, log
    found += needles.scan("clients", repr(kit) + repr(kit.registry_client(host)) + repr(kit.registry_client(host).auth))
    assert not found, found


# -- orchestrators ------------------------------------------------------------------------------------------------


def _register_airflow_dag(dag: Any) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


@pytest.mark.integration
@pytest.mark.airflow
def test_airflow_dag_keeps_the_connection_password_out_of_xcom_logs_and_db(
        airflow_db: Path, auth_registry: Any, kitops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], restore_logging: None) -> None:
    pytest.importorskip("airflow.sdk")
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.sdk import DAG
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from kitops_flows_airflow import KitPackOperator, KitPullOperator

    needles = Needles.for_registry(auth_registry)
    key, key_password = generate_key_pair(), "airflow-sign-" + secrets.token_hex(8)
    pem = needles.add_signing_key(key, key_password)
    debug_logging(caplog, monkeypatch)
    host = auth_registry.host
    monkeypatch.setenv("AIRFLOW_CONN_KITOPS_SECRETS", json.dumps({
        "conn_type": "kitops", "host": f"http://{host}", "login": auth_registry.username,
        "password": auth_registry.password, "extra": {"kitops_home": str(kitops_home), "repository": "secrets/airflow",
                                                      "signing_key": pem, "signing_key_password": key_password}}))
    since = auth_registry.log_offset()
    with DAG("kitops_secrets_scan", schedule=None) as dag:
        pack = KitPackOperator(task_id="pack", kitops_conn_id="kitops_secrets", context_dir=str(make_context(
            tmp_path / "ctx", weights="airflow")), reference=":v1", push=True, sign=True)
        pack >> KitPullOperator(task_id="pull", kitops_conn_id="kitops_secrets", kitops_home=str(tmp_path / "pull-home"),
                                reference="{{ ti.xcom_pull(task_ids='pack')['pinned'] }}",
                                verify_key=key.public_key.to_pem().decode())
    _register_airflow_dag(dag)
    recorded = logging.handlers.BufferingHandler(capacity=1_000_000)
    for name in ("kitops_flows", "kitops_flows_airflow"):
        monkeypatch.setattr(logging.getLogger(name), "handlers", [*logging.getLogger(name).handlers, recorded])
    dr = dag.test()

    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert dr.state == "success", states
    with create_session() as session:
        xcoms = session.execute(select(XComModel.task_id, XComModel.key, XComModel.value).where(
            XComModel.dag_id == dag.dag_id, XComModel.run_id == dr.run_id)).all()
        rendered = session.execute(select(RenderedTaskInstanceFields.task_id, RenderedTaskInstanceFields.rendered_fields)
                                   .where(RenderedTaskInstanceFields.dag_id == dag.dag_id,
                                          RenderedTaskInstanceFields.run_id == dr.run_id)).all()
    by_task = {task: value for task, key, value in xcoms if key == "return_value"}
    pushed = json.loads(by_task["pack"]) if isinstance(by_task["pack"], str) else by_task["pack"]
    assert pushed["pinned"].startswith(f"{host}/secrets/airflow@sha256:")
    assert authenticated_writes(auth_registry, since)
    assert f"sha256-{pushed['digest'].split(':')[1]}.sig" in RegistryClient(
        host, credentials=RegistryCredentials(auth_registry.username, auth_registry.password), plain_http=True
    ).list_tags("secrets/airflow")  # the key was really used
    expect_anonymous_refused(pushed["pinned"], tmp_path / "anon")
    assert {task: fields["reference"] for task, fields in rendered}["pull"] == pushed["pinned"]  # rendered template
    out, err = capfd.readouterr()
    # dag.test() routes task logs through Airflow's structlog to stdout at Airflow's level (INFO), once Airflow's
    # logging is configured for this capture; a record handler on our loggers sees them whatever the routing.
    # DEBUG records of the same core code are covered by the core tests above.
    task_logs = "\n".join(r.getMessage() for r in recorded.buffer)
    assert "Saved model layer" in out + task_logs and "secrets/airflow" in caplog.text + out + err + task_logs
    found_in_records = needles.scan("task log records", task_logs)

    found = needles.scan("XCom", [list(row) for row in xcoms]) + needles.scan("rendered fields", [list(r) for r in rendered])
    found += scan_logs(needles, caplog) + needles.scan("stdout", out) + needles.scan("stderr", err) + found_in_records
    # everything Airflow keeps on disk: its database (every table, XCom, TI, assets, logs), config and task logs
    digest = Needles({"digest": pushed["digest"].encode()})  # the run really is in what we scan (db or its WAL)
    assert any(hit.startswith("digest in AIRFLOW_HOME/airflow.db") for hit in digest.scan_tree("AIRFLOW_HOME", airflow_db))
    found += needles.scan_tree("AIRFLOW_HOME", airflow_db)
    found += needles.scan_tree("KITOPS_HOME", kitops_home) + needles.scan_tree("pull KITOPS_HOME", tmp_path / "pull-home")
    assert not found, found


def _persisted_result(state: Any) -> Any:
    """A task run's result as read back through the API (None when it was not persisted)."""
    from prefect.exceptions import MissingResult

    try:
        return state.result()
    except MissingResult:
        return None


@pytest.mark.integration
@pytest.mark.prefect
def test_prefect_flow_keeps_the_block_password_out_of_artifacts_results_and_logs(
        prefect_server: None, auth_registry: Any, kitops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import get_current_settings
    from pydantic import SecretStr

    from kitops_flows_prefect import KitOpsRegistry, pack_modelkit, pull_modelkit_layer

    needles = Needles.for_registry(auth_registry)
    key, key_password = generate_key_pair(), "prefect-sign-" + secrets.token_hex(8)
    pem = needles.add_signing_key(key, key_password)
    debug_logging(caplog, monkeypatch)
    block = KitOpsRegistry(registry=auth_registry.host, plain_http=True, username=auth_registry.username,
                           password=SecretStr(auth_registry.password), repository="secrets/prefect",
                           kitops_home=str(kitops_home), signing_key=SecretStr(pem),
                           signing_key_password=SecretStr(key_password), verify_key=key.public_key.to_pem().decode())
    block.save("secrets-scan", overwrite=True)
    since = auth_registry.log_offset()

    @flow
    def pack_then_pull(context: str, dest: str, registry: Any) -> tuple[Any, Any]:  # a KitOpsRegistry block
        pushed = pack_modelkit(context, ":v1", registry="secrets-scan", push=True, progress_artifact=True, sign=True)
        return pushed, pull_modelkit_layer(pushed, dest, registry=registry)  # the block as a parameter too

    weights = "prefect-" + secrets.token_hex(8)  # new content: no cache hit from an earlier session's results
    state = pack_then_pull(str(make_context(tmp_path / "ctx", weights=weights)), str(tmp_path / "dest"), block,
                           return_state=True)
    pushed, unpacked = state.result()
    flow_run_id = state.state_details.flow_run_id
    assert state.name == "Completed" and (tmp_path / "dest" / "weights.bin").read_text() == weights
    assert authenticated_writes(auth_registry, since)
    expect_anonymous_refused(pushed.pinned, tmp_path / "anon")

    APILogHandler().flush()  # blocks until queued logs are sent
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
            any_=[flow_run_id])))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        block_doc = client.read_block_document_by_name("secrets-scan", "kitops-registry", include_secrets=False)
    assert {tr.name.rsplit("-", 1)[0] for tr in task_runs} == {"pack-modelkit", "pull-modelkit-layer"}
    assert {a.type for a in arts} >= {"markdown", "progress"} and any(pushed.digest in str(a.data) for a in arts)
    assert any(pushed.digest in log.message for log in logs)
    out, err = capfd.readouterr()

    found = needles.scan("flow run", flow_run.model_dump_json())  # parameters, state, result reference
    found += [hit for tr in task_runs for hit in needles.scan(f"task run {tr.name}", tr.model_dump_json())]
    persisted = {tr.name: _persisted_result(tr.state) for tr in task_runs}
    assert any(r is not None for r in persisted.values()), persisted  # pack's result is persisted (it is cached)
    found += [hit for name, result in persisted.items() for hit in needles.scan(f"persisted result {name}", repr(result))]
    found += needles.scan("flow result", repr((pushed, unpacked)))
    found += [hit for a in arts for hit in needles.scan(f"artifact {a.key or a.type}", a.model_dump_json())]
    found += [hit for log in logs for hit in needles.scan(f"flow run log from {log.name}", log.message)]
    found += needles.scan("saved block (no secrets)", block_doc.model_dump_json())
    found += scan_logs(needles, caplog) + needles.scan("stdout", out) + needles.scan("stderr", err)
    # persisted results and cache records, and anything else Prefect keeps on disk
    settings = get_current_settings()
    found += needles.scan_tree("PREFECT_HOME", Path(settings.home))
    found += needles.scan_tree("result storage", Path(settings.results.local_storage_path).expanduser())
    # the server's database (the harness's sqlite file and its journal): block secrets are stored encrypted
    db_url = settings.server.database.connection_url
    scheme, _, db_file = (db_url.get_secret_value() if db_url else "").partition(":///")
    assert scheme.startswith("sqlite") and Path(db_file).is_file(), "prefect_test_harness runs on a sqlite file"
    assert Needles({"digest": pushed.digest.encode()}).scan_tree("db", Path(db_file).parent)  # the run is in it
    found += needles.scan_tree("Prefect server database dir", Path(db_file).parent)
    found += needles.scan_tree("KITOPS_HOME", kitops_home)
    assert not found, found


@pytest.mark.integration
@pytest.mark.dagster
@pytest.mark.parametrize("password_source", ["EnvVar", "plain string"])
def test_dagster_materialization_keeps_the_resource_password_out_of_events_metadata_and_storage(
        password_source: str, auth_registry: Any, kitops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    dg = pytest.importorskip("dagster")
    from kitops_flows_dagster import KitRegistryResource, ModelKitIOManager

    needles = Needles.for_registry(auth_registry)
    key, key_password = generate_key_pair(), "dagster-sign-" + secrets.token_hex(8)
    pem = needles.add_signing_key(key, key_password)
    debug_logging(caplog, monkeypatch)
    monkeypatch.setenv("SECRETS_TEST_KITOPS_PASSWORD", auth_registry.password)
    monkeypatch.setenv("SECRETS_TEST_COSIGN_KEY", pem)
    monkeypatch.setenv("SECRETS_TEST_COSIGN_PASSWORD", key_password)
    env = password_source == "EnvVar"
    kitops = KitRegistryResource(registry=auth_registry.host, plain_http=True, kitops_home=str(kitops_home),
                                 repository_prefix="secrets", username=auth_registry.username,
                                 password=dg.EnvVar("SECRETS_TEST_KITOPS_PASSWORD") if env else auth_registry.password,
                                 signing_key=dg.EnvVar("SECRETS_TEST_COSIGN_KEY") if env else pem,
                                 signing_key_password=dg.EnvVar("SECRETS_TEST_COSIGN_PASSWORD") if env else key_password,
                                 verify_key=key.public_key.to_pem().decode())

    @dg.asset
    def private_rows() -> list[int]:
        return [1, 2, 3]

    @dg.asset
    def row_count(private_rows: list[int]) -> int:  # no `context`: Dagster cannot resolve string annotations here
        dg.get_dagster_logger().info("loaded %d rows from the registry", len(private_rows))
        return len(private_rows)

    since = auth_registry.log_offset()
    instance_dir = tmp_path / "dagster-home"
    instance_dir.mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(instance_dir)) as instance:
        result = dg.materialize([private_rows, row_count], instance=instance,
                                resources={"kitops": kitops, "io_manager": ModelKitIOManager(kitops=kitops, sign=True)})
        assert result.success and result.output_for_node("row_count") == 3
        events = instance.all_logs(result.run_id)
        run = instance.get_run_by_id(result.run_id)
    materializations = result.get_asset_materialization_events()
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata for e in materializations}
    pinned = metadata["private_rows"]["modelkit"].value["pinned"]  # type: ignore[index]
    assert pinned.startswith(f"{auth_registry.host}/secrets/private_rows@sha256:")
    assert authenticated_writes(auth_registry, since)
    expect_anonymous_refused(pinned, tmp_path / "anon")
    assert any("loaded 3 rows" in (e.user_message or "") for e in events)  # the event log has the step's logs
    compute_logs = list(_files(instance_dir / "storage"))
    out, err = capfd.readouterr()

    found = [hit for key, meta in metadata.items()
             for hit in needles.scan(f"materialization metadata of {key}", dg.serialize_value(meta))]
    found += [hit for e in events for hit in needles.scan(f"event {e.dagster_event_type or 'log'}",
                                                            dg.serialize_value(e))]
    found += needles.scan("run (config, tags)", dg.serialize_value(run))
    found += scan_logs(needles, caplog) + needles.scan("stdout", out) + needles.scan("stderr", err)
    # everything the instance wrote: run/event/schedule sqlite storage, captured compute logs, snapshots
    assert {p.suffix for p in compute_logs} >= {".out", ".err"}, compute_logs  # captured stdout/stderr of the step
    found += needles.scan_tree("DAGSTER_HOME", instance_dir)
    found += needles.scan_tree("KITOPS_HOME", kitops_home)
    assert not found, found
