"""Interop with oras-py (the Python OCI client, a test dependency only) on the real docker-registry.

- oras-py pulls the manifest, config and every layer blob of a ModelKit we packed and pushed; the
  bytes hash to the digests, and the dataset layer's tar holds the files we packed.
- we pull and unpack an artifact oras-py pushed with kit's media types (config and a tar layer).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.kitfile import DatasetEntry, Kitfile, Package
from kitops_flows.mediatypes import KIT_CONFIG, OCI_MANIFEST, LayerMediaType
from kitops_flows.store import LocalStore

oras_client = pytest.importorskip("oras.client")

pytestmark = pytest.mark.integration


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_oras_pulls_every_blob_of_a_modelkit_we_pushed(registry: Any, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "data").mkdir(parents=True)
    (ctx / "data" / "train.csv").write_text("a,b\n1,2\n")
    (ctx / "model.bin").write_bytes(bytes(range(256)) * 64)
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: interop}\n"
                                 "model: {name: m, path: model.bin}\ndatasets:\n  - {name: train, path: data}\n")
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"), plain_http=True)
    ref = f"{registry.host}/interop/ours:v1"
    desc = kit.pack(ctx, reference=ref, compression="gzip", push=True)

    oras = oras_client.OrasClient(hostname=registry.host, insecure=True)
    manifest = oras.get_manifest(ref)
    assert manifest["mediaType"] == OCI_MANIFEST and manifest["config"]["mediaType"] == KIT_CONFIG
    assert [layer["digest"] for layer in manifest["layers"]] == [layer.digest for layer in desc.layers]
    out = tmp_path / "oras"
    for blob in [manifest["config"], *manifest["layers"]]:
        path = Path(oras.download_blob(ref, blob["digest"], str(out / blob["digest"].replace(":", "-"))))
        assert _sha256(path) == blob["digest"] and path.stat().st_size == blob["size"]
    config = json.loads((out / manifest["config"]["digest"].replace(":", "-")).read_bytes())
    assert config["package"]["name"] == "interop" and config["datasets"][0]["path"] == "data"
    dataset = next(layer for layer in manifest["layers"] if "dataset" in layer["mediaType"])
    with tarfile.open(out / dataset["digest"].replace(":", "-"), "r:gz") as tar:
        member = tar.extractfile("data/train.csv")
        assert member is not None and member.read() == b"a,b\n1,2\n"


def test_we_pull_an_artifact_oras_pushed_with_kit_media_types(registry: Any, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("data/rows.csv", b"x,y\n3,4\n"), ("data/more/notes.txt", b"from oras-py\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    work = tmp_path / "push"
    work.mkdir()
    (work / "dataset.tar").write_bytes(buf.getvalue())
    kitfile = Kitfile(manifest_version="1.0.0", package=Package(name="from-oras"),
                      datasets=[DatasetEntry(name="rows", path="data")])
    (work / "config.json").write_bytes(kitfile.to_json())
    monkeypatch.chdir(work)  # oras-py resolves the file names it pushes against the working directory

    ref = f"{registry.host}/interop/theirs:v1"
    oras = oras_client.OrasClient(hostname=registry.host, insecure=True)
    oras.push(ref, files=[f"dataset.tar:{LayerMediaType('dataset')}"], manifest_config=f"config.json:{KIT_CONFIG}",
              disable_path_validation=True)

    kit = KitOpsClient(store=LocalStore(tmp_path / "home"), plain_http=True)
    assert kit.info(ref, remote=True).package.name == "from-oras"
    pulled = kit.pull(ref)
    assert [layer.kind for layer in pulled.layers] == ["dataset"]
    result = kit.unpack(ref, tmp_path / "out")
    assert (result.dest / "data" / "rows.csv").read_bytes() == b"x,y\n3,4\n"
    assert (result.dest / "data" / "more" / "notes.txt").read_bytes() == b"from oras-py\n"
    assert kit.verify().ok
