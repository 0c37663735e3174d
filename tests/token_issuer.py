"""A tiny bearer-token service plus a ``docker-registry`` in ``auth: token`` mode, for tests.

Distribution's token auth: the registry answers 401 with
``WWW-Authenticate: Bearer realm=<issuer>/token,service=<svc>,scope=<scope>``; the client asks the
issuer for a JWT (RS256) whose ``access`` claim lists the granted actions, and the registry checks
the signature against ``rootcertbundle`` (our self-signed certificate travels in the ``x5c``
header), plus ``iss``, ``aud`` and expiry::

    with TokenRegistry.start(tmp_path, username="alice", password="s3cret") as reg:
        client = RegistryClient(reg.host, credentials=RegistryCredentials("alice", "s3cret"), plain_http=True)

The issuer grants every requested action to the right username/password, only ``pull`` to anonymous
callers when ``anonymous_pull`` is set, and answers 401 to a wrong password. It counts requests.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

REGISTRY_BIN = "/usr/bin/docker-registry"
SERVICE = "kitops-test-registry"
ISSUER = "kitops-test-issuer"


def _key_and_cert() -> tuple[bytes, bytes, str]:
    """(private key PEM, certificate PEM, base64 DER for x5c) of a fresh self-signed RSA certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kitops test token issuer")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    der = cert.public_bytes(serialization.Encoding.DER)
    return key_pem, cert.public_bytes(serialization.Encoding.PEM), base64.b64encode(der).decode()


@dataclass
class TokenIssuer:
    """HTTP token endpoint at ``realm``; ``requests`` records (username or None, scopes) per call."""

    username: str
    password: str
    anonymous_pull: bool = False
    lifetime: int = 300
    requests: list[tuple[str | None, list[str]]] = field(default_factory=list)
    realm: str = ""
    cert_pem: bytes = b""
    _key_pem: bytes = b""
    _x5c: str = ""
    _server: ThreadingHTTPServer | None = None

    def start(self) -> TokenIssuer:
        self._key_pem, self.cert_pem, self._x5c = _key_and_cert()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                issuer._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(h.path).query)
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        user = None
        header = h.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (user, password) != (self.username, self.password):
                self.requests.append((user, scopes))
                body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]})
                self._reply(h, 401, body.encode())
                return
        self.requests.append((user, scopes))
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = [a for a in actions.split(",") if a]
            granted = wanted if user else [a for a in wanted if a == "pull" and self.anonymous_pull]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user or "", "aud": query.get("service", [SERVICE])[0], "exp": now + self.lifetime,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        token = jwt.encode(claims, self._key_pem, algorithm="RS256", headers={"x5c": [self._x5c]})
        body = json.dumps({"token": token, "access_token": token, "expires_in": self.lifetime,
                           "issued_at": dt.datetime.now(dt.timezone.utc).isoformat()})
        self._reply(h, 200, body.encode())

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TokenRegistry:
    """``docker-registry`` on loopback trusting ``issuer``; ``host``, ``url``, ``data_dir`` like the other fixtures."""

    host: str
    url: str
    data_dir: Path
    log_path: Path
    issuer: TokenIssuer
    username: str
    password: str
    _proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, workdir: Path, *, username: str = "tokenuser", password: str = "tokenpass",
              anonymous_pull: bool = False) -> TokenRegistry:
        issuer = TokenIssuer(username, password, anonymous_pull=anonymous_pull).start()
        workdir.mkdir(parents=True, exist_ok=True)
        bundle = workdir / "token-root.pem"
        bundle.write_bytes(issuer.cert_pem)
        port = _free_port()
        data_dir = workdir / "data"
        config = workdir / "registry.yml"
        config.write_text(json.dumps({  # YAML is a superset of JSON
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(data_dir)}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{port}", "secret": "token-tests"},
            "auth": {"token": {"realm": issuer.realm, "service": SERVICE, "issuer": ISSUER,
                               "rootcertbundle": str(bundle)}},
        }))
        log_path = workdir / "registry.log"
        reg = cls(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}", data_dir, log_path, issuer, username, password)
        with open(log_path, "ab") as log:
            reg._proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log)
        reg._wait_ready()
        return reg

    def blob_path(self, digest: str) -> Path:
        """Where the registry keeps the bytes of ``digest`` (as RegistryServer.blob_path)."""
        algo, _, hex_ = digest.partition(":")
        return self.data_dir / "docker/registry/v2/blobs" / algo / hex_[:2] / hex_ / "data"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=1)  # noqa: S310 - loopback test server
            except urllib.error.HTTPError as e:
                if e.code == 401:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"token registry on {self.host} did not come up: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        self.issuer.stop()

    def __enter__(self) -> TokenRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    """A registry in ``auth: token`` mode with its issuer (import this fixture into a test module)."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip(f"{REGISTRY_BIN} is not installed (apt-get install docker-registry)")
    reg = TokenRegistry.start(tmp_path_factory.mktemp("token-registry"))
    try:
        yield reg
    finally:
        reg.stop()
