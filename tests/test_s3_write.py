"""unpack_to_s3 writes safely (kitops_flows.s3.write), on moto's S3 server through boto3.

Faults are injected with a boto3 event hook on the session unpack_to_s3 uses: the named operation on
the named key answers AccessDenied, as a bucket policy denying that key would. After every failure,
each object that existed before must be byte-identical (versioned or not), nothing new may remain,
and the previous completion marker must be back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import S3SourceError, UnsafeLayerError
from kitops_flows.s3 import write
from kitops_flows.s3.parallel import BoundedPool
from kitops_flows.s3.write import MARKER_NAME, META_SHA256, S3PrefixWriter
from kitops_flows.store import LocalStore
from kitops_flows.unpack_s3 import unpack_to_s3

pytestmark = pytest.mark.integration

MiB = 1 << 20
KITFILE = "manifestVersion: 1.0.0\npackage: {name: w}\ndatasets:\n  - {name: data, path: data}\n"
BUCKET = "serve"
DEST = f"s3://{BUCKET}/serve/"
MARKER = "serve/" + MARKER_NAME


def _modelkit(tmp_path: Path, files: dict[str, bytes], ref: str = "w/d:v1", path: str = "data") -> KitOpsClient:
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True)
    (ctx / "Kitfile").write_text(KITFILE.replace("path: data", f"path: {path}"))
    for rel, body in files.items():
        (ctx / path / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / path / rel).write_bytes(body)
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"), plain_http=True)
    kit.pack(ctx, reference=ref, record_lineage=False)
    return kit


def _snapshot(c: Any, prefix: str = "") -> dict[str, tuple[bytes, dict[str, str]]]:
    """Every current object: key -> (bytes, user metadata)."""
    out = {}
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for o in page.get("Contents", ()):
            resp = c.get_object(Bucket=BUCKET, Key=o["Key"])
            out[o["Key"]] = (resp["Body"].read(), resp.get("Metadata") or {})
    return out


def _session(*denied: tuple[str, Callable[[str], bool]], calls: list[tuple[str, str]] | None = None,
             persistent: bool = False) -> Any:
    """A boto3 session whose S3 clients answer AccessDenied to the first call matching each
    ``(operation, key predicate)`` pair (a transient fault: the rollback's own calls go through)."""
    session = boto3.session.Session()
    pending = list(denied)

    def hook(params: dict[str, Any], model: Any, **_: Any) -> None:
        key = str(params.get("Key", ""))
        if calls is not None:
            calls.append((model.name, key))
        for fault in pending:
            operation, matches = fault
            if model.name == operation and matches(key):
                if not persistent:
                    pending.remove(fault)
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                                   "ResponseMetadata": {"HTTPStatusCode": 403}}, model.name)

    session.events.register("before-parameter-build.s3", hook)
    return session


def _previous_release(c: Any, versioned: bool = False) -> dict[str, tuple[bytes, dict[str, str]]]:
    c.create_bucket(Bucket=BUCKET)
    if versioned:
        c.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    c.put_object(Bucket=BUCKET, Key="serve/data/a.txt", Body=b"old a", Metadata={"owner": "release-6"})
    c.put_object(Bucket=BUCKET, Key="serve/data/b.txt", Body=b"old b" * 1000)
    c.put_object(Bucket=BUCKET, Key="serve/other/keep.bin", Body=b"not in the ModelKit")
    c.put_object(Bucket=BUCKET, Key=MARKER, Body=b'{"kind": "kitops-flows/s3-unpack", "release": 6}')
    return _snapshot(c)


NEW = {"a.txt": b"new a", "b.txt": b"new b" * 999, "c.txt": b"c" * 3000}


def test_the_issues_data_loss_scenario_keeps_every_previous_object(s3: Any, tmp_path: Path) -> None:
    c = s3.client()
    before = _previous_release(c)
    kit = _modelkit(tmp_path, NEW)
    deny_c = ("PutObject", lambda k: k.endswith("data/c.txt"))
    # default policy: refuses before writing, and names the keys that differ
    with pytest.raises(S3SourceError, match=r"2 existing object\(s\).*s3://serve/serve/data/a\.txt.*existing='overwrite'"):
        unpack_to_s3(kit, "w/d:v1", None, DEST, session=_session(deny_c))
    assert _snapshot(c) == before
    # overwrite or skip, and c.txt's upload denied: nothing that was there is lost, nothing new remains
    for policy in ("overwrite", "skip"):
        with pytest.raises(S3SourceError, match=r"access denied.*AccessDenied") as info:
            unpack_to_s3(kit, "w/d:v1", None, DEST, session=_session(deny_c), existing=policy)
        assert "s3://serve/serve/" in str(info.value)
        assert _snapshot(c) == before, policy


