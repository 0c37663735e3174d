"""Reading what kit 1.17 writes, built by hand from the spec (kit-features-1.17.md §4, §6.2): raw layers (Kit raw,
raw+zstd, ModelPack raw) and zstd tar layers, pushed to the real registry over plain HTTP and read through pull,
unpack, pull-one-layer, diff and lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kitspec import kit_modelkit, upload

from kitops_flows.api import KitOpsClient
from kitops_flows.diff import fetch_pair, render_diff
from kitops_flows.lineage import graph
from kitops_flows.store import LocalStore

LAYERS = {"model": ("weights/model.bin", b"M" * 4096), "dataset": ("data/train.csv", b"a,b\n1,2\n"),
          "docs": ("README.md", b"# read me\n")}


@pytest.mark.parametrize(("name", "options"), [
    ("kit-raw", {"layer_format": "raw"}),
    ("kit-raw-zstd", {"layer_format": "raw", "compression": "zstd"}),
    ("mp-raw", {"layer_format": "raw", "modelpack": True}),
    ("kit-zstd", {"compression": "zstd"}),
    ("mp-zstd-no-kitfile", {"compression": "zstd", "modelpack": True, "kitfile_annotation": False}),
])
def test_every_read_path(registry, tmp_path: Path, name: str, options: dict,  # noqa: ANN001
                         caplog: pytest.LogCaptureFixture) -> None:
    art = kit_modelkit(LAYERS, name=name, **options)
    ref = f"{registry.host}/read117/{name}:v1"
    upload(registry.host, f"read117/{name}", "v1", art)
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"), plain_http=True)

    one = kit.pull_layer(ref, ["datasets"], tmp_path / "one")  # only that layer is fetched
    assert (tmp_path / "one/data/train.csv").read_bytes() == b"a,b\n1,2\n" and one.paths
    model_digest = json.loads(art.manifest)["layers"][0]["digest"]
    assert not kit.store.has_blob(model_digest)
    pulled = kit.pull(ref)
    assert pulled.digest == art.digest and kit.store.verify().ok
    kit.unpack(ref, tmp_path / "all")
    for path, content in LAYERS.values():
        assert (tmp_path / "all" / path).read_bytes() == content, path
    assert (tmp_path / "all/Kitfile").exists() == options.get("kitfile_annotation", True)
    a, b = fetch_pair(kit, f"local://{ref}", f"remote://{ref}")
    assert render_diff(a, b) == "ModelKits are identical\n"
    lineage = graph(kit, ref, "up", None)
    assert len(lineage.nodes) == 1 and art.digest in str(list(lineage.nodes))  # no records: a lone node
    assert "unknown Kitfile field" not in caplog.text  # the spec-built config is understood, field by field


def test_raw_layers_keep_the_file_metadata_annotation(registry, tmp_path: Path) -> None:  # noqa: ANN001
    art = kit_modelkit({"model": ("model.bin", b"x" * 10)}, layer_format="raw")
    upload(registry.host, "read117/meta", "v1", art)
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"), plain_http=True)
    manifest = kit.inspect(f"{registry.host}/read117/meta:v1", remote=True)["manifest"]
    meta = json.loads(manifest["layers"][0]["annotations"]["org.cncf.model.file.metadata+json"])
    assert (meta["name"], meta["size"], meta["typeflag"]) == ("model.bin", 10, 48)
    kit.unpack(f"{registry.host}/read117/meta:v1", tmp_path / "out")
    assert (tmp_path / "out/model.bin").read_bytes() == b"x" * 10
