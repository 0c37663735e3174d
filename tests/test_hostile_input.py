"""Malformed manifests, configs, Kitfiles and references: clear errors from the API, one line (no
traceback) from the CLI.

Manifests and configs are planted in a local store (``put_manifest`` does not parse them, just as a
registry would hand us anything), then read back through ``KitOpsClient``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import KitfileError, KitopsError, ReferenceFormatError
from kitops_flows.kitfile import Kitfile, Package
from kitops_flows.mediatypes import KIT_CONFIG, OCI_MANIFEST
from kitops_flows.store import LocalStore

GOOD_CONFIG = Kitfile(manifest_version="1.0.0", package=Package(name="x")).to_json()


def _manifest(config: dict[str, object], **extra: object) -> bytes:
    doc: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": []}
    doc.update(extra)
    return json.dumps(doc).encode()


def _config_desc(store: LocalStore, data: bytes = GOOD_CONFIG, media: str = KIT_CONFIG) -> dict[str, object]:
    digest, size = store.put_bytes(data)
    return {"mediaType": media, "digest": digest, "size": size}


# Each case: (build manifest bytes from a store, fragment the error must contain)
CASES = {
    "not json": (lambda s: b"{not json", "not valid JSON"),
    "json array": (lambda s: b"[]", "not a JSON object"),
    "deep nesting": (lambda s: b"[" * 200_000, "not valid JSON"),
    "index media type": (lambda s: _manifest(_config_desc(s), mediaType="application/vnd.oci.image.index.v1+json"),
                         "not an image manifest"),
    "schema version 1": (lambda s: _manifest(_config_desc(s), schemaVersion=1), "schemaVersion"),
    "no config": (lambda s: json.dumps({"schemaVersion": 2, "layers": []}).encode(), "no config"),
    "config digest invalid": (lambda s: _manifest({"mediaType": KIT_CONFIG, "digest": "sha256:xyz", "size": 2}),
                              "invalid digest"),
    "config size negative": (lambda s: _manifest({**_config_desc(s), "size": -1}), "invalid size"),
    "config missing digest": (lambda s: _manifest({"mediaType": KIT_CONFIG, "size": 2}), "missing field"),
    "layers not a list": (lambda s: _manifest(_config_desc(s), layers={"a": 1}), "layers must be a list"),
    "wrong config media type": (lambda s: _manifest(_config_desc(s, media="application/vnd.oci.image.config.v1+json"),
                                                    artifactType="application/x-other"), "not a modelkit"),
    "annotations not strings": (lambda s: _manifest(_config_desc(s), annotations={"a": 1}), "annotations"),
    "config not json": (lambda s: _manifest(_config_desc(s, b"{{{")), "not valid JSON"),
    "config deep nesting": (lambda s: _manifest(_config_desc(s, b"[" * 200_000)), "not valid JSON"),
    "config wrong types": (lambda s: _manifest(_config_desc(s, b'{"manifestVersion": 1, "package": []}')), ""),
    "config digest mismatch": (lambda s: _manifest({**_config_desc(s), "digest": "sha256:" + "0" * 64}), ""),
    "oversized manifest": (lambda s: _manifest(_config_desc(s), annotations={"pad": "x" * (5 << 20)}), "limit"),
    "layer with bad media type": (lambda s: _manifest(_config_desc(s), layers=[
        {"mediaType": "application/x-evil", "digest": "sha256:" + "1" * 64, "size": 1}]), ""),
}


def _plant(home: Path, case: str) -> None:
    store = LocalStore(home)
    store.put_manifest("localhost/bad/kit", CASES[case][0](store), ["v1"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_manifest_or_config_is_a_clear_error(case: str, tmp_path: Path) -> None:
    _plant(tmp_path / "home", case)
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    fragment = CASES[case][1]
    for action in (lambda: kit.describe("bad/kit:v1"), lambda: kit.unpack("bad/kit:v1", tmp_path / "out")):
        with pytest.raises(KitopsError) as info:
            action()
        assert fragment in str(info.value)
        assert "\n" not in str(info.value)[:2000] or case == "config wrong types"
    assert not (tmp_path / "out").exists()
    assert not kit.verify().ok or case in ("wrong config media type", "config not json", "config deep nesting",
                                           "config wrong types", "layer with bad media type"), \
        "verify must flag manifests it cannot read"


@pytest.mark.parametrize("case", ["not json", "deep nesting", "config digest invalid", "config deep nesting",
                                  "oversized manifest", "wrong config media type"])
def test_cli_prints_one_line_for_a_malformed_modelkit(case: str, tmp_path: Path) -> None:
    _plant(tmp_path / "home", case)
    for args in (["inspect", "bad/kit:v1"], ["unpack", "bad/kit:v1", "-d", str(tmp_path / "out")]):
        result = _cli(["--config", str(tmp_path / "home"), *args])
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kitops_flows.cli", *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


# -- Kitfiles -----------------------------------------------------------------------------------------------

BAD_KITFILES = {
    "deep nesting": "manifestVersion: 1.0.0\nmodel:\n  parameters: " + "[" * 5000 + "]" * 5000 + "\n",
    "nul byte": "manifestVersion: 1.0.0\npackage: {name: \x00}\n",
    "unknown field": "manifestVersion: 1.0.0\nsurprise: 1\n",
    "wrong type": "manifestVersion: 1.0.0\ndatasets: {name: d}\n",
    "path escapes": "manifestVersion: 1.0.0\ndatasets:\n  - {name: d, path: ../../etc}\n",
    "not yaml": "manifestVersion: [1.0.0\n",
    "oversized": "manifestVersion: 1.0.0\npackage:\n  description: \"" + "x" * (8 << 20) + "\"\n",
}


@pytest.mark.parametrize("case", sorted(BAD_KITFILES))
def test_bad_kitfile_pack_fails_on_one_line(case: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Kitfile").write_text(BAD_KITFILES[case])
    home = tmp_path / "home"
    result = _cli(["--config", str(home), "pack", str(ctx), "-t", "bad/kit:v1"])
    if case == "oversized":
        # a large (but well-formed) Kitfile is not an error; it must simply not crash
        assert "Traceback" not in result.stderr
        return
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Error: ") and "Kitfile" in lines[0], result.stderr
    if case != "path escapes":  # validation lists every problem, one per line, as kit does
        assert len(lines) == 1, result.stderr
    assert not LocalStore(home).list_repos()
    with pytest.raises(KitfileError):
        Kitfile.load(ctx / "Kitfile").validate()


# -- references ----------------------------------------------------------------------------------------------

BAD_REFERENCES = [
    "https://127.0.0.1:5000/team/m:v1",
    "127.0.0.1:5000/Team/M:v1",
    "127.0.0.1:5000/team/m:" + "t" * 129,
    "127.0.0.1:5000/team/m\n:v1",  # (surrounding whitespace is stripped, as a shell would; inside it is an error)
    "127.0.0.1:5000/team/m:v\u00e9",
    "127.0.0.1:5000/team/m@sha256:short",
    "127.0.0.1:5000/te am/m:v1",
    "reg.io:5000:6000/m:v1",
    "reg.io/a/../b:v1",
    "reg.io/" + "a" * 40 + "!:v1",  # was catastrophic backtracking in the repository regex
]


@pytest.mark.parametrize("text", BAD_REFERENCES)
def test_bad_references_fail_fast_and_clearly(text: str, tmp_path: Path) -> None:
    import time

    started = time.monotonic()
    with pytest.raises(ReferenceFormatError) as info:
        KitOpsClient(store=LocalStore(tmp_path)).pull(text)
    assert time.monotonic() - started < 1.0
    assert str(info.value)


@pytest.mark.parametrize("command", [["pull"], ["push"], ["unpack"], ["inspect", "-r"]])
def test_cli_bad_reference_is_one_line(command: list[str], tmp_path: Path) -> None:
    for text in ("https://reg.io/m:v1", "reg.io/m:" + "t" * 200, "reg.io/M:v1"):
        result = _cli(["--config", str(tmp_path), *command, text])
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        assert not (tmp_path / "storage" / "blobs").exists() or not any((tmp_path / "storage" / "blobs").iterdir())