def _overwrite_steps() -> list[Any]:
    steps = [
        ("staging a replacement", "PutObject", lambda k: "/staging/" in k and k.endswith("/new/data/b.txt")),
        ("uploading a new key", "PutObject", lambda k: k.endswith("serve/data/c.txt")),
        ("the multipart upload", "UploadPart", lambda k: k.endswith("/new/data/big.bin")),
        ("writing the journal", "PutObject", lambda k: k.endswith("/journal.json")),
        ("backing up", "CopyObject", lambda k: k.endswith("/old/data/b.txt")),
        ("placing (after one was placed)", "CopyObject", lambda k: k == "serve/data/b.txt"),
        ("placing the last", "CopyObject", lambda k: k == "serve/data/big.bin"),
        ("writing the marker", "PutObject", lambda k: k == MARKER),
    ]
    # versioned buckets keep the previous versions themselves: no backup copies and no journal
    return [pytest.param(versioned, *step, id=f"{step[0]}-{'versioned' if versioned else 'unversioned'}")
            for versioned in (False, True) for step in steps
            if not (versioned and step[0] in ("writing the journal", "backing up"))]


@pytest.mark.parametrize("versioned,step,operation,matches", _overwrite_steps())
def test_a_failure_at_every_step_of_an_overwrite_loses_nothing(
        s3: Any, tmp_path: Path, versioned: bool, step: str, operation: str, matches: Callable[[str], bool]) -> None:
    c = s3.client()
    before = _previous_release(c, versioned)
    big_old = os.urandom(9 * MiB)
    c.put_object(Bucket=BUCKET, Key="serve/data/big.bin", Body=big_old)
    before["serve/data/big.bin"] = (big_old, {})
    kit = _modelkit(tmp_path, NEW | {"big.bin": os.urandom(9 * MiB + 1)})
    calls: list[tuple[str, str]] = []
    with pytest.raises(S3SourceError, match="access denied"):
        unpack_to_s3(kit, "w/d:v1", None, DEST, session=_session((operation, matches), calls=calls),
                     existing="overwrite", delete=True)
    assert any(op == operation and matches(k) for op, k in calls), f"{step}: the fault was never reached"
    assert _snapshot(c) == before, step
    if versioned:  # restored by deleting the version we wrote: no extra versions of replaced keys remain
        versions = c.list_object_versions(Bucket=BUCKET, Prefix="serve/data/b.txt").get("Versions", [])
        assert len(versions) == 1


