"""Lineage: provenance records, referrers, graph queries, rendering and stages.

Unit tests run anywhere; the ``integration`` tests use the real registry (and S3) from conftest:
a chain S3 prefix -> dataset ModelKit -> model ModelKit -> fine-tuned model in another repository.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import DigestMismatchError, KitopsError, NotFoundError
from kitops_flows.lineage import (
    LineageGraph,
    LineageNode,
    RunContext,
    downstream,
    graph,
    history,
    promote,
    read_provenance,
    upstream,
    where,
)
from kitops_flows.lineage.graph import LineageEdge
from kitops_flows.lineage.model import (
    ANNOTATION_PARENTS,
    ANNOTATION_REVISION,
    ANNOTATION_RUN_ID,
    ANNOTATION_SOURCE,
    ARTIFACT_CHILD,
    ARTIFACT_PROVENANCE,
    NodeRef,
)
from kitops_flows.lineage.provenance import GitInfo, Provenance, git_info, sanitize_remote
from kitops_flows.lineage.referrers import INDEX_FILE, LocalReferrers
from kitops_flows.store import LocalStore

HEX = "0123456789abcdef" * 4


# -- unit: provenance values ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("https://bot:s3cret@github.com/acme/churn.git", "https://github.com/acme/churn.git"),
        ("https://ghp_token@github.com/acme/churn", "https://github.com/acme/churn"),
        ("https://github.com/acme/churn.git?access_token=abc#frag", "https://github.com/acme/churn.git"),
        ("ssh://git:pw@host.example:2222/acme/x.git", "ssh://host.example:2222/acme/x.git"),
        ("git@github.com:acme/churn.git", "git@github.com:acme/churn.git"),
        ("deploy:tok@github.com:acme/churn.git", "github.com:acme/churn.git"),
        ("/srv/git/churn.git", "/srv/git/churn.git"),
    ],
)
def test_sanitize_remote_drops_credentials(raw: str, clean: str) -> None:
    assert sanitize_remote(raw) == clean


def test_run_context_round_trips_and_omits_empty_fields() -> None:
    run = RunContext(orchestrator="dagster", pipeline="train_job", run_id="r-1", task="model", partition="2026-11-26",
                     attempt=2, url="http://dagster/runs/r-1", extra={"team": "ml"})
    d = run.to_dict()
    assert d["runId"] == "r-1" and d["attempt"] == 2 and d["extra"] == {"team": "ml"}
    assert RunContext.from_dict(d) == run
    assert RunContext(orchestrator="airflow").to_dict() == {"orchestrator": "airflow"}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_git_info_reads_checkout_and_hides_credentials(tmp_path: Path) -> None:
    assert git_info(tmp_path) is None  # not a checkout: omitted, no error
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "train.py").write_text("print(1)\n")
    _git(tmp_path, "add", "train.py")
    _git(tmp_path, "commit", "-q", "-m", "init")
    _git(tmp_path, "remote", "add", "origin", "https://user:hunter2@git.example.com/acme/churn.git")
    info = git_info(tmp_path)
    assert info == GitInfo(_git(tmp_path, "rev-parse", "HEAD"), "https://git.example.com/acme/churn.git", "main", False)
    (tmp_path / "train.py").write_text("print(2)\n")
    dirty = git_info(tmp_path)
    assert dirty is not None and dirty.dirty and "hunter2" not in json.dumps(dirty.to_dict())


def test_annotations_hold_only_build_stable_values() -> None:
    parent = NodeRef("127.0.0.1:5000", "team/data", "sha256:" + HEX)
    from kitops_flows.lineage.provenance import ParentInput

    prov = Provenance(
        tool_version="0.1.0", started_on="2026-11-26T10:00:00Z", user="alice", host="node-7",
        git=GitInfo("a" * 40, "https://git.example.com/acme/churn.git", "main", True),
        run=RunContext(orchestrator="prefect", pipeline="retrain", run_id="run-42"),
        parents=[ParentInput(parent, "parent", "127.0.0.1:5000/team/data:v1", 512)],
    )
    ann = prov.annotations()
    assert ann == {
        ANNOTATION_SOURCE: "https://git.example.com/acme/churn.git",
        ANNOTATION_REVISION: "a" * 40,
        ANNOTATION_PARENTS: "127.0.0.1:5000/team/data@sha256:" + HEX,
    }
    blob = json.dumps(ann)
    # nothing run-specific: the same content from another run must keep its digest
    assert ANNOTATION_RUN_ID not in ann and "run-42" not in blob
    assert "alice" not in blob and "node-7" not in blob and "2026" not in blob
    # the full document carries them instead
    st = prov.statement(NodeRef("127.0.0.1:5000", "team/model", "sha256:" + "f" * 64))
    assert st["predicate"]["buildDefinition"]["internalParameters"] == {"user": "alice", "host": "node-7"}
    assert st["predicate"]["buildDefinition"]["externalParameters"]["run"]["runId"] == "run-42"
    assert st["predicate"]["runDetails"]["builder"]["id"].endswith("/prefect")


# -- unit: rendering -------------------------------------------------------------------------------------

def _small_graph() -> LineageGraph:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    g = LineageGraph(b, "up")
    g.nodes[b] = LineageNode(b, "modelkit", "reg:5000/team/model", b, "reg:5000/team/model", ("v1", "production"),
                             "2026-11-26T10:00:00Z", "churn", "1.0")
    g.nodes[a] = LineageNode(a, "modelkit", 'reg:5000/team/"data"', a, "reg:5000/team/data", ("v1",))
    g.nodes["s3://b/k"] = LineageNode("s3://b/k", "s3", "s3://b/k", uri="s3://b/k")
    g.add_edge(LineageEdge(a, b, "parent"))
    g.add_edge(LineageEdge("s3://b/k", a, "s3"))
    g.add_edge(LineageEdge(a, b, "parent"))  # duplicates are ignored
    return g


def test_mermaid_and_dot_show_short_digests_tags_and_time() -> None:
    g = _small_graph()
    mermaid = g.to_mermaid()
    assert mermaid.startswith("graph LR\n")
    assert "sha256:bbbbbbbbbbbb<br/>v1, production" in mermaid and "b" * 13 not in mermaid
    assert "#quot;data#quot;" in mermaid and mermaid.count("-->") == 2
    dot = g.to_dot()
    assert "2026-11-26T10:00:00Z" in dot and '\\"data\\"' in dot and dot.count("->") == 2
    doc = json.loads(g.render("json"))
    assert doc["root"] == "sha256:" + "b" * 64 and len(doc["edges"]) == 2
    assert {n["shortDigest"] for n in doc["nodes"] if n["kind"] == "modelkit"} == {
        "sha256:aaaaaaaaaaaa", "sha256:bbbbbbbbbbbb"}


def test_png_and_svg_through_graphviz() -> None:
    g = _small_graph()
    assert g.render("png").startswith(b"\x89PNG\r\n\x1a\n")
    svg = g.render("svg").decode()
    assert "<svg" in svg and "sha256:aaaaaaaaaaaa" in svg


def test_missing_graphviz_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kitops_flows.lineage.render.shutil.which", lambda _: None)
    with pytest.raises(KitopsError, match="apt-get install graphviz"):
        _small_graph().render("png")
    with pytest.raises(KitopsError, match="unknown lineage format"):
        _small_graph().render("gif")


# -- local store (no services) -----------------------------------------------------------------------------

def _write(ctx: Path, kitfile: str, files: dict[str, str]) -> Path:
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Kitfile").write_text(kitfile)
    for rel, text in files.items():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text(text)
    return ctx


DATA_KITFILE = "manifestVersion: 1.0.0\npackage: {name: churn-data, version: 1.0.0}\ndatasets:\n  - {name: train, path: data}\n"
MODEL_KITFILE = "manifestVersion: 1.0.0\npackage: {name: churn, version: 2.0.0}\nmodel: {name: churn, path: model.bin}\n"


def test_local_chain_upstream_downstream_and_kit_list(tmp_path: Path) -> None:
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    data = kit.pack(_write(tmp_path / "d", DATA_KITFILE, {"data/train.csv": "a,b\n1,2\n"}), reference="lin/data:v1",
                    run=RunContext(orchestrator="airflow", pipeline="etl", run_id="r1"))
    model = kit.pack(_write(tmp_path / "m", MODEL_KITFILE, {"model.bin": "weights"}), reference="lin/model:v1",
                     parents=["lin/data:v1"])
    tuned_kitfile = "manifestVersion: 1.0.0\npackage: {name: tuned}\nmodel: {name: tuned, path: lin/model:v1}\ncode:\n  - {path: src}\n"
    tuned = kit.pack(_write(tmp_path / "t", tuned_kitfile, {"src/ft.py": "x=1\n"}), reference="other/tuned:v1")

    assert model.annotations[ANNOTATION_PARENTS] == f"lin/data@{data.digest}"
    assert tuned.annotations[ANNOTATION_PARENTS] == f"lin/model@{model.digest}"
    up = upstream(kit, "other/tuned:v1", remote=False)
    assert [n.digest for n in up if n.kind == "modelkit"] == [model.digest, data.digest]
    assert upstream(kit, "other/tuned:v1", depth=1, remote=False)[0].tags == ("v1",)
    assert [n.digest for n in upstream(kit, "other/tuned:v1", depth=1, remote=False)] == [model.digest]
    assert [n.digest for n in downstream(kit, "lin/data:v1", remote=False)] == [model.digest, tuned.digest]
    assert downstream(kit, "other/tuned:v1", remote=False) == []
    g = graph(kit, "lin/model:v1", "both", remote=False)
    assert {(e.source, e.target, e.relation) for e in g.edges} == {
        (data.digest, model.digest, "parent"), (model.digest, tuned.digest, "model")}

    # records are invisible to kit's listing and survive gc
    assert {e.repo_path for e in kit.store.list_entries()} == {"localhost/lin/data", "localhost/lin/model",
                                                              "localhost/other/tuned"}
    kit.store.gc()
    prov = read_provenance(kit, "lin/data:v1", remote=False)
    assert prov["predicate"]["buildDefinition"]["externalParameters"]["run"]["pipeline"] == "etl"
    assert kit.verify().ok


def test_local_store_tamper_and_foreign_subject_are_detected(tmp_path: Path) -> None:
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    d1 = kit.pack(_write(tmp_path / "d", DATA_KITFILE, {"data/x.csv": "1\n"}), reference="lin/a:v1")
    d2 = kit.pack(_write(tmp_path / "e", DATA_KITFILE, {"data/x.csv": "2\n"}), reference="lin/b:v1")
    local = LocalReferrers(kit.store)
    (rec,) = local.list(d1.digest, ARTIFACT_PROVENANCE)
    # index the first ModelKit's provenance under the second one: its subject gives it away
    doc = json.loads((kit.store.storage / INDEX_FILE).read_text())
    doc["referrers"][d2.digest] = doc["referrers"][d1.digest]
    (kit.store.storage / INDEX_FILE).write_text(json.dumps(doc))
    with pytest.raises(KitopsError, match="claims to describe"):
        read_provenance(kit, "lin/b:v1", remote=False)
    # rewrite the statement blob in place: its digest no longer matches
    from kitops_flows.manifest import Manifest

    layer = Manifest.from_bytes(kit.store.read_blob(rec.digest)).layers[0]
    path = kit.store.blob_path(layer.digest)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b"churn-data", b"evil-data!"))
    with pytest.raises(DigestMismatchError):
        read_provenance(kit, "lin/a:v1", remote=False)


def test_local_promotion_history_survives_repromotion(tmp_path: Path) -> None:
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    v1 = kit.pack(_write(tmp_path / "1", MODEL_KITFILE, {"model.bin": "w1"}), reference="lin/m:v1")
    v2 = kit.pack(_write(tmp_path / "2", MODEL_KITFILE, {"model.bin": "w2"}), reference="lin/m:v2")
    promote(kit, "lin/m:v1", "production")
    promote(kit, "lin/m:v2", "production")
    promote(kit, "lin/m:v1", "retired")
    promote(kit, "lin/m:v1", "production")  # rollback
    assert where(kit, "lin/m", "production") == NodeRef("localhost", "lin/m", v1.digest)
    assert where(kit, "lin/m", "staging") is None
    events = history(kit, "lin/m")
    assert [(e.stage, e.digest, e.previous) for e in events] == [
        ("production", v1.digest, v2.digest), ("retired", v1.digest, ""),
        ("production", v2.digest, v1.digest), ("production", v1.digest, "")]
    with pytest.raises(KitopsError, match="unknown stage"):
        promote(kit, "lin/m:v1", "prod")


# -- real registry (and S3) -----------------------------------------------------------------------------------

def _skopeo_raw(ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          check=True, capture_output=True).stdout


def _git_checkout(ctx: Path) -> str:
    _git(ctx, "init", "-q", "-b", "main")
    _git(ctx, "config", "user.email", "t@example.com")
    _git(ctx, "config", "user.name", "t")
    _git(ctx, "add", ".")
    _git(ctx, "commit", "-q", "-m", "train")
    _git(ctx, "remote", "add", "origin", "https://ci-bot:tok3n@git.example.com/acme/churn.git")
    return _git(ctx, "rev-parse", "HEAD")


@pytest.mark.integration
def test_registry_chain_s3_dataset_model_finetuned(registry, kitops_home, s3, tmp_path: Path) -> None:  # noqa: ANN001
    host = registry.host
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    bucket = s3.bucket if hasattr(s3, "bucket") else "lineage-data"
    s3_client = s3.client()
    if not hasattr(s3, "bucket"):
        s3_client.create_bucket(Bucket=bucket)
    for name, body in (("train.csv", b"a,b\n1,2\n"), ("test.csv", b"a,b\n3,4\n")):
        s3_client.put_object(Bucket=bucket, Key=f"churn/2026-11-26/{name}", Body=body)

    data_ref, model_ref, tuned_ref = f"{host}/lineage/data:v1", f"{host}/lineage/model:v1", f"{host}/tuning/tuned:v1"
    data = kit.pack(_write(tmp_path / "d", DATA_KITFILE, {}), reference=data_ref, push=True,
                    sources={"train": f"s3://{bucket}/churn/2026-11-26/"},
                    run=RunContext(orchestrator="airflow", pipeline="etl", run_id="scheduled__1", task="pack"))
    model_ctx = _write(tmp_path / "m", MODEL_KITFILE, {"model.bin": "weights-v1"})
    commit = _git_checkout(model_ctx)
    model = kit.pack(model_ctx, reference=model_ref, parents=[data_ref], push=True,
                     run=RunContext(orchestrator="dagster", pipeline="train", run_id="run-7", attempt=1))
    tuned_kitfile = f"manifestVersion: 1.0.0\npackage: {{name: tuned}}\nmodel: {{name: tuned, path: {model_ref}}}\ncode:\n  - {{path: src}}\n"
    tuned = kit.pack(_write(tmp_path / "t", tuned_kitfile, {"src/ft.py": "x=1\n"}), reference=tuned_ref, push=True)

    # a client with an empty store sees everything from the registry alone
    fresh = KitOpsClient(store=LocalStore(tmp_path / "fresh-home"), plain_http=True)
    up = upstream(fresh, tuned_ref)
    assert [n.digest for n in up if n.kind == "modelkit"] == [model.digest, data.digest]
    s3_nodes = sorted(n.uri for n in up if n.kind == "s3")
    assert [u.split("?")[0] for u in s3_nodes] == [f"s3://{bucket}/churn/2026-11-26/test.csv",
                                                   f"s3://{bucket}/churn/2026-11-26/train.csv"]
    assert any(n.kind == "code" and commit[:12] in n.label for n in up)
    assert [n.kind for n in upstream(fresh, data_ref)] == ["s3", "s3"]
    assert [n.digest for n in upstream(fresh, model_ref) if n.kind == "modelkit"] == [data.digest]
    assert [n.digest for n in downstream(fresh, data_ref)] == [model.digest, tuned.digest]
    assert [n.repo_path for n in downstream(fresh, model_ref)] == [f"{host}/tuning/tuned"]
    assert downstream(fresh, tuned_ref) == []
    nodes = {n.digest: n for n in downstream(fresh, data_ref)}
    assert nodes[model.digest].tags == ("v1",) and nodes[model.digest].created == model.created

    # provenance document fields
    prov = read_provenance(fresh, model_ref)
    assert prov["_type"] == "https://in-toto.io/Statement/v1"
    assert prov["predicateType"] == "https://slsa.dev/provenance/v1"
    assert prov["subject"][0]["digest"]["sha256"] == model.digest.split(":")[1]
    build = prov["predicate"]["buildDefinition"]
    deps = build["resolvedDependencies"]
    assert [d["digest"]["sha256"] for d in deps if d["annotations"]["kind"] == "modelkit"] == [data.digest[7:]]
    (code,) = [d for d in deps if d["annotations"]["kind"] == "code"]
    assert code["digest"] == {"gitCommit": commit} and "tok3n" not in json.dumps(prov)
    assert code["uri"] == "git+https://git.example.com/acme/churn.git"
    assert [d["name"] for d in deps if d["annotations"]["kind"] == "local"] == ["model.bin"]
    assert build["externalParameters"]["run"] == {"orchestrator": "dagster", "pipeline": "train", "runId": "run-7",
                                                  "attempt": 1}
    assert build["internalParameters"]["user"] and build["internalParameters"]["host"]
    details = prov["predicate"]["runDetails"]
    assert details["builder"]["id"].endswith("/dagster") and details["metadata"]["invocationId"] == "run-7"
    s3_deps = [d for d in read_provenance(fresh, data_ref)["predicate"]["buildDefinition"]["resolvedDependencies"]
               if d["annotations"]["kind"] == "s3"]
    assert len(s3_deps) == 2 and all(d["digest"] for d in s3_deps)

    # the ModelKit manifest is untouched by referrers: same bytes, no subject, kit-style annotations only
    raw = _skopeo_raw(model_ref)
    assert raw == kit.store.read_blob(model.digest)
    manifest = json.loads(raw)
    assert "subject" not in manifest and manifest["artifactType"] == "application/vnd.kitops.modelkit.manifest.v1+json"
    assert manifest["annotations"][ANNOTATION_SOURCE] == "https://git.example.com/acme/churn.git"
    assert manifest["annotations"][ANNOTATION_REVISION] == commit
    # distribution 2.8 has no referrers API: the tag-schema index is there, listing our referrers
    index = json.loads(_skopeo_raw(f"{host}/lineage/data:sha256-{data.digest[7:]}"))
    kinds = sorted(m["artifactType"] for m in index["manifests"])
    assert kinds == sorted([ARTIFACT_PROVENANCE, ARTIFACT_CHILD])
    # and a ModelKit consumer can still pull and unpack it
    puller = KitOpsClient(store=LocalStore(tmp_path / "puller"), plain_http=True)
    puller.pull(model_ref)
    assert (puller.unpack(model_ref, tmp_path / "out").paths)
    assert (tmp_path / "out" / "model.bin").read_text() == "weights-v1"

    # graph rendering of the real chain
    g = graph(fresh, model_ref, "both")
    assert g.to_mermaid().count("-->") == len(g.edges) >= 4
    assert g.render("svg").startswith(b"<?xml")

    # tampering with the provenance blob in the registry's storage is detected
    (rec,) = [m for m in json.loads(_skopeo_raw(f"{host}/lineage/model:sha256-{model.digest[7:]}"))["manifests"]
              if m["artifactType"] == ARTIFACT_PROVENANCE]
    layer_digest = json.loads(_skopeo_raw(f"{host}/lineage/model@{rec['digest']}"))["layers"][0]["digest"]
    blob = registry.blob_path(layer_digest)
    blob.write_bytes(blob.read_bytes().replace(b"dagster", b"airflow"))
    victim = KitOpsClient(store=LocalStore(tmp_path / "victim"), plain_http=True)
    with pytest.raises(DigestMismatchError):
        read_provenance(victim, model_ref)
    with pytest.raises(DigestMismatchError):
        upstream(victim, model_ref)


@pytest.mark.integration
def test_registry_stage_history_and_modelkit_without_records(registry, kitops_home, tmp_path: Path) -> None:  # noqa: ANN001
    host = registry.host
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    repo = f"{host}/stages/churn"
    v1 = kit.pack(_write(tmp_path / "1", MODEL_KITFILE, {"model.bin": "w1"}), reference=f"{repo}:v1", push=True,
                  record_lineage=False)
    v2 = kit.pack(_write(tmp_path / "2", MODEL_KITFILE, {"model.bin": "w2"}), reference=f"{repo}:v2", push=True)
    # no lineage records: nothing extra in the registry, queries are empty, pull works
    tags = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{repo}"], check=True,
                          capture_output=True, text=True).stdout
    assert f"sha256-{v1.digest[7:]}" not in tags
    assert upstream(kit, f"{repo}:v1") == [] and downstream(kit, f"{repo}:v1") == []
    with pytest.raises(NotFoundError, match="no provenance"):
        read_provenance(kit, f"{repo}:v1")

    promote(kit, f"{repo}:v1", "staging")
    promote(kit, f"{repo}:v1", "production")
    promote(kit, f"{repo}:v2", "production")
    promote(kit, f"{repo}:v1", "retired")
    promote(kit, f"{repo}:v1", "production")  # re-promotion (rollback) keeps the history
    fresh = KitOpsClient(store=LocalStore(tmp_path / "fresh"), plain_http=True)
    assert where(fresh, repo, "production") == NodeRef(host, "stages/churn", v1.digest)
    assert json.loads(_skopeo_raw(f"{repo}:production")) == json.loads(kit.store.read_blob(v1.digest))
    events = history(fresh, repo)
    assert [(e.stage, e.digest, e.previous) for e in events] == [
        ("production", v1.digest, v2.digest), ("retired", v1.digest, ""), ("production", v2.digest, v1.digest),
        ("production", v1.digest, ""), ("staging", v1.digest, "")]
    assert all(e.user and e.time for e in events)
    assert [e.event_digest for e in events[1:]] == [e.previous_event for e in events[:-1]]
    puller = KitOpsClient(store=LocalStore(tmp_path / "puller"), plain_http=True)
    assert puller.pull(f"{repo}:production").digest == v1.digest


@pytest.mark.integration
def test_cli_lineage_promote_history(registry, kitops_home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    from kitops_flows.cli import main

    host = registry.host
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    kit.pack(_write(tmp_path / "d", DATA_KITFILE, {"data/a.csv": "1\n"}), reference=f"{host}/cli/data:v1", push=True)
    m = kit.pack(_write(tmp_path / "m", MODEL_KITFILE, {"model.bin": "w"}), reference=f"{host}/cli/model:v1",
                 parents=[f"{host}/cli/data:v1"], push=True)
    base = ["--config", str(kitops_home)]
    assert main([*base, "lineage", f"{host}/cli/data:v1", "--down", "--plain-http"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [n["digest"] for n in doc["nodes"] if n["digest"] != doc["root"]] == [m.digest]
    out = tmp_path / "g.png"
    assert main([*base, "lineage", f"{host}/cli/model:v1", "--format", "png", "-o", str(out), "--plain-http"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main([*base, "promote", f"{host}/cli/model:v1", "production", "--plain-http"]) == 0
    capsys.readouterr()
    assert main([*base, "history", f"{host}/cli/model", "--format", "json", "--plain-http"]) == 0
    assert [e["digest"] for e in json.loads(capsys.readouterr().out)] == [m.digest]
