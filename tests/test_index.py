"""``index`` (kit-features-1.17.md §2): the artifact and local layout byte for byte against indexes built by hand
from the spec, kit's outputs and errors, label selection for ``pull -l`` / ``unpack -l`` (Kit, ModelPack and
zstd entries) against the real registry, skopeo reading our indexes, and the variant API."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from kitspec import Artifact, index_entry, kit_index, kit_modelkit, store_local, upload

from kitops_flows.api import KitOpsClient
from kitops_flows.cli import main
from kitops_flows.errors import KitopsError
from kitops_flows.indexes import ModelKitIndexes
from kitops_flows.modelindex import go_compact, parse_label_edits
from kitops_flows.reference import parse_reference
from kitops_flows.store import LocalStore

EMPTY = ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
         '"artifactType":"application/vnd.kitops.modelkit.index.v1+json","manifests":[]}')
EMPTY_DIGEST = "sha256:a9fb1fab7732abad08678d29f8a52add461a4ebd3d6ddd078b94f2659ab9d595"


def _b64(repo: str) -> str:
    return base64.urlsafe_b64encode(repo.encode()).decode()


def _run(home: Path, *argv: str) -> int:
    return main(["--config", str(home), *argv])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _variants() -> dict[str, Artifact]:
    return {"q4_0": kit_modelkit({"model": ("model.gguf", b"4" * 10)}, name="index-testing", created="2026-05-01T12:00:00Z"),
            "q8_0": kit_modelkit({"model": ("model.gguf", b"8" * 10)}, name="index-testing", created="2026-05-01T12:00:00Z")}


def test_create_writes_kits_empty_index_and_layout(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(home, "index", "create", "test/model:all") == 0
    assert capsys.readouterr().out == f"Created index test/model:all (digest {EMPTY_DIGEST})\n"
    storage = home / "storage"
    assert (storage / "blobs/sha256" / EMPTY_DIGEST[7:]).read_text() == EMPTY
    desc = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": EMPTY_DIGEST, "size": 151}
    stem = _b64("localhost/test/model")
    assert json.loads((storage / "indexes" / f"{stem}-index.json").read_text()) == {"schemaVersion": 2, "manifests": [desc]}
    assert json.loads((storage / "indexes" / f"{stem}-tags.json").read_text()) == {"all": desc}
    assert not (storage / f"{stem}-tags.json").exists(), "indexes are not ModelKits"
    assert _run(home, "index", "create", "test/model:all") == 1
    assert capsys.readouterr().err == "Error: Failed to create index: index test/model:all already exists\n"
    assert _run(home, "index", "create", "test/model@sha256:" + "a" * 64) == 1
    assert "Invalid arguments: index reference must be a tag, not a digest" in capsys.readouterr().err


def test_add_stores_labels_as_kit_does(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arts = _variants()
    store = LocalStore(home)
    for tag, art in arts.items():
        store_local(store, "localhost/test/model", [tag], art)
    assert _run(home, "index", "create", "test/model:all") == 0
    assert _run(home, "index", "add", "test/model:all", "test/model:q4_0", "-l", "quantization=q4_0",
                "-l", 'gpuArchs:=[ "sm_80", "sm_90" ]', "--annotate", "org.example.tested=true") == 0
    assert _run(home, "index", "add", "test/model:all", f"test/model@{arts['q8_0'].digest}") == 0
    expected = kit_index([
        index_entry(arts["q4_0"], tag="q4_0", labels={"gpuArchs": ["sm_80", "sm_90"], "quantization": "q4_0"},
                    annotations={"org.example.tested": "true"}),
        index_entry(arts["q8_0"]),
    ])
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"Added test/model@{arts['q8_0'].digest} to index test/model:all (digest {expected.digest})"
    idx = ModelKitIndexes(KitOpsClient(store=store))
    desc, data, _ = idx.read("test/model:all")
    assert data == expected.manifest and desc.digest == expected.digest
    # the previous versions are gone: only the current index blob is listed, and the empty one was deleted
    assert [s.descriptor.digest for s in idx.local.list()] == [expected.digest]
    assert not store.has_blob(EMPTY_DIGEST)
    # re-adding merges: labels kept, one removed, recorded annotations refreshed
    assert _run(home, "index", "add", "test/model:all", "test/model:q4_0", "-l", "gpuArchs-", "-l", "vram=6GB") == 0
    entry = idx.read("test/model:all")[2].entries[0]
    assert entry.labels == {"quantization": '"q4_0"', "vram": '"6GB"'}
    assert entry.annotations["org.example.tested"] == "true" and entry.original_tag == "q4_0"


def test_info_list_inspect_outputs(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arts = _variants()
    store = LocalStore(home)
    for tag, art in arts.items():
        store_local(store, "localhost/test/model", [tag], art)
    _run(home, "index", "create", "test/model:all")
    _run(home, "index", "add", "test/model:all", "test/model:q4_0", "-l", "quantization=q4_0",
         "-l", 'gpuArchs:=["sm_80","sm_90"]', "--annotate", "org.example.tested=true")
    _run(home, "index", "add", "test/model:all", f"test/model@{arts['q8_0'].digest}")
    digest = ModelKitIndexes(KitOpsClient(store=store)).read("test/model:all")[0].digest
    capsys.readouterr()
    assert _run(home, "index", "info", "test/model:all") == 0
    d4, d8 = arts["q4_0"].digest, arts["q8_0"].digest
    size = f"{arts['q4_0'].layer_size / 1024:.1f} KiB"
    w = len(size) + 3  # tabwriter: widest cell plus 3 spaces of padding
    assert capsys.readouterr().out == (
        f"Index test/model:all ({digest})\n"
        "2 ModelKits:\n"
        f"ORIGINAL REFERENCE   {'SIZE':{w}}LABELS                       ANNOTATIONS               DIGEST\n"
        f"test/model:q4_0      {size:{w}}gpuArchs=[\"sm_80\",\"sm_90\"]   org.example.tested=true   {d4}\n"
        f"                     {'':{w}}quantization=q4_0\n"
        f"<none>               {size:{w}}<none>                       <none>                    {d8}\n"
    )
    assert _run(home, "index", "info", "test/model:all", "--format", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"reference": "test/model:all", "digest": digest, "modelKits": [
        {"reference": "test/model:q4_0", "digest": d4, "size": arts["q4_0"].layer_size,
         "labels": {"gpuArchs": ["sm_80", "sm_90"], "quantization": "q4_0"},
         "annotations": {"org.example.tested": "true"}},
        {"digest": d8, "size": arts["q8_0"].layer_size, "labels": {}, "annotations": {}}]}
    assert _run(home, "index", "list") == 0
    assert capsys.readouterr().out == f"REPOSITORY   TAG   MODELKITS   DIGEST\ntest/model   all   2           {digest}\n"
    assert _run(home, "index", "list", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [{"repo": "test/model", "digest": digest, "tags": ["all"], "modelKits": 2}]
    assert _run(home, "index", "inspect", "test/model:all") == 0
    out = capsys.readouterr().out
    assert out.startswith('{\n  "schemaVersion": 2,\n  "mediaType": "application/vnd.oci.image.index.v1+json",\n')
    assert json.loads(out) == json.loads(store.read_blob(digest))
    # kit list never shows indexes
    assert _run(home, "list", "--format", "json") == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    assert _run(home, "index", "info", "test/model:nope") == 1
    assert capsys.readouterr().err == ("Error: Failed to read index: could not find index test/model:nope in local "
                                       "storage; use 'kit index pull' to download it, or --remote to read it from its "
                                       "registry\n")


@pytest.mark.parametrize(("args", "message"), [
    (["-l", "novalue"], 'invalid label "novalue": expected key=value to set, or key- to remove'),
    (["-l", "=v"], 'invalid label "=v": key cannot be empty'),
    (["-l", "a=1", "-l", "a=2"], 'invalid label "a=2": each key can be specified only once'),
    (["-l", "k:={bad"], "invalid label k:={bad: value is not valid JSON"),
    (["-l", "bad_=1"], 'invalid label key "bad_": must be a name of letters, digits'),
    (["--annotate", "k:=1"], "invalid annotation k:=1: annotation values are strings; use key=value"),
    (["--annotate", "ml.kitops.modelkit.size=1"],
     'invalid annotation "ml.kitops.modelkit.size": the ml.kitops.modelkit. namespace is reserved'),
])
def test_label_and_annotation_errors(home: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                     message: str) -> None:
    assert _run(home, "index", "add", "test/model:all", "test/model:q4_0", *args) == 1
    assert capsys.readouterr().err.startswith(f"Error: Invalid arguments: {message}")


def test_label_values_keep_kits_bytes() -> None:
    edits = parse_label_edits(["html=<a&b>", 'num:= 1.50e3 ', 'obj:={"z": 1, "a": "\\u00e9"}'])
    assert edits.set == {"html": '"\\u003ca\\u0026b\\u003e"', "num": "1.50e3", "obj": '{"z":1,"a":"\\u00e9"}'}
    assert go_compact('[ "a b" ,\n 2 ]') == '["a b",2]'


def test_selection_errors_and_other_repository(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arts = _variants()
    store = LocalStore(home)
    for tag, art in arts.items():
        store_local(store, "localhost/test/model", [tag], art)
    store_local(store, "localhost/other/model", ["x"], arts["q4_0"])
    _run(home, "index", "create", "test/model:all")
    assert _run(home, "index", "add", "test/model:all", "other/model:x") == 1
    assert ("ModelKit other/model:x is not in the same repository as index test/model:all; an index may only "
            "reference ModelKits in its own repository") in capsys.readouterr().err
    assert _run(home, "unpack", "test/model:all", "-l", "q=1", "-d", str(home / "o")) == 1
    assert capsys.readouterr().err == "Error: index contains no ModelKits\n"
    _run(home, "index", "add", "test/model:all", "test/model:q4_0", "-l", "quantization=q4_0", "-l", "device=cpu")
    _run(home, "index", "add", "test/model:all", "test/model:q8_0", "-l", "quantization=q8_0", "-l", "device=cpu")
    capsys.readouterr()
    assert _run(home, "unpack", "test/model:all", "-l", "quantization=fp16", "-d", str(home / "o")) == 1
    assert capsys.readouterr().err == (
        "Error: no ModelKit in the index has quantization=fp16. The index contains:\n"
        "  test/model:q4_0  (device=cpu, quantization=q4_0)\n  test/model:q8_0  (device=cpu, quantization=q8_0)\n")
    assert _run(home, "unpack", "test/model:all", "-l", "device=cpu", "-d", str(home / "o")) == 1
    assert capsys.readouterr().err.startswith("Error: 2 ModelKits in the index match; add labels to select one of:\n")
    assert _run(home, "unpack", "test/model:all", "-l", "device=cpu", "-l", "device=gpu", "-d", str(home / "o")) == 1
    assert 'invalid label "device=gpu": device is already set to "cpu"' in capsys.readouterr().err
    assert _run(home, "unpack", "test/model:all", "-l", "quantization=q8_0", "-d", str(home / "o")) == 0
    assert (home / "o" / "model.gguf").read_bytes() == b"8" * 10


def test_remove_delete_and_gc_keep_what_they_should(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arts = _variants()
    store = LocalStore(home)
    for tag, art in arts.items():
        store_local(store, "localhost/test/model", [tag, "all"] if tag == "q4_0" else [tag], art)
    _run(home, "index", "create", "test/model:all")  # test/model:all names a ModelKit and an index at once
    _run(home, "index", "add", "test/model:all", "test/model:q4_0")
    _run(home, "index", "add", "test/model:all", "test/model:q8_0")
    idx = ModelKitIndexes(KitOpsClient(store=store))
    current = idx.read("test/model:all")[0].digest
    assert store.gc().blobs_removed == 0 and store.has_blob(current), "gc keeps index blobs"
    assert _run(home, "info", "test/model:all") == 0  # kit info sees the ModelKit of that tag
    capsys.readouterr()
    assert _run(home, "index", "remove", "test/model:all", "test/model:q8_0") == 0
    now = idx.read("test/model:all")[0].digest
    assert capsys.readouterr().out == f"Removed test/model:q8_0 from index test/model:all (digest {now})\n"
    assert _run(home, "index", "remove", "test/model:all", arts["q8_0"].digest) == 1
    assert f"index test/model:all does not contain {arts['q8_0'].digest}" in capsys.readouterr().err
    assert _run(home, "index", "delete", "test/model:all") == 0
    assert capsys.readouterr().out == f"Deleted index test/model:all (digest {now})\nRemoved tags: all\n"
    assert not store.has_blob(now)
    assert store.has_blob(arts["q4_0"].digest) and store.has_blob(arts["q8_0"].digest), "ModelKits stay"
    assert _run(home, "index", "delete") == 1
    assert "index is required for delete unless --all is specified" in capsys.readouterr().err


def test_unpack_hint_delete_all_and_untag(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arts = _variants()
    store = LocalStore(home)
    for tag, art in arts.items():
        store_local(store, "localhost/test/model", [tag], art)
    _run(home, "index", "create", "test/model:all")
    _run(home, "index", "add", "test/model:all", "test/model:q4_0", "-l", "q=4")
    capsys.readouterr()
    # no ModelKit has the tag, a local index does: kit's hint to select with --label
    assert _run(home, "unpack", "test/model:all", "-d", str(home / "o")) == 1
    assert "select the ModelKit to unpack with --label (-l)" in capsys.readouterr().err
    idx = ModelKitIndexes(KitOpsClient(store=store))
    desc = idx.read("test/model:all")[0]
    idx.local.write(parse_reference("test/model:also"),
                    store.read_blob(desc.digest))
    assert _run(home, "index", "delete", "test/model:also") == 0  # another tag remains: only untag
    assert capsys.readouterr().out == f"Untagged index test/model:also (digest {desc.digest})\n"
    _run(home, "index", "create", "other/model:tmp")
    other = idx.read("other/model:tmp")[0]
    idx.local.untag(parse_reference("other/model:tmp"))
    capsys.readouterr()
    assert _run(home, "index", "delete", "--all") == 0  # untagged only
    assert capsys.readouterr().out == f"Deleted index other/model@{other.digest}\n"
    assert [s.tags for s in idx.local.list()] == [("all",)]
    assert _run(home, "index", "delete", "--all", "--force") == 0
    assert idx.local.list() == [] and store.has_blob(arts["q4_0"].digest)
    assert _run(home, "index", "delete", "--all", "test/model:all") == 1
    assert "index should not be specified when --all flag is used" in capsys.readouterr().err


def test_variants_through_the_registry_and_skopeo(registry, tmp_path: Path,  # noqa: ANN001
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A kit-1.17 index built by hand (Kit, ModelPack and zstd entries) read through pull -l, unpack -l,
    pull_layer, index info/pull; our own index pushed and read back by skopeo."""
    repo = "idx/llm"
    arts = {
        "cpu": kit_modelkit({"model": ("w.bin", b"cpu" * 50), "docs": ("README.md", b"cpu docs")}),
        "cuda": kit_modelkit({"model": ("w.bin", b"cuda" * 50), "docs": ("README.md", b"cuda docs")}, modelpack=True),
        "int4": kit_modelkit({"model": ("w.bin", b"int4" * 50), "docs": ("README.md", b"int4 docs")}, compression="zstd"),
    }
    for tag, art in arts.items():
        upload(registry.host, repo, tag, art)
    spec_index = kit_index([
        index_entry(arts["cpu"], tag="cpu", labels={"device": "cpu"}),
        index_entry(arts["cuda"], tag="cuda", labels={"device": "cuda", "gpuArchs": ["sm_80", "sm_90"]}, modelpack=True),
        index_entry(arts["int4"], tag="int4", labels={"device": "cpu-int4"}),
    ])
    upload(registry.host, repo, "all", spec_index)
    ref = f"{registry.host}/{repo}:all"
    home = tmp_path / "home"
    kit = KitOpsClient(store=LocalStore(home), plain_http=True)
    for device in ("cpu", "cuda", "cpu-int4"):
        out = tmp_path / f"out-{device}"
        assert _run(home, "unpack", ref, "--plain-http", "-l", f"device={device}", "-d", str(out)) == 0
        assert (out / "w.bin").read_bytes() == (device.split("-")[-1].encode() * 50)
        layer = tmp_path / f"layer-{device}"
        kit.pull_layer(ref, ["docs"], layer, labels={"device": device})
        assert not (layer / "w.bin").exists() and (layer / "README.md").exists()
    capsys.readouterr()
    assert _run(home, "pull", ref, "--plain-http") == 1
    assert "is a ModelKit index; select the ModelKit to pull with --label (-l)" in capsys.readouterr().err
    assert _run(home, "pull", ref, "--plain-http", "-l", "device=cuda") == 0
    assert capsys.readouterr().out == f"{registry.host}/{repo}@{arts['cuda'].digest}\n"
    assert kit.describe(ref).digest == arts["cuda"].digest, "pull -l tags the selected ModelKit with the index's tag"
    assert _run(home, "index", "info", "--remote", "--plain-http", ref, "--format", "json") == 0
    info = json.loads(capsys.readouterr().out)
    assert [m["labels"]["device"] for m in info["modelKits"]] == ["cpu", "cuda", "cpu-int4"]
    assert _run(home, "index", "pull", "--plain-http", ref) == 0
    assert capsys.readouterr().out == f"Pulling index {ref}\nPulled index {spec_index.digest}\n"
    assert kit.store.read_blob(spec_index.digest) == spec_index.manifest, "stored unchanged"

    # our index: edited locally, pushed under a new tag, then read by skopeo
    assert _run(home, "index", "add", f"{registry.host}/{repo}:all", f"{registry.host}/{repo}:cpu", "-r",
                "--plain-http", "-l", "tested=true") == 0
    assert _run(home, "index", "push", "--plain-http", f"{registry.host}/{repo}:all", f"{registry.host}/{repo}:v2") == 0
    ours = ModelKitIndexes(kit).read(f"{registry.host}/{repo}:all")[1]
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/{repo}:v2"],
                         check=True, capture_output=True).stdout
    assert raw == ours
    copied = subprocess.run(["skopeo", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                             f"docker://{registry.host}/{repo}:v2", f"docker://{registry.host}/idx/copy:all"],
                            capture_output=True, text=True)
    assert copied.returncode == 0, copied.stderr
    # skopeo 1.9 re-serialises an OCI index it copies and drops artifactType and modelMetadata, so the copy
    # is a plain image index (kit refuses it as well); the ModelKits it copied are intact, so pushing our
    # index there makes it a ModelKit index again
    copy_ref = f"{registry.host}/idx/copy:all"
    assert _run(home, "unpack", copy_ref, "--plain-http", "-l", "device=cuda", "-d", str(tmp_path / "x")) == 1
    assert "artifact is not a ModelKit index" in capsys.readouterr().err
    assert _run(home, "index", "push", "--plain-http", f"{registry.host}/{repo}:all", copy_ref) == 0
    assert _run(home, "unpack", copy_ref, "--plain-http", "-l", "device=cuda", "-d", str(tmp_path / "copied")) == 0
    assert (tmp_path / "copied" / "w.bin").read_bytes() == b"cuda" * 50


