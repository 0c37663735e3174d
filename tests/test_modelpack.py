"""``pack --use-model-pack`` (kit-features-1.17.md §4): ModelPack output with kit's media types, config and Kitfile
annotation, read back through unpack/info/list/diff locally and after a push/pull through the real registry;
ModelPacks built by hand from the spec (with and without the Kitfile annotation, zstd) read through every path."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from kitspec import kit_modelkit, upload

from kitops_flows.api import KitOpsClient
from kitops_flows.cli import main
from kitops_flows.errors import PackError
from kitops_flows.store import LocalStore

KITFILE = """manifestVersion: 1.0.0
package: {name: mymodel, version: 1.0.0, description: a test, license: MIT, authors: [Jane, Joe]}
model:
  name: mymodel
  path: model.gguf
  format: gguf
  license: Apache-2.0
  parts: [{path: tokenizer.json}]
code: [{path: src, license: MIT}]
datasets: [{name: train, path: data/train.csv, license: CC-BY-4.0}]
docs: [{path: README.md}]
prompts: [{name: system, path: prompts}]
"""


def _context(root: Path) -> Path:
    for name, data in {"model.gguf": b"w" * 3000, "tokenizer.json": b"{}", "src/app.py": b"print(1)\n",
                       "data/train.csv": b"a,b\n1,2\n", "README.md": b"# m\n", "prompts/system.md": b"be nice\n"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "Kitfile").write_text(KITFILE)
    return root


def test_modelpack_output_matches_kits_format(tmp_path: Path) -> None:
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    ctx = _context(tmp_path / "ctx")
    mp = kit.pack(ctx, reference="team/mp:v1", use_model_pack=True, record_lineage=False)
    plain = kit.pack(ctx, reference="team/kit:v1", record_lineage=False)
    manifest = json.loads(kit.store.read_blob(mp.digest))
    assert manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    assert [l["mediaType"] for l in manifest["layers"]] == [
        "application/vnd.cncf.model.weight.v1.tar", "application/vnd.cncf.model.weight.config.v1.tar",
        "application/vnd.cncf.model.code.v1.tar", "application/vnd.cncf.model.dataset.v1.tar",
        "application/vnd.cncf.model.doc.v1.tar", "application/vnd.cncf.model.code.v1.tar"]
    assert manifest["layers"][-1]["annotations"] == {"ml.kitops.modelkit.layer-subtype": "prompt",
                                                     "org.cncf.model.filepath": "prompts"}
    kit_manifest = json.loads(kit.store.read_blob(plain.digest))
    # same layer bytes in both formats, so the Kitfile annotation is byte for byte the kit-format config blob
    assert [l["digest"] for l in manifest["layers"]] == [l["digest"] for l in kit_manifest["layers"]]
    assert manifest["annotations"]["ml.kitops.modelkit.kitfile"].encode() == kit.store.read_blob(
        kit_manifest["config"]["digest"])
    config_bytes = kit.store.read_blob(manifest["config"]["digest"])
    config = json.loads(config_bytes)
    assert list(config) == ["descriptor", "modelfs", "config"]
    assert list(config["descriptor"]) == ["createdAt", "authors", "name", "version", "licenses", "title", "description"]
    assert config["descriptor"]["licenses"] == ["Apache-2.0", "CC-BY-4.0", "MIT"]
    assert (config["descriptor"]["name"], config["descriptor"]["title"]) == ("mymodel", "mymodel")
    assert config["modelfs"] == {"type": "layers", "diffIds": [l["digest"] for l in manifest["layers"]]}
    assert config["config"] == {"format": "gguf"}
    assert b"\n" not in config_bytes and b": " not in config_bytes  # compact Go JSON

    out = tmp_path / "out"
    kit.unpack("team/mp:v1", out)
    assert (out / "model.gguf").read_bytes() == b"w" * 3000 and (out / "prompts/system.md").exists()
    assert (out / "Kitfile").exists(), "the Kitfile comes from the annotation"
    assert kit.info("team/mp:v1").package.name == "mymodel"
    assert {e.digest for e in kit.list()} == {mp.digest, plain.digest}


def test_modelpack_refusals(tmp_path: Path) -> None:
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    ctx = _context(tmp_path / "ctx")
    with pytest.raises(PackError, match="compression for raw layers is not supported for ModelPack"):
        kit.pack(ctx, use_model_pack=True, layer_format="raw", compression="gzip", record_lineage=False)
    (ctx / "tool.mcpb").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    (ctx / "Kitfile").write_text(KITFILE + "mcpServers: [{name: tool, path: tool.mcpb}]\n")
    with pytest.raises(PackError, match="mcpServers are not supported when packing in modelpack format"):
        kit.pack(ctx, use_model_pack=True, record_lineage=False)
    assert kit.list() == [], "nothing half-written"


def _saved(stderr: str) -> str:
    """The digest of pack's one ``Model saved: <digest>`` line."""
    [digest] = re.findall(r"^Model saved: (sha256:[0-9a-f]{64})$", stderr, re.MULTILINE)
    return digest


