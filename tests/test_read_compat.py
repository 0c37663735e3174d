"""Reading what other kit versions wrote: old manifests (no mediaType/artifactType, "layers":null),
Kitfiles without layer digests (legacy positional matching), ModelPack artifacts with and without
the Kitfile annotation, and media types we must reject clearly."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.digests import sha256_digest
from kitops_flows.manifest import ManifestError
from kitops_flows.store import LocalStore


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        dirs = sorted({str(Path(n).parent) for n in files} - {"."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _store_artifact(store: LocalStore, repo: str, manifest: dict, blobs: list[bytes], tag: str = "v1") -> None:
    for blob in blobs:
        store.put_bytes(blob)
    store.put_manifest(repo, json.dumps(manifest, separators=(",", ":")).encode(), [tag])


def _desc(media_type: str, data: bytes, **extra: object) -> dict:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


def test_old_kit_manifest_without_layer_digests_unpacks_positionally(tmp_path: Path) -> None:
    """kit < 0.5: no LayerInfo in the config, manifest without mediaType/artifactType; gzip layers."""
    import gzip

    model = gzip.compress(_tar({"weights/model.bin": b"w" * 100}))
    data = gzip.compress(_tar({"data/train.csv": b"a,b\n1,2\n"}))
    config = json.dumps({"manifestVersion": "1.0.0", "package": {"name": "old"},
                         "model": {"name": "m", "path": "weights"},
                         "datasets": [{"name": "train", "path": "data"}]}).encode()
    manifest = {"schemaVersion": 2,
                "config": _desc("application/vnd.kitops.modelkit.config.v1+json", config),
                "layers": [_desc("application/vnd.kitops.modelkit.model.v1.tar+gzip", model),
                           _desc("application/vnd.kitops.modelkit.dataset.v1.tar+gzip", data)],
                "annotations": {"ml.kitops.modelkit.cli-version": "0.4.0"}}
    store = LocalStore(tmp_path / "home")
    _store_artifact(store, "localhost/old/model", manifest, [model, data, config])
    kit = KitOpsClient(store=store)
    out = tmp_path / "out"
    kit.unpack("old/model:v1", out, filters=["datasets"])
    assert (out / "data/train.csv").read_bytes() == b"a,b\n1,2\n" and not (out / "weights").exists()
    assert kit.inspect("old/model:v1")["cliVersion"] == "0.4.0"
    assert [r.model_name for r in kit.list()] == ["old"]


def test_empty_kitfile_with_null_layers(tmp_path: Path) -> None:
    config = b'{"manifestVersion":"1.0.0","package":{"name":"empty"}}'
    manifest = {"schemaVersion": 2, "config": _desc("application/vnd.kitops.modelkit.config.v1+json", config),
                "layers": None}
    store = LocalStore(tmp_path / "home")
    _store_artifact(store, "localhost/empty", manifest, [config])
    kit = KitOpsClient(store=store)
    result = kit.unpack("empty:v1", tmp_path / "out")
    assert result.layers == () and (tmp_path / "out" / "Kitfile").read_text().startswith("manifestVersion: 1.0.0")
    assert kit.verify().ok


def _modelpack(with_kitfile: bool) -> tuple[dict, list[bytes]]:
    weights = _tar({"model/w.safetensors": b"\x00" * 64})
    doc = _tar({"README.md": b"# hi\n"})
    kitfile = {"manifestVersion": "1.0.0", "package": {"name": "mp"},
               "model": {"path": "model", "digest": sha256_digest(weights), "diffId": sha256_digest(weights)},
               "docs": [{"path": "README.md", "digest": sha256_digest(doc), "diffId": sha256_digest(doc)}]}
    config = json.dumps({"descriptor": {"name": "mp"}, "modelfs": {"type": "layers", "diffIds": [
        sha256_digest(weights), sha256_digest(doc)]}, "config": {}}).encode()
    annotations = {"ml.kitops.modelkit.kitfile": json.dumps(kitfile)} if with_kitfile else {}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": "application/vnd.cncf.model.manifest.v1+json",
                "config": _desc("application/vnd.cncf.model.config.v1+json", config),
                "layers": [_desc("application/vnd.cncf.model.weight.v1.tar", weights,
                                 annotations={"org.cncf.model.filepath": "model"}),
                           _desc("application/vnd.cncf.model.doc.v1.tar", doc,
                                 annotations={"org.cncf.model.filepath": "README.md"})],
                "annotations": annotations}
    return manifest, [weights, doc, config]


@pytest.mark.parametrize("with_kitfile", [True, False])
def test_modelpack_artifacts(tmp_path: Path, with_kitfile: bool) -> None:
    manifest, blobs = _modelpack(with_kitfile)
    store = LocalStore(tmp_path / "home")
    _store_artifact(store, "localhost/mp", manifest, blobs)
    kit = KitOpsClient(store=store)
    out = tmp_path / "out"
    kit.unpack("mp:v1", out)
    assert (out / "model/w.safetensors").read_bytes() == b"\x00" * 64
    assert (out / "README.md").read_bytes() == b"# hi\n"
    # kit writes no Kitfile when it had to synthesise one from layer annotations
    assert (out / "Kitfile").exists() is with_kitfile


def test_non_modelkit_artifact_is_refused_by_name(tmp_path: Path) -> None:
    config = b"{}"
    layer = _tar({"x": b"1"})
    manifest = {"schemaVersion": 2, "config": _desc("application/vnd.oci.image.config.v1+json", config),
                "layers": [_desc("application/vnd.oci.image.layer.v1.tar", layer)]}
    store = LocalStore(tmp_path / "home")
    _store_artifact(store, "localhost/image", manifest, [config, layer])
    with pytest.raises(ManifestError, match="is not a modelkit"):
        KitOpsClient(store=store).unpack("image:v1", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_layer_media_type_is_named(tmp_path: Path) -> None:
    layer = _tar({"m": b"1"})
    config = json.dumps({"manifestVersion": "1.0.0", "package": {}, "model": {"path": "m",
                         "digest": sha256_digest(layer), "diffId": sha256_digest(layer)}}).encode()
    manifest = {"schemaVersion": 2, "config": _desc("application/vnd.kitops.modelkit.config.v1+json", config),
                "layers": [_desc("application/vnd.kitops.modelkit.weights.v1.tar", layer)]}
    store = LocalStore(tmp_path / "home")
    _store_artifact(store, "localhost/odd", manifest, [config, layer])
    with pytest.raises(ManifestError, match="invalid base type weights"):
        KitOpsClient(store=store).unpack("odd:v1", tmp_path / "out")
