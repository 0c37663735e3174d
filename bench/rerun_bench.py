"""What an unchanged nightly re-run costs, as a ratio to the first run of the same pack + push, measured in one run.

    .venv/bin/python bench/rerun_bench.py                     # 1 GiB (4 layers), 3 rounds
    .venv/bin/python bench/rerun_bench.py --size-mb 256 --rounds 1

Each round starts a fresh docker-registry (tests/services.py) behind a CountingProxy, which counts the request
body bytes clients send (uploads), and a fresh store; then, on one context directory:

- ``first``: ``pack_and_push(skip_if_unchanged=True, push=True)``: packs 1 GiB and uploads it (the baseline);
- ``rerun``: the same call again, nothing changed (the nightly schedule on the same worker): the inputs
  fingerprint matches the tag's provenance record (file stamps: no byte is read), nothing packed or pushed;
- ``rerun-fresh-checkout``: the same files rewritten with new mtimes on an empty store (another worker): every
  file is hashed once to fingerprint it, then nothing is packed or pushed;
- ``repack``: ``pack`` + ``push`` without skipping (same content, same digest): the layers are read and
  hashed again, the push finds the tag at the digest and sends nothing.

Reported: median seconds per case, its ratio to ``first``, and the bytes uploaded (blobs and manifests).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from services import CountingProxy, RegistryServer  # noqa: E402
from transfer_bench import four_layer_context  # noqa: E402

from kitops_flows.api import KitOpsClient  # noqa: E402
from kitops_flows.idempotent import pack_and_push  # noqa: E402
from kitops_flows.store import LocalStore  # noqa: E402

CASES = ("first", "rerun", "rerun-fresh-checkout", "repack")


def _touch_all(ctx: Path) -> None:
    """A fresh checkout of the same files: same bytes, new mtimes (so the file stamps no longer match)."""
    later = time.time() + 10
    for path in ctx.rglob("*"):
        os.utime(path, (later, later))


def one_round(work: Path, size_mb: int) -> dict[str, tuple[float, int, bool]]:
    """``{case: (seconds, bytes uploaded, packed)}`` for one fresh registry and store."""
    registry = RegistryServer(work / "registry").start()
    proxy = CountingProxy(registry.host).start()
    out: dict[str, tuple[float, int, bool]] = {}
    try:
        ctx = work / "ctx"
        four_layer_context(ctx, size_mb)
        old = time.time() - 60  # written a minute ago: file stamps are trusted (not in the racy window)
        for path in ctx.rglob("*"):
            os.utime(path, (old, old))
        ref = f"{proxy.host}/bench/rerun:nightly"

        def measure(case: str, kit: KitOpsClient, skip: bool) -> None:
            proxy.reset()
            t = time.perf_counter()
            outcome = pack_and_push(kit, ctx, reference=ref, skip_if_unchanged=skip, push=True)
            seconds = time.perf_counter() - t
            out[case] = (seconds, proxy.sent_bytes(), outcome.packed)
            print(f"  {case:22s} {seconds:7.2f} s  uploaded {proxy.sent_bytes():>12,} B  packed={outcome.packed} "
                  f"digest={outcome.descriptor.digest[:19]}", flush=True)

        kit = KitOpsClient(store=LocalStore(work / "home"), plain_http=True)
        measure("first", kit, skip=True)
        measure("rerun", kit, skip=True)
        _touch_all(ctx)
        measure("rerun-fresh-checkout", KitOpsClient(store=LocalStore(work / "home-2"), plain_http=True), skip=True)
        measure("repack", kit, skip=False)
    finally:
        proxy.stop()
        registry.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, int, bool]]] = {c: [] for c in CASES}
    for n in range(args.rounds):
        print(f"round {n + 1}/{args.rounds} ({args.size_mb} MiB, 4 layers)", flush=True)
        work = Path(tempfile.mkdtemp(prefix="kitops-rerun-bench-"))
        try:
            for case, value in one_round(work, args.size_mb).items():
                results[case].append(value)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    first = statistics.median(s for s, _, _ in results["first"])
    print(f"\n| case ({args.size_mb} MiB, median of {args.rounds}) | seconds | ratio to first run | bytes uploaded |")
    print("|---|---|---|---|")
    for case in CASES:
        seconds = statistics.median(s for s, _, _ in results[case])
        uploaded = max(b for _, b, _ in results[case])
        print(f"| {case} | {seconds:.2f} | {seconds / first:.3f} | {uploaded:,} |")
    rerun = statistics.median(s for s, _, _ in results["rerun"])
    ok = rerun <= 0.10 * first and max(b for _, b, _ in results["rerun"]) == 0
    print(f"\nunchanged re-run: {rerun / first:.1%} of the first run, "
          f"{max(b for _, b, _ in results['rerun'])} bytes uploaded: {'OK' if ok else 'OVER BUDGET'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
