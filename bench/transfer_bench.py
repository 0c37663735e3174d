"""Push/pull time of kitops-flows as a ratio to `skopeo copy` of the same blobs, measured in one run.

    .venv/bin/python bench/transfer_bench.py                    # loopback, 1 GiB, 3 rounds
    .venv/bin/python bench/transfer_bench.py --wan --size-mb 512 --rounds 2   # 20 MB/s per connection, 30 ms
    .venv/bin/python bench/transfer_bench.py --wan --rate-mbs 20 --rtt-ms 30 --cases pull

Fair by construction:
- every measurement gets its own fresh docker-registry (tests/services.py), so no contender finds blobs
  the other uploaded; pulls start from an empty store / OCI directory;
- the order of the contenders alternates from round to round, and the medians are reported;
- ``--wan`` puts tests/wan_proxy.py between the client and each registry: every TCP connection is capped at
  ``--rate-mbs`` MB/s (10^6 bytes) and pays ``--rtt-ms`` per round trip (a long-haul link);
- each kitops-flows run is a child process (its own peak RSS); skopeo's peak RSS comes from /usr/bin/time.

Cases: ``pull``: a single-layer ModelKit of ``--size-mb`` (kitops-flows: parallel ranged download; skopeo:
one stream per layer). ``push``: a 4-layer ModelKit of ``--size-mb`` (model 1/2, dataset 1/4, code and docs
1/8 each; both tools push layers in parallel). Ratios below 1 mean kitops-flows is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from _childenv import child_env, warm  # noqa: E402
from services import CountingProxy, RegistryServer  # noqa: E402
from wan_proxy import WanProxy  # noqa: E402

from kitops_flows.api import KitOpsClient  # noqa: E402
from kitops_flows.store import LocalStore  # noqa: E402

CHILD = r"""
import json, sys, time
from kitops_flows.api import KitOpsClient
from kitops_flows.store import LocalStore
home, action, *refs = sys.argv[1:]
kit = KitOpsClient(store=LocalStore(home), plain_http=True)
t = time.perf_counter()
getattr(kit, action)(*refs)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "rss_mb": [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024}))
"""


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)

    def add(self, seconds: float, rss_mb: float) -> None:
        self.seconds.append(seconds)
        self.rss_mb.append(rss_mb)


def ours(home: Path, action: str, *refs: str) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(home), action, *refs], check=True, capture_output=True,
                         text=True, cwd=ROOT, env=child_env(home.parent))
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"], result["rss_mb"]


def skopeo(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one skopeo run."""
    t = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", "skopeo", *args], check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    return elapsed, int(out.stderr.strip().splitlines()[-1]) / 1024


def write_random(path: Path, mb: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(mb):
            f.write(chunk[i % 97:] + chunk[: i % 97])  # distinct MiBs, cheap to generate


def single_layer_context(ctx: Path, size_mb: int) -> None:
    write_random(ctx / "model.bin", size_mb)
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: bench}\nmodel: {name: m, path: model.bin}\n")