def test_push_refused_when_modelkits_are_missing(registry, home: Path,  # noqa: ANN001
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    art = _variants()["q4_0"]
    ref = f"{registry.host}/idx/missing"
    store_local(LocalStore(home), ref, ["q4_0"], art)
    _run(home, "index", "create", f"{ref}:all")
    _run(home, "index", "add", f"{ref}:all", f"{ref}:q4_0")
    assert _run(home, "index", "push", "--plain-http", f"{ref}:all") == 1
    err = capsys.readouterr().err
    assert (f"Error: Failed to push index: remote rejected the index: {registry.host}/idx/missing does not contain "
            "every ModelKit the index references. Push those ModelKits first, then retry") in err


def test_publish_variants_and_select_downstream(registry, tmp_path: Path) -> None:  # noqa: ANN001
    """The API: pack two variants, publish them as one index, and let another client pick one by labels."""
    producer = KitOpsClient(store=LocalStore(tmp_path / "producer"), plain_http=True)
    base = f"{registry.host}/idx/churn"
    for device in ("cpu", "cuda"):
        ctx = tmp_path / f"ctx-{device}"
        ctx.mkdir()
        (ctx / "model.bin").write_bytes(device.encode() * 100)
        (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: churn}\nmodel: {path: model.bin}\n")
        producer.pack(ctx, reference=f"{base}:{device}", record_lineage=False)
    desc = ModelKitIndexes(producer).publish(f"{base}:all", {f"{base}:cpu": {"device": "cpu"},
                                                            f"{base}:cuda": {"device": "cuda", "sm": [80, 90]}},
                                             push=True)
    consumer = KitOpsClient(store=LocalStore(tmp_path / "consumer"), plain_http=True)
    assert ModelKitIndexes(consumer).read(f"{base}:all", remote=True)[0].digest == desc.digest
    result = consumer.unpack(f"{base}:all", tmp_path / "serve", labels={"device": "cuda"})
    assert (result.dest / "model.bin").read_bytes() == b"cuda" * 100
    with pytest.raises(KitopsError, match="no ModelKit in the index has device=tpu"):
        consumer.unpack(f"{base}:all", tmp_path / "x", labels={"device": "tpu"})
