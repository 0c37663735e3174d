"""Artifacts built by hand from kit's format description (/work/shared/kit-features-1.17.md, modelkit-spec.md),
not with kitops-flows' writer, and a plain-HTTP uploader that speaks the distribution API by itself.

    art = kit_modelkit({"model": ("model.bin", b"w" * 10)}, created="2026-05-01T12:00:00Z")
    upload(registry.host, "spec/model", "q4_0", art)         # blobs then manifest, over plain requests
    store_local(store, "localhost/spec/model", ["q4_0"], art)  # the same bytes in a local store

Every JSON document is compact Go encoding/json (``separators=(",", ":")``), keys in kit's struct order.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field

import requests

KIT_MANIFEST_TYPE = "application/vnd.kitops.modelkit.manifest.v1+json"
KIT_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
MP_MANIFEST_TYPE = "application/vnd.cncf.model.manifest.v1+json"
MP_CONFIG = "application/vnd.cncf.model.config.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_TYPE = "application/vnd.kitops.modelkit.index.v1+json"
FILEPATH = "org.cncf.model.filepath"
_MP_BASE = {"model": "weight", "modelpart": "weight.config", "dataset": "dataset", "code": "code", "docs": "doc"}
_KITFILE_SECTION = {"model": "model", "modelpart": "model", "dataset": "datasets", "code": "code", "docs": "docs"}


def compact(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(path: str, data: bytes) -> bytes:
    """One file in a tar as kit writes it (uid 1000, gid 0, zero mtime, no user/group names)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(path)
        info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o644, 1000, 0, 0
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zstd_bytes(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


@dataclass
class Artifact:
    """A manifest (or index) and every blob it needs, by digest."""

    manifest: bytes
    blobs: dict[str, bytes] = field(default_factory=dict)
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return digest(self.manifest)

    @property
    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest)}

    @property
    def layer_size(self) -> int:
        return sum(l["size"] for l in json.loads(self.manifest).get("layers") or [])


def kit_modelkit(layers: dict[str, tuple[str, bytes]], *, name: str = "spec-model", created: str | None = None,
                 compression: str = "none", modelpack: bool = False, kitfile_annotation: bool = True,
                 extra_annotations: dict[str, str] | None = None, layer_format: str = "tar") -> Artifact:
    """A kit 1.17 ModelKit: ``layers`` maps a kind (model, modelpart, dataset, code, docs) to (path, content).

    Kit format: config = Kitfile JSON with per-layer digest/diffId. ModelPack (``modelpack=True``): cncf media
    types, the model-spec config, and the Kitfile as the ``ml.kitops.modelkit.kitfile`` annotation."""
    kitfile: dict[str, object] = {"manifestVersion": "1.0.0", "package": {"name": name}}
    descs, diff_ids, blobs = [], [], {}
    for kind, (path, content) in layers.items():
        raw = layer_format == "raw"
        tar = content if raw else tar_bytes(path, content)  # a raw layer is the file's bytes
        blob = zstd_bytes(tar) if compression == "zstd" else tar
        suffix = "+zstd" if compression == "zstd" else ""
        media = (f"application/vnd.cncf.model.{_MP_BASE[kind]}.v1.{layer_format}{suffix}" if modelpack
                 else f"application/vnd.kitops.modelkit.{kind}.v1.{layer_format}{suffix}")
        blobs[digest(blob)] = blob
        annotations = {FILEPATH: path}
        if raw:  # §6.2: the file's metadata as JSON (typeflag 48 = regular file)
            annotations["org.cncf.model.file.metadata+json"] = compact(
                {"name": path.rsplit("/", 1)[-1], "mode": 420, "uid": 0, "gid": 0, "size": len(content),
                 "mtime": "2026-05-01T12:00:00.123456789+02:00", "typeflag": 48}).decode()
        descs.append({"mediaType": media, "digest": digest(blob), "size": len(blob),
                      "annotations": dict(sorted(annotations.items()))})
        diff_ids.append(digest(tar))
        info = {"digest": digest(blob), "diffId": digest(tar)}  # kit's *LayerInfo is embedded: flat keys
        section = _KITFILE_SECTION[kind]
        if kind == "model":
            kitfile["model"] = {"name": name, "path": path, **info}
        elif kind == "modelpart":
            kitfile.setdefault("model", {"name": name})["parts"] = [{"path": path, **info}]  # type: ignore[index]
        else:
            kitfile.setdefault(section, []).append({"path": path, **info})  # type: ignore[union-attr]
    kitfile_json = compact(kitfile)
    annotations = {"ml.kitops.modelkit.cli-version": "1.17.0"}
    if created:
        annotations["org.opencontainers.image.created"] = created
    if modelpack:
        config = compact({"descriptor": {"createdAt": "2026-05-01T14:00:00.123456789+02:00", "name": name,
                                         "title": name},
                          "modelfs": {"type": "layers", "diffIds": diff_ids}, "config": {}})
        if kitfile_annotation:
            annotations["ml.kitops.modelkit.kitfile"] = kitfile_json.decode()
    else:
        config = kitfile_json
    annotations.update(extra_annotations or {})
    blobs[digest(config)] = config
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "artifactType": MP_MANIFEST_TYPE if modelpack else KIT_MANIFEST_TYPE,
                "config": {"mediaType": MP_CONFIG if modelpack else KIT_CONFIG, "digest": digest(config),
                           "size": len(config)},
                "layers": descs, "annotations": dict(sorted(annotations.items()))}
    return Artifact(compact(manifest), blobs)


