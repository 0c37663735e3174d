"""Real services for the test suite, on loopback, owned by the process that starts them.

Each server picks a free port, writes its config into a directory you give it, waits until it answers and
is stopped with terminate -> wait -> kill. Children get ``PR_SET_PDEATHSIG`` so they die with the test
process even if it is killed outright. Use them as context managers::

    with RegistryServer(tmp_path / "reg") as reg:            # Debian's docker-registry (distribution 2.8)
        requests.get(f"{reg.url}/v2/")                       # 200
        reg.stop(); reg.start()                              # same port, same data
    with MotoS3Server(tmp_path / "moto") as s3:
        s3.client().create_bucket(Bucket="models")
    with CountingProxy(reg.host) as proxy:                   # byte counts and injected faults
        proxy.fail_next(2, status=503)
        ...; proxy.bytes_for("/blobs/")

tests/conftest.py wraps these in session fixtures; bench scripts and ad-hoc debugging can use them directly.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
REGISTRY_INSTALL_HINT = "install it with `apt-get install docker-registry apache2-utils` (or `make system-deps`)"
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
CHUNK = 64 * 1024


class ServiceError(RuntimeError):
    """A test service could not be started or stopped; the message carries the tail of its log."""


# -- helpers ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (bind port 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (reads only its last 64 KiB), or a note that it is missing."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def http_status(url: str, method: str = "GET", timeout: float = 2.0) -> int | None:
    """Status code of one plain-HTTP request, or None when nothing answers (connection refused, reset...)."""
    host, _, path = url.removeprefix("http://").partition("/")
    name, _, port = host.partition(":")
    conn = http.client.HTTPConnection(name, int(port or 80), timeout=timeout)
    try:
        conn.request(method, "/" + path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM the child when the thread that started it exits (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class ManagedProcess:
    """One child process with its output in ``log_path``; ``stop()`` is terminate, wait, then kill.

    The child gets its own session, so a Ctrl-C in the terminal reaches pytest only and pytest's teardown
    stops the child in order, and ``PR_SET_PDEATHSIG`` so even ``kill -9`` of pytest does not leave it behind.
    """

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # append: a restart keeps the earlier log lines
            self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          env=self.env, start_new_session=True, preexec_fn=_die_with_parent)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def wait_ready(self, probe: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
        """Poll ``probe`` until it is true; raise ServiceError with the log tail on exit or timeout."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if not self.running:
                code = self._proc.returncode if self._proc else None
                self._proc = None
                raise ServiceError(f"{self.name} exited (code {code}) before {what}; "
                                   f"command: {' '.join(self.argv)}\n--- {self.log_path} ---\n{log_tail(self.log_path)}")
            if probe():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"{self.name} did not reach '{what}' within {timeout:.0f}s; "
                                   f"command: {' '.join(self.argv)}\n--- {self.log_path} ---\n{log_tail(self.log_path)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)


class _Service:
    """Context-manager plumbing shared by the servers below."""

    def start(self) -> Any:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# -- OCI registry ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessLogEntry:
    """One line of the registry's access log (Apache combined format, written by distribution 2.8).

    ``size`` is the body size the handler wrote; for HEAD requests it is the size the GET would have sent.
    """

    method: str
    path: str
    status: int
    size: int
    user: str


@dataclass(frozen=True)
class S3Storage:
    """Where a RegistryServer keeps blobs instead of its data dir: a bucket of an S3 server (moto on loopback).

    With ``redirect`` (distribution's default for S3) a blob GET or HEAD answers 307 to a presigned URL of
    ``endpoint_url``, so clients fetch the bytes from S3 itself, as with ECR, GAR or Harbor on S3.
    """

    endpoint_url: str
    bucket: str
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"
    redirect: bool = True


_ACCESS_LINE = re.compile(r'^\S+ \S+ (?P<user>\S+) \[[^\]]+\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
                          r'(?P<status>\d{3}) (?P<size>\d+|-)')