def test_a_rollback_that_cannot_restore_says_so(s3: Any, tmp_path: Path) -> None:
    c = s3.client()
    before = _previous_release(c)
    kit = _modelkit(tmp_path, NEW)
    with pytest.raises(S3SourceError, match="access denied") as info:
        unpack_to_s3(kit, "w/d:v1", None, DEST, existing="overwrite",
                     session=_session(("PutObject", lambda k: k == MARKER), persistent=True))
    assert any("could not restore the previous marker s3://serve/serve/.kitops-flows/complete.json" in n
               for n in info.value.__notes__)
    after = _snapshot(c)
    assert after == {k: v for k, v in before.items() if k != MARKER}  # the data itself is all back


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_overwrite_sync_and_delete_then_a_rerun_uploads_nothing(s3: Any, tmp_path: Path, versioned: bool) -> None:
    c = s3.client()
    _previous_release(c, versioned)
    big = os.urandom(9 * MiB + 7)  # multipart: its ETag is no MD5, so "same" comes from our sha256 metadata
    files = NEW | {"big.bin": big, "sub/d.txt": b"d"}
    kit = _modelkit(tmp_path, files)
    c.put_object(Bucket=BUCKET, Key="serve/data/sub/d.txt", Body=b"d")  # already there, other writer: plain MD5 ETag
    result = unpack_to_s3(kit, "w/d:v1", None, DEST, existing="overwrite", delete=True)

    expected = {f"serve/data/{k}": v for k, v in files.items()}
    after = _snapshot(c)
    assert {k: v[0] for k, v in after.items() if k != MARKER} == expected  # other/keep.bin deleted, no staging left
    assert set(result.uploaded) == {"serve/data/c.txt", "serve/data/big.bin"}
    assert set(result.replaced) == {"serve/data/a.txt", "serve/data/b.txt"}
    assert result.skipped == ("serve/data/sub/d.txt",)
    assert result.deleted == ("serve/other/keep.bin",)
    assert after["serve/data/big.bin"][1][META_SHA256] == hashlib.sha256(big).hexdigest()
    assert "-" in c.head_object(Bucket=BUCKET, Key="serve/data/big.bin")["ETag"]
    marker = json.loads(after[MARKER][0])
    assert marker["kind"] == "kitops-flows/s3-unpack" and marker["reference"] == "w/d:v1"
    assert marker["digest"].startswith("sha256:") and marker["layers"] == list(result.layers)
    assert {o["key"]: (o["size"], o["sha256"]) for o in marker["objects"]} == {
        k: (len(v), hashlib.sha256(v).hexdigest()) for k, v in expected.items()}

    calls: list[tuple[str, str]] = []
    again = unpack_to_s3(kit, "w/d:v1", None, DEST, session=_session(calls=calls), delete=True)
    assert set(again.skipped) == set(expected) and not again.uploaded and not again.replaced
    writes = [(op, k) for op, k in calls if op in ("PutObject", "CreateMultipartUpload", "CopyObject")]
    assert writes == [("PutObject", MARKER)]  # only the new marker
    assert {k: v[0] for k, v in _snapshot(c).items() if k != MARKER} == expected


def test_skip_keeps_different_objects_and_the_marker_says_so(s3: Any, tmp_path: Path) -> None:
    c = s3.client()
    before = _previous_release(c)
    kit = _modelkit(tmp_path, NEW)
    result = unpack_to_s3(kit, "w/d:v1", None, DEST, existing="skip")
    after = _snapshot(c)
    assert after["serve/data/a.txt"] == before["serve/data/a.txt"]
    assert after["serve/data/c.txt"][0] == NEW["c.txt"]
    assert after["serve/other/keep.bin"] == before["serve/other/keep.bin"]  # no delete asked
    assert set(result.kept) == {"serve/data/a.txt", "serve/data/b.txt"} and result.uploaded == ("serve/data/c.txt",)
    marker = json.loads(after[MARKER][0])
    assert [o["key"] for o in marker["objects"]] == ["serve/data/c.txt"]
    assert marker["kept_existing"] == ["serve/data/a.txt", "serve/data/b.txt"]


def test_a_failed_delete_of_extras_reports_a_complete_copy_and_the_rerun_finishes(s3: Any, tmp_path: Path) -> None:
    c = s3.client()
    c.create_bucket(Bucket=BUCKET)
    c.put_object(Bucket=BUCKET, Key="serve/stale.txt", Body=b"stale")
    kit = _modelkit(tmp_path, NEW)
    with pytest.raises(S3SourceError, match=r"copy is complete .*complete\.json.*1 extra object\(s\).*stale\.txt"):
        unpack_to_s3(kit, "w/d:v1", None, DEST, delete=True,
                     session=_session(("DeleteObjects", lambda k: True)))
    assert {k for k in _snapshot(c)} == {f"serve/data/{n}" for n in NEW} | {MARKER, "serve/stale.txt"}
    result = unpack_to_s3(kit, "w/d:v1", None, DEST, delete=True)
    assert result.deleted == ("serve/stale.txt",) and len(result.skipped) == 3


def test_bad_policy_and_control_dir_names_are_refused(s3: Any, tmp_path: Path) -> None:
    c = s3.client()
    c.create_bucket(Bucket=BUCKET)
    kit = _modelkit(tmp_path, {"x": b"1"})
    with pytest.raises(S3SourceError, match="invalid existing-object policy 'replace'"):
        unpack_to_s3(kit, "w/d:v1", None, DEST, existing="replace")
    kit2 = _modelkit(tmp_path / "2", {"complete.json": b"{}"}, ref="w/e:v1", path=".kitops-flows")
    with pytest.raises(UnsafeLayerError, match=r"s3://serve/serve/\.kitops-flows/complete\.json: .*marker"):
        unpack_to_s3(kit2, "w/e:v1", None, DEST, existing="overwrite")
    assert _snapshot(c) == {}