def kit_index(entries: list[dict[str, object]]) -> Artifact:
    """A ModelKit index exactly as §2.1 shows it (entries already in kit's key order)."""
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": INDEX_TYPE, "manifests": entries}
    return Artifact(compact(doc), {}, OCI_INDEX)


def index_entry(art: Artifact, *, tag: str | None = None, labels: dict[str, object] | None = None,
                annotations: dict[str, str] | None = None, modelpack: bool = False) -> dict[str, object]:
    """One index entry: the ModelKit's descriptor, kit's recorded annotations, then ``modelMetadata``."""
    ann = dict(annotations or {})
    if tag:
        ann["ml.kitops.modelkit.original-tag"] = tag
    ann["ml.kitops.modelkit.size"] = str(art.layer_size)
    entry: dict[str, object] = {"mediaType": OCI_MANIFEST, "digest": art.digest, "size": len(art.manifest),
                                "annotations": dict(sorted(ann.items())),
                                "artifactType": MP_MANIFEST_TYPE if modelpack else KIT_MANIFEST_TYPE}
    if labels:
        entry["modelMetadata"] = dict(sorted(labels.items()))
    return entry


def upload(host: str, repo: str, reference: str, art: Artifact) -> str:
    """Push blobs (monolithic POST+PUT) then the manifest over plain HTTP; returns the manifest digest."""
    base = f"http://{host}/v2/{repo}"
    for d, data in art.blobs.items():
        if requests.head(f"{base}/blobs/{d}", timeout=10).status_code == 200:
            continue
        start = requests.post(f"{base}/blobs/uploads/", timeout=10)
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        location = location if location.startswith("http") else f"http://{host}{location}"
        sep = "&" if "?" in location else "?"
        put = requests.put(f"{location}{sep}digest={d}", data=data, timeout=30,
                           headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 201, put.text
    resp = requests.put(f"{base}/manifests/{reference}", data=art.manifest, timeout=10,
                        headers={"Content-Type": art.media_type})
    assert resp.status_code == 201, resp.text
    return art.digest


def store_local(store: object, repo_path: str, tags: list[str], art: Artifact) -> None:
    """Put an artifact's blobs and manifest into a LocalStore (kit's layout) under ``repo_path``."""
    for data in art.blobs.values():
        store.put_bytes(data)  # type: ignore[attr-defined]
    store.put_manifest(repo_path, art.manifest, tags)  # type: ignore[attr-defined]
