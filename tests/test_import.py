"""``kitops-flows import --tool git`` (kit-features-1.17.md §5.4) on real git repositories made in tmp_path,
and the SLSA predicate ``--attestation-output`` writes (byte shape, key order, refusals)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from kitops_flows.cli import main
from kitops_flows.importprovenance import ImportPredicate, rfc3339_nano
from kitops_flows.store import LocalStore

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$")


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main", *args]
    return subprocess.run(cmd, cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def _repo(root: Path, files: dict[str, bytes]) -> tuple[Path, str]:
    root.mkdir(parents=True)
    _git(root, "init", "-q")
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "first")
    return root, _git(root, "rev-parse", "HEAD")


def test_import_local_repo_generates_kitfile_and_writes_predicate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo, commit = _repo(tmp_path / "Churn-Model", {"model.safetensors": b"w" * 2048, "README.md": b"# churn\n",
                                                    "data/train.csv": b"a,b\n1,2\n"})
    home, pred = str(tmp_path / "home"), tmp_path / "out/predicate.json"
    argv = ["--config", home, "import", str(repo), "-t", "team/churn:v1", "--attestation-output", str(pred)]
    assert main(argv) == 0  # a local path defaults to the git importer
    out, err = capsys.readouterr()
    assert out.strip() == "team/churn:v1"
    data = pred.read_bytes()
    doc = json.loads(data)
    assert data.endswith(b"}\n") and data.decode().startswith('{\n  "buildDefinition": {\n    "buildType"')
    assert list(doc) == ["buildDefinition", "runDetails"]
    bd, rd = doc["buildDefinition"], doc["runDetails"]
    assert list(bd) == ["buildType", "externalParameters", "resolvedDependencies"]
    assert bd["buildType"] == "https://kitops.org/import/v1" and bd["resolvedDependencies"] == []
    assert list(bd["externalParameters"]) == ["source", "kitfile"]
    assert bd["externalParameters"]["source"] == {"uri": "git+" + repo.resolve().as_uri(),
                                                  "digest": {"gitCommit": commit}}
    assert list(rd) == ["builder", "metadata"] and rd["builder"]["id"] == "https://kitops.org/kit"
    assert list(rd["metadata"]) == ["invocationId", "startedOn", "finishedOn"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        rd["metadata"]["invocationId"])
    assert RFC3339.match(rd["metadata"]["startedOn"]) and RFC3339.match(rd["metadata"]["finishedOn"])
    assert "ModelKit manifest digest: sha256:" in err

    store = LocalStore(home)  # the kitfile digest is the Kit config blob's digest, sha256 of its bytes
    assert main(["--config", home, "inspect", "team/churn:v1"]) == 0
    inspected = json.loads(capsys.readouterr().out)
    config_digest = inspected["manifest"]["config"]["digest"]
    assert bd["externalParameters"]["kitfile"]["digest"] == {"sha256": config_digest.split(":")[1]}
    assert hashlib.sha256(store.read_blob(config_digest)).hexdigest() == config_digest.split(":")[1]
    assert f"ModelKit manifest digest: {inspected['digest']}" in err
    assert inspected["kitfile"]["model"]["path"] == "model.safetensors"  # generated like init

    dest = tmp_path / "unpacked"
    assert main(["--config", home, "unpack", "team/churn:v1", "-d", str(dest)]) == 0
    assert (dest / "model.safetensors").read_bytes() == b"w" * 2048
    assert not (dest / ".git").exists()  # .git stripped before packing
    assert not any((Path(home) / "cache/import").iterdir())  # the clone is gone


def test_import_file_url_with_kitfile_ref_and_predicate_on_stdout(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kitfile = b"manifestVersion: 1.0.0\npackage: {name: tiny}\nmodel: {path: w.bin}\n"
    repo, first = _repo(tmp_path / "tiny", {"w.bin": b"v1", "Kitfile": kitfile})
    _git(repo, "checkout", "-q", "-b", "feature")
    (repo / "w.bin").write_bytes(b"v2")
    _git(repo, "commit", "-q", "-am", "v2")
    feature = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "main")
    home = str(tmp_path / "home")
    argv = ["--config", home, "import", repo.as_uri(), "--tool", "git", "--ref", "feature",
            "--attestation-output", "-"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)  # stdout holds only the predicate
    assert doc["buildDefinition"]["externalParameters"]["source"] == {"uri": "git+" + repo.as_uri(),
                                                                      "digest": {"gitCommit": feature}}
    assert "ModelKit manifest digest: sha256:" in err
    dest = tmp_path / "out"
    assert main(["--config", home, "unpack", "tiny:latest", "-d", str(dest)]) == 0  # default tag <repo>:latest
    assert (dest / "w.bin").read_bytes() == b"v2" and "name: tiny" in (dest / "Kitfile").read_text()

    assert main(["--config", home, "import", str(repo), "-t", "tiny:main"]) == 0  # no --ref: the repo's HEAD
    capsys.readouterr()
    assert main(["--config", home, "unpack", "tiny:main", "-d", str(tmp_path / "main")]) == 0
    assert (tmp_path / "main/w.bin").read_bytes() == b"v1" and first != feature

    assert main(["--config", home, "import", str(repo), "--ref", "nope"]) == 1
    assert "ref 'nope' not found in file://" in capsys.readouterr().err


def test_import_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "home")
    for argv in (["import", "org/model"], ["import", "https://huggingface.co/org/model"],
                 ["import", str(tmp_path), "--tool", "hf"]):
        assert main(["--config", home, *argv]) == 1
        assert "Hugging Face needs network access to huggingface.co and is not supported yet" in \
            capsys.readouterr().err
    assert main(["--config", home, "import", str(tmp_path / "missing"), "--tool", "git"]) == 1
    assert "Error: git clone failed:" in capsys.readouterr().err
    assert main(["--config", home, "import", str(tmp_path), "--concurrency", "0"]) == 1
    assert "--concurrency must be at least 1" in capsys.readouterr().err

    ok = dict(source_uri="git+file:///r", commit="c" * 40, kitfile_digest="sha256:" + "a" * 64,
              manifest_digest="sha256:" + "b" * 64, builder_version={"python": "3", "kitops-flows": "1"},
              invocation_id="id", started=1777636800.0, finished=1777636801.5)
    assert list(ImportPredicate(**ok).to_dict()["runDetails"]["builder"]["version"]) == ["kitops-flows", "python"]
    for key, message in (("source_uri", "provenance: source URI is empty"),
                         ("commit", "provenance: source commit SHA missing for git+file:///r; predicate would be "
                                    "unverifiable"),
                         ("kitfile_digest", "provenance: Kitfile config digest is empty"),
                         ("manifest_digest", "provenance: manifest digest is empty")):
        with pytest.raises(Exception, match=re.escape(message)):
            ImportPredicate(**{**ok, key: ""}).to_bytes()
    assert rfc3339_nano(1777636800.0) == "2026-05-01T12:00:00Z"
    assert rfc3339_nano(1777636801.5) == "2026-05-01T12:00:01.5Z"
