"""Pack -> store -> unpack round trips for kit's pack/unpack scenarios (kit testing/testdata/pack-unpack),
re-created here: every listed file comes back byte-identical, ignored files never enter a layer,
for every compression kit supports."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import PackError, UnpackError
from kitops_flows.store import LocalStore


@dataclass
class Scenario:
    name: str
    kitfile: str
    files: list[str]
    ignored: list[str] = field(default_factory=list)
    kitignore: str | None = None


SCENARIOS = [
    Scenario(
        "basic",
        """manifestVersion: 1.0.0
package: {name: basic}
model: {name: m, path: model.bin}
datasets:
  - {name: train, path: data/train.csv}
code:
  - {path: src}
docs:
  - {path: README.md}
""",
        ["model.bin", "data/train.csv", "src/train.py", "src/util/io.py", "README.md"],
        ["data/unlisted.csv", "notes.txt"],
    ),
    Scenario(
        "path-formats",
        """manifestVersion: 1.0.0
package: {name: paths}
datasets:
  - {name: dot, path: ./p1}
  - {name: plain, path: p2}
  - {name: slash, path: p3/}
  - {name: file, path: p4/one.txt}
  - {name: deep, path: p5/a/b/}
  - {name: subdirs, path: p6/}
  - {name: repeated, path: p7/p7}
""",
        ["p1/x.txt", "p1/y.txt", "p2/x", "p3/x.txt", "p4/one.txt", "p5/a/b/x.txt", "p6/s1/x.txt",
         "p6/s2/y.txt", "p6/z.txt", "p7/p7/p7/p7/deep.txt"],
        ["p4/other.txt", "p5/other.txt", "p5/sub/other.txt", "p5/a/sub/other.txt", "unlisted/x.txt"],
    ),
    Scenario(
        "intersecting-paths",
        """manifestVersion: 1.0.0
package: {name: intersect}
model: {name: m, path: main}
datasets:
  - {name: d, path: main/sub}
code:
  - {path: .}
""",
        ["main/m1.txt", "main/inner/m2.txt", "main/sub/d1.txt", "main/sub/deeper/d2.txt", "other/c1.txt", "root.txt"],
    ),
    Scenario(
        "kitignore",
        """manifestVersion: 1.0.0
package: {name: ignores}
model: {name: m, path: .}
""",
        ["d2/keep.txt", "d2/dB/keep.txt", "keep.txt", "d3/keep.txt", "d4/dA/kept", "d4/ignored-file.txt",
         "d5/not-ignored.md"],
        ["d1/x.txt", "d2/dA/x.txt", "root-ignored.txt", "d3/drop.txt", "d4/dA/ignored-file.txt", "top.md",
         "d2/x.md", "d2/ignored/x.txt", "ignored-a.txt"],
        kitignore="""# whole dir
d1
d2/dA
root-ignored.txt
d3/drop.txt
d4/*/ignored-file.txt
**/*.md
**/ignored
ignored-?.txt
!d5/not-ignored.md
""",
    ),
    Scenario(
        "model-parts",
        """manifestVersion: 1.0.0
package: {name: parts}
model:
  name: m
  path: weights
  parts:
    - {name: tok, path: tokenizer.json, type: tokenizer}
    - {name: inner, path: weights/config.json}
""",
        ["weights/model.safetensors", "weights/config.json", "tokenizer.json"],
    ),
    Scenario(
        "path-is-context-dir",
        """manifestVersion: 1.0.0
package: {name: everything}
code:
  - {path: .}
