"""kitops_flows.s3 without the pack pipeline: URIs, S3Input records, tar planning, listing and reading
against the real S3 protocol (moto's server via the ``s3`` fixture)."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from kitops_flows.errors import PackError, S3SourceError
from kitops_flows.s3 import (
    ObjectStreamer,
    S3Input,
    S3Object,
    S3Uri,
    inputs_fingerprint,
    list_input,
    plan_members,
)

MiB = 1 << 20


def _prefix(*keys: str, prefix: str = "p/") -> S3Input:
    objs = tuple(S3Object(prefix + k, f"etag-{i}", 1 + i) for i, k in enumerate(keys))
    return S3Input("bkt", prefix, "prefix", "train", "embed", objs)


def _names(inp: S3Input, entry_path: str, others: tuple[str, ...] = ()) -> list[str]:
    return [m.name for m in plan_members(inp, entry_path, others)]


# -- URIs and records ------------------------------------------------------------------------------------------

def test_uri_parse_and_prefix() -> None:
    assert S3Uri.parse("s3://bkt/a/b.csv") == S3Uri("bkt", "a/b.csv")
    assert S3Uri.parse("s3://bkt/a/").is_prefix and S3Uri.parse("s3://bkt").is_prefix
    assert not S3Uri.parse("s3://bkt/a").is_prefix
    assert str(S3Uri.parse("s3://bkt/a/")) == "s3://bkt/a/"
    for bad in ("https://bkt/a", "bkt/a", "s3://b/a", "s3://bkt/a?versionId=1"):
        with pytest.raises(S3SourceError, match="S3 URI"):
            S3Uri.parse(bad)


def test_s3input_round_trips_as_json_and_fingerprints_versions() -> None:
    inp = S3Input("bkt", "p/", "prefix", "train", "embed",
                  (S3Object("p/a", "e1", 3, "v1", "2026-11-26T00:00:00+00:00"), S3Object("p/b", "e2", 5)))
    d = json.loads(json.dumps(inp.to_dict()))
    assert S3Input.from_dict(d) == inp
    assert (d["object_count"], d["total_size"], d["uri"]) == (2, 8, "s3://bkt/p/")
    assert d["objects"][0] == {"key": "p/a", "etag": "e1", "size": 3, "version_id": "v1",
                               "last_modified": "2026-11-26T00:00:00+00:00"}
    # order-independent, sensitive to ETag and VersionId, blind to last_modified
    swapped = S3Input("bkt", "p/", "prefix", "train", "embed", tuple(reversed(inp.objects)))
    assert swapped.fingerprint() == inp.fingerprint()
    new_etag = S3Input("bkt", "p/", "prefix", "train", "embed", (S3Object("p/a", "e9", 3, "v1"), inp.objects[1]))
    new_version = S3Input("bkt", "p/", "prefix", "train", "embed", (S3Object("p/a", "e1", 3, "v2"), inp.objects[1]))
    touched = S3Input("bkt", "p/", "prefix", "train", "embed", (S3Object("p/a", "e1", 3, "v1", "later"),
                                                                 inp.objects[1]))
    assert len({inp.fingerprint(), new_etag.fingerprint(), new_version.fingerprint()}) == 3
    assert touched.fingerprint() == inp.fingerprint()
    ann = inp.annotations()
    assert ann["ml.kitops-flows.s3.source"] == "s3://bkt/p/" and ann["ml.kitops-flows.s3.objects"] == "2"
    assert ann["ml.kitops-flows.s3.fingerprint"] == inp.fingerprint() and all(len(v) < 100 for v in ann.values())


def test_single_object_record_carries_its_version_at_top_level() -> None:
    inp = S3Input("bkt", "m/w.bin", "object", "model", "embed", (S3Object("m/w.bin", "e", 9, "v7"),))
    d = inp.to_dict()
    assert (d["key"], d["etag"], d["version_id"], d["kind"]) == ("m/w.bin", "e", "v7", "object")


def test_inputs_fingerprint_covers_kitfile_and_options() -> None:
    a = _prefix("x")
    base = inputs_fingerprint([a], "kitfile-1", {"compression": "none"})
    assert base == inputs_fingerprint([a], "kitfile-1", {"compression": "none"})
    assert base != inputs_fingerprint([a], "kitfile-2", {"compression": "none"})
    assert base != inputs_fingerprint([a], "kitfile-1", {"compression": "gzip"})
    assert base != inputs_fingerprint([_prefix("y")], "kitfile-1", {"compression": "none"})


# -- tar planning ---------------------------------------------------------------------------------------------

def test_plan_is_go_walk_order_not_s3_listing_order() -> None:
    # S3 lists in byte order: "a-b" < "a.txt" < "a/x" ('-' and '.' sort before '/').
    inp = _prefix("a-b", "a.txt", "a/x", "b/c/d", "sub/")
    assert [o.key for o in inp.objects] == sorted(o.key for o in inp.objects)
    assert _names(inp, "data/train") == [
        "data", "data/train",
        "data/train/a", "data/train/a/x", "data/train/a-b", "data/train/a.txt",
        "data/train/b", "data/train/b/c", "data/train/b/c/d",
        "data/train/sub",  # a "folder" marker object is an (empty) directory
    ]
    files = {m.name: m.obj.key for m in plan_members(inp, "data/train") if m.obj is not None}
    assert files["data/train/a/x"] == "p/a/x"


def test_plan_root_entry_and_single_object() -> None:
    assert _names(_prefix("x", "y/z"), ".") == ["x", "y", "y/z"]
    one = S3Input("bkt", "m/w.bin", "object", "model", "embed", (S3Object("m/w.bin", "e", 9),))
    assert _names(one, "model/weights.bin") == ["model", "model/weights.bin"]
    assert _names(one, "weights.bin") == ["weights.bin"]
    with pytest.raises(PackError, match="single object"):
        plan_members(one, ".")


def test_plan_leaves_files_to_more_specific_layers() -> None:
    inp = _prefix("keep.csv", "extra/skip.csv", "extra-2/keep.csv")
    assert _names(inp, "data", others=("data/extra", ".", "model")) == [
        "data", "data/extra-2", "data/extra-2/keep.csv", "data/keep.csv"]


@pytest.mark.parametrize("key", ["p/a//b", "p/./a", "p/a/../b", "p//"])
def test_plan_refuses_keys_that_are_not_file_names(key: str) -> None:
    inp = S3Input("bkt", "p/", "prefix", "t", "embed", (S3Object(key, "e", 1),))
    with pytest.raises(S3SourceError, match=r"s3://bkt/p/.*path component"):
        plan_members(inp, "data")


def test_plan_refuses_object_that_is_also_a_directory() -> None:
    with pytest.raises(S3SourceError, match="both an object and a prefix"):
        plan_members(_prefix("a", "a/b"), "data")


# -- listing (real S3 protocol) ---------------------------------------------------------------------------------

def _client(s3: Any) -> Any:
    return boto3.client("s3")  # the fixture points AWS_ENDPOINT_URL_S3 at the moto server


def test_list_prefix_object_and_fallback(s3: Any) -> None:
    c = _client(s3)
    c.create_bucket(Bucket="lst-bkt")
    puts = {k: c.put_object(Bucket="lst-bkt", Key=k, Body=k.encode()) for k in ("d/a.csv", "d/b/c.csv", "e.csv")}
    inp = list_input(c, "s3://lst-bkt/d/", entry="train")
    assert [(o.key, o.size, o.etag) for o in inp.objects] == [
        (k, len(k), puts[k]["ETag"].strip('"')) for k in ("d/a.csv", "d/b/c.csv")]
    assert (inp.kind, inp.entry, inp.object_count, inp.total_size) == ("prefix", "train", 2, 16)
    assert all(o.version_id == "" for o in inp.objects)  # unversioned bucket

    one = list_input(c, "s3://lst-bkt/e.csv")
    assert (one.kind, one.objects[0].etag) == ("object", puts["e.csv"]["ETag"].strip('"'))
    # no object "d" but objects under "d/": read as the prefix
    assert list_input(c, "s3://lst-bkt/d").key == "d/"
    with pytest.raises(S3SourceError, match="a referenced dataset must be one object"):
        list_input(c, "s3://lst-bkt/d", mode="reference")


def test_list_versioned_bucket_records_latest_version_ids(s3: Any) -> None:
    c = _client(s3)
    c.create_bucket(Bucket="ver-bkt")
    c.put_bucket_versioning(Bucket="ver-bkt", VersioningConfiguration={"Status": "Enabled"})
    c.put_object(Bucket="ver-bkt", Key="d/a", Body=b"old")
    latest = c.put_object(Bucket="ver-bkt", Key="d/a", Body=b"new!")
    other = c.put_object(Bucket="ver-bkt", Key="d/b", Body=b"b")
    c.put_object(Bucket="ver-bkt", Key="d/gone", Body=b"x")
    c.delete_object(Bucket="ver-bkt", Key="d/gone")  # delete marker: not part of the input
    inp = list_input(c, "s3://ver-bkt/d/")
    assert [(o.key, o.version_id, o.size) for o in inp.objects] == [
        ("d/a", latest["VersionId"], 4), ("d/b", other["VersionId"], 1)]
    one = list_input(c, "s3://ver-bkt/d/a")
    assert one.objects[0].version_id == latest["VersionId"]


def test_list_errors_name_the_uri(s3: Any) -> None:
    c = _client(s3)
    c.create_bucket(Bucket="err-bkt")
    c.put_object(Bucket="err-bkt", Key="other/x", Body=b"x")
    with pytest.raises(S3SourceError, match=r"s3://no-such-bkt/d/: bucket no-such-bkt does not exist"):
        list_input(c, "s3://no-such-bkt/d/")
    with pytest.raises(S3SourceError, match=r"s3://no-such-bkt/k\.csv: bucket no-such-bkt does not exist"):
        list_input(c, "s3://no-such-bkt/k.csv")  # HEAD says only 404: the listing tells the bucket is missing
    with pytest.raises(S3SourceError, match=r"s3://err-bkt/d/: empty prefix"):
        list_input(c, "s3://err-bkt/d/")
    with pytest.raises(S3SourceError, match=r"s3://err-bkt/k\.csv: no such object"):
        list_input(c, "s3://err-bkt/k.csv")


class _Denying:
    """A real client whose calls answer 403 AccessDenied, as S3 does without s3:ListBucket/GetObject."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        def denied(**kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, name)

        if name == "get_paginator":
            return lambda op: type("P", (), {"paginate": staticmethod(denied)})()
        return denied


