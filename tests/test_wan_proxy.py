"""The long-haul link proxy (tests/wan_proxy.py) relays bytes intact, caps each connection, adds latency.

Only lower bounds on time are asserted: a loaded machine can make a transfer slower, never faster than the
link allows, so these hold however busy CI is.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable

import pytest
import requests
from services import RegistryServer
from test_services import _push_blob
from wan_proxy import WanProxy


def test_wan_proxy_relays_a_blob_intact_and_counts(registry: RegistryServer,
                                                    wan_factory: Callable[..., WanProxy]) -> None:
    wan = wan_factory(registry.host, rate=0, rtt=0)
    data = os.urandom(3 << 20)
    digest = _push_blob(wan.url, "wan/intact", data)  # the upload Location points back at the proxy
    with requests.Session() as session:
        got = session.get(f"{wan.url}/v2/wan/intact/blobs/{digest}", timeout=10).content
        assert hashlib.sha256(got).hexdigest() == digest.split(":")[1]
        assert session.get(f"{wan.url}/v2/", timeout=10).status_code == 200  # keep-alive: same connection
    assert wan.bytes_up >= len(data) and wan.bytes_down >= len(data)
    assert wan.connections == 3  # POST, PUT (requests without a session), then one session


def test_wan_proxy_caps_each_connection_and_adds_round_trips(registry: RegistryServer,
                                                             wan_factory: Callable[..., WanProxy]) -> None:
    data = os.urandom(1 << 20)
    digest = _push_blob(registry.url, "wan/cap", data)
    wan = wan_factory(registry.host, rate=2e6, rtt=0.1)
    url = f"{wan.url}/v2/wan/cap/blobs/{digest}"
    with requests.Session() as session:
        started = time.monotonic()
        assert session.get(f"{wan.url}/v2/", timeout=10).status_code == 200
        first = time.monotonic() - started
        started = time.monotonic()
        assert session.get(f"{wan.url}/v2/", timeout=10).status_code == 200
        again = time.monotonic() - started
        started = time.monotonic()
        assert session.get(url, timeout=30).content == data
        one_stream = time.monotonic() - started
    assert first >= 0.2 * 0.95  # handshake + request: two round trips
    assert again >= 0.1 * 0.95  # one round trip on the kept-alive connection
    assert one_stream >= len(data) / 2e6 * 0.9  # 1 MiB at 2 MB/s: at least ~0.5 s

    halves = [(0, (1 << 19) - 1), (1 << 19, (1 << 20) - 1)]
    parts: dict[int, bytes] = {}

    def fetch(lo: int, hi: int) -> None:
        parts[lo] = requests.get(url, headers={"Range": f"bytes={lo}-{hi}"}, timeout=30).content

    wan.reset_counters()
    threads = [threading.Thread(target=fetch, args=r) for r in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert parts[0] + parts[1 << 19] == data
    assert wan.connections == 2 and wan.peak_connections >= 2  # each range had a connection (and a cap) of its own


def test_wan_proxy_is_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        WanProxy("10.0.0.1:5000")