def four_layer_context(ctx: Path, size_mb: int) -> None:
    write_random(ctx / "model.bin", max(1, size_mb // 2))
    write_random(ctx / "data" / "train.bin", max(1, size_mb // 4))
    write_random(ctx / "src" / "code.bin", max(1, size_mb // 8))
    write_random(ctx / "docs" / "notes.bin", max(1, size_mb // 8))
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: bench}\nmodel: {name: m, path: model.bin}\n"
                                 "datasets:\n  - {name: train, path: data}\ncode:\n  - {path: src}\n"
                                 "docs:\n  - {path: docs}\n")


def oci_layout_for(store: LocalStore, manifest_digest: str, blobs: list[str], out: Path) -> None:
    """An OCI image layout skopeo can read, holding the same blobs as our store (hard links, no copies)."""
    (out / "blobs" / "sha256").mkdir(parents=True)
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    for digest in [manifest_digest, *blobs]:
        os.link(store.blob_path(digest), out / "blobs" / "sha256" / digest.split(":")[1])
    size = store.blob_path(manifest_digest).stat().st_size
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": manifest_digest, "size": size, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}
    (out / "index.json").write_text(json.dumps(index))


class Link:
    """A fresh registry, behind a long-haul link proxy when ``wan`` is set; ``host`` is what clients use."""

    def __init__(self, work: Path, wan: tuple[float, float] | None) -> None:
        self.registry = RegistryServer(work).start()
        self.proxy = WanProxy(self.registry.host, rate=wan[0], rtt=wan[1]).start() if wan else None
        self.host = self.proxy.host if self.proxy else self.registry.host

    def close(self) -> None:
        if self.proxy:
            self.proxy.stop()
        self.registry.stop()
        shutil.rmtree(self.registry.work_dir, ignore_errors=True)


def run_case(case: str, work: Path, size_mb: int, rounds: int, wan: tuple[float, float] | None
             ) -> tuple[Samples, Samples, int, int]:
    ctx, home = work / f"ctx-{case}", work / f"home-{case}"
    (single_layer_context if case == "pull" else four_layer_context)(ctx, size_mb)
    kit = KitOpsClient(store=LocalStore(home), plain_http=True)
    desc = kit.pack(ctx, reference="bench/model:v1", record_lineage=False)
    layout = work / f"layout-{case}"
    oci_layout_for(kit.store, desc.digest, [desc.config_digest, *[lay.digest for lay in desc.layers]], layout)
    results = {"ours": Samples(), "skopeo": Samples()}

    def measure(who: str, n: int) -> None:
        link = Link(work / f"reg-{case}-{who}-{n}", wan)
        try:
            if case == "pull":  # seed this contender's own registry directly (not over the slow link)
                kit.push("bench/model:v1", f"{link.registry.host}/bench/model:v1")
                if who == "ours":
                    t, rss = ours(work / f"pulled-{n}", "pull", f"{link.host}/bench/model:v1")
                else:
                    t, rss = skopeo(["copy", "--src-tls-verify=false", f"docker://{link.host}/bench/model:v1",
                                     f"oci:{work / f'skopeo-pulled-{n}'}:bench"])
                shutil.rmtree(work / f"pulled-{n}", ignore_errors=True)
                shutil.rmtree(work / f"skopeo-pulled-{n}", ignore_errors=True)
            elif who == "ours":
                t, rss = ours(home, "push", "bench/model:v1", f"{link.host}/bench/model:v1")
            else:
                t, rss = skopeo(["copy", "--dest-tls-verify=false", f"oci:{layout}:bench",
                                 f"docker://{link.host}/bench/model:v1"])
        finally:
            link.close()
        results[who].add(t, rss)
        print(f"  {case} round {n + 1} {who:7} {t:7.2f} s  peak RSS {rss:6.1f} MiB", flush=True)

    for n in range(rounds):
        order: list[str] = ["ours", "skopeo"] if n % 2 == 0 else ["skopeo", "ours"]
        for who in order:
            measure(who, n)
    return results["ours"], results["skopeo"], desc.size, max(lay.size for lay in desc.layers)


def extras(work: Path, size_mb: int) -> tuple[int, float, float]:
    """Upload requests of a re-push of an unchanged ModelKit, and MiB fetched by a one-layer pull."""
    ctx, home = work / "ctx-extras", work / "home-extras"
    four_layer_context(ctx, max(8, size_mb // 8))
    kit = KitOpsClient(store=LocalStore(home), plain_http=True)
    registry = RegistryServer(work / "reg-extras").start()
    proxy = CountingProxy(registry.host).start()
    try:
        ref = f"{proxy.host}/bench/model:v1"
        desc = kit.pack(ctx, reference=ref, record_lineage=False)
        kit.push(ref)
        proxy.reset()
        kit.push(ref)
        uploads = [r for r in proxy.requests if r.method in ("POST", "PATCH", "PUT") and "/blobs/" in r.path]
        proxy.reset()
        fresh = KitOpsClient(store=LocalStore(work / "home-layer"), plain_http=True)
        fresh.pull_layer(ref, ["datasets"], work / "one-layer")
        fetched = proxy.bytes_for("/blobs/", method="GET")
    finally:
        proxy.stop()
        registry.stop()
    return len(uploads), fetched / (1 << 20), desc.layer("dataset").size / (1 << 20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default="pull,push", help="comma-separated: pull, push")
    ap.add_argument("--wan", action="store_true", help="put a long-haul link proxy in front of each registry")
    ap.add_argument("--rate-mbs", type=float, default=20.0, help="--wan: MB/s (10^6 bytes) per TCP connection")
    ap.add_argument("--rtt-ms", type=float, default=30.0, help="--wan: added round-trip time per request")
    ap.add_argument("--workdir", default=None, help="scratch dir (default: a temp dir)")
    args = ap.parse_args()
    if not shutil.which("skopeo"):
        print("skopeo is required (apt-get install skopeo)", file=sys.stderr)
        return 2
    wan = (args.rate_mbs * 1e6, args.rtt_ms / 1000) if args.wan else None
    link = f"{args.rate_mbs:g} MB/s per connection, {args.rtt_ms:g} ms rtt" if wan else "loopback"
    print(f"link: {link}; {args.rounds} rounds, order alternating; load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        warm(work, "kitops_flows.api", "kitops_flows.registry.client", "kitops_flows.sources")
        for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
            mine, theirs, size, largest = run_case(case, work, args.size_mb, args.rounds, wan)
            rows.append((case, mine, theirs, size, largest))
        extra = extras(work, args.size_mb) if not wan else None
    print(f"\nlink: {link}; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"{'case':28} {'kitops-flows s':>14} {'skopeo s':>9} {'ratio':>6} {'ours MB/s':>9} "
          f"{'ours RSS MiB':>12} {'skopeo RSS MiB':>14}")
    median: Callable[[list[float]], float] = statistics.median
    for case, mine, theirs, size, largest in rows:
        label = f"{case} {size / (1 << 20):.0f} MiB, {'1 layer' if case == 'pull' else '4 layers'}"
        ratios = [a / b for a, b in zip(mine.seconds, theirs.seconds, strict=True)]
        print(f"{label:28} {median(mine.seconds):>14.2f} {median(theirs.seconds):>9.2f} "
              f"{median(mine.seconds) / median(theirs.seconds):>6.2f} {size / 1e6 / median(mine.seconds):>9.1f} "
              f"{max(mine.rss_mb):>12.1f} {max(theirs.rss_mb):>14.1f}   per-round ratios "
              + " ".join(f"{r:.2f}" for r in ratios))
        if wan and case == "push":
            # an OCI upload session takes its bytes in order, so one blob is one connection at most `rate`
            print(f"{'':28} floor: the largest layer ({largest / (1 << 20):.0f} MiB) over one connection = "
                  f"{largest / wan[0]:.2f} s")
    if extra:
        print(f"re-push of the unchanged ModelKit: {extra[0]} blob upload requests")
        print(f"one-layer pull: fetched {extra[1]:.1f} MiB for a {extra[2]:.1f} MiB dataset layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
