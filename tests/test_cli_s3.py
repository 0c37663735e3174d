"""``kitops-flows pack --source/--if-changed/--parent`` and ``unpack --to s3://`` as subprocesses: S3 settings
come only from boto3's chain (the environment the ``s3`` fixture sets), over moto's S3 server and a real registry."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from kitops_flows.api import KitOpsClient
from kitops_flows.lineage.model import ANNOTATION_PARENTS
from kitops_flows.store import LocalStore

pytestmark = pytest.mark.integration

MiB = 1 << 20
KITFILE = ("manifestVersion: 1.0.0\npackage: {name: clis3}\nmodel: {name: m, path: model.bin}\n"
           "datasets:\n  - {name: train, path: data/train}\n")


def _cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kitops_flows.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "KITOPS_HOME": str(home), **(env or {})}, timeout=180, check=False)


def _ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stderr
    return proc


def _one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _objects(c: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", ()):
            out[o["Key"][len(prefix):]] = c.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


def _ctx(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "Kitfile").write_text(KITFILE)
    (root / "model.bin").write_bytes(b"M" * 4096)
    return root


def test_cli_round_trip_s3_registry_s3_is_byte_identical(s3: Any, registry: Any, tmp_path: Path) -> None:
    c = s3.client()
    c.create_bucket(Bucket="cli-src")
    tree = {"part-0.csv": b"a,b\n" * 5000, "sub/part-1.csv": b"c,d\n", "empty.csv": b"", "caf\u00e9.txt": b"x"}
    for rel, body in tree.items():
        c.put_object(Bucket="cli-src", Key="run/" + rel, Body=body)
    big = os.urandom(11 * MiB + 3)
    c.upload_fileobj(io.BytesIO(big), "cli-src", "run/weights/big.bin",
                     Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    tree["weights/big.bin"] = big
    parent = f"{registry.host}/clis3/features:v1"
    home = tmp_path / "home"
    ctx = _ctx(tmp_path / "ctx")
    parent_ctx = tmp_path / "pctx"
    parent_ctx.mkdir()
    (parent_ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: f}\nmodel: {name: f, path: f.bin}\n")
    (parent_ctx / "f.bin").write_bytes(b"features")
    _ok(_cli(home, "pack", str(parent_ctx), "-t", parent, "--push", "--plain-http"))

    ref = f"{registry.host}/clis3/data:v1"
    pack = ["pack", str(ctx), "-t", ref, "--push", "--plain-http", "--source", "train=s3://cli-src/run/",
            "--parent", parent]
    packed = _ok(_cli(home, *pack))
    assert packed.stdout.strip() == ref and packed.stderr.count("Model pushed: sha256:") == 1  # kit's --push line
    assert "Model saved" not in packed.stderr  # streamed: nothing saved locally
    kit = KitOpsClient(store=LocalStore(home), plain_http=True)
    desc = kit.resolve(ref)
    assert desc.annotations[ANNOTATION_PARENTS] == f"{registry.host}/clis3/features@{kit.describe(parent).digest}"
    assert not kit.store.has_blob(desc.layer("dataset").digest)  # S3 sources + --push: streamed, no local copy
    copy_home = tmp_path / "copy-home"  # --local-copy keeps the layers in the store as well
    _ok(_cli(copy_home, "pack", str(ctx), "-t", f"{registry.host}/clis3/copy:v1", "--push", "--plain-http",
             "--source", "train=s3://cli-src/run/", "--local-copy"))
    assert LocalStore(copy_home).has_blob(desc.layer("dataset").digest)
    # --if-changed: the first run records its inputs fingerprint (same content: same digest), the next skips
    first = _ok(_cli(tmp_path / "if-home", *pack, "--if-changed"))
    assert "Model pushed: " + desc.digest in first.stderr
    assert not LocalStore(tmp_path / "if-home").has_blob(desc.layer("dataset").digest)  # streamed as well
    again = _ok(_cli(tmp_path / "other-home", *pack, "--if-changed"))
    assert "Unchanged" in again.stderr and "Model pushed" not in again.stderr

    c.create_bucket(Bucket="cli-dst")
    c.put_object(Bucket="cli-dst", Key="out/stale.txt", Body=b"old release")
    fresh = tmp_path / "fresh"  # another worker: empty store, only the registry
    out = _ok(_cli(fresh, "unpack", ref, "--to", "s3://cli-dst/out/", "--filter", "datasets:train", "--plain-http"))
    assert {line for line in out.stdout.splitlines()} == {f"s3://cli-dst/out/data/train/{k}" for k in tree}
    assert "5 uploaded" in out.stderr
    got = _objects(c, "cli-dst", "out/")
    assert {k[len("data/train/"):]: v for k, v in got.items() if k.startswith("data/train/")} == tree
    assert got["stale.txt"] == b"old release" and ".kitops-flows/complete.json" in got

    # a release whose bytes differ: refused on one line unless --existing overwrite; --delete removes extras
    c.put_object(Bucket="cli-dst", Key="out/data/train/empty.csv", Body=b"changed by hand")
    _one_error_line(_cli(fresh, "unpack", ref, "--to", "s3://cli-dst/out/", "--plain-http"),
                    "s3://cli-dst/out/data/train/empty.csv", "existing='overwrite'")
    done = _ok(_cli(fresh, "unpack", ref, "--to", "s3://cli-dst/out/", "--filter", "datasets:train", "--plain-http",
                    "--existing", "overwrite", "--delete"))
    assert "1 replaced" in done.stderr and "4 already there" in done.stderr and "1 deleted" in done.stderr
    got = _objects(c, "cli-dst", "out/")
    assert {k[len("data/train/"):]: v for k, v in got.items() if not k.startswith(".kitops-flows/")} == tree


def test_cli_s3_errors_are_one_line(s3: Any, tmp_path: Path) -> None:
    c = s3.client()
    c.create_bucket(Bucket="cli-err")
    c.put_object(Bucket="cli-err", Key="run/a.csv", Body=b"1")
    home = tmp_path / "home"
    ctx = _ctx(tmp_path / "ctx")
    _one_error_line(_cli(home, "pack", str(ctx), "-t", "e/d:v1", "--source", "train"), "--source 'train'", "NAME=s3://")
    _one_error_line(_cli(home, "pack", str(ctx), "-t", "e/d:v1", "--source", "train=s3://no-such-bucket/x/"),
                    "s3://no-such-bucket/x/", "does not exist")
    _one_error_line(_cli(home, "pack", str(ctx), "--if-changed", "--source", "train=s3://cli-err/run/"), "needs -t")
    _one_error_line(_cli(home, "pack", str(ctx), "-t", "e/d:v1", "--source", "train=s3://cli-err/run/",
                         env={"AWS_PROFILE": "no-such-profile"}), "no-such-profile")
    _ok(_cli(home, "pack", str(ctx), "-t", "e/d:v1", "--source", "train=s3://cli-err/run/"))
    _one_error_line(_cli(home, "unpack", "e/d:v1", "--to", "s3://cli-err/out"), "must be a prefix ending in '/'")
    _one_error_line(_cli(home, "unpack", "e/d:v1", "--to", "s3://missing-bkt/out/"), "bucket missing-bkt does not exist")
    _one_error_line(_cli(home, "unpack", "e/d:v1", "--to", "/tmp/x"), "expected s3://bucket/prefix/")
    _one_error_line(_cli(home, "unpack", "e/d:v1", "--delete"), "--existing and --delete apply to --to")
