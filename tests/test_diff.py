"""``diff``: kit's comparison of two ModelKits (§1 of kit-features-1.17.md), on artifacts built by hand from the
spec, from the local store, from the real registry, and through the CLI (output and exit codes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kitspec import Artifact, compact, kit_modelkit, store_local, upload

from kitops_flows.api import KitOpsClient
from kitops_flows.cli import main
from kitops_flows.diff import compare_manifests, fetch_pair, render_diff
from kitops_flows.manifest import Manifest
from kitops_flows.store import LocalStore

CREATED = "2026-05-01T12:00:00Z"


def _variants() -> tuple[Artifact, Artifact]:
    """Two quantisations sharing docs; different weights, so different configs."""
    docs = ("README.md", b"# model\n")
    q4 = kit_modelkit({"model": ("model.gguf", b"4" * 10), "docs": docs}, created=CREATED)
    q8 = kit_modelkit({"model": ("model.gguf", b"8" * 2000), "docs": docs}, created="2026-05-02T12:00:00Z")
    return q4, q8


def test_output_matches_kit_for_two_local_variants(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q4, q8 = _variants()
    store = LocalStore(tmp_path / "home")
    store_local(store, "localhost/test/model", ["q4_0"], q4)
    store_local(store, "localhost/test/model", ["q8_0"], q8)
    m4, m8 = json.loads(q4.manifest), json.loads(q8.manifest)
    d = {k: v["layers"][i]["digest"][:17] for k, v in (("4", m4), ("8", m8)) for i in (0,)}
    docs = m4["layers"][1]
    assert main(["--config", str(tmp_path / "home"), "diff", "test/model:q4_0", "local://test/model:q8_0"]) == 0
    assert capsys.readouterr().out == (
        "Comparing:\n"
        "  ModelKit1: localhost/test/model:q4_0\n"
        "  ModelKit2: localhost/test/model:q8_0\n"
        "\n"
        "Configurations:\n"
        "---------------------------------------\n"
        "Configs differ:\n"
        f"  ModelKit1 Config Digest: {m4['config']['digest'][:17]}\n"
        f"  ModelKit2 Config Digest: {m8['config']['digest'][:17]}\n"
        "\n"
        "Annotations:\n"
        "---------------------------------------\n"
        "  Annotations does not match\n"
        "\n"
        "Shared Layers\n"
        "---------------------------------------\n"
        "Type    | Digest             | Size\n"
        f"docs    | {docs['digest'][:17]}  | {docs['size'] // 1024}.{docs['size'] * 10 // 1024 % 10} KiB\n"
        "\n"
        "Unique Layers to ModelKit1 (localhost/test/model:q4_0)\n"
        "---------------------------------------\n"
        "Type    | Digest             | Size\n"
        f"model   | {d['4']}  | {m4['layers'][0]['size'] // 1024}.{m4['layers'][0]['size'] * 10 // 1024 % 10} KiB\n"
        "\n"
        "Unique Layers to ModelKit2 (localhost/test/model:q8_0)\n"
        "---------------------------------------\n"
        "Type    | Digest             | Size\n"
        f"model   | {d['8']}  | {m8['layers'][0]['size'] // 1024}.{m8['layers'][0]['size'] * 10 // 1024 % 10} KiB\n"
        "\n"
    )


def test_identical_and_same_config_wording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q4, _ = _variants()
    store = LocalStore(tmp_path / "home")
    store_local(store, "localhost/test/model", ["a", "b"], q4)
    assert main(["--config", str(tmp_path / "home"), "diff", "test/model:a", "test/model:b"]) == 0
    assert capsys.readouterr().out == "ModelKits are identical\n"
    # same config and annotations, one more annotation-free manifest difference: an extra layer
    doc = json.loads(q4.manifest)
    doc["layers"] = doc["layers"][:1]
    b = Artifact(compact(doc), q4.blobs)
    store_local(store, "localhost/test/model", ["c"], b)
    assert main(["--config", str(tmp_path / "home"), "diff", "test/model:a", "test/model:c"]) == 0
    out = capsys.readouterr().out
    assert f"  Configs are identical (Digest: {doc['config']['digest'][:17]})\n\n" in out
    assert "  Annotations are identical \n\n" in out  # kit's trailing space
    assert "Unique Layers to ModelKit2 (localhost/test/model:c)\n---------------------------------------\n<none>\n\n" in out


def test_layers_match_by_digest_and_path_each_used_once() -> None:
    def manifest(layers: list[tuple[str, str | None]]) -> Manifest:
        descs = [{"mediaType": "application/vnd.kitops.modelkit.code.v1.tar", "digest": "sha256:" + d * 64,
                  "size": 1, **({"annotations": {"org.cncf.model.filepath": p}} if p is not None else {})}
                 for d, p in layers]
        cfg = {"mediaType": "application/vnd.kitops.modelkit.config.v1+json", "digest": "sha256:" + "c" * 64, "size": 2}
        return Manifest.from_bytes(compact({"schemaVersion": 2, "config": cfg, "layers": descs}))

    a = manifest([("1", "src"), ("1", "lib"), ("2", "x")])
    b = manifest([("1", "./src"), ("1", "src"), ("2", None)])  # second "src" has no unused partner left
    r = compare_manifests(a, b)
    assert [(l.digest[7], (l.annotations or {}).get("org.cncf.model.filepath")) for l in r.shared] == [
        ("1", "./src"), ("2", None)]
    assert [(l.annotations or {})["org.cncf.model.filepath"] for l in r.unique_a] == ["lib"]
    assert [(l.annotations or {})["org.cncf.model.filepath"] for l in r.unique_b] == ["src"]
    assert r.same_config and r.annotations_match


def test_modelpack_layers_show_modelpack_types(tmp_path: Path) -> None:
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    a = kit_modelkit({"model": ("w.bin", b"a"), "dataset": ("d.csv", b"1")}, modelpack=True)
    b = kit_modelkit({"model": ("w.bin", b"b"), "docs": ("R.md", b"r")}, modelpack=True)
    store_local(kit.store, "localhost/mp/m", ["a"], a)
    store_local(kit.store, "localhost/mp/m", ["b"], b)
    out = render_diff(*fetch_pair(kit, "mp/m:a", "mp/m:b"))
    assert "\ndataset | " in out and "\nweight  | " in out and "\ndoc     | " in out


def test_errors_name_the_side_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "home")
    q4, _ = _variants()
    store_local(LocalStore(home), "localhost/test/model", ["q4_0"], q4)
    assert main(["--config", home, "diff", "test/model:q4_0", "local://test/model:nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: Failed to get manifest for ModelKit2: ") and "test/model:nope" in err
    assert main(["--config", home, "diff", "Bad/Ref", "test/model:q4_0"]) == 1
    assert "Invalid arguments: failed to parse reference for ref1" in capsys.readouterr().err
    # exactly two arguments (cobra.ExactArgs(2)); kit exits 1 on every failure, usage errors included
    assert main(["--config", home, "diff", "test/model:q4_0"]) == 1
    assert "the following arguments are required" in capsys.readouterr().err


def test_local_remote_and_fallback_against_the_registry(registry, tmp_path: Path,  # noqa: ANN001
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    q4, q8 = _variants()
    repo = "diff/model"
    upload(registry.host, repo, "q4_0", q4)
    upload(registry.host, repo, "q8_0", q8)
    home = tmp_path / "home"
    store_local(LocalStore(home), f"{registry.host}/{repo}", ["q4_0"], q4)
    ref4, ref8 = f"{registry.host}/{repo}:q4_0", f"{registry.host}/{repo}:q8_0"
    base = ["--config", str(home), "diff", "--plain-http"]
    assert main([*base, f"local://{ref4}", f"remote://{ref4}"]) == 0  # same bytes on both sides
    assert capsys.readouterr().out == "ModelKits are identical\n"
    assert main([*base, ref4, ref8]) == 0  # q8_0 is not local: kit falls back to the registry
    out = capsys.readouterr().out
    assert f"  ModelKit2: {ref8}\n" in out and "Shared Layers\n---------------------------------------\nType" in out
    assert main([*base, ref4, f"local://{ref8}"]) == 1  # local:// never goes to the registry
    assert "Failed to get manifest for ModelKit2" in capsys.readouterr().err
