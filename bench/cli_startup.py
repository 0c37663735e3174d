"""Start-up time of the `kitops-flows` command (``--help`` and ``list`` of a one-ModelKit store).

    .venv/bin/python bench/cli_startup.py            # 15 runs each; prints min and median ms
    .venv/bin/python bench/cli_startup.py --runs 30

Baseline in the same run: ``python -c pass`` with the same interpreter (its start-up and site imports).
Every command runs from cached bytecode, as an installed copy does (``_childenv.py``), after one warm-up run.
The target of issue 18 is a median under 150 ms for both commands.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _childenv import child_env  # noqa: E402


def timed(argv: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) milliseconds of each run. CPU time hardly depends on how busy the
    machine is, and for a one-threaded start-up it is what the wall time is on an idle machine."""
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wall.append((time.perf_counter() - t) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    cli = Path(sys.executable).with_name("kitops-flows")
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp) / "ctx"
        ctx.mkdir()
        (ctx / "model.bin").write_bytes(b"weights")
        (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: b}\nmodel: {name: m, path: model.bin}\n")
        from kitops_flows.api import KitOpsClient
        from kitops_flows.store import LocalStore

        KitOpsClient(store=LocalStore(Path(tmp) / "home")).pack(ctx, reference="bench/m:v1", record_lineage=False)
        # cached bytecode, as an installed copy has (_childenv.py); the first run of each case warms it
        env = {**child_env(Path(tmp)), "KITOPS_HOME": str(Path(tmp) / "home")}
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "kitops-flows --help": [str(cli), "--help"],
            "kitops-flows list": [str(cli), "list"],
        }
        print(f"load average {os.getloadavg()[0]:.1f}; {args.runs} runs each")
        for name, argv in cases.items():
            timed(argv, env, 1)
            wall, cpu = timed(argv, env, args.runs)
            print(f"{name:22} wall min {min(wall):5.0f} ms, median {statistics.median(wall):5.0f} ms   "
                  f"cpu median {statistics.median(cpu):5.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
