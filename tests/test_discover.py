"""``discover`` and ``provenance`` on the real registry: the referrers tree of a ModelKit with its provenance record,
a downstream edge to a ModelKit built from it, cosign signatures and attestations (legacy ``.sig``/``.att`` tags and
Sigstore bundle referrers on the ``sha256-<hex>`` index), as text and JSON; and those bookkeeping tags stay out of
``list REPO`` and ``list_tags``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.cli import main
from kitops_flows.discover import discover, render_tree
from kitops_flows.signing import generate_key_pair
from kitops_flows.store import LocalStore


def _ctx(root: Path, kitfile: str, content: str) -> Path:
    root.mkdir(parents=True)
    (root / "model.bin").write_text(content)
    (root / "Kitfile").write_text(kitfile)
    return root


@pytest.fixture(scope="module")
def family(registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # noqa: ANN001
    """A parent ModelKit (provenance, signed with legacy tags) and a child built from it (signed with bundles)."""
    tmp_path = tmp_path_factory.mktemp("family")
    kit = KitOpsClient(store=LocalStore(tmp_path / "producer"), plain_http=True)
    parent = f"{registry.host}/disc/base:v1"
    child = f"{registry.host}/disc/tuned:v1"
    kit.pack(_ctx(tmp_path / "p", "manifestVersion: 1.0.0\nmodel: {path: model.bin}\n", "base"), reference=parent,
             push=True)
    kit.pack(_ctx(tmp_path / "c", "manifestVersion: 1.0.0\nmodel: {path: model.bin}\n", "tuned"), reference=child,
             parents=[parent], push=True)
    key = generate_key_pair()
    kit.sign(parent, key, mode="tag")
    kit.sign(child, key, mode="referrers")
    return {"parent": parent, "child": child, "parent_digest": kit.resolve(parent).digest,
            "child_digest": kit.resolve(child).digest}


def test_discover_tree_of_a_signed_parent(family: dict[str, str], tmp_path: Path) -> None:
    kit = KitOpsClient(store=LocalStore(tmp_path / "reader"), plain_http=True)  # a fresh store: all from the registry
    tree = discover(kit, family["parent"])
    assert tree.digest == family["parent_digest"] and tree.kind == "modelkit"
    kinds = sorted(r.kind for r in tree.referrers)
    assert kinds == ["attestation", "downstream", "provenance", "signature"], kinds
    downstream = next(r for r in tree.referrers if r.kind == "downstream")
    assert family["child_digest"] in downstream.detail
    sig = next(r for r in tree.referrers if r.kind == "signature")
    assert sig.tag == f"sha256-{family['parent_digest'].split(':')[1]}.sig" and sig.detail == "1 signature"
    text = render_tree(tree)
    lines = text.splitlines()
    assert lines[0] == tree.reference and len(lines) == 5
    assert lines[-1].startswith("└── ") and all(line.startswith("├── ") for line in lines[1:-1])
    assert any(line.startswith(("├── provenance  application/vnd.in-toto+json  sha256:", "└── provenance"))
               for line in lines)


def test_discover_bundles_and_json_through_the_cli(family: dict[str, str], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "reader")
    assert main(["--config", home, "discover", family["child"], "--plain-http", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["digest"] == family["child_digest"] and doc["kind"] == "modelkit"
    by_kind = {r["kind"]: r for r in doc["referrers"]}
    assert set(by_kind) == {"provenance", "signature", "attestation"}
    assert by_kind["signature"]["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert by_kind["attestation"]["detail"] == "https://slsa.dev/provenance/v1"
    assert all(r["referrers"] == [] for r in doc["referrers"])
    assert main(["--config", home, "discover", family["child"], "--plain-http"]) == 0
    assert capsys.readouterr().out.startswith(f"{family['child'].rsplit(':', 1)[0]}@{family['child_digest']}\n")


def test_provenance_command_prints_the_statement(family: dict[str, str], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "reader"), "provenance", family["child"], "--plain-http"]) == 0
    statement = json.loads(capsys.readouterr().out)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"][0]["digest"] == {"sha256": family["child_digest"].split(":")[1]}
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert main(["--config", str(tmp_path / "empty"), "provenance", family["child"], "--local"]) == 1
    assert capsys.readouterr().err.startswith("Error: ")


def test_bookkeeping_tags_stay_out_of_listings(family: dict[str, str], tmp_path: Path) -> None:
    kit = KitOpsClient(store=LocalStore(tmp_path / "reader"), plain_http=True)
    for name in ("parent", "child"):
        repo = family[name].rsplit(":", 1)[0]
        assert list(kit.list_tags(repo)) == ["v1"]
        assert [row.tags for row in kit.list(repo)] == [("v1",)]
