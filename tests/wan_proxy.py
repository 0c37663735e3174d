"""A long-haul link on loopback: a TCP proxy that caps each connection's bandwidth and adds latency.

Real registries sit across regions, often behind object storage that caps every TCP connection. This
proxy models that link for tests and benches: each accepted connection is relayed to ``upstream``
through two one-way pipes, each delaying every byte by ``rtt / 2`` (so every request/response pair
pays one round trip, and opening a connection pays one more, like a TCP handshake) and pacing it to
``rate`` bytes/s for that connection alone (so N connections get N x ``rate``)::

    with WanProxy(registry.host, rate=20e6, rtt=0.030) as wan:     # 20 MB/s per connection, 30 ms
        client = RegistryClient(wan.host, plain_http=True)
        ...
        wan.connections, wan.bytes_down, wan.peak_connections

It works below HTTP, so Host headers, Location URLs and bodies pass untouched (a registry's upload
Location points back at the proxy, a presigned S3 URL stays valid). Loopback only.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

LOOPBACK = "127.0.0.1"
PIECE = 64 * 1024  # bytes moved per recv/send: 3.3 ms of a 20 MB/s link


class _Pipe:
    """One direction of one connection: recv from ``src``, deliver to ``dst`` after ``delay`` at ``rate``.

    A bounded queue between the reading and the writing thread is the link's buffer: when it is full the
    reader stops reading, so the sender sees TCP back-pressure instead of the proxy buffering without limit.
    ``on_end`` is called once when this direction is over (EOF relayed, or a socket failed).
    """

    def __init__(self, src: socket.socket, dst: socket.socket, rate: float, delay: float, first_at: float,
                 count: list[int], lock: threading.Lock, on_end: Callable[[bool], None]) -> None:
        self.src, self.dst = src, dst
        self.rate, self.delay = rate, delay
        self._free_at = first_at  # when the link may send the next piece
        self._count, self._lock, self._on_end = count, lock, on_end
        self.failed = threading.Event()
        depth = max(8, int(rate * max(delay, 0.001) * 4) // PIECE + 1) if rate else 64
        self._queue: queue.Queue[tuple[float, bytes]] = queue.Queue(maxsize=depth)

    def start(self, name: str) -> None:
        threading.Thread(target=self._read, name=f"{name}-read", daemon=True).start()
        threading.Thread(target=self._write, name=f"{name}-write", daemon=True).start()

    def _put(self, data: bytes) -> bool:
        while not self.failed.is_set():
            try:
                self._queue.put((time.monotonic() + self.delay, data), timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            while self._put(data := self.src.recv(PIECE)) and data:
                pass
        except OSError:
            self._put(b"")

    def _write(self) -> None:
        clean = False
        try:
            while True:
                due, data = self._queue.get()
                if not data:
                    with contextlib.suppress(OSError):
                        self.dst.shutdown(socket.SHUT_WR)
                    clean = True
                    return
                send_at = max(due, self._free_at)
                wait = send_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self.dst.sendall(data)
                self._free_at = send_at + (len(data) / self.rate if self.rate else 0.0)
                with self._lock:
                    self._count[0] += len(data)
        except OSError:
            pass
        finally:
            if not clean:
                self.failed.set()
            self._on_end(clean)


class WanProxy:
    """TCP proxy from a loopback port to ``upstream`` ("HOST:PORT") with a per-connection cap and latency.

    ``rate`` is bytes/s per connection and direction (0 = unlimited); ``rtt`` is the added round-trip time in
    seconds. Counters: ``connections`` accepted so far, ``peak_connections`` open at once, ``bytes_up``
    (client to upstream) and ``bytes_down``.
    """

    def __init__(self, upstream: str, *, rate: float = 20e6, rtt: float = 0.030) -> None:
        name, _, port = upstream.removeprefix("http://").rstrip("/").partition(":")
        if not port:
            raise ValueError(f"WanProxy upstream {upstream!r}: expected HOST:PORT")
        if name not in (LOOPBACK, "localhost"):
            raise ValueError(f"WanProxy upstream {upstream!r}: loopback only")
        self.upstream = (name, int(port))
        self.rate = rate
        self.rtt = rtt
        self.connections = 0
        self.peak_connections = 0
        self._open = 0
        self._up = [0]
        self._down = [0]
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._stopping = threading.Event()

    @property
    def host(self) -> str:
        if self._listener is None:
            raise RuntimeError("WanProxy is not running: call start() first")
        return f"{LOOPBACK}:{self._listener.getsockname()[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def bytes_up(self) -> int:
        with self._lock:
            return self._up[0]

    @property
    def bytes_down(self) -> int:
        with self._lock:
            return self._down[0]

    def reset_counters(self) -> None:
        """Zero the counters; ``connections`` then counts connections opened from now on."""
        with self._lock:
            self.connections = self.peak_connections = 0
            self._up[0] = self._down[0] = 0

    def start(self) -> WanProxy:
        if self._listener is None:
            self._stopping.clear()
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOOPBACK, 0))
            listener.listen(128)
            self._listener = listener
            threading.Thread(target=self._accept, name=f"WanProxy->{self.upstream[1]}", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            open_sockets = list(self._sockets)
        for s in open_sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> WanProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        accepted = time.monotonic()
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.connections += 1
            self._open += 1
            self.peak_connections = max(self.peak_connections, self._open)
            self._sockets.update((client, upstream))
            name = f"wan{self.connections}"
        ended: list[bool] = []

        def on_end(clean: bool) -> None:
            with self._lock:
                ended.append(clean)
                last = len(ended) == 2
            if not clean or last:  # a failed direction takes the other down too
                for s in (client, upstream):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)
            if last:
                for s in (client, upstream):
                    s.close()
                with self._lock:
                    self._open -= 1
                    self._sockets.difference_update((client, upstream))

        half = self.rtt / 2
        # the first request byte reaches the server a handshake (one rtt) plus half an rtt after connect
        up = _Pipe(client, upstream, self.rate, half, accepted + self.rtt + half, self._up, self._lock, on_end)
        down = _Pipe(upstream, client, self.rate, half, accepted, self._down, self._lock, on_end)
        up.start(name + "-up")
        down.start(name + "-down")