class RegistryServer(_Service):
    """Debian's ``/usr/bin/docker-registry`` (CNCF distribution 2.8) on 127.0.0.1 with storage in ``work_dir``.

    Pass ``username``/``password`` for htpasswd basic auth (bcrypt, made with ``htpasswd -Bbn``). The access log
    (one line per request with its response size, see :meth:`access_log`) and the registry's own log both go
    to ``log_path``. Blobs live at ``data_dir/docker/registry/v2/blobs/sha256/<xx>/<hex>/data``
    (:meth:`blob_path`), so tests can corrupt or remove them.

        reg = RegistryServer(tmp_path / "reg").start()
        reg.host, reg.url        # "127.0.0.1:41234", "http://127.0.0.1:41234"
        reg.stop(); reg.start()  # same port and data: for "registry went away" tests
    """

    def __init__(self, work_dir: Path, username: str | None = None, password: str | None = None,
                 binary: Path = REGISTRY_BINARY, s3: S3Storage | None = None) -> None:
        if (username is None) != (password is None):
            raise ValueError("RegistryServer: give both username and password, or neither")
        self.work_dir = Path(work_dir)
        self.data_dir = self.work_dir / "data"
        self.config_path = self.work_dir / "config.yml"
        self.htpasswd_path = self.work_dir / "htpasswd"
        self.log_path = self.work_dir / "registry.log"
        self.username = username
        self.password = password
        self.binary = binary
        self.s3 = s3
        self.port: int | None = None
        self._process: ManagedProcess | None = None

    @property
    def host(self) -> str:
        if self.port is None:
            raise ServiceError("RegistryServer has no port yet: call start() first")
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    def blob_path(self, digest: str) -> Path:
        """Where the registry keeps the bytes of ``digest`` ("sha256:<hex>")."""
        algo, _, hex_ = digest.partition(":")
        return self.data_dir / "docker/registry/v2/blobs" / algo / hex_[:2] / hex_ / "data"

    def start(self) -> RegistryServer:
        """Start (or restart on the same port and data); returns self. A no-op when already running."""
        if self.running:
            return self
        if not self.binary.exists():
            raise ServiceError(f"{self.binary} not found: {REGISTRY_INSTALL_HINT}")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        if self.username is not None and not self.htpasswd_path.exists():
            self._write_htpasswd()
        restart = self.port is not None
        for attempt in range(3):
            if not restart:
                self.port = free_port()
            self.config_path.write_text(self._config())
            # the AWS SDK in the registry refuses a custom CA bundle with its own transport (it panics at start),
            # and nothing of the caller's AWS setup belongs in a test registry
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            self._process = ManagedProcess("docker-registry", [str(self.binary), "serve", str(self.config_path)],
                                           self.log_path, env=env)
            self._process.start()
            want = 401 if self.username else 200  # an auth registry answers /v2/ with a Basic challenge
            try:
                self._process.wait_ready(lambda want=want: http_status(f"{self.url}/v2/") == want,
                                         f"GET {self.url}/v2/ -> {want}")
                return self
            except ServiceError as exc:
                # someone else took the free port between our probe and the registry's bind: pick another
                if restart or attempt == 2 or "address already in use" not in str(exc):
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the registry (terminate, wait, kill); data and port are kept for a later start()."""
        if self._process is not None:
            self._process.stop()

    def access_log(self, since: int = 0, settle: float = 0.5) -> list[AccessLogEntry]:
        """Requests logged from byte offset ``since`` of ``log_path`` (see :meth:`log_offset`).

        The registry writes the line just after it sends the response, so a client may finish first: this
        waits up to ``settle`` seconds for the log to stop growing.
        """
        last, deadline = -1, time.monotonic() + settle
        while time.monotonic() < deadline:
            size = self.log_offset()
            if size == last:
                break
            last = size
            time.sleep(0.05)
        entries: list[AccessLogEntry] = []
        with open(self.log_path, "rb") as f:
            f.seek(since)
            for raw in f:
                m = _ACCESS_LINE.match(raw.decode("utf-8", "replace"))
                if m:
                    size_text = m["size"]
                    entries.append(AccessLogEntry(m["method"], m["path"], int(m["status"]),
                                                  0 if size_text == "-" else int(size_text), m["user"]))
        return entries

    def log_offset(self) -> int:
        """Current size of ``log_path``: pass it to :meth:`access_log` to see only later requests."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _write_htpasswd(self) -> None:
        htpasswd = shutil.which("htpasswd")
        if htpasswd is None:
            raise ServiceError(f"htpasswd not found (needed for the auth registry): {REGISTRY_INSTALL_HINT}")
        assert self.username is not None and self.password is not None
        out = subprocess.run([htpasswd, "-Bbn", self.username, self.password], capture_output=True, check=False)
        if out.returncode != 0:
            raise ServiceError(f"htpasswd -Bbn {self.username} failed: {out.stderr.decode(errors='replace')}")
        self.htpasswd_path.write_bytes(out.stdout)
        self.htpasswd_path.chmod(0o600)

    def _config(self) -> str:
        # JSON-style flow mappings: valid YAML, and paths need no escaping beyond JSON quoting
        def q(p: Path) -> str:
            return '"' + str(p).replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [
            "version: 0.1",
            "log: {level: warn, formatter: text, accesslog: {disabled: false}}",
            "storage:",
            f"  filesystem: {{rootdirectory: {q(self.data_dir)}}}" if self.s3 is None else
            f"  s3: {{accesskey: {self.s3.access_key}, secretkey: {self.s3.secret_key}, region: {self.s3.region}, "
            f"regionendpoint: \"{self.s3.endpoint_url}\", bucket: {self.s3.bucket}, secure: false, v4auth: true}}\n"
            f"  redirect: {{disable: {'false' if self.s3.redirect else 'true'}}}",
            "  delete: {enabled: true}",
            "  maintenance: {uploadpurging: {enabled: false}}",
            f"http: {{addr: \"{LOOPBACK}:{self.port}\", secret: kitops-flows-tests-only}}",
        ]
        if self.username is not None:
            lines += ["auth:", f"  htpasswd: {{realm: kitops-tests, path: {q(self.htpasswd_path)}}}"]
        return "\n".join(lines) + "\n"


