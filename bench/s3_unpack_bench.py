"""ModelKit layer of many small files -> S3 prefix (``unpack_to_s3``) against plain boto3 PUT loops, in the same run.

    .venv/bin/python bench/s3_unpack_bench.py                          # 2,000 x 16 KiB, loopback + 20 ms RTT
    .venv/bin/python bench/s3_unpack_bench.py --before-src /tmp/old    # also time another checkout's code

Contenders, each in its own child process (its VmHWM is its own peak RSS), each into a fresh prefix:

* ``boto3_seq``: the baseline -- one ``put_object`` after another, the files read from the context dir;
* ``boto3_par8``: the same PUTs on 8 threads (what a hand-written parallel upload gets);
* ``ours``: ``KitOpsClient.unpack_to_s3`` of the packed ModelKit (verify pass, then the uploads, the marker);
* ``before`` (with ``--before-src DIR``): the same call, importing kitops_flows from ``DIR`` (e.g. a
  checkout of an older commit), to show what a change did.

Two links: moto on loopback (client and server CPU bound, ~1 ms a request), and the same through
tests/wan_proxy.py adding ``--rtt`` ms to each round trip (a region away from S3), with fewer files
(``--rtt-files``) since a sequential loop pays every round trip. Ratios are seconds / ``boto3_seq``.
Services: ``AWS_ENDPOINT_URL_S3`` when set, else a moto server started with tests/services.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from _childenv import child_env, warm  # noqa: E402

BUCKET = "bench-unpack"
KITFILE = "manifestVersion: 1.0.0\npackage: {name: unpackbench}\ndatasets:\n  - {name: data, path: data}\n"

PEAK_RSS = 'int([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]) / 1024'

BOTO3 = r"""
import json, os, sys, time, boto3
from concurrent.futures import ThreadPoolExecutor
from botocore.config import Config
bucket, data, prefix, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t = time.perf_counter()  # from the client's creation, as unpack_to_s3 makes its own
c = boto3.client("s3", config=Config(max_pool_connections=threads + 2))
names = sorted(os.listdir(data))
def put(name):
    with open(os.path.join(data, name), "rb") as f:
        c.put_object(Bucket=bucket, Key=prefix + "data/" + name, Body=f.read())
if threads == 1:
    for name in names:
        put(name)
else:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, names))
print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": PEAK_RSS}))
""".replace("PEAK_RSS", PEAK_RSS)

OURS = r"""
import json, sys, time
import kitops_flows
from kitops_flows.api import KitOpsClient
from kitops_flows.store import LocalStore
home, ref, dest = sys.argv[1:4]
kit = KitOpsClient(store=LocalStore(home), plain_http=True)
t = time.perf_counter()
result = kit.unpack_to_s3(ref, None, dest)
print(json.dumps({"seconds": time.perf_counter() - t, "uploaded": len(result.uploaded),
                  "code": kitops_flows.__file__, "rss_mb": PEAK_RSS}))
""".replace("PEAK_RSS", PEAK_RSS)


@contextlib.contextmanager
def s3_endpoint(work: Path) -> Iterator[str]:
    if os.environ.get("AWS_ENDPOINT_URL_S3"):
        yield os.environ["AWS_ENDPOINT_URL_S3"]
        return
    from services import MotoS3Server  # the infra module: loopback ports, logs, clean stop

    (work / "moto").mkdir()
    with MotoS3Server(work / "moto") as moto:
        yield moto.endpoint_url


def child(code: str, args: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    # cwd is the work dir: `-c` puts the current directory first on sys.path, which must not be a checkout
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=cwd, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def run_link(name: str, endpoint: str, files: int, work: Path, env: dict[str, str], homes: dict[str, Path],
             before_src: str | None) -> dict[str, object]:
    env = dict(env, AWS_ENDPOINT_URL_S3=endpoint)
    data = work / f"ctx-{files}" / "data"
    ref = f"bench/unpack{files}:v1"
    row: dict[str, object] = {"link": name, "files": files}
    runs = {"boto3_seq": child(BOTO3, [BUCKET, str(data), f"{name}/seq/", "1"], env, work),
            "boto3_par8": child(BOTO3, [BUCKET, str(data), f"{name}/par8/", "8"], env, work)}
    if before_src:
        runs["before"] = child(OURS, [str(homes[ref]), ref, f"s3://{BUCKET}/{name}/before/"],
                               dict(env, PYTHONPATH=before_src), work)
        if not str(runs["before"]["code"]).startswith(str(Path(before_src).resolve())):
            raise SystemExit(f"the 'before' child imported {runs['before']['code']}, not {before_src}")
    runs["ours"] = child(OURS, [str(homes[ref]), ref, f"s3://{BUCKET}/{name}/ours/"], env, work)
    base = runs["boto3_seq"]["seconds"]
    for who, r in runs.items():
        if "uploaded" in r and r["uploaded"] != files:
            raise SystemExit(f"{who} uploaded {r['uploaded']} files, expected {files}")
        row |= {f"{who}_s": round(r["seconds"], 2), f"{who}_files_per_s": round(files / r["seconds"]),
                f"{who}_ratio": round(r["seconds"] / base, 2), f"{who}_peak_rss_MiB": round(r["rss_mb"], 1)}
    return row


def make_kit(work: Path, files: int, size: int) -> tuple[str, Path]:
    from kitops_flows.api import KitOpsClient
    from kitops_flows.store import LocalStore

    ctx = work / f"ctx-{files}"
    (ctx / "data").mkdir(parents=True)
    (ctx / "Kitfile").write_text(KITFILE)
    for i in range(files):
        (ctx / "data" / f"rec-{i:06}.json").write_bytes(os.urandom(size))
    home = work / f"home-{files}"
    ref = f"bench/unpack{files}:v1"
    KitOpsClient(store=LocalStore(home), plain_http=True).pack(ctx, reference=ref, record_lineage=False)
    return ref, home


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000, help="small files in the layer (loopback link)")
    ap.add_argument("--kb", type=int, default=16, help="size of each file")
    ap.add_argument("--rtt", type=float, default=20.0, help="ms added per round trip on the second link (0: skip it)")
    ap.add_argument("--rtt-files", type=int, default=400, help="small files for the RTT link")
    ap.add_argument("--before-src", default=None, help="a checkout whose kitops_flows is timed as 'before'")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    before = str(Path(args.before_src).resolve()) if args.before_src else None
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="s3unpack-") as tmp:
        work = Path(tmp)
        with s3_endpoint(work) as endpoint:
            env = child_env(work)
            for k, v in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                         ("AWS_DEFAULT_REGION", "us-east-1")):
                env.setdefault(k, v)
            os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
            homes = dict(make_kit(work, n, args.kb * 1024) for n in {args.files, args.rtt_files})
            warm(work, "kitops_flows.api", "kitops_flows.unpack_s3", "boto3")
            rows.append(run_link("loopback", endpoint, args.files, work, env, homes, before))
            if args.rtt > 0:
                from wan_proxy import WanProxy

                with WanProxy(endpoint, rate=0, rtt=args.rtt / 1000) as wan:
                    rows.append(run_link(f"rtt{args.rtt:g}ms", wan.url, args.rtt_files, work, env, homes, before))
    for row in rows:
        width = max(len(k) for k in row)
        for k, v in row.items():
            print(f"{k:<{width}}  {v}")
        print()
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