""",
        ["a.txt", "b/c.txt", ".hidden/d.txt"],
    ),
    Scenario("empty-kitfile", "manifestVersion: 1.0.0\npackage: {name: empty}\n", [], ["stray.txt"]),
]


def _make_context(root: Path, scenario: Scenario) -> None:
    for rel in scenario.files + scenario.ignored:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"content of {rel}\n".encode() * (1 + len(rel)))
    (root / "Kitfile").write_text(scenario.kitfile)
    if scenario.kitignore is not None:
        (root / ".kitignore").write_text(scenario.kitignore)


@pytest.mark.parametrize("compression", ["none", "gzip", "gzip-fastest", "zstd"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_round_trip(tmp_path: Path, scenario: Scenario, compression: str) -> None:
    ctx, out = tmp_path / "ctx", tmp_path / "out"
    _make_context(ctx, scenario)
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    desc = kit.pack(ctx, reference=f"test/{scenario.name}:v1", compression=compression, record_lineage=False)
    kit.unpack(desc.reference, out)
    for rel in scenario.files:
        assert (out / rel).read_bytes() == (ctx / rel).read_bytes(), rel
    for rel in scenario.ignored:
        assert not (out / rel).exists(), f"{rel} should not have been packed"
    assert (out / "Kitfile").is_file()
    assert kit.verify().ok


def test_same_files_same_digests_regardless_of_mtime_and_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    scenario = SCENARIOS[0]
    digests = []
    for i, umask in enumerate((0o022, 0o077)):
        ctx = tmp_path / f"ctx{i}" / "deeper" if i else tmp_path / f"ctx{i}"
        old = os.umask(umask)
        try:
            _make_context(ctx, scenario)
        finally:
            os.umask(old)
        for p in ctx.rglob("*"):  # normalise permission bits (they are part of the tar), vary mtimes
            p.chmod(0o755 if p.is_dir() else 0o644)
            os.utime(p, (1_000_000 + i * 99_999, 1_000_000 + i * 99_999))
        kit = KitOpsClient(store=LocalStore(tmp_path / f"home{i}"))
        digests.append(kit.pack(ctx, reference="r/m:v1", record_lineage=False).digest)
    assert digests[0] == digests[1]


def test_unpack_filters_select_only_named_layers(tmp_path: Path) -> None:
    ctx, out = tmp_path / "ctx", tmp_path / "out"
    _make_context(ctx, SCENARIOS[0])
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    kit.pack(ctx, reference="f/m:v1", record_lineage=False)
    result = kit.unpack("f/m:v1", out, filters=["datasets:train"])
    assert [p.entry.kind for p in result.layers] == ["dataset"]
    assert (out / "data/train.csv").exists()
    assert not (out / "model.bin").exists() and not (out / "Kitfile").exists()
    kit.unpack("f/m:v1", out, filters=["model,kitfile"])
    assert (out / "model.bin").exists() and (out / "Kitfile").exists()


def test_unpack_conflicts_leave_destination_untouched(tmp_path: Path) -> None:
    ctx, out = tmp_path / "ctx", tmp_path / "out"
    _make_context(ctx, SCENARIOS[0])
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    kit.pack(ctx, reference="c/m:v1", record_lineage=False)
    out.mkdir()
    (out / "src").mkdir()
    (out / "src" / "train.py").write_text("mine")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    with pytest.raises(UnpackError, match="already exists"):
        kit.unpack("c/m:v1", out)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert (out / "src" / "train.py").read_text() == "mine"
    kit.unpack("c/m:v1", out, existing="ignore")
    assert (out / "src" / "train.py").read_text() == "mine" and (out / "model.bin").exists()
    kit.unpack("c/m:v1", out, existing="overwrite")
    assert (out / "src" / "train.py").read_bytes() == (ctx / "src" / "train.py").read_bytes()
    assert not [p for p in tmp_path.iterdir() if ".unpack-" in p.name], "staging dirs must be cleaned up"


def test_corrupted_blob_is_never_extracted(tmp_path: Path) -> None:
    ctx, out = tmp_path / "ctx", tmp_path / "out"
    _make_context(ctx, SCENARIOS[0])
    store = LocalStore(tmp_path / "home")
    kit = KitOpsClient(store=store)
    desc = kit.pack(ctx, reference="x/m:v1", record_lineage=False)
    model_blob = store.blob_path(desc.layer("model").digest)
    data = bytearray(model_blob.read_bytes())
    data[600] ^= 0xFF  # flip a byte inside the file content
    model_blob.write_bytes(bytes(data))
    with pytest.raises(Exception, match="hashes to|corrupted"):
        kit.unpack("x/m:v1", out)
    assert not out.exists()
    report = kit.verify()
    assert not report.ok and any("corrupted" in p for p in report.problems)


def test_pack_missing_path_names_it(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel: {path: nowhere.bin}\n")
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    with pytest.raises(PackError, match="nowhere.bin"):
        kit.pack(ctx, reference="m/x:v1", record_lineage=False)
    assert kit.store.list_repos() == []


def test_store_layout_is_kits(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    _make_context(ctx, SCENARIOS[0])
    store = LocalStore(tmp_path / "home")
    desc = KitOpsClient(store=store).pack(ctx, reference="mymodel:v1", record_lineage=False)
    storage = tmp_path / "home" / "storage"
    assert (storage / "oci-layout").read_text() == '{"imageLayoutVersion":"1.0.0"}'
    tags = (storage / "bG9jYWxob3N0L215bW9kZWw=-tags.json").read_text()
    assert tags.startswith('{"v1":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:')
    assert desc.digest in (storage / "bG9jYWxob3N0L215bW9kZWw=-index.json").read_text()
    assert desc.digest in (storage / "index.json").read_text()
    for layer in desc.layers:
        assert (storage / "blobs" / "sha256" / layer.digest.split(":")[1]).is_file()
