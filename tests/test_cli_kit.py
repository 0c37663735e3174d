"""kit 1.17's smaller CLI changes: ``list --format json`` (integer sizes, kit's fields), ``info --filter`` (Go field
names, YAML), ``cache info|clear``, prompt and MCP layers with ``--filter prompts|mcpservers``, ``-t tag1,tag2``,
bookkeeping tags hidden from remote listings, and ``--help`` naming kit's commands plus ours."""

from __future__ import annotations

import io
import json
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from kitspec import kit_modelkit, store_local, upload

from kitops_flows.api import KitOpsClient
from kitops_flows.cli import build_parser, main
from kitops_flows.store import LocalStore

KITFILE = """manifestVersion: 1.0.0
package: {name: helper, authors: [Jane Doe, Joe]}
model: {path: model.bin}
prompts:
  - {name: system, path: prompts/system.md, description: the system prompt}
mcpServers:
  - {name: search, path: tools/search.mcpb}
"""


def _context(root: Path) -> Path:
    (root / "prompts").mkdir(parents=True)
    (root / "tools").mkdir()
    (root / "model.bin").write_bytes(b"m" * 2048)
    (root / "prompts/system.md").write_text("You are helpful.\n")
    with zipfile.ZipFile(root / "tools/search.mcpb", "w") as z:
        z.writestr("manifest.json", '{"name": "search"}')
    (root / "Kitfile").write_text(KITFILE)
    return root


def _out(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out


def test_list_json_has_kits_fields_and_integer_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "home")
    assert main(["--config", home, "pack", str(_context(tmp_path / "ctx")), "-t", "team/helper:v1,latest"]) == 0
    art = kit_modelkit({"model": ("w.bin", b"x")}, name="")
    store_local(LocalStore(home), "localhost/_", [], art)  # untagged, no package name, no author
    capsys.readouterr()
    assert main(["--config", home, "list", "--format", "json"]) == 0
    out = _out(capsys)
    rows = json.loads(out)
    assert out.endswith("]\n") and '\n  {\n    "repo": ' in out  # 2-space indent, every key on its own line
    assert [list(r) for r in rows] == [["repo", "digest", "tags", "modelName", "size", "author"]] * 2
    untagged, helper = sorted(rows, key=lambda r: r["repo"])
    assert untagged == {"repo": "_", "digest": art.digest, "tags": None, "modelName": "<none>",
                        "size": art.layer_size, "author": "<none>"}
    manifest = json.loads(LocalStore(home).read_blob(helper["digest"]))
    assert helper["repo"] == "team/helper" and helper["tags"] == ["latest", "v1"]  # -t v1,latest: two tags
    assert helper["size"] == sum(l["size"] for l in manifest["layers"]) and isinstance(helper["size"], int)
    assert (helper["modelName"], helper["author"]) == ("helper", "Jane Doe")
    assert main(["--config", home, "list"]) == 0
    table = _out(capsys).splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "MAINTAINER", "NAME", "SIZE", "DIGEST"]
    assert any(line.startswith("team/helper") and " KiB " in line for line in table)


def test_prompt_and_mcp_layers_and_their_filters(tmp_path: Path) -> None:
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    desc = kit.pack(_context(tmp_path / "ctx"), reference="team/helper:v1", record_lineage=False)
    layers = json.loads(kit.store.read_blob(desc.digest))["layers"]
    prompt, mcp = layers[1], layers[2]
    assert prompt["mediaType"] == "application/vnd.kitops.modelkit.code.v1.tar"
    assert prompt["annotations"] == {"ml.kitops.modelkit.layer-subtype": "prompt",
                                     "org.cncf.model.filepath": "prompts/system.md"}
    assert mcp["mediaType"] == "application/vnd.kitops.modelkit.mcpb.v1.raw"
    meta = json.loads(mcp["annotations"]["org.cncf.model.file.metadata+json"])
    assert (meta["name"], meta["typeflag"], mcp["annotations"]["org.cncf.model.filepath"]) == (
        "search.mcpb", 48, "tools/search.mcpb")
    kit.unpack("team/helper:v1", tmp_path / "p", filters=["prompts"])
    assert (tmp_path / "p/prompts/system.md").read_text() == "You are helpful.\n"
    assert not (tmp_path / "p/model.bin").exists() and not (tmp_path / "p/tools").exists()
    kit.unpack("team/helper:v1", tmp_path / "m", filters=["mcpservers:search"])
    assert zipfile.ZipFile(tmp_path / "m/tools/search.mcpb").read("manifest.json") == b'{"name": "search"}'
    assert not (tmp_path / "m/prompts").exists()


