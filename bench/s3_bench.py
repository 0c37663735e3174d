"""S3 prefix -> pushed ModelKit: throughput against a plain boto3 download of the same prefix, in the same run.

    .venv/bin/python bench/s3_bench.py                       # 256 MiB: 4 x 48 MiB objects + 2,000 x 32 KiB
    .venv/bin/python bench/s3_bench.py --large 16 --large-mb 60 --small 2000   # ~1 GiB, the issue's case
    .venv/bin/python bench/s3_bench.py --large 170 --large-mb 60 --small 2000 --no-local-copy   # ~10 GiB

Contenders, each in its own child process (its VmHWM is its own peak RSS):

* baseline: ``aws s3 cp --recursive`` equivalent -- boto3's managed transfer (``download_file``,
  concurrent ranged GETs) of every object into a temp directory.
* streaming: ``KitOpsClient.pack(sources={...: "s3://.../"}, push=True)`` into a registry -- the
  default for S3 sources: each layer hashed while it uploads, no local copy (``stream_push``).
* local copy: the same with ``local_copy=True``: the layer goes into the store, then is pushed.

Peak disk is sampled every 50 ms: the baseline's download directory; for kitops-flows its whole
``KITOPS_HOME`` (store, ingest, caches) plus its TMPDIR.
Services: ``AWS_ENDPOINT_URL_S3`` and ``KITOPS_TEST_REGISTRY`` when set, else a moto server and a
``docker-registry`` started with tests/services.py on free loopback ports (and stopped at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import boto3

BUCKET = "bench-data"
PREFIX = "run/"
KITFILE = "manifestVersion: 1.0.0\npackage: {name: s3bench}\ndatasets:\n  - {name: data, path: data}\n"

BASELINE = r"""
import json, os, resource, sys, time, boto3
from concurrent.futures import ThreadPoolExecutor
bucket, prefix, dest = sys.argv[1], sys.argv[2], sys.argv[3]
c = boto3.client("s3")
t = time.perf_counter()
keys = [o["Key"] for p in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in p.get("Contents", ())]
def get(key):
    path = os.path.join(dest, key[len(prefix):])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    c.download_file(bucket, key, path)
with ThreadPoolExecutor(10) as pool:   # aws s3 cp's default max_concurrent_requests
    list(pool.map(get, keys))