# -- parallel uploads (kitops_flows.s3.parallel) -----------------------------------------------------------

MANY = {f"many/f{i:03}.txt": os.urandom(3000 + i) for i in range(48)}
GUARD = 60  # seconds a held call waits at most: a deadlock guard, never reached when the code is right


class _PutProbe(boto3.session.Session):
    """A session whose S3 clients count their concurrent ``put_object`` calls and the bytes those carry.

    ``hold(key)`` runs inside each call, before the request is sent (to make calls meet)."""

    def __init__(self, hold: Callable[[str], None] = lambda key: None) -> None:
        super().__init__()
        self.hold, self.lock = hold, threading.Lock()
        self.active = self.peak = self.active_bytes = self.peak_bytes = 0

    def client(self, *args: Any, **kwargs: Any) -> Any:
        c = super().client(*args, **kwargs)
        put = c.put_object

        def counted(**params: Any) -> Any:
            size = len(params.get("Body") or b"")
            with self.lock:
                self.active += 1
                self.active_bytes += size
                self.peak, self.peak_bytes = max(self.peak, self.active), max(self.peak_bytes, self.active_bytes)
            try:
                self.hold(str(params.get("Key", "")))
                return put(**params)
            finally:
                with self.lock:
                    self.active -= 1
                    self.active_bytes -= size

        c.put_object = counted
        return c


def _pools(monkeypatch: pytest.MonkeyPatch) -> list[BoundedPool]:
    """Every BoundedPool the writer makes from now on, to read its counters."""
    made: list[BoundedPool] = []

    class Recorded(BoundedPool):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(write, "BoundedPool", Recorded)
    return made


def _data_versions(c: Any) -> list[tuple[str, str]]:
    """(key, version id) of every object version outside our control directory (marker, staging)."""
    return sorted((v["Key"], v["VersionId"]) for v in c.list_object_versions(Bucket=BUCKET).get("Versions", [])
                  if not v["Key"].startswith("serve/.kitops-flows/"))


def test_small_files_upload_in_parallel(s3: Any, tmp_path: Path) -> None:
    c = s3.client()
    c.create_bucket(Bucket=BUCKET)
    kit = _modelkit(tmp_path, MANY)
    meet = threading.Barrier(2, timeout=GUARD)  # the first two PUTs wait for each other: only parallel ones can

    def hold(key: str) -> None:
        if key.endswith(("f000.txt", "f001.txt")):
            with contextlib.suppress(threading.BrokenBarrierError):
                meet.wait()

    probe = _PutProbe(hold)
    result = unpack_to_s3(kit, "w/d:v1", None, DEST, session=probe)
    assert not meet.broken and probe.peak > 1
    assert len(result.uploaded) == len(MANY)
    assert {k: v[0] for k, v in _snapshot(c).items() if k != MARKER} == {f"serve/data/{k}": v for k, v in MANY.items()}


