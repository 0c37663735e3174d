"""KitOpsClient against the real registry: push/pull round trips as kit does them, the shared store
after a pull, parents referenced by model.path, immutable tags, and the CLI over the same calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import DigestMismatchError, TagExistsError
from kitops_flows.store import LocalStore


def _context(root: Path, kitfile: str, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "Kitfile").write_text(kitfile)
    return root


def test_push_pull_lands_in_the_store_as_kit_leaves_it(registry, tmp_path: Path) -> None:  # noqa: ANN001
    src = KitOpsClient(store=LocalStore(tmp_path / "a"), plain_http=True)
    ctx = _context(tmp_path / "ctx", "manifestVersion: 1.0.0\npackage: {name: rt}\nmodel: {path: m.bin}\n"
                   "datasets:\n  - {name: d, path: data}\n", {"m.bin": b"m" * 5000, "data/x.csv": b"1,2\n"})
    ref = f"{registry.host}/api/rt:v1"
    packed = src.pack(ctx, reference=ref, record_lineage=False)
    pushed = src.push(ref)
    assert pushed.digest == packed.digest
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         check=True, capture_output=True).stdout
    assert raw == src.store.read_blob(packed.digest)  # the registry holds our exact manifest bytes

    dst = KitOpsClient(store=LocalStore(tmp_path / "b"), plain_http=True)
    pulled = dst.pull(ref)
    assert pulled.digest == packed.digest and pulled.tags == ("v1",)
    assert dst.store.verify().ok
    assert [e.repo_path for e in dst.store.list_entries()] == [f"{registry.host}/api/rt"]
    assert not list(dst.store.ingest_dir.iterdir()), "no leftovers in ingest/"
    assert dst.pull(ref).digest == packed.digest  # second pull: everything cached
    out = tmp_path / "out"
    dst.unpack(ref, out)
    assert (out / "m.bin").read_bytes() == b"m" * 5000 and (out / "data/x.csv").read_bytes() == b"1,2\n"


def test_pull_follows_model_references_to_parents(registry, tmp_path: Path) -> None:  # noqa: ANN001
    kit = KitOpsClient(store=LocalStore(tmp_path / "a"), plain_http=True)
    base_ref = f"{registry.host}/api/base:v1"
    kit.pack(_context(tmp_path / "base", "manifestVersion: 1.0.0\nmodel: {path: w.bin}\n", {"w.bin": b"w" * 999}),
             reference=base_ref, record_lineage=False)
    kit.push(base_ref)
    child_ref = f"{registry.host}/api/tuned:v1"
    child = kit.pack(_context(tmp_path / "child", f"manifestVersion: 1.0.0\nmodel:\n  path: {base_ref}\n"
                              "  parts:\n    - {path: adapter.bin}\n", {"adapter.bin": b"a" * 10}),
                     reference=child_ref, record_lineage=False)
    assert [l.kind for l in child.layers] == ["modelpart"]  # the parent's weights are referenced, not copied
    kit.push(child_ref)

    fresh = KitOpsClient(store=LocalStore(tmp_path / "b"), plain_http=True)
    fresh.pull(child_ref)
    repos = {e.repo_path for e in fresh.store.list_entries()}
    assert repos == {f"{registry.host}/api/base", f"{registry.host}/api/tuned"}


def test_immutable_tags_refuse_to_move(registry, tmp_path: Path) -> None:  # noqa: ANN001
    kit = KitOpsClient(store=LocalStore(tmp_path / "a"), plain_http=True, immutable_tags=True)
    ref = f"{registry.host}/api/immutable:v1"
    first = kit.pack(_context(tmp_path / "1", "manifestVersion: 1.0.0\nmodel: {path: m}\n", {"m": b"1"}),
                     reference=ref, record_lineage=False)
    kit.push(ref)
    kit.push(ref)  # same digest again: fine
    kit.pack(_context(tmp_path / "2", "manifestVersion: 1.0.0\nmodel: {path: m}\n", {"m": b"2"}),
             reference=ref, record_lineage=False)
    with pytest.raises(TagExistsError, match="refusing to move"):
        kit.push(ref)
    assert kit.remote_digest(ref) == first.digest


def test_cli_push_pull_unpack_and_errors(registry, tmp_path: Path) -> None:  # noqa: ANN001
    def cli(*args: str, home: str = "a") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kitops_flows.cli", "--config", str(tmp_path / home), *args],
                              capture_output=True, text=True, timeout=120)

    ctx = _context(tmp_path / "ctx", "manifestVersion: 1.0.0\npackage: {name: cli}\nmodel: {path: m.bin}\n",
                   {"m.bin": b"x" * 100})
    ref = f"{registry.host}/api/cli:v1"
    assert cli("pack", str(ctx), "-t", ref).returncode == 0
    assert cli("push", ref, "--plain-http").returncode == 0
    assert cli("pull", ref, "--plain-http", home="b").returncode == 0
    listed = json.loads(cli("list", "--format", "json", home="b").stdout)
    assert [(r["repo"], r["tags"], r["modelName"]) for r in listed] == [(f"{registry.host}/api/cli", ["v1"], "cli")]
    inspected = json.loads(cli("inspect", ref, home="b").stdout)
    assert set(inspected) == {"digest", "cliVersion", "kitfile", "manifest"}
    done = cli("unpack", ref, "-d", str(tmp_path / "out"), "--filter", "model", home="b")
    assert done.returncode == 0 and (tmp_path / "out" / "m.bin").read_bytes() == b"x" * 100
    bad = cli("pull", f"{registry.host}/api/Nope:v1", "--plain-http")
    assert bad.returncode == 1 and bad.stderr.startswith("Error: repository (api/Nope) name must be lowercase")
    assert "Traceback" not in bad.stderr
    missing = cli("pull", f"{registry.host}/api/missing:v1", "--plain-http")
    assert missing.returncode == 1 and "not found" in missing.stderr and "Traceback" not in missing.stderr


def test_blob_corrupted_in_the_registry_is_caught_on_pull(registry, tmp_path: Path) -> None:  # noqa: ANN001
    src = KitOpsClient(store=LocalStore(tmp_path / "a"), plain_http=True)
    ref = f"{registry.host}/api/rot:v1"
    packed = src.pack(_context(tmp_path / "ctx", "manifestVersion: 1.0.0\nmodel: {path: m.bin}\n",
                               {"m.bin": b"m" * 70_000}), reference=ref, record_lineage=False)
    src.push(ref)
    layer = packed.layers[0].digest
    stored = registry.blob_path(layer)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped bit: only the digest can tell
    stored.write_bytes(bytes(data))

    dst = KitOpsClient(store=LocalStore(tmp_path / "b"), plain_http=True)
    with pytest.raises(DigestMismatchError) as err:
        dst.pull(ref)
    assert layer in str(err.value)
    # nothing half-pulled: no tag, no corrupted blob, no temp files, and the store still verifies
    assert not dst.store.list_entries()
    assert not dst.store.has_blob(layer)
    assert not list(dst.store.ingest_dir.iterdir())
    assert dst.store.verify().ok
    with pytest.raises(DigestMismatchError):
        dst.unpack(ref, tmp_path / "out", include_remote=True)
    assert not (tmp_path / "out").exists()