def test_access_denied_names_uri(s3: Any) -> None:
    with pytest.raises(S3SourceError, match=r"s3://bkt-x/d/: access denied"):
        list_input(_Denying(_client(s3)), "s3://bkt-x/d/")
    with pytest.raises(S3SourceError, match=r"s3://bkt-x/k: access denied"):
        list_input(_Denying(_client(s3)), "s3://bkt-x/k")


# -- reading ------------------------------------------------------------------------------------------------------

def test_streamer_reads_multipart_object_in_ranges(s3: Any) -> None:
    c = _client(s3)
    c.create_bucket(Bucket="mp-bkt")
    big = bytes(range(256)) * (12 * MiB // 256) + b"tail"
    c.upload_fileobj(io.BytesIO(big), "mp-bkt", "d/big.bin",
                     Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    c.put_object(Bucket="mp-bkt", Key="d/small", Body=b"small")
    c.put_object(Bucket="mp-bkt", Key="d/zero", Body=b"")
    inp = list_input(c, "s3://mp-bkt/d/")
    assert inp.objects[0].etag.endswith("-3")  # really a 3-part multipart upload
    got = {}
    readers = ObjectStreamer(c, "mp-bkt", inp.objects, part_size=4 * MiB, window=3).readers()
    for obj, reader in readers:
        buf = bytearray()
        while chunk := reader.read(1 << 16):
            buf += chunk
        got[obj.key] = bytes(buf)
    assert got == {"d/big.bin": big, "d/small": b"small", "d/zero": b""}


def test_streamer_refuses_object_changed_after_listing(s3: Any) -> None:
    c = _client(s3)
    c.create_bucket(Bucket="chg-bkt")
    c.put_object(Bucket="chg-bkt", Key="d/a", Body=b"before")
    inp = list_input(c, "s3://chg-bkt/d/")
    c.put_object(Bucket="chg-bkt", Key="d/a", Body=b"after!")
    with pytest.raises(S3SourceError, match=r"s3://chg-bkt/d/a: object changed"):
        for _, reader in ObjectStreamer(c, "chg-bkt", inp.objects).readers():
            reader.read()


def test_streamer_refuses_new_version_with_same_content(s3: Any) -> None:
    c = _client(s3)
    c.create_bucket(Bucket="vchg-bkt")
    c.put_bucket_versioning(Bucket="vchg-bkt", VersioningConfiguration={"Status": "Enabled"})
    c.put_object(Bucket="vchg-bkt", Key="d/a", Body=b"same")
    inp = list_input(c, "s3://vchg-bkt/d/")
    c.put_object(Bucket="vchg-bkt", Key="d/a", Body=b"same")  # same ETag, new VersionId
    with pytest.raises(S3SourceError, match=r"s3://vchg-bkt/d/a: object changed while reading"):
        for _, reader in ObjectStreamer(c, "vchg-bkt", inp.objects).readers():
            reader.read()


def test_streamer_refuses_object_deleted_after_listing(s3: Any) -> None:
    c = _client(s3)
    c.create_bucket(Bucket="del-bkt")
    c.put_object(Bucket="del-bkt", Key="d/a", Body=b"x")
    inp = list_input(c, "s3://del-bkt/d/")
    c.delete_object(Bucket="del-bkt", Key="d/a")
    with pytest.raises(S3SourceError, match=r"s3://del-bkt/d/a: object not found"):
        for _, reader in ObjectStreamer(c, "del-bkt", inp.objects).readers():
            reader.read()


# -- the pack hook -----------------------------------------------------------------------------------------------

def test_layer_sources_index_after_reference_datasets_leave_the_layers(s3: Any) -> None:
    from kitops_flows.kitfile import Kitfile
    from kitops_flows.s3 import S3Source, s3_layer_sources

    c = _client(s3)
    c.create_bucket(Bucket="hook-bkt")
    put = c.put_object(Bucket="hook-bkt", Key="lake/ref.parquet", Body=b"ref")
    c.put_object(Bucket="hook-bkt", Key="run/x.csv", Body=b"x")
    kf = Kitfile.from_yaml(
        "manifestVersion: 1.0.0\npackage: {name: hook}\nmodel: {name: m, path: model.bin}\n"
        "datasets:\n  - {name: lake, path: data/ref.parquet}\n  - {name: train, path: data/train}\n")
    srcs, inputs = s3_layer_sources(kf, {"lake": S3Source("s3://hook-bkt/lake/ref.parquet", mode="reference"),
                                         "data/train": "s3://hook-bkt/run/"}, s3=c)
    assert [(e.kind, e.path) for e in kf.layer_entries()] == [("model", "model.bin"), ("dataset", "data/train")]
    assert list(srcs) == [1]  # index in the layer entries *after* the remote dataset left them
    assert (kf.datasets[0].remote_path, kf.datasets[0].remote_hash) == ("s3://hook-bkt/lake/ref.parquet",
                                                                        put["ETag"].strip('"'))
    kf.validate()  # kit's rules accept the remote dataset (remoteHash present, S3 URL)
    assert [(i.entry, i.mode, i.kind) for i in inputs] == [("lake", "reference", "object"),
                                                           ("data/train", "embed", "prefix")]
    with pytest.raises(PackError, match="only for datasets"):
        s3_layer_sources(kf, {"m": S3Source("s3://hook-bkt/lake/ref.parquet", mode="reference")}, s3=c)
    with pytest.raises(PackError, match="must be a single object"):
        s3_layer_sources(Kitfile.from_yaml("manifestVersion: 1.0.0\ndatasets:\n  - {name: d, path: d}\n"),
                         {"d": S3Source("s3://hook-bkt/run/", mode="reference")}, s3=c)