print(json.dumps({"seconds": time.perf_counter() - t,
                  "rss_mb": [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024}))
"""

OURS = r"""
import json, logging, resource, sys, time
from kitops_flows.api import KitOpsClient
from kitops_flows.store import LocalStore
home, ctx, ref, uri, local_copy = sys.argv[1:6]
t = time.perf_counter()
desc = KitOpsClient(store=LocalStore(home), plain_http=True).pack(
    ctx, reference=ref, sources={"data": uri}, push=True, record_lineage=False, local_copy=local_copy == "1")
print(json.dumps({"seconds": time.perf_counter() - t, "digest": desc.digest, "layer": desc.layers[0].digest,
                  "rss_mb": [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024}))
"""


@dataclass
class Services:
    s3_endpoint: str
    registry: str


@contextlib.contextmanager
def services(work: Path) -> Iterator[Services]:
    """Use the services named by env vars, else start moto and a registry with tests/services.py."""
    if os.environ.get("AWS_ENDPOINT_URL_S3") and os.environ.get("KITOPS_TEST_REGISTRY"):
        yield Services(os.environ["AWS_ENDPOINT_URL_S3"], os.environ["KITOPS_TEST_REGISTRY"])
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from services import MotoS3Server, RegistryServer  # the infra module: loopback ports, logs, clean stop

    (work / "moto").mkdir()
    (work / "registry").mkdir()
    with MotoS3Server(work / "moto") as moto, RegistryServer(work / "registry") as registry:
        yield Services(moto.endpoint_url, registry.host)


def populate(large: int, large_mb: int, small: int, small_kb: int) -> int:
    """Write the prefix: large objects (multipart) and many small ones. Returns total bytes."""
    c = boto3.client("s3")
    c.create_bucket(Bucket=BUCKET)
    block = os.urandom(1 << 20)
    total = 0
    for i in range(large):
        body = (block[i % 256:] + block[: i % 256]) * large_mb  # distinct content per object
        c.upload_fileobj(io.BytesIO(body), BUCKET, f"{PREFIX}weights/shard-{i:03}.bin")
        total += len(body)
    payload = os.urandom(small_kb * 1024)

    def put(i: int) -> int:
        c.put_object(Bucket=BUCKET, Key=f"{PREFIX}records/{i % 16:02}/rec-{i:06}.json", Body=payload)
        return len(payload)

    with ThreadPoolExecutor(8) as pool:
        total += sum(pool.map(put, range(small)))
    return total


def _tree_bytes(paths: list[Path]) -> int:
    total = 0
    for root in paths:
        for dirpath, _, files in os.walk(root):
            for f in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total


def measure(cmd: list[str], env: dict[str, str], watch: list[Path]) -> dict[str, float]:
    """Run a child; return its JSON line plus the peak disk use under ``watch`` (sampled)."""
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_bytes(watch))
            done.wait(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    finally:
        done.set()
        t.join()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["peak_disk_mb"] = max(peak, _tree_bytes(watch)) / (1 << 20)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", type=int, default=4, help="number of large (multipart) objects")
    ap.add_argument("--large-mb", type=int, default=48)
    ap.add_argument("--small", type=int, default=2000, help="number of small objects")
    ap.add_argument("--small-kb", type=int, default=32)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--no-local-copy", action="store_true",
                    help="skip the local-copy contender (for very large prefixes: it needs the prefix's size again on disk)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="s3bench-") as tmp:
        work = Path(tmp)
        with services(work) as svc:
            env = dict(os.environ, AWS_ENDPOINT_URL_S3=svc.s3_endpoint)
            for k, v in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                         ("AWS_DEFAULT_REGION", "us-east-1")):
                env.setdefault(k, v)
            os.environ.update(env)
            total = populate(args.large, args.large_mb, args.small, args.small_kb)
            mib = total / (1 << 20)

            dl = work / "download"
            dl.mkdir()
            base = measure([sys.executable, "-c", BASELINE, BUCKET, PREFIX, str(dl)], env, [dl])
            shutil.rmtree(dl)

            ctx = work / "ctx"
            ctx.mkdir()
            (ctx / "Kitfile").write_text(KITFILE)
            runs = {}
            contenders = (("stream", "0"),) if args.no_local_copy else (("stream", "0"), ("local_copy", "1"))
            for name, local_copy in contenders:
                home, child_tmp = work / f"home-{name}", work / f"tmp-{name}"
                child_tmp.mkdir()
                ref = f"{svc.registry}/bench/s3data-{name.replace('_', '-')}:v1"  # separate repos: nothing shared
                runs[name] = measure([sys.executable, "-c", OURS, str(home), str(ctx), ref, f"s3://{BUCKET}/{PREFIX}",
                                      local_copy], dict(env, TMPDIR=str(child_tmp)), [home, child_tmp])
                shutil.rmtree(home, ignore_errors=True)
    row = {
        "objects": args.large + args.small, "MiB": round(mib, 1),
        "boto3_download_s": round(base["seconds"], 2), "boto3_MiB_per_s": round(mib / base["seconds"], 1),
        "boto3_peak_rss_MiB": round(base["rss_mb"], 1), "boto3_peak_disk_MiB": round(base["peak_disk_mb"], 1),
    }
    for name, ours in runs.items():
        row |= {f"{name}_s": round(ours["seconds"], 2), f"{name}_MiB_per_s": round(mib / ours["seconds"], 1),
                f"{name}_peak_rss_MiB": round(ours["rss_mb"], 1), f"{name}_peak_disk_MiB": round(ours["peak_disk_mb"], 1),
                f"{name}_ratio_vs_download": round(ours["seconds"] / base["seconds"], 2)}
    if "local_copy" in runs and runs["stream"]["layer"] != runs["local_copy"]["layer"]:
        raise SystemExit(f"streamed layer {runs['stream']['layer']} differs from the stored one {runs['local_copy']['layer']}")
    width = max(len(k) for k in row)
    for k, v in row.items():
        print(f"{k:<{width}}  {v}")
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