def test_bytes_in_flight_stay_under_the_cap(s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = s3.client()
    c.create_bucket(Bucket=BUCKET)
    cap = 4 * 3100  # about four of the files
    monkeypatch.setattr(write, "UPLOAD_BYTES_IN_FLIGHT", cap)
    pools = _pools(monkeypatch)
    kit = _modelkit(tmp_path, MANY)
    probe = _PutProbe()
    unpack_to_s3(kit, "w/d:v1", None, DEST, session=probe)
    (pool,) = pools
    # read and not yet sent (the pool's count) and being sent (the client's): never more than the cap
    assert 0 < pool.peak_bytes <= cap and 0 < probe.peak_bytes <= cap
    assert pool.peak_items <= pool.max_pending
    assert len(_snapshot(c, "serve/data/")) == len(MANY)


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_a_failure_among_parallel_uploads_loses_nothing_and_leaves_nothing(
        s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, versioned: bool) -> None:
    c = s3.client()
    before = _previous_release(c, versioned)
    versions_before = _data_versions(c)
    kit = _modelkit(tmp_path, NEW | MANY)
    # f020's PUT is still in flight when f030's is denied; it finishes only once the rollback has begun,
    # so a rollback that did not wait for it would leave f020 behind
    rolling_back = threading.Event()
    rollback = S3PrefixWriter.rollback

    def noted_rollback(self: S3PrefixWriter) -> list[str]:
        rolling_back.set()
        return rollback(self)

    monkeypatch.setattr(S3PrefixWriter, "rollback", noted_rollback)
    calls: list[tuple[str, str]] = []
    session = _session(("PutObject", lambda k: k.endswith("many/f030.txt")), calls=calls)

    def hold(params: dict[str, Any], **_: Any) -> None:
        if str(params.get("Key", "")).endswith("many/f020.txt"):
            rolling_back.wait(GUARD)

    session.events.register("before-parameter-build.s3.PutObject", hold)
    with pytest.raises(S3SourceError, match=r"s3://serve/serve/data/many/f030\.txt: access denied while uploading"):
        unpack_to_s3(kit, "w/d:v1", None, DEST, session=session, existing="overwrite", delete=True)
    assert ("PutObject", "serve/data/many/f020.txt") in calls  # it was sent: the rollback deleted it afterwards
    assert _snapshot(c) == before
    if versioned:  # every version we wrote was deleted by its id: the previous versions are all that is left
        assert _data_versions(c) == versions_before


def test_a_failure_among_parallel_copies_of_the_commit_restores_every_object(s3: Any, tmp_path: Path) -> None:
    c = s3.client()
    c.create_bucket(Bucket=BUCKET)
    old = {f"serve/data/{k}": b"old " + v for k, v in MANY.items()}
    for key, body in old.items():
        c.put_object(Bucket=BUCKET, Key=key, Body=body)
    before = _snapshot(c)
    kit = _modelkit(tmp_path, MANY)
    for operation, key in (("CopyObject", "/old/data/many/f030.txt"), ("CopyObject", "serve/data/many/f030.txt")):
        with pytest.raises(S3SourceError, match="f030.txt: access denied while copying"):
            unpack_to_s3(kit, "w/d:v1", None, DEST, existing="overwrite",
                         session=_session((operation, lambda k, key=key: k.endswith(key))))
        assert _snapshot(c) == before, key


def test_a_failed_small_upload_stops_a_large_one_in_flight(s3: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The large file's multipart upload checks for an earlier failure before each read: it stops at its next
    read (s3transfer aborts it) instead of sending the whole file first, and the prefix is as it was."""
    c = s3.client()
    c.create_bucket(Bucket=BUCKET)
    big = os.urandom(6 * write.SINGLE_PUT_LIMIT)
    kit = _modelkit(tmp_path, {"a.txt": b"small", "z.bin": big})  # tar order: a.txt's PUT is in flight first
    pools = _pools(monkeypatch)
    started = threading.Event()
    reads: list[int] = []

    class Gate:
        """Wraps the large file's layer reader: the 1st read lets a.txt's PUT fail; a 2nd one (if the check
        before it came too early) waits until the pool has that failure, so the next check must see it."""

        def __init__(self, raw: Any) -> None:
            self.raw = raw

        def read(self, n: int = -1) -> bytes:
            reads.append(n)
            if len(reads) == 1:
                started.set()
            elif len(reads) == 2:
                for _ in range(GUARD * 100):
                    try:
                        pools[0].check()
                    except S3SourceError:
                        break
                    threading.Event().wait(0.01)
            return self.raw.read(n)

    real_init = write._HashingReader.__init__
    monkeypatch.setattr(write._HashingReader, "__init__",
                        lambda self, raw, *check: real_init(self, Gate(raw), *check))
    calls: list[tuple[str, str]] = []
    session = _session(("PutObject", lambda k: k.endswith("data/a.txt")), calls=calls)

    def hold(params: dict[str, Any], **_: Any) -> None:
        if str(params.get("Key", "")).endswith("data/a.txt"):
            started.wait(GUARD)  # fail only once the large upload has begun

    session.events.register("before-parameter-build.s3.PutObject", hold)
    with pytest.raises(S3SourceError, match=r"s3://serve/serve/data/a\.txt: access denied while uploading"):
        unpack_to_s3(kit, "w/d:v1", None, DEST, session=session)
    # stopped at the first read after the failure (1 or 2 reads, as the failure lands before or during the
    # 2nd), not after all of the file's 6 chunks
    assert 1 <= len(reads) <= 2
    assert ("CompleteMultipartUpload", "serve/data/z.bin") not in calls
    assert not c.list_multipart_uploads(Bucket=BUCKET).get("Uploads")  # aborted, no parts left behind
    assert _snapshot(c) == {}