# -- S3 (moto) ------------------------------------------------------------------------------------------------


def _venv_script(name: str) -> Path:
    """A console script next to the running interpreter (.venv/bin/<name>), else the one on PATH."""
    local = Path(sys.executable).with_name(name)
    if local.exists():
        return local
    found = shutil.which(name)
    return Path(found) if found else local


class MotoS3Server(_Service):
    """``moto_server`` (moto[s3] + flask) on 127.0.0.1: the real S3 HTTP protocol, state kept in its memory.

        with MotoS3Server(tmp_path / "moto") as s3:
            c = s3.client(); c.create_bucket(Bucket="data")
            s3.reset()                   # wipe every bucket
    """

    access_key = "testing"
    secret_key = "testing"
    region = "us-east-1"

    def __init__(self, work_dir: Path, binary: Path | None = None) -> None:
        self.work_dir = Path(work_dir)
        self.log_path = self.work_dir / "moto.log"
        self.binary = binary or _venv_script("moto_server")
        self.port: int | None = None
        self._process: ManagedProcess | None = None

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise ServiceError("MotoS3Server has no port yet: call start() first")
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> MotoS3Server:
        if self._process is not None and self._process.running:
            return self
        if not self.binary.exists():
            raise ServiceError(f"{self.binary} not found: install the test dependencies (`make venv`, which "
                               "installs moto[s3], flask and flask-cors from requirements-ci.txt)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        self._process = ManagedProcess("moto_server", [str(self.binary), "-H", LOOPBACK, "-p", str(self.port)],
                                       self.log_path)
        self._process.start()
        self._process.wait_ready(lambda: http_status(f"{self.endpoint_url}/moto-api/") == 200,
                                 f"GET {self.endpoint_url}/moto-api/ -> 200")
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def reset(self) -> None:
        """Forget every bucket and object (``POST /moto-api/reset``)."""
        status = http_status(f"{self.endpoint_url}/moto-api/reset", method="POST", timeout=10)
        if status != 200:
            raise ServiceError(f"moto reset at {self.endpoint_url} answered {status}\n{log_tail(self.log_path)}")

    def client(self) -> Any:
        """A boto3 S3 client for this server (test keys, us-east-1)."""
        import boto3  # only tests that use S3 pay for the import

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 (and so kitops_flows.s3) at this server."""
        return {"AWS_ENDPOINT_URL_S3": self.endpoint_url, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": self.region}


# -- counting / fault-injecting proxy ---------------------------------------------------------------------------


@dataclass
class ProxiedRequest:
    """One request seen by a CountingProxy; ``body_bytes`` is the response body bytes sent to the client,
    ``request_bytes`` the request body bytes sent upstream (uploads), ``headers`` the request headers as
    received (names lowercased)."""

    method: str
    path: str
    status: int = 0
    body_bytes: int = 0
    fault: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    request_bytes: int = 0


@dataclass
class Fault:
    """A planned failure: ``kind`` is "status", "drop" (close without answering) or "truncate" (cut the body
    after ``after_bytes``). Applies to the next ``count`` matching requests, or to each one with ``fraction``."""

    kind: str
    count: int = 0
    fraction: float = 0.0
    status: int = 503
    after_bytes: int = 0
    path_contains: str = ""
    method: str = ""
    retry_after: str = ""
    after: int = 0  # let this many matching requests through first

    def matches(self, method: str, path: str) -> bool:
        return (not self.method or self.method == method) and self.path_contains in path


_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                         "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection",
                         "expect"})  # Expect: 100-continue is answered by this proxy, not forwarded


class CountingProxy(_Service):
    """A loopback HTTP proxy in front of one upstream ("127.0.0.1:PORT") that counts response bytes per request
    and injects faults. The Host header is passed through, so registry Location URLs point back at the proxy.

        proxy = CountingProxy(registry.host).start()
        client = RegistryClient(proxy.host, plain_http=True)
        proxy.fail_next(2, status=503, path_contains="/blobs/")      # the next two blob requests fail
        proxy.fail_fraction(0.3, status=429, seed=1)                 # ~30 % of requests answer 429
        proxy.drop_next(1)                                           # close the connection without answering
        proxy.truncate_next(1, after_bytes=100, path_contains="/blobs/")
        proxy.fail_next(1, status=404, path_contains="/blobs/", after=3)  # the 4th blob request fails
        proxy.ignore_range = True                                    # drop Range headers: servers send all
        proxy.bytes_for("/blobs/sha256:ab...", method="GET")        # response bytes sent for matching paths
        proxy.stop()

    Bodies are streamed in 64 KiB pieces both ways; sockets time out after ``timeout`` seconds.
    """

    def __init__(self, upstream: str, timeout: float = 60.0) -> None:
        name, _, port = upstream.removeprefix("http://").rstrip("/").partition(":")
        if not port:
            raise ValueError(f"CountingProxy upstream {upstream!r}: expected HOST:PORT")
        self.upstream = (name, int(port))
        self.timeout = timeout
        self.requests: list[ProxiedRequest] = []
        self._faults: list[Fault] = []
        self._random = random.Random(0)
        self.ignore_range = False
        self._lock = threading.Lock()
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        if self._server is None:
            raise ServiceError("CountingProxy is not running: call start() first")
        return f"{LOOPBACK}:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> CountingProxy:
        if self._server is None:
            self._server = _ProxyServer((LOOPBACK, 0), _ProxyHandler, self)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=f"CountingProxy->{self.upstream[1]}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    # fault planning
    def fail_next(self, count: int, status: int = 503, *, path_contains: str = "", method: str = "",
                  retry_after: str = "", after: int = 0) -> None:
        """Answer the next ``count`` matching requests with ``status`` (e.g. 500, 503, 429) instead of forwarding
        (after letting ``after`` matching requests through)."""
        self._add(Fault("status", count=count, status=status, path_contains=path_contains, method=method,
                        retry_after=retry_after, after=after))

    def fail_fraction(self, fraction: float, status: int = 503, *, seed: int = 0, path_contains: str = "",
                      method: str = "") -> None:
        """Answer each matching request with ``status`` with probability ``fraction`` (seeded, repeatable)."""
        with self._lock:
            self._random.seed(seed)
        self._add(Fault("status", fraction=fraction, status=status, path_contains=path_contains, method=method))

    def drop_next(self, count: int, *, path_contains: str = "", method: str = "") -> None:
        """Close the connection of the next ``count`` matching requests without sending a response."""
        self._add(Fault("drop", count=count, path_contains=path_contains, method=method))

    def truncate_next(self, count: int, after_bytes: int, *, path_contains: str = "", method: str = "",
                      after: int = 0) -> None:
        """Forward the next ``count`` matching requests but cut the response body after ``after_bytes``
        (after letting ``after`` matching requests through whole)."""
        self._add(Fault("truncate", count=count, after_bytes=after_bytes, path_contains=path_contains,
                        method=method, after=after))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget recorded requests and planned faults."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    # counting
    def matching(self, path_contains: str = "", method: str = "") -> list[ProxiedRequest]:
        with self._lock:
            return [r for r in self.requests
                    if path_contains in r.path and (not method or r.method == method)]

    def bytes_for(self, path_contains: str = "", method: str = "") -> int:
        """Response body bytes sent for requests whose path contains ``path_contains``."""
        return sum(r.body_bytes for r in self.matching(path_contains, method))

    def sent_bytes(self, path_contains: str = "", method: str = "") -> int:
        """Request body bytes clients sent upstream (uploads) for requests whose path contains ``path_contains``."""
        return sum(r.request_bytes for r in self.matching(path_contains, method))

    def count(self, path_contains: str = "", method: str = "") -> int:
        return len(self.matching(path_contains, method))

    # used by the handler
    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _begin(self, method: str, path: str, headers: dict[str, str]) -> tuple[ProxiedRequest, Fault | None]:
        with self._lock:
            record = ProxiedRequest(method, path, headers=headers)
            self.requests.append(record)
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                if fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    record.fault = fault.kind
                    return record, fault
                if fault.fraction and self._random.random() < fault.fraction:
                    record.fault = fault.kind
                    return record, fault
            return record, None


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], proxy: CountingProxy) -> None:
        self.proxy = proxy
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client closing its idle keep-alive connection (a discarded requests.Session) is not an error
        if not isinstance(sys.exc_info()[1], ConnectionResetError):
            super().handle_error(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut keep-alive connections still open so their handler threads end now."""
        with self._open_lock:
            sockets = list(self._open)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def setup(self) -> None:
        self.timeout = self.server.proxy.timeout
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: the proxy's records are the log."""

    def do_GET(self) -> None:
        self._forward()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _request_body(self) -> Iterator[bytes]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return
                remaining = size
                while remaining:
                    data = self.rfile.read(min(remaining, CHUNK))
                    if not data:
                        raise ConnectionError("client closed mid-chunk")
                    remaining -= len(data)
                    yield data
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            data = self.rfile.read(min(remaining, CHUNK))
            if not data:
                raise ConnectionError("client closed mid-body")
            remaining -= len(data)
            yield data

    def _forward(self) -> None:
        proxy = self.server.proxy
        record, fault = proxy._begin(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.kind == "status":
            for _ in self._request_body():  # drain, so the client sees the answer, not a reset
                pass
            body = b'{"errors":[{"code":"UNAVAILABLE","message":"injected by CountingProxy"}]}'
            self.send_response_only(fault.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if fault.retry_after:
                self.send_header("Retry-After", fault.retry_after)
            self.send_header("Connection", "close")
            self.end_headers()
            record.status = fault.status
            if self.command != "HEAD":
                record.body_bytes = len(body)
                self.wfile.write(body)
            self.close_connection = True
            return
        self._relay(record, fault.after_bytes if fault is not None else None)

    def _relay(self, record: ProxiedRequest, cut_after: int | None) -> None:
        upstream = http.client.HTTPConnection(*self.server.proxy.upstream, timeout=self.server.proxy.timeout)
        try:
            try:
                upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP and not (self.server.proxy.ignore_range and
                                                                name.lower() == "range"):
                        upstream.putheader(name, value)
                chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
                if chunked:
                    upstream.putheader("Transfer-Encoding", "chunked")
                upstream.endheaders()
                for data in self._request_body():
                    record.request_bytes += len(data)
                    upstream.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                if chunked:
                    upstream.send(b"0\r\n\r\n")
                resp = upstream.getresponse()
            except (OSError, http.client.HTTPException) as exc:  # upstream down (e.g. a stopped registry)
                with contextlib.suppress(OSError):
                    self._bad_gateway(record, exc)
                return
            self._send_response(record, resp, cut_after)
        finally:
            upstream.close()

    def _bad_gateway(self, record: ProxiedRequest, exc: Exception) -> None:
        body = f"upstream {self.server.proxy.upstream[0]}:{self.server.proxy.upstream[1]}: {exc}".encode()
        self.send_response_only(502)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        record.status = 502
        if self.command != "HEAD":
            record.body_bytes = len(body)
            self.wfile.write(body)
        self.close_connection = True

    def _send_response(self, record: ProxiedRequest, resp: http.client.HTTPResponse, cut_after: int | None) -> None:
        record.status = resp.status
        self.send_response_only(resp.status, resp.reason)
        for name, value in resp.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        has_body = self.command != "HEAD" and resp.status not in (204, 304) and resp.status >= 200
        rechunk = has_body and resp.getheader("Content-Length") is None
        if rechunk:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if has_body:
            self._copy_body(record, resp, rechunk, cut_after)
        if resp.will_close:
            self.close_connection = True

    def _copy_body(self, record: ProxiedRequest, resp: BinaryIO | http.client.HTTPResponse, rechunk: bool,
                   cut_after: int | None) -> None:
        while True:
            limit = CHUNK if cut_after is None else min(CHUNK, cut_after - record.body_bytes)
            data = resp.read(limit) if limit > 0 else b""
            if not data:
                break
            record.body_bytes += len(data)  # counted before it is sent: a client that has the bytes sees the count
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if rechunk else data)
        if cut_after is not None:  # truncation: hang up mid-body, like a dying connection
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if rechunk:
            self.wfile.write(b"0\r\n\r\n")


__all__ = ["AccessLogEntry", "CountingProxy", "Fault", "ManagedProcess", "MotoS3Server", "ProxiedRequest",
           "RegistryServer", "S3Storage", "ServiceError", "free_port", "http_status", "log_tail"]