@pytest.mark.parametrize(("flt", "expected"), [
    (".package.name", "helper\n"),
    ("package.authors", "- Jane Doe\n- Joe\n"),
    (".package", "name: helper\nauthors: [Jane Doe, Joe]\n"),
    (".model.path", "model.bin\n"),
    (".prompts", "- name: system\n  path: prompts/system.md\n  description: the system prompt\n"),
    (".package.version", '""\n'),
])
def test_info_filter_prints_yaml_by_go_field_names(tmp_path: Path, capsys: pytest.CaptureFixture[str], flt: str,
                                                   expected: str) -> None:
    home = str(tmp_path / "home")
    main(["--config", home, "pack", str(_context(tmp_path / "ctx")), "-t", "team/helper:v1"])
    capsys.readouterr()
    assert main(["--config", home, "info", "team/helper:v1", "--filter", flt]) == 0
    assert _out(capsys) == expected


@pytest.mark.parametrize(("flt", "error"), [
    (".datasets", "error filtering output: cannot find required node"),  # the Go field is DataSets
    (".code[0]", "invalid filter: array access using '[]' is not currently supported"),
    (".a..b", "invalid filter: invalid filter: .a..b"),
])
def test_info_filter_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], flt: str, error: str) -> None:
    home = str(tmp_path / "home")
    main(["--config", home, "pack", str(_context(tmp_path / "ctx")), "-t", "team/helper:v1"])
    capsys.readouterr()
    assert main(["--config", home, "info", "team/helper:v1", "-f", flt]) == 1
    assert capsys.readouterr().err == f"Error: {error}\n"
    assert main(["--config", home, "info", "team/nope:v1"]) == 1
    assert capsys.readouterr().err == "Error: Could not find modelkit team/nope:v1\n"


def test_cache_info_and_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert main(["--config", str(home), "cache", "info"]) == 0
    assert _out(capsys) == "Cache is currently empty\n"
    (home / "cache/pack").mkdir(parents=True)
    (home / "cache/import/kitops_import_1").mkdir(parents=True)
    (home / "cache/pack/kitops_layer_1").write_bytes(b"p" * 3000)
    (home / "cache/import/kitops_import_1/f").write_bytes(b"i" * 100)
    main(["--config", str(home), "pack", str(_context(tmp_path / "ctx")), "-t", "team/helper:v1"])
    capsys.readouterr()
    assert main(["--config", str(home), "cache", "info"]) == 0
    lines = _out(capsys).splitlines()
    dir_size = (home / "cache/pack").stat().st_size
    assert lines[0].startswith("Total size of cache directory: ") and lines[1] == "Cache contents:"
    assert lines[2].startswith("  ./import    ") and lines[3] == f"  ./pack      {(3000 + dir_size) / 1024:.1f} KiB"
    assert main(["--config", str(home), "cache", "clear"]) == 0
    assert _out(capsys) == "" and list((home / "cache").iterdir()) == []
    assert KitOpsClient(store=LocalStore(home)).describe("team/helper:v1"), "the store is untouched"


