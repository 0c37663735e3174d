"""Signing and verifying a ModelKit cost what reading its manifest costs, whatever the layers weigh.

    .venv/bin/python bench/sign_bench.py                 # a 1 GiB ModelKit, 9 rounds
    .venv/bin/python bench/sign_bench.py --size-mb 256 --rounds 5

A signature covers the manifest digest, and the manifest digest already commits to every layer, so
neither ``sign`` nor ``verify`` may read a layer. Measured in one run against one docker-registry
(tests/services.py), through a byte-counting proxy, each with a fresh client (connection set-up
included), medians over ``--rounds``:

- baseline: fetching the manifest (``RegistryClient.get_manifest``: what any client pays to look at it);
- ``sign`` (legacy ``.sig`` tag, no attestation) and ``verify_signature`` of the big ModelKit and of a tiny
  (1 KiB) one: the big/tiny ratio shows the cost does not grow with the layers;
- for scale: sha256 of the big layer (what a re-hash would cost);
- layer bytes the proxy saw during sign and verify (must be 0).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from services import CountingProxy, RegistryServer  # noqa: E402

from kitops_flows.api import KitOpsClient  # noqa: E402
from kitops_flows.registry import RegistryClient  # noqa: E402
from kitops_flows.signing import generate_key_pair  # noqa: E402
from kitops_flows.store import LocalStore  # noqa: E402

KITFILE = "manifestVersion: 1.0.0\npackage: {name: bench}\nmodel: {name: m, path: model.bin}\n"


def make_kit(root: Path, size: int) -> Path:
    root.mkdir(parents=True)
    (root / "Kitfile").write_text(KITFILE)
    chunk = os.urandom(1 << 20)
    with open(root / "model.bin", "wb") as f:
        for _ in range(size >> 20):
            f.write(chunk)
        f.write(chunk[: size & ((1 << 20) - 1)])
    return root


def medians_ms(ops: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median wall ms of each operation; the operations take turns within each round (fair under load)."""
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for i in range(rounds):
        order = list(ops.items()) if i % 2 == 0 else list(reversed(ops.items()))
        for name, fn in order:
            t = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t)
    return {name: statistics.median(v) * 1000 for name, v in samples.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sign-bench-") as tmp:
        work = Path(tmp)
        with RegistryServer(work / "registry") as registry, CountingProxy(registry.host) as proxy:
            host = registry.host  # timings go direct: the Python proxy adds ~40 ms per keep-alive request
            home = work / "home"
            kit = KitOpsClient(store=LocalStore(home), plain_http=True)
            big_ref, tiny_ref = f"{host}/bench/big:v1", f"{host}/bench/tiny:v1"
            t = time.perf_counter()
            big = kit.pack(make_kit(work / "big", args.size_mb << 20), reference=big_ref, push=True)
            print(f"packed and pushed a {args.size_mb} MiB ModelKit in {time.perf_counter() - t:.1f} s")
            kit.pack(make_kit(work / "tiny", 1024), reference=tiny_ref, push=True)
            layer = big.layers[0]
            key = generate_key_pair()

            def fresh() -> KitOpsClient:
                return KitOpsClient(store=LocalStore(home), plain_http=True)

            def read_manifest() -> None:
                with RegistryClient(host, plain_http=True) as rc:
                    rc.get_manifest("bench/big", "v1")

            proxy.reset()
            fresh().sign(tiny_ref, key, mode="tag", attest=False)  # first signatures: later rounds re-sign
            fresh().sign(big_ref, key, mode="tag", attest=False)
            results = medians_ms({
                "read manifest (baseline)": read_manifest,
                "sign 1 KiB ModelKit": lambda: fresh().sign(tiny_ref, key, mode="tag", attest=False),
                "sign big ModelKit": lambda: fresh().sign(big_ref, key, mode="tag", attest=False),
                "verify 1 KiB ModelKit": lambda: fresh().verify_signature(tiny_ref, key.public_key),
                "verify big ModelKit": lambda: fresh().verify_signature(big_ref, key.public_key),
            }, args.rounds)
            # one more sign and verify through the byte-counting proxy: which requests, how many layer bytes
            proxied = KitOpsClient(store=LocalStore(home), plain_http=True)
            proxy.reset()
            proxied.sign(big_ref.replace(host, proxy.host), key, mode="tag", attest=False)
            sign_requests = proxy.count()
            proxied.verify_signature(big_ref.replace(host, proxy.host), key.public_key)
            verify_requests = proxy.count() - sign_requests
            layer_bytes = proxy.bytes_for(layer.digest)
            all_bytes = proxy.bytes_for()
            blob = LocalStore(home).blob_path(layer.digest)

            def rehash() -> None:
                h = hashlib.sha256()
                with open(blob, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)

            results.update(medians_ms({"sha256 of the big layer (for scale)": rehash}, min(args.rounds, 3)))
        base = results["read manifest (baseline)"]
        print(f"\n{'operation':<40} {'median ms':>10} {'x manifest read':>16}")
        for name, ms in results.items():
            print(f"{name:<40} {ms:>10.1f} {ms / base:>16.1f}")
        print(f"\nsign big / sign 1 KiB:     {results['sign big ModelKit'] / results['sign 1 KiB ModelKit']:.2f}")
        print(f"verify big / verify 1 KiB: {results['verify big ModelKit'] / results['verify 1 KiB ModelKit']:.2f}")
        print(f"requests: sign {sign_requests}, verify {verify_requests} (manifest read: 1); "
              f"response bytes {all_bytes}, of which layer bytes {layer_bytes}")
        return 0 if layer_bytes == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
