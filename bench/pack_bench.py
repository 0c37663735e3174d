"""Pack throughput and memory, as a ratio against `tar -cf - DIR | sha256sum` measured in the same run.

    .venv/bin/python bench/pack_bench.py                 # 2 GiB model + 20,000-file dataset
    .venv/bin/python bench/pack_bench.py --model-mb 256 --files 2000      # quick

Each case runs ``--rounds`` times with the order of the two contenders alternating; medians are reported.
Each measurement runs in a child process so its peak RSS (VmHWM of that child: ru_maxrss would include the parent's peak, kept across exec) is its own.
Children import kitops-flows as an installed copy would, from cached bytecode (``_childenv.py``).
Ratios > 1 mean kitops-flows is slower than the baseline; the CPU ratio (user + system seconds, medians)
is what the wall-time ratio would be on an idle machine without the baseline's two processes in parallel. Page cache is
warmed first for both, and every run starts after a ``sync`` (no contender waits on the other's writeback).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _childenv import child_env

CHILD = r"""
import json, logging, os, resource, sys, time
from kitops_flows.api import KitOpsClient
from kitops_flows.store import LocalStore
home, ctx = sys.argv[1], sys.argv[2]
t, cpu = time.perf_counter(), os.times()
desc = KitOpsClient(store=LocalStore(home)).pack(ctx, reference="bench/m:v1", record_lineage=False)
elapsed, cpu_end = time.perf_counter() - t, os.times()
print(json.dumps({"seconds": elapsed, "cpu_s": cpu_end.user - cpu.user + cpu_end.system - cpu.system, "rss_mb": [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024,
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
    """Seconds and CPU seconds (user + system of tar, sha256sum and the shell) of `tar -cf - . | sha256sum`."""
    before, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(f"tar -C {ctx} -cf - . | sha256sum > /dev/null", shell=True, check=True)
    elapsed, after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def ours(ctx: Path, home: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(home), str(ctx)], check=True, capture_output=True, text=True,
                         env=child_env(home.parent))
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_case(name: str, ctx: Path, work: Path, rounds: int) -> dict[str, object]:
    baseline(ctx)  # warm the page cache for both contenders
    ours(ctx, work / f"home-{name}")  # and the bytecode cache of every module a pack imports
    shutil.rmtree(work / f"home-{name}")
    base: list[float] = []
    base_cpu: list[float] = []
    mine: list[dict[str, float]] = []
    for n in range(rounds):
        home = work / f"home-{name}"
        for who in (("ours", "tar") if n % 2 == 0 else ("tar", "ours")):
            os.sync()  # nobody pays for the previous run's writeback (a 2 GiB blob just written and deleted)
            if who == "tar":
                seconds, cpu = baseline(ctx)
                base.append(seconds)
                base_cpu.append(cpu)
            else:
                mine.append(ours(ctx, home))
                shutil.rmtree(home)  # every round packs into an empty store
    base_s = statistics.median(base)
    ours_s = statistics.median(r["seconds"] for r in mine)
    cpu_ratio = statistics.median(r["cpu_s"] for r in mine) / statistics.median(base_cpu)
    mb = mine[0]["bytes"] / (1 << 20)
    return {
        "case": name,
        "MiB": round(mb, 1),
        "baseline_s": round(base_s, 2),
        "kitops_flows_s": round(ours_s, 2),
        "ratio": round(ours_s / base_s, 2),
        "cpu_ratio": round(cpu_ratio, 2),
        "round_ratios": [round(r["seconds"] / b, 2) for r, b in zip(mine, base, strict=True)],
        "MiB_per_s": round(mb / ours_s, 1),
        "peak_rss_MiB": round(max(r["rss_mb"] for r in mine), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-mb", type=int, default=2048)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--file-size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default=None, help="scratch dir (default: a temp dir on the same disk as /tmp)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        make_model(work / "model", args.model_mb)
        make_dataset(work / "dataset", args.files, args.file_size)
        print(f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds, order alternating", flush=True)
        rows = [run_case("single-file model", work / "model", work, args.rounds),
                run_case(f"{args.files}-file dataset", work / "dataset", work, args.rounds)]
    print(f"{'case':24} {'MiB':>8} {'tar|sha256sum s':>16} {'kitops-flows s':>15} {'ratio':>6} {'CPU ratio':>9} {'MiB/s':>8} {'peak RSS MiB':>13}")
    for r in rows:
        print(f"{r['case']:24} {r['MiB']:>8} {r['baseline_s']:>16} {r['kitops_flows_s']:>15} {r['ratio']:>6} {r['cpu_ratio']:>9} "
              f"{r['MiB_per_s']:>8} {r['peak_rss_MiB']:>13}   per-round ratios {r['round_ratios']}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
