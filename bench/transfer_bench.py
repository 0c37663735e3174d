"""Push/pull throughput against a real local registry, as a ratio to `skopeo copy` of the same blobs.

    .venv/bin/python bench/transfer_bench.py               # 1 GiB ModelKit (900 MiB model + 124 MiB dataset)
    .venv/bin/python bench/transfer_bench.py --size-mb 256 # quick

Measured in one run, on loopback, against Debian's docker-registry started by tests/services.py:
- push and pull wall time of kitops-flows (each in a child process: its own peak RSS) vs
  `skopeo copy oci:<layout> docker://…` and back (the layout holds the very same blobs, hard-linked);
- upload requests and bytes on a re-push of the unchanged ModelKit (target 0), counted by a proxy;
- bytes fetched by a one-layer pull (`pull_layer(ref, ["datasets"])`) vs the layer's size.
Ratios below 1 mean kitops-flows is faster than skopeo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kitops_flows.api import KitOpsClient  # noqa: E402
from kitops_flows.store import LocalStore  # noqa: E402
from tests.services import CountingProxy, RegistryServer  # noqa: E402

CHILD = r"""
import json, resource, sys, time
from kitops_flows.api import KitOpsClient
from kitops_flows.store import LocalStore
home, action, ref = sys.argv[1:4]
kit = KitOpsClient(store=LocalStore(home), plain_http=True)
t = time.perf_counter()
getattr(kit, action)(ref)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "rss_mb": [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024}))
"""


def child(home: Path, action: str, ref: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(home), action, ref], check=True, capture_output=True,
                         text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def make_context(ctx: Path, size_mb: int) -> None:
    dataset_mb = max(1, size_mb // 8)
    (ctx / "data").mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    with open(ctx / "model.bin", "wb") as f:
        for i in range(size_mb - dataset_mb):
            f.write(chunk[i % 97:] + chunk[: i % 97])  # distinct MiBs, cheap to generate
    with open(ctx / "data" / "train.bin", "wb") as f:
        for _ in range(dataset_mb):
            f.write(os.urandom(1 << 20))
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: bench}\nmodel: {name: m, path: model.bin}\n"
                                 "datasets:\n  - {name: train, path: data}\n")


def oci_layout_for(store: LocalStore, manifest_digest: str, manifest_size: int, blobs: list[str], out: Path) -> None:
    """An OCI image layout skopeo can read, holding the same blobs as our store (hard links, no copies)."""
    (out / "blobs" / "sha256").mkdir(parents=True)
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    for digest in [manifest_digest, *blobs]:
        os.link(store.blob_path(digest), out / "blobs" / "sha256" / digest.split(":")[1])
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": manifest_digest, "size": manifest_size,
             "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}
    (out / "index.json").write_text(json.dumps(index))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024)
    args = ap.parse_args()
    if not shutil.which("skopeo"):
        print("skopeo is required (apt-get install skopeo)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = RegistryServer(work / "registry").start()
        try:
            ctx, home = work / "ctx", work / "home"
            make_context(ctx, args.size_mb)
            ref = f"{registry.host}/bench/model:v1"
            kit = KitOpsClient(store=LocalStore(home), plain_http=True)
            desc = kit.pack(ctx, reference=ref, record_lineage=False)
            mbytes = desc.size / (1 << 20)

            ours_push = child(home, "push", ref)
            ours_pull = child(work / "home-pull", "pull", ref)

            layout = work / "layout"
            oci_layout_for(kit.store, desc.digest, kit.store.blob_path(desc.digest).stat().st_size,
                           [desc.config_digest, *[l.digest for l in desc.layers]], layout)
            skopeo_push = timed(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:bench",
                                 f"docker://{registry.host}/skopeo/model:v1"])
            skopeo_pull = timed(["skopeo", "copy", "--src-tls-verify=false",
                                 f"docker://{registry.host}/skopeo/model:v1", f"oci:{work / 'pulled'}:bench"])

            proxy = CountingProxy(registry.host).start()
            try:
                via_proxy = KitOpsClient(store=LocalStore(home), plain_http=True)
                via_proxy.push(ref, f"{proxy.host}/bench/model:v1")
                uploads = [r for r in proxy.requests if r.method in ("POST", "PATCH", "PUT") and "/blobs/" in r.path]
                proxy.requests.clear()
                fresh = KitOpsClient(store=LocalStore(work / "home-layer"), plain_http=True)
                fresh.pull_layer(f"{proxy.host}/bench/model:v1", ["datasets"], work / "one-layer")
                fetched = sum(r.body_bytes for r in proxy.requests if r.method == "GET" and "/blobs/" in r.path)
            finally:
                proxy.stop()
        finally:
            registry.stop()

    dataset = desc.layer("dataset")
    rows = [
        ("push", ours_push["seconds"], skopeo_push, ours_push["rss_mb"]),
        ("pull", ours_pull["seconds"], skopeo_pull, ours_pull["rss_mb"]),
    ]
    print(f"ModelKit: {mbytes:.0f} MiB in {len(desc.layers)} layers")
    print(f"{'op':6} {'kitops-flows s':>15} {'skopeo s':>9} {'ratio':>6} {'MiB/s':>7} {'peak RSS MiB':>13}")
    for op, ours, base, rss in rows:
        print(f"{op:6} {ours:>15.2f} {base:>9.2f} {ours / base:>6.2f} {mbytes / ours:>7.0f} {rss:>13.1f}")
    print(f"re-push of the unchanged ModelKit: {len(uploads)} blob upload requests")
    print(f"one-layer pull: fetched {fetched / (1 << 20):.1f} MiB for a {dataset.size / (1 << 20):.1f} MiB dataset layer "
          f"of a {mbytes:.0f} MiB ModelKit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
