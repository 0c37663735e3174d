"""The local store: kit's layout, atomic updates, concurrent writers, verify and gc."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kitops_flows.errors import DigestMismatchError, NotFoundError
from kitops_flows.layout import repo_file_stem
from kitops_flows.reference import parse_reference
from kitops_flows.store import LocalStore


def test_repo_file_names_are_kits() -> None:
    assert repo_file_stem("localhost/mymodel") == "bG9jYWxob3N0L215bW9kZWw="


def test_ingest_commits_only_complete_verified_blobs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with store.ingest() as w:
        w.write(b"hello")
    assert store.read_blob(w.digest) == b"hello"
    with pytest.raises(RuntimeError):
        with store.ingest() as w2:
            w2.write(b"half a blob")
            raise RuntimeError("crash")
    assert sorted(os.listdir(store.blobs)) == [w.digest.split(":")[1]]
    assert os.listdir(store.ingest_dir) == []
    with pytest.raises(DigestMismatchError):
        with store.ingest(expected_digest="sha256:" + "0" * 64) as w3:
            w3.write(b"not that")
    assert len(os.listdir(store.blobs)) == 1


def test_tags_resolve_untag_and_remove(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cfg, _ = store.put_bytes(b"{}")
    manifest = json.dumps({"schemaVersion": 2, "config": {"mediaType": "application/vnd.kitops.modelkit.config.v1+json",
                           "digest": cfg, "size": 2}, "layers": []}).encode()
    desc = store.put_manifest("localhost/m", manifest, ["v1", "v2"])
    assert store.resolve(parse_reference("m:v1")) == desc
    assert store.resolve(parse_reference(desc.digest)) == desc  # bare digest finds it in any repo
    store.tag(parse_reference("m:v1"), parse_reference("other/m:prod"))
    assert store.tags_of("localhost/other/m", desc.digest) == ["prod"]
    store.remove(parse_reference("m:v1"))
    assert store.tags_of("localhost/m", desc.digest) == ["v2"]
    store.remove(parse_reference(f"m@{desc.digest}"))
    with pytest.raises(NotFoundError):
        store.resolve(parse_reference("m:v2"))
    assert store.has_blob(cfg), "still referenced from other/m"
    store.remove(parse_reference("other/m:prod"), force=True)
    assert not store.has_blob(cfg) and store.list_repos() == []
    assert store.verify().ok


def _write_context(root: Path, files: int, size: int) -> None:
    (root / "data").mkdir(parents=True)
    for i in range(files):
        (root / "data" / f"f{i:04}.bin").write_bytes(os.urandom(size))
    (root / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: c}\ndatasets:\n  - {name: d, path: data}\n")


PACK_SCRIPT = textwrap.dedent("""
    import sys
    from kitops_flows.api import KitOpsClient
    from kitops_flows.store import LocalStore
    kit = KitOpsClient(store=LocalStore(sys.argv[1]))
    for i in range(int(sys.argv[4])):
        kit.pack(sys.argv[2], reference=f"{sys.argv[3]}:v{i}", record_lineage=False)
""")


def test_concurrent_packers_share_one_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for name in ("a", "b"):
        _write_context(tmp_path / name, files=20, size=2048)
    procs = [
        subprocess.Popen([sys.executable, "-c", PACK_SCRIPT, str(home), str(tmp_path / n), f"repo/{n}", "5"])
        for n in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    store = LocalStore(home)
    assert store.list_repos() == ["localhost/repo/a", "localhost/repo/b"]
    for n in ("a", "b"):
        tags = {t for e in store.list_entries(f"localhost/repo/{n}") for t in e.tags}
        assert tags == {f"v{i}" for i in range(5)}, "no writer may lose another's tags"
    assert store.verify().ok


def test_sigkill_during_pack_leaves_a_consistent_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ctx = tmp_path / "ctx"
    _write_context(ctx, files=40, size=1 << 20)
    proc = subprocess.Popen([sys.executable, "-c", PACK_SCRIPT, str(home), str(ctx), "repo/k", "50"])
    deadline = time.monotonic() + 60
    store = LocalStore(home)
    while time.monotonic() < deadline and not store.list_repos():
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    report = store.verify()
    assert report.ok, report.problems
    # re-running completes
    subprocess.run([sys.executable, "-c", PACK_SCRIPT, str(home), str(ctx), "repo/k", "1"], check=True, timeout=120)
    assert store.verify().ok


def test_gc_removes_only_what_no_modelkit_references(tmp_path: Path) -> None:
    from kitops_flows.api import KitOpsClient

    _write_context(tmp_path / "ctx", files=3, size=1000)
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    kept = kit.pack(tmp_path / "ctx", reference="repo/k:v1", record_lineage=False)
    orphan, _ = kit.store.put_bytes(b"an orphan blob nothing references")
    report = kit.store.gc()
    assert (report.blobs_removed, report.leftovers_removed) == (1, 0)
    assert not kit.store.has_blob(orphan)
    assert all(kit.store.has_blob(layer.digest) for layer in kept.layers)
    assert kit.store.verify().ok
    assert kit.store.gc().blobs_removed == 0  # nothing left to collect
