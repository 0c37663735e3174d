"""S3 sources through the whole pipeline: KitOpsClient.pack(sources=...), the registry, unpack_to_s3,
pack_if_changed and kit's remote datasets, all over the real S3 protocol (moto server) and a real registry."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import DigestMismatchError, S3SourceError
from kitops_flows.idempotent import pack_if_changed
from kitops_flows.kitfile import Kitfile
from kitops_flows.s3 import (
    ANNOTATION_FINGERPRINT,
    ANNOTATION_OBJECTS,
    ANNOTATION_SOURCE,
    S3Source,
    check_remote_datasets,
    download_remote_datasets,
    list_input,
)
from kitops_flows.store import LocalStore
from kitops_flows.unpack_s3 import unpack_to_s3

MiB = 1 << 20
DATASET_KITFILE = "manifestVersion: 1.0.0\npackage: {name: s3test}\ndatasets:\n  - {name: train, path: data/train}\n"

# Names chosen to break naive orderings and header layouts: chars sorting before '/', an empty
# "folder", a name over 100 bytes (USTAR prefix split), a non-ASCII name (PAX), empty and multi-MiB files.
LONG = "deep/" + "d" * 60 + "/" + "e" * 50 + "/file-with-a-long-name.bin"
TREE: dict[str, bytes | None] = {
    "a-b": b"dash", "a.txt": b"dot", "a/x": b"nested", "a/y/z.csv": b"1,2\n", "empty": b"",
    "caf\u00e9.csv": b"accent", LONG: b"long", "big.bin": os.urandom(3 * MiB + 5), "folder/": None,
}


def _client(s3: Any) -> Any:
    return boto3.client("s3")  # the fixture points AWS_ENDPOINT_URL_S3 at the moto server


def _bucket(c: Any, name: str, tree: dict[str, bytes | None], prefix: str = "run/") -> None:
    c.create_bucket(Bucket=name)
    for rel, body in tree.items():
        c.put_object(Bucket=name, Key=prefix + rel, Body=body or b"")


def _ctx(root: Path, kitfile: str = DATASET_KITFILE, files: dict[str, bytes | None] | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "Kitfile").write_text(kitfile)
    for rel, body in (files or {}).items():
        p = root / rel
        if body is None:
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
    for dirpath, dirnames, filenames in os.walk(root):  # same modes as S3 members: umask must not matter
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    return root


def _kit(home: Path, **kw: Any) -> KitOpsClient:
    return KitOpsClient(store=LocalStore(home), plain_http=True, **kw)


def _store_is_empty(store: LocalStore) -> bool:
    blobs = list(store.blobs.iterdir()) if store.blobs.is_dir() else []
    ingest = list(store.ingest_dir.iterdir()) if store.ingest_dir.is_dir() else []
    return store.list_repos() == [] and blobs == [] and ingest == []


def test_s3_layer_is_byte_identical_to_local_layer(s3: Any, tmp_path: Path) -> None:
    c = _client(s3)
    _bucket(c, "det-bkt", TREE)
    local = _kit(tmp_path / "h1").pack(_ctx(tmp_path / "local", files={f"data/train/{k}": v for k, v in TREE.items()}),
                                       reference="det/local:v1", record_lineage=False)
    remote = _kit(tmp_path / "h2").pack(_ctx(tmp_path / "remote"), reference="det/remote:v1", record_lineage=False,
                                        sources={"train": "s3://det-bkt/run/"})
    (l_layer,), (r_layer,) = local.layers, remote.layers
    assert r_layer.digest == l_layer.digest and r_layer.size == l_layer.size
    assert local.config_digest == remote.config_digest  # same Kitfile + same layer => same config

    manifest = _kit(tmp_path / "h2").inspect("det/remote:v1")["manifest"]
    ann = manifest["layers"][0]["annotations"]  # type: ignore[index]
    assert ann[ANNOTATION_SOURCE] == "s3://det-bkt/run/" and ann[ANNOTATION_OBJECTS] == str(len(TREE))
    assert ann[ANNOTATION_FINGERPRINT] == list_input(c, "s3://det-bkt/run/").fingerprint()
    assert ann["org.cncf.model.filepath"] == "data/train"


def test_single_object_becomes_the_entry_file(s3: Any, tmp_path: Path) -> None:
    c = _client(s3)
    c.create_bucket(Bucket="one-bkt")
    c.put_object(Bucket="one-bkt", Key="models/7/weights.bin", Body=b"weights")
    kitfile = "manifestVersion: 1.0.0\npackage: {name: one}\nmodel: {name: m, path: model/w.bin}\n"
    local = _kit(tmp_path / "h1").pack(_ctx(tmp_path / "l", kitfile, {"model/w.bin": b"weights"}),
                                       reference="one/l:v1", record_lineage=False)
    kit = _kit(tmp_path / "h2")
    remote = kit.pack(_ctx(tmp_path / "r", kitfile), reference="one/r:v1", record_lineage=False,
                      sources={"m": "s3://one-bkt/models/7/weights.bin"})
    assert remote.layers[0].digest == local.layers[0].digest
    out = kit.unpack("one/r:v1", tmp_path / "out")
    assert (tmp_path / "out" / "model" / "w.bin").read_bytes() == b"weights" and out.kitfile_written


def test_thousands_of_objects_and_versions_recorded(s3: Any, tmp_path: Path) -> None:
    c = _client(s3)
    c.create_bucket(Bucket="many-bkt")
    c.put_bucket_versioning(Bucket="many-bkt", VersioningConfiguration={"Status": "Enabled"})
    # moto answers ~100 requests/s, so each object costs ~20 ms (PUT + GET): 1,000 by default, more on request
    count = int(os.environ.get("KITOPS_TEST_S3_OBJECTS", "1000"))
    keys = [f"shards/s{i % 7}/rec-{i:05}.json" for i in range(count)]
    with ThreadPoolExecutor(8) as pool:
        versions = dict(zip(keys, pool.map(
            lambda k: c.put_object(Bucket="many-bkt", Key=k, Body=k.encode())["VersionId"], keys), strict=True))
    seen: list[Any] = []

    import kitops_flows.lineage as lineage

    original = lineage.collect_provenance

    def capture(kit: KitOpsClient, ctx: Path, kf: Kitfile, **kw: Any) -> Any:
        seen.extend(kw["s3_inputs"])
        return original(kit, ctx, kf, **kw)

    kit = _kit(tmp_path / "h")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lineage, "collect_provenance", capture)
        desc = kit.pack(_ctx(tmp_path / "c"), reference="many/d:v1", sources={"train": "s3://many-bkt/shards/"})
    (inp,) = seen
    assert inp.object_count == count and inp.total_size == sum(len(k) for k in keys)
    assert {o.key: o.version_id for o in inp.objects} == versions  # every VersionId, for lineage
    assert desc.layers[0].size > count * 1024  # one 512-byte header + one data block per file
    kit.unpack("many/d:v1", tmp_path / "out", filters=["datasets"])
    files = sorted(p for p in (tmp_path / "out" / "data" / "train").rglob("*") if p.is_file())
    assert len(files) == count
    assert all(p.read_bytes() == ("shards/" + p.relative_to(tmp_path / "out/data/train").as_posix()).encode()
               for p in files[::97])


class _HookedSession:
    """A boto3 session whose client runs ``hook`` just before GetObject of ``key`` (i.e. after the listing)."""

    def __init__(self, key: str, hook: Any) -> None:
        self.key, self.hook = key, hook

    def client(self, name: str, **kw: Any) -> Any:
        return _HookedClient(boto3.client(name, **kw), self.key, self.hook)


class _HookedClient:
    def __init__(self, real: Any, key: str, hook: Any) -> None:
        self._real, self._key, self._hook = real, key, hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def get_object(self, **kw: Any) -> Any:
        if kw["Key"] == self._key and self._hook is not None:
            hook, self._hook = self._hook, None
            hook(self._real)
        return self._real.get_object(**kw)


def test_object_changed_during_pack_creates_nothing(s3: Any, tmp_path: Path) -> None:
    c = _client(s3)
    _bucket(c, "chg-bkt", {"a.csv": b"v1", "b.csv": b"v1"})
    kit = _kit(tmp_path / "h", s3_session=_HookedSession("run/b.csv",
        lambda real: real.put_object(Bucket="chg-bkt", Key="run/b.csv", Body=b"v2, written by another job")))
    with pytest.raises(S3SourceError, match=r"s3://chg-bkt/run/b\.csv: object changed"):
        kit.pack(_ctx(tmp_path / "c"), reference="chg/d:v1", sources={"train": "s3://chg-bkt/run/"})
    assert _store_is_empty(kit.store)


@pytest.mark.parametrize("uri,message", [
    ("s3://no-such-bkt/run/", r"s3://no-such-bkt/run/: bucket no-such-bkt does not exist"),
    ("s3://err-bkt/nothing/", r"s3://err-bkt/nothing/: empty prefix"),
])
def test_missing_bucket_or_empty_prefix_creates_nothing(s3: Any, tmp_path: Path, uri: str, message: str) -> None:
    _client(s3).create_bucket(Bucket="err-bkt")
    kit = _kit(tmp_path / "h")
    with pytest.raises(S3SourceError, match=message):
        kit.pack(_ctx(tmp_path / "c"), reference="err/d:v1", sources={"train": uri})
    assert _store_is_empty(kit.store)


def test_unknown_entry_is_refused(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"'nope'.*no Kitfile entry.*train"):
        _kit(tmp_path / "h").pack(_ctx(tmp_path / "c"), reference="x/d:v1", sources={"nope": "s3://b-k-t/x/"})


def test_round_trip_s3_modelkit_registry_layer_s3(s3: Any, registry: Any, tmp_path: Path) -> None:
    c = _client(s3)
    tree = {"part-0.csv": b"a,b\n" * 1000, "sub/part-1.csv": b"c,d\n", "empty.csv": b""}
    _bucket(c, "src-bkt", tree)
    big = os.urandom(11 * MiB + 3)
    c.upload_fileobj(io.BytesIO(big), "src-bkt", "run/weights/big.bin",
                     Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    assert c.head_object(Bucket="src-bkt", Key="run/weights/big.bin")["ETag"].endswith('-3"')
    kitfile = ("manifestVersion: 1.0.0\npackage: {name: rt}\nmodel: {name: m, path: model.bin}\n"
               "datasets:\n  - {name: train, path: data/train}\n")
    ref = f"{registry.host}/s3rt/data:v1"
    kit = _kit(tmp_path / "h")
    desc = kit.pack(_ctx(tmp_path / "c", kitfile, {"model.bin": b"M" * 4096}), reference=ref, push=True,
                    sources={"train": "s3://src-bkt/run/"})

    fresh = _kit(tmp_path / "fresh")  # another worker: empty store, only the registry
    c.create_bucket(Bucket="dst-bkt")
    result = unpack_to_s3(fresh, desc.pinned, ["datasets:train"], "s3://dst-bkt/out/")
    expected = {f"out/data/train/{k}": v for k, v in tree.items()} | {"out/data/train/weights/big.bin": big}
    listed = {o["Key"] for p in c.get_paginator("list_objects_v2").paginate(Bucket="dst-bkt") for o in p["Contents"]}
    assert listed == set(expected) | {"out/.kitops-flows/complete.json"}
    assert set(result.keys) == set(result.uploaded) == set(expected)
    assert result.marker == "s3://dst-bkt/out/.kitops-flows/complete.json"
    for key, body in expected.items():
        assert c.get_object(Bucket="dst-bkt", Key=key)["Body"].read() == body, key
    assert result.total_size == sum(len(b) for b in expected.values())
    assert result.layers == (desc.layer("dataset").digest,)
    assert not fresh.store.has_blob(desc.layer("model").digest)  # only the selected layer was pulled
    big_etag = c.head_object(Bucket="dst-bkt", Key="out/data/train/weights/big.bin")["ETag"]
    assert "-" in big_etag  # uploaded with multipart


def test_unpack_to_s3_verifies_before_writing(s3: Any, tmp_path: Path) -> None:
    c = _client(s3)
    _bucket(c, "v-src", {"a.csv": b"x" * 5000, "b.csv": b"y"})
    c.create_bucket(Bucket="v-dst")
    kit = _kit(tmp_path / "h")
    desc = kit.pack(_ctx(tmp_path / "c"), reference="v/d:v1", sources={"train": "s3://v-src/run/"},
                    record_lineage=False)
    blob = kit.store.blob_path(desc.layers[0].digest)
    data = bytearray(blob.read_bytes())
    data[-2000] ^= 0xFF  # in b.csv's padding or a.csv's body: same size, wrong digest
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError):
        unpack_to_s3(kit, "v/d:v1", None, "s3://v-dst/out/")
    assert c.list_objects_v2(Bucket="v-dst").get("KeyCount", 0) == 0
    with pytest.raises(S3SourceError, match="must be a prefix"):
        unpack_to_s3(kit, "v/d:v1", None, "s3://v-dst/out")
    with pytest.raises(S3SourceError, match=r"s3://v-missing/out/: bucket v-missing does not exist"):
        kit2 = _kit(tmp_path / "h2")
        kit2.pack(_ctx(tmp_path / "c2"), reference="v/d:v1", sources={"train": "s3://v-src/run/"},
                  record_lineage=False)
        unpack_to_s3(kit2, "v/d:v1", None, "s3://v-missing/out/")


def test_pack_if_changed_local_store(s3: Any, tmp_path: Path) -> None:
    c = _client(s3)
    _bucket(c, "pic-bkt", {"a.csv": b"1", "b.csv": b"2"})
    kit = _kit(tmp_path / "h")
    ctx = _ctx(tmp_path / "c")
    sources = {"train": "s3://pic-bkt/run/"}
    first, packed1 = pack_if_changed(kit, ctx, reference="pic/d:nightly", sources=sources)
    again, packed2 = pack_if_changed(kit, ctx, reference="pic/d:nightly", sources=sources)
    assert (packed1, packed2) == (True, False) and again.digest == first.digest
    assert len(kit.store.list_entries("localhost/pic/d")) == 1
    c.put_object(Bucket="pic-bkt", Key="run/b.csv", Body=b"2 changed")
    third, packed3 = pack_if_changed(kit, ctx, reference="pic/d:nightly", sources=sources)
    assert packed3 and third.digest != first.digest
    assert kit.describe("pic/d:nightly").digest == third.digest
    (ctx / "Kitfile").write_text(DATASET_KITFILE.replace("s3test", "renamed"))  # a Kitfile edit also counts
    assert pack_if_changed(kit, ctx, reference="pic/d:nightly", sources=sources)[1]


def test_pack_if_changed_against_registry(s3: Any, registry: Any, tmp_path: Path) -> None:
    c = _client(s3)
    _bucket(c, "picr-bkt", {"a.csv": b"1"})
    ref = f"{registry.host}/s3pic/data:nightly"
    sources = {"train": "s3://picr-bkt/run/"}
    first, packed = pack_if_changed(_kit(tmp_path / "h1"), _ctx(tmp_path / "c1"), reference=ref, sources=sources,
                                    push=True)
    assert packed
    # tomorrow's run on a fresh worker: nothing local, the registry's tag is the newest ModelKit
    worker = _kit(tmp_path / "h2")
    same, packed = pack_if_changed(worker, _ctx(tmp_path / "c2"), reference=ref, sources=sources, push=True)
    assert not packed and same.digest == first.digest and same.tags == ("nightly",)
    assert worker.store.list_repos() == []  # nothing packed or pulled
    c.put_object(Bucket="picr-bkt", Key="run/new.csv", Body=b"3")
    new, packed = pack_if_changed(worker, _ctx(tmp_path / "c3"), reference=ref, sources=sources, push=True)
    assert packed and new.digest != first.digest
    assert _kit(tmp_path / "h3").resolve(ref).digest == new.digest


def test_reference_mode_writes_remote_dataset_and_downloads_verified(s3: Any, tmp_path: Path) -> None:
    c = _client(s3)
    c.create_bucket(Bucket="ref-bkt")
    put = c.put_object(Bucket="ref-bkt", Key="lake/train.parquet", Body=b"PAR1 rows")
    kitfile = ("manifestVersion: 1.0.0\npackage: {name: refds}\nmodel: {name: m, path: model.bin}\n"
               "datasets:\n  - {name: lake, path: data/train.parquet}\n")
    kit = _kit(tmp_path / "h")
    desc = kit.pack(_ctx(tmp_path / "c", kitfile, {"model.bin": b"m"}), reference="ref/m:v1",
                    sources={"lake": S3Source("s3://ref-bkt/lake/train.parquet", mode="reference")})
    assert [l.kind for l in desc.layers] == ["model"]  # a remote dataset has no layer
    (ds,) = kit.info("ref/m:v1").datasets
    assert (ds.remote_path, ds.remote_hash) == ("s3://ref-bkt/lake/train.parquet", put["ETag"].strip('"'))
    assert ds.layer_info is None

    written = download_remote_datasets(kit.info("ref/m:v1"), tmp_path / "out")
    assert written == [tmp_path / "out" / "data" / "train.parquet"] and written[0].read_bytes() == b"PAR1 rows"
    with pytest.raises(S3SourceError, match="already exists"):
        download_remote_datasets(kit.info("ref/m:v1"), tmp_path / "out")

    c.put_object(Bucket="ref-bkt", Key="lake/train.parquet", Body=b"PAR1 other rows")
    with pytest.raises(S3SourceError, match=r"s3://ref-bkt/lake/train\.parquet: object changed"):
        download_remote_datasets(kit.info("ref/m:v1"), tmp_path / "out2")
    assert not (tmp_path / "out2" / "data" / "train.parquet").exists()
    with pytest.raises(S3SourceError, match="remoteHash .* does not match"):
        check_remote_datasets(kit.info("ref/m:v1"))  # kit's pack-time check, for Kitfiles written by hand