def test_internal_tags_are_hidden_from_remote_listings(registry, tmp_path: Path,  # noqa: ANN001
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    art = kit_modelkit({"model": ("w.bin", b"w" * 10)})
    repo = "hidden/model"
    hexd = art.digest.split(":")[1]
    for tag in ("v1", f"sha256-{hexd}", f"sha256-{hexd}.sig", f"sha256-{hexd}.att", "kitops-flows-stage-log"):
        upload(registry.host, repo, tag, art)
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"), plain_http=True)
    assert kit.list_tags(f"{registry.host}/{repo}") == {"v1": art.digest}
    [row] = kit.list(f"{registry.host}/{repo}")
    assert row.tags == ("v1",)
    assert main(["--config", str(tmp_path / "home"), "list", f"{registry.host}/{repo}", "--plain-http",
                 "--format", "json"]) == 0
    assert [r["tags"] for r in json.loads(capsys.readouterr().out)] == [["v1"]]


def test_help_lists_kits_commands_and_ours() -> None:
    buf = io.StringIO()
    with redirect_stdout(buf), pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = buf.getvalue()
    kit_commands = ["pack", "unpack", "push", "pull", "list", "inspect", "info", "tag", "remove", "login", "logout",
                    "init", "version", "diff", "index", "cache", "skill", "import"]
    ours = ["verify", "gc", "lineage", "promote", "history", "discover", "provenance", "sign", "generate-key-pair"]
    for name in kit_commands + ours:
        assert f"\n    {name} " in text or f"\n    {name}\n" in text, name


def test_list_filter_keeps_modelkits_with_a_matching_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path / "home")
    assert main(["--config", home, "pack", str(_context(tmp_path / "ctx")), "-t", "team/helper:v1"]) == 0
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "w.bin").write_bytes(b"w")
    (plain / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel: {path: w.bin}\n")
    assert main(["--config", home, "pack", str(plain), "-t", "team/plain:v1"]) == 0
    capsys.readouterr()
    for flt, expected in ((["prompts"], ["team/helper"]), (["mcpservers:search"], ["team/helper"]),
                          (["model"], ["team/helper", "team/plain"]), (["datasets", "prompts:system"], ["team/helper"]),
                          (["datasets"], [])):
        argv = ["--config", home, "list", "--format", "json"] + [x for f in flt for x in ("-f", f)]
        assert main(argv) == 0
        assert [r["repo"] for r in json.loads(capsys.readouterr().out)] == expected, flt


def test_pack_status_lines_are_kits_and_the_final_one_comes_once(registry, tmp_path: Path,  # noqa: ANN001
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """kit-features-1.17.md §3: layer lines, configuration, manifest, then one ``Model saved: <digest>``
    (``Model pushed: <digest>`` ends a ``--push``); stdout holds only the reference."""
    home, ctx = str(tmp_path / "home"), _context(tmp_path / "ctx")
    assert main(["--config", home, "pack", str(ctx), "-t", "team/helper:v1"]) == 0
    out, err = capsys.readouterr()
    digest = KitOpsClient(store=LocalStore(home)).resolve("team/helper:v1").digest
    assert out == "team/helper:v1\n"
    lines = [line for line in err.splitlines() if not line.startswith("Recorded provenance")]
    assert lines[-2:] == [f"Saved manifest to storage: {digest}", f"Model saved: {digest}"]
    assert err.count("Model saved") == 1 and "Saved configuration: sha256:" in err
    assert any(line.startswith("Saved model layer: sha256:") for line in lines)

    ref = f"{registry.host}/status/helper:v1"
    assert main(["--config", home, "pack", str(ctx), "-t", ref, "--push", "--plain-http"]) == 0
    out, err = capsys.readouterr()
    assert out == ref + "\n"
    digest = KitOpsClient(store=LocalStore(home)).resolve(ref).digest  # another repository: maybe another created
    assert (err.count(f"Model saved: {digest}"), err.count(f"Model pushed: {digest}")) == (1, 1)
    assert err.rstrip().endswith(f"Model pushed: {digest}")


def test_kits_global_flags_progress_and_trace(capsys: pytest.CaptureFixture[str]) -> None:
    """``--progress none|plain|fancy`` and ``--log-level trace`` are kit's global flags: accepted, and none hides
    the transfer progress lines (only those)."""
    import logging

    from kitops_flows.cli import _configure_logging
    from kitops_flows.progress import ProgressReporter

    for progress, shown in (("plain", True), ("fancy", True), ("none", False)):
        _configure_logging(build_parser().parse_args(["--log-level", "trace", "--progress", progress, "version"]))
        assert logging.getLogger("kitops_flows").isEnabledFor(logging.DEBUG)
        reporter = ProgressReporter("push model layer", total=10, min_bytes_to_log=0)
        reporter.update(10)
        reporter.finish()
        logging.getLogger("kitops_flows").info("Model saved: sha256:x")
        err = capsys.readouterr().err
        assert ("push model layer: done, 10 B of 10 B" in err) == shown, progress
        assert "Model saved: sha256:x" in err
    assert main(["--progress", "none", "--log-level", "trace", "version"]) == 0


def test_main_gives_the_logger_back_as_it_found_it(tmp_path: Path) -> None:
    """main() run inside another program (here: pytest) leaves no handler behind on a stream that closes later."""
    import logging

    log = logging.getLogger("kitops_flows")
    before = (log.handlers[:], log.level, log.propagate)
    home = str(tmp_path / "home")
    assert main(["--config", home, "-v", "pack", str(_context(tmp_path / "ctx")), "-t", "team/helper:v1"]) == 0
    assert main(["--config", home, "info", "no/such:v1"]) == 1  # the error path too
    assert (log.handlers[:], log.level, log.propagate) == before
