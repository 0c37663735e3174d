"""Pack throughput and memory, as a ratio against `tar -cf - DIR | sha256sum` measured in the same run.

    .venv/bin/python bench/pack_bench.py                 # 2 GiB model + 20,000-file dataset
    .venv/bin/python bench/pack_bench.py --model-mb 256 --files 2000      # quick

Each measurement runs in a child process so its peak RSS (VmHWM of that child: ru_maxrss would include the parent's peak, kept across exec) is its own.
Ratios > 1 mean kitops-flows is slower than the baseline. Page cache is warmed first for both.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, logging, resource, sys, time
from kitops_flows.api import KitOpsClient
from kitops_flows.store import LocalStore
home, ctx = sys.argv[1], sys.argv[2]
t = time.perf_counter()
desc = KitOpsClient(store=LocalStore(home)).pack(ctx, reference="bench/m:v1", record_lineage=False)
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "rss_mb": [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024,
                  "bytes": sum(l.size for l in desc.layers)}))
"""


def make_model(root: Path, size_mb: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(1 << 20)
    with open(root / "model.bin", "wb") as f:
        for _ in range(size_mb):
            f.write(chunk)
    (root / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: bench}\nmodel: {name: m, path: model.bin}\n")


def make_dataset(root: Path, files: int, size: int) -> None:
    data = root / "data"
    for i in range(files):
        d = data / f"shard{i // 1000:03}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"rec{i:06}.json").write_bytes(os.urandom(size))
    (root / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: bench}\ndatasets:\n  - {name: d, path: data}\n")


def baseline(ctx: Path) -> tuple[float, float]:
    """Seconds and child peak RSS of `tar -cf - . | sha256sum` over the same directory."""
    t = time.perf_counter()
    subprocess.run(f"tar -C {ctx} -cf - . | sha256sum > /dev/null", shell=True, check=True)
    elapsed = time.perf_counter() - t
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def ours(ctx: Path, home: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(home), str(ctx)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_case(name: str, ctx: Path, work: Path) -> dict[str, object]:
    baseline(ctx)  # warm the page cache for both contenders
    base_s, _ = baseline(ctx)
    result = ours(ctx, work / f"home-{name}")
    mb = result["bytes"] / (1 << 20)
    return {
        "case": name,
        "MiB": round(mb, 1),
        "baseline_s": round(base_s, 2),
        "kitops_flows_s": round(result["seconds"], 2),
        "ratio": round(result["seconds"] / base_s, 2),
        "MiB_per_s": round(mb / result["seconds"], 1),
        "peak_rss_MiB": round(result["rss_mb"], 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-mb", type=int, default=2048)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--file-size", type=int, default=4096)
    ap.add_argument("--workdir", default=None, help="scratch dir (default: a temp dir on the same disk as /tmp)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        make_model(work / "model", args.model_mb)
        make_dataset(work / "dataset", args.files, args.file_size)
        rows = [run_case("single-file model", work / "model", work),
                run_case(f"{args.files}-file dataset", work / "dataset", work)]
    print(f"{'case':24} {'MiB':>8} {'tar|sha256sum s':>16} {'kitops-flows s':>15} {'ratio':>6} {'MiB/s':>8} {'peak RSS MiB':>13}")
    for r in rows:
        print(f"{r['case']:24} {r['MiB']:>8} {r['baseline_s']:>16} {r['kitops_flows_s']:>15} {r['ratio']:>6} "
              f"{r['MiB_per_s']:>8} {r['peak_rss_MiB']:>13}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