def test_an_unchanged_modelpack_repack_is_the_same_modelkit(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """createdAt is pack time (as kit writes it), but the identity rule holds: same content, same ModelKit."""
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    home, ctx = str(tmp_path / "home"), _context(tmp_path / "ctx")
    digests = []
    for _ in range(2):
        assert main(["--config", home, "pack", str(ctx), "-t", "team/mp:nightly", "--use-model-pack"]) == 0
        digests.append(_saved(capsys.readouterr().err))
        time.sleep(1.1)  # createdAt would differ by a second
    assert digests[0] == digests[1]
    store = LocalStore(home)
    manifest = json.loads(store.read_blob(digests[0]))
    config = json.loads(store.read_blob(manifest["config"]["digest"]))
    assert config["descriptor"]["createdAt"], "a fresh ModelPack pack still writes createdAt"
    assert [e.descriptor.digest for e in store.list_entries("localhost/team/mp")] == [digests[0]]
    (ctx / "data/train.csv").write_bytes(b"a,b\n1,3\n")  # one changed byte
    assert main(["--config", home, "pack", str(ctx), "-t", "team/mp:nightly", "--use-model-pack"]) == 0
    assert _saved(capsys.readouterr().err) != digests[0]


def test_an_unchanged_modelpack_repack_on_an_empty_worker_reuses_the_registrys(registry, tmp_path: Path,  # noqa: ANN001
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    ref = f"{registry.host}/mp/rerun:nightly"
    first = KitOpsClient(store=LocalStore(tmp_path / "w1"), plain_http=True).pack(
        _context(tmp_path / "c1"), reference=ref, use_model_pack=True, push=True, record_lineage=False)
    time.sleep(1.1)
    worker = KitOpsClient(store=LocalStore(tmp_path / "w2"), plain_http=True)  # empty store, fresh checkout
    again = worker.pack(_context(tmp_path / "c2"), reference=ref, use_model_pack=True, record_lineage=False)
    assert (again.digest, again.created) == (first.digest, first.created)
    assert worker.store.verify().ok, "the registry's config was fetched: the reused ModelKit is complete locally"
    result = worker.push_result(ref)
    assert (result.new_to_repository, result.moved_tags, result.blobs_uploaded) == (False, (), 0)
    assert (worker.unpack(ref, tmp_path / "out", filters=["model"]).dest / "model.gguf").read_bytes() == b"w" * 3000


def test_cli_pack_push_pull_unpack_through_the_registry(registry, tmp_path: Path,  # noqa: ANN001
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"{registry.host}/mp/cli:v1"
    home = str(tmp_path / "a")
    assert main(["--config", home, "pack", str(_context(tmp_path / "ctx")), "-t", ref, "--use-model-pack",
                 "--compression", "zstd", "--push", "--plain-http"]) == 0
    other = str(tmp_path / "b")
    assert main(["--config", other, "pull", ref, "--plain-http"]) == 0
    assert main(["--config", other, "unpack", ref, "-d", str(tmp_path / "out"), "--filter", "datasets"]) == 0
    assert (tmp_path / "out/data/train.csv").read_bytes() == b"a,b\n1,2\n"
    manifest = json.loads(LocalStore(other).read_blob(KitOpsClient(store=LocalStore(other)).describe(ref).digest))
    assert manifest["layers"][0]["mediaType"] == "application/vnd.cncf.model.weight.v1.tar+zstd"
    capsys.readouterr()
    assert main(["--config", other, "list", "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["modelName"] == "mymodel"


@pytest.mark.parametrize("with_kitfile", [True, False])
def test_spec_built_modelpack_through_every_read_path(registry, tmp_path: Path, with_kitfile: bool,  # noqa: ANN001
                                                      caplog: pytest.LogCaptureFixture) -> None:
    art = kit_modelkit({"model": ("w.bin", b"W" * 100), "dataset": ("train.csv", b"x,y\n"),
                        "docs": ("README.md", b"hi\n")}, modelpack=True, kitfile_annotation=with_kitfile,
                       compression="zstd")
    repo = f"mp/spec-{str(with_kitfile).lower()}"
    upload(registry.host, repo, "v1", art)
    ref = f"{registry.host}/{repo}:v1"
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"), plain_http=True)
    assert kit.resolve(ref).digest == art.digest
    kf = kit.info(ref, remote=True)
    assert kf.model is not None and kf.model.path == "w.bin" and [d.path for d in kf.datasets] == ["train.csv"]
    layer = kit.pull_layer(ref, ["datasets"], tmp_path / "layer")
    assert (layer.dest / "train.csv").read_bytes() == b"x,y\n" and not (tmp_path / "layer/w.bin").exists()
    assert kit.pull(ref).digest == art.digest
    out = kit.unpack(ref, tmp_path / "out")
    assert (tmp_path / "out/w.bin").read_bytes() == b"W" * 100 and (tmp_path / "out/README.md").exists()
    assert (out.dest / "Kitfile").exists() == with_kitfile, "no Kitfile is written when it had to be synthesised"
