"""Same inputs, same ModelKit: content-versioned, idempotent re-runs, on a real registry (through a counting
proxy) and moto S3.

- the same context packed twice, later, without SOURCE_DATE_EPOCH: one digest (same manifest bytes and
  ``created``), zero blob uploads of the ModelKit on the second push, no tag write, two provenance records;
- a retry on another worker with an empty store and immutable tags: the tag stays, only a provenance
  record is uploaded;
- one changed byte: a new digest;
- ``pack_if_changed`` fingerprints local files (size/mtime, then content) as well as S3 objects.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from services import CountingProxy, RegistryServer

from kitops_flows.api import KitOpsClient
from kitops_flows.fingerprint import fingerprint_inputs
from kitops_flows.idempotent import pack_and_push, same_content
from kitops_flows.kitfile import Kitfile
from kitops_flows.lineage import NodeRef, history, promote
from kitops_flows.lineage.records import statements_of
from kitops_flows.lineage.referrers import RecordReader
from kitops_flows.manifest import Manifest
from kitops_flows.store import LocalStore

KITFILE = """manifestVersion: 1.0.0
package: {name: rerun}
model: {name: m, path: model.bin}
datasets:
  - {name: train, path: data}
code:
  - path: src
"""


def _ctx(root: Path, model: bytes = b"weights v1") -> Path:
    (root / "data").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "Kitfile").write_text(KITFILE)
    (root / "model.bin").write_bytes(model)
    (root / "data" / "train.csv").write_bytes(b"a,b\n1,2\n" * 1000)
    (root / "src" / "train.py").write_text("print('train')\n")
    return root


def _kit(home: Path, **kw: Any) -> KitOpsClient:
    return KitOpsClient(store=LocalStore(home), plain_http=True, **kw)


def _uploads(proxy: CountingProxy) -> list[str]:
    """Blob upload sessions opened (POST …/blobs/uploads/), the only way bytes of a new blob reach the registry."""
    return [r.path for r in proxy.matching("/blobs/uploads/", "POST")]


def _modelkit_blob_requests(proxy: CountingProxy, digests: set[str]) -> list[str]:
    return [f"{r.method} {r.path}" for r in proxy.requests if any(d in r.path for d in digests)]


def _runs(kit: KitOpsClient, node: NodeRef) -> list[dict[str, Any]]:
    return [s["predicate"]["buildDefinition"]["externalParameters"].get("run", {})
            for s in statements_of(RecordReader(kit, remote=True), node)]


def test_same_context_packed_twice_later_is_one_modelkit_and_the_second_push_uploads_nothing(
        registry: RegistryServer, proxy_factory: Callable[[str], CountingProxy], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kitops_flows.lineage import RunContext

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    proxy = proxy_factory(registry.host)
    ref = f"{proxy.host}/idem/churn:nightly"
    ctx = _ctx(tmp_path / "ctx")
    kit = _kit(tmp_path / "h")
    first = kit.pack(ctx, reference=ref, run=RunContext(orchestrator="test", run_id="run-1"))
    assert kit.push_result(ref).new_to_repository
    time.sleep(1.1)  # created has second resolution: a new manifest would differ from the first

    proxy.reset()
    second = kit.pack(ctx, reference=ref, run=RunContext(orchestrator="test", run_id="run-2"))
    assert second.digest == first.digest and second.created == first.created
    assert kit.store.read_blob(second.digest) == kit.store.read_blob(first.digest)
    assert "ml.kitops-flows.run-id" not in second.annotations
    result = kit.push_result(ref)
    assert (result.new_to_repository, result.moved_tags, result.blobs_uploaded) == (False, (), 0)
    modelkit_blobs = {first.config_digest, *(layer.digest for layer in first.layers)}
    assert _modelkit_blob_requests(proxy, modelkit_blobs) == []  # not even a HEAD
    assert proxy.count("/manifests/nightly", "PUT") == 0 and proxy.count(f"/manifests/{first.digest}", "PUT") == 0
    assert len(_uploads(proxy)) == 1  # the second run's provenance statement, nothing else

    fresh = _kit(tmp_path / "reader")
    node = NodeRef(proxy.host, "idem/churn", first.digest)
    assert sorted(r["runId"] for r in _runs(fresh, node)) == ["run-1", "run-2"]
    assert fresh.resolve(ref).digest == first.digest

    (ctx / "model.bin").write_bytes(b"weights v2")  # one changed byte
    changed = kit.pack(ctx, reference=ref)
    assert changed.digest != first.digest
    proxy.reset()
    assert kit.push_result(ref).new_to_repository
    assert any(changed.layer("model").digest in p for p in (r.path for r in proxy.requests))


def test_retry_on_an_empty_worker_with_immutable_tags_keeps_the_tag_and_uploads_only_provenance(
        registry: RegistryServer, proxy_factory: Callable[[str], CountingProxy], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    proxy = proxy_factory(registry.host)
    ref = f"{proxy.host}/idem/retry:2026-11-26"
    first = _kit(tmp_path / "w1", immutable_tags=True).pack(_ctx(tmp_path / "c1"), reference=ref, push=True)
    time.sleep(1.1)

    proxy.reset()
    worker = _kit(tmp_path / "w2", immutable_tags=True)  # another machine: empty store, fresh checkout
    again = worker.pack(_ctx(tmp_path / "c2"), reference=ref)
    assert again.digest == first.digest and again.created == first.created
    result = worker.push_result(ref)
    assert (result.new_to_repository, result.moved_tags, result.blobs_uploaded) == (False, (), 0)
    modelkit_blobs = {first.config_digest, *(layer.digest for layer in first.layers)}
    assert [r for r in _modelkit_blob_requests(proxy, modelkit_blobs) if not r.startswith("GET")] == []
    # manifest writes: the provenance referrer and the referrers fallback index (sha256-<hex>), never the tag
    assert proxy.count("/manifests/2026-11-26", "PUT") == 0 and proxy.count(first.digest, "PUT") == 0
    assert proxy.count("/manifests/", "PUT") == 2
    assert len(_uploads(proxy)) == 1
    assert _kit(tmp_path / "r").remote_digest(ref) == first.digest
    assert len(_runs(_kit(tmp_path / "r2"), NodeRef(proxy.host, "idem/retry", first.digest))) == 2


def test_previous_version_passed_by_the_caller_is_reused(registry: RegistryServer, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    old = _kit(tmp_path / "h1").pack(_ctx(tmp_path / "c1"), reference=f"{registry.host}/idem/prev:v1", push=True)
    time.sleep(1.1)
    # a new tag (nothing to compare at it) on an empty worker: only the caller's previous version matches
    new = _kit(tmp_path / "h2").pack(_ctx(tmp_path / "c2"), reference=f"{registry.host}/idem/prev:v2",
                                      previous=[old.pinned])
    assert new.digest == old.digest and new.tags == ("v2",)
    unrelated = _kit(tmp_path / "h3").pack(_ctx(tmp_path / "c3"), reference=f"{registry.host}/idem/prev:v3")
    assert unrelated.digest != old.digest  # unknown: a fresh manifest with a new created


def test_source_date_epoch_still_makes_a_fresh_pack_reproducible(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = _kit(tmp_path / "a").pack(_ctx(tmp_path / "c1"), reference="idem/sde:v1", record_lineage=False)
    b = _kit(tmp_path / "b").pack(_ctx(tmp_path / "c2"), reference="idem/sde:v1", record_lineage=False)
    assert a.digest == b.digest and a.created == "2023-11-14T22:13:20Z"


def test_content_rule_ignores_build_metadata_but_not_content_or_caller_annotations(tmp_path: Path) -> None:
    kit = _kit(tmp_path / "h")
    desc = kit.pack(_ctx(tmp_path / "c"), reference="idem/rule:v1", record_lineage=False)
    m = Manifest.from_bytes(kit.store.read_blob(desc.digest))
    rerun = Manifest(m.config, list(m.layers), {**m.annotations, "org.opencontainers.image.created": "2030-01-01T00:00:00Z",
                                                "org.opencontainers.image.revision": "b" * 40})
    assert same_content(m, rerun)
    assert not same_content(m, Manifest(m.config, list(m.layers[:-1]), dict(m.annotations)))
    assert not same_content(m, Manifest(m.config, list(m.layers), {**m.annotations, "team": "other"}))


def test_fingerprint_reuses_stamps_and_hashes_only_changed_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "h")
    ctx = _ctx(tmp_path / "c")
    kf = Kitfile.load(ctx / "Kitfile")
    old = time.time() - 60  # stamps of files changed within the racy window are not trusted
    for p in ctx.rglob("*"):
        os.utime(p, (old, old))
    first = fingerprint_inputs(store, ctx, kf)
    assert first.hashed_files == 3
    again = fingerprint_inputs(store, ctx, kf)
    assert again.digest == first.digest and again.hashed_files == 0
    os.utime(ctx / "model.bin", (old + 5, old + 5))  # touched, same bytes: re-hashed, same digest
    touched = fingerprint_inputs(store, ctx, kf)
    assert touched.digest == first.digest and touched.hashed_files == 1
    (ctx / "model.bin").write_bytes(b"weights v2")  # same size, new content
    os.utime(ctx / "model.bin", (old + 9, old + 9))
    changed = fingerprint_inputs(store, ctx, kf)
    assert changed.digest != first.digest and changed.hashed_files == 1
    # a fresh checkout elsewhere (no stamps, new mtimes) of the same files: same fingerprint
    assert fingerprint_inputs(LocalStore(tmp_path / "h2"), ctx, kf).digest == changed.digest


def test_pack_if_changed_sees_a_retrained_local_model_with_unchanged_s3_data(
        s3: Any, registry: RegistryServer, tmp_path: Path) -> None:
    c = s3.client()
    c.create_bucket(Bucket="idem-bkt")
    c.put_bucket_versioning(Bucket="idem-bkt", VersioningConfiguration={"Status": "Enabled"})
    c.put_object(Bucket="idem-bkt", Key="train/part-0.csv", Body=b"x,y\n1,2\n")
    ref = f"{registry.host}/idem/s3mix:nightly"
    sources = {"train": "s3://idem-bkt/train/"}
    ctx = _ctx(tmp_path / "c")
    first = pack_and_push(_kit(tmp_path / "h1"), ctx, reference=ref, sources=sources, skip_if_unchanged=True,
                          push=True)
    assert first.packed and first.new_to_repository
    # another worker, same inputs: skipped by fingerprint (nothing packed, nothing pushed)
    same = pack_and_push(_kit(tmp_path / "h2"), _ctx(tmp_path / "c2"), reference=ref, sources=sources,
                         skip_if_unchanged=True, push=True)
    assert not same.packed and same.descriptor.digest == first.descriptor.digest and same.push is None
    # the model is retrained (local file), S3 unchanged: packed, new digest
    (ctx / "model.bin").write_bytes(b"weights v2")
    retrained = pack_and_push(_kit(tmp_path / "h1"), ctx, reference=ref, sources=sources, skip_if_unchanged=True,
                              push=True)
    assert retrained.packed and retrained.new_to_repository
    assert retrained.descriptor.digest != first.descriptor.digest
    # an S3 object re-uploaded with the same bytes (versioned bucket): a new VersionId, so the inputs count as
    # changed and the pack runs, but it gives the same digest, which the registry already holds
    c.put_object(Bucket="idem-bkt", Key="train/part-0.csv", Body=b"x,y\n1,2\n")
    replay = pack_and_push(_kit(tmp_path / "h1"), ctx, reference=ref, sources=sources, skip_if_unchanged=True,
                           push=True)
    assert replay.packed
    assert replay.descriptor.digest == retrained.descriptor.digest and not replay.new_to_repository


def test_lineage_and_history_show_every_run_of_one_digest(registry: RegistryServer, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from kitops_flows.lineage import RunContext, graph

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    ref = f"{registry.host}/idem/hist:v1"
    for i, home in enumerate(("a", "b", "c")):
        _kit(tmp_path / home).pack(_ctx(tmp_path / f"c{i}"), reference=ref, push=True,
                                  run=RunContext(orchestrator="test", run_id=f"night-{i}"))
    reader = _kit(tmp_path / "r")
    node = graph(reader, ref, "up").nodes[reader.resolve(ref).digest]
    assert sorted(r["runId"] for r in node.runs) == ["night-0", "night-1", "night-2"]
    assert json.loads(graph(reader, ref, "up").to_json())  # runs are JSON-safe
    assert "built by 3 runs" in graph(reader, ref, "up").to_mermaid()
    promote(reader, ref, "staging")
    assert [e.stage for e in history(reader, f"{registry.host}/idem/hist")] == ["staging"]


def test_skip_if_unchanged_sees_a_switch_to_modelpack_output(tmp_path: Path) -> None:
    """The output format is an input: the same files packed as a ModelPack are packed, not skipped."""
    kit, ctx = _kit(tmp_path / "h"), _ctx(tmp_path / "c")
    old = time.time() - 60  # stamps outside the racy window, so the second fingerprint reads no file
    for p in ctx.rglob("*"):
        os.utime(p, (old, old))
    first = pack_and_push(kit, ctx, reference="idem/format:nightly", skip_if_unchanged=True)
    again = pack_and_push(kit, ctx, reference="idem/format:nightly", skip_if_unchanged=True)
    assert first.packed and not again.packed and again.descriptor.digest == first.descriptor.digest
    mp = pack_and_push(kit, ctx, reference="idem/format:nightly", skip_if_unchanged=True, use_model_pack=True)
    assert mp.packed and mp.descriptor.digest != first.descriptor.digest
    assert json.loads(kit.store.read_blob(mp.descriptor.digest))["artifactType"] == \
        "application/vnd.cncf.model.manifest.v1+json"
    assert not pack_and_push(kit, ctx, reference="idem/format:nightly", skip_if_unchanged=True,
                             use_model_pack=True).packed
