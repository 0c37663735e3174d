"""``kitops-flows skill`` and ``unpack --as-skill`` (kit-features-1.17.md §5.6) on ModelKits built by the spec
(tests/kitspec.py helpers, not our writer) and pushed to the real registry."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from kitops_flows.cli import main
from kitops_flows.skills import front_matter_name, resolve_targets, sanitize_name
from tests.kitspec import (
    KIT_CONFIG,
    KIT_MANIFEST_TYPE,
    OCI_MANIFEST,
    Artifact,
    compact,
    digest,
    upload,
    zstd_bytes,
)

pytestmark = pytest.mark.integration

SKILL_MD = b"---\nname: Code Review!\ndescription: reviews code\n---\n# Review\nLook for bugs.\n"


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o644, 1000, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _prompt_modelkit(prompts: list[tuple[str | None, str, dict[str, bytes], bool]]) -> Artifact:
    """A kit 1.17 ModelKit: a model layer plus prompt layers (code media type, subtype prompt), by §5.5/§6.1."""
    model_tar = _tar({"model.bin": b"weights"})
    layers = [({"path": "model.bin"}, "model", model_tar, model_tar, "model.bin", False)]
    for name, path, files, zstd in prompts:
        tar = _tar(files)
        layers.append(({**({"name": name} if name else {}), "path": path}, "code", tar,
                       zstd_bytes(tar) if zstd else tar, path, True))
    kitfile: dict[str, object] = {"manifestVersion": "1.0.0", "package": {"name": "helper"}}
    descs, blobs = [], {}
    for entry, kind, tar, blob, path, prompt in layers:
        blobs[digest(blob)] = blob
        info = {"digest": digest(blob), "diffId": digest(tar)}
        if prompt:
            kitfile.setdefault("prompts", []).append({**entry, **info})  # type: ignore[union-attr]
        else:
            kitfile["model"] = {"name": "helper", **entry, **info}
        annotations = {"org.cncf.model.filepath": path.rstrip("/")}
        if prompt:
            annotations["ml.kitops.modelkit.layer-subtype"] = "prompt"
        suffix = "+zstd" if blob is not tar else ""
        descs.append({"mediaType": f"application/vnd.kitops.modelkit.{kind}.v1.tar{suffix}", "digest": digest(blob),
                      "size": len(blob), "annotations": dict(sorted(annotations.items()))})
    config = compact({k: kitfile[k] for k in ("manifestVersion", "package", "model", "prompts") if k in kitfile})
    blobs[digest(config)] = config
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": KIT_MANIFEST_TYPE,
                "config": {"mediaType": KIT_CONFIG, "digest": digest(config), "size": len(config)},
                "layers": descs, "annotations": {"ml.kitops.modelkit.cli-version": "1.17.0"}}
    return Artifact(compact(manifest), blobs)


SKILLS = [
    ("review", "skills/review", {"skills/review/SKILL.md": SKILL_MD, "skills/review/refs/guide.md": b"guide\n"}, False),
    ("system", "prompts/system.md", {"prompts/system.md": b"You are helpful.\n"}, False),
    (None, "skills/tools/", {"skills/tools/a/b/SKILL.md": b"# tools at depth\n", "skills/tools/run.sh": b"echo\n"},
     False),
]


def _push(registry: object, name: str, prompts: list) -> str:
    host = registry.host  # type: ignore[attr-defined]
    upload(host, f"skills/{name}", "v1", _prompt_modelkit(prompts))
    return f"{host}/skills/{name}:v1"


def test_unpack_as_skill_into_project_dir_with_explicit_agents(
        registry: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = _push(registry, "mixed", [*SKILLS, ("zipped", "skills/zipped/SKILL.md",
                                             {"skills/zipped/SKILL.md": b"# zipped\n"}, True)])
    home, proj = str(tmp_path / "home"), tmp_path / "proj"
    argv = ["--config", home, "unpack", ref, "--as-skill=claude-code,codex", "-d", str(proj), "--plain-http"]
    assert main(argv) == 1  # the zstd prompt cannot be installed
    out, err = capsys.readouterr()
    claude, agents = proj / ".claude/skills", proj / ".agents/skills"
    assert out.splitlines() == [
        f"Installed skill 'code-review' for claude-code → {claude / 'code-review'}",
        f"Installed skill 'code-review' for codex → {agents / 'code-review'}",
        f"Installed skill 'tools' for claude-code → {claude / 'tools'}",
        f"Installed skill 'tools' for codex → {agents / 'tools'}",
    ]
    assert 'Skipping prompt "system": not a SKILL.md, cannot install as skill' in err
    assert "Failed to install skill 'zipped': unsupported compression type zstd" in err
    assert err.rstrip().endswith("Error: failed to install 1 skill(s)")
    for root in (claude, agents):
        assert (root / "code-review/SKILL.md").read_bytes() == SKILL_MD  # prompt path prefix stripped
        assert (root / "code-review/refs/guide.md").read_bytes() == b"guide\n"
        assert (root / "tools/a/b/SKILL.md").read_bytes() == b"# tools at depth\n"
        assert (root / "code-review/SKILL.md").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in proj.iterdir()) == [".agents", ".claude"]  # no model, no Kitfile, no system.md
    assert not (claude / "zipped").exists() and not (claude / "system").exists()


def test_unpack_as_skill_global_dirs_auto_existing_and_filters(
        registry: object, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _push(registry, "clean", SKILLS)
    user_home, claude_dir = tmp_path / "user", tmp_path / "claude-config"
    (user_home / ".cursor").mkdir(parents=True)
    claude_dir.mkdir()
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(claude_dir))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    base = ["--config", str(tmp_path / "kh"), "unpack", "--as-skill", ref, "--plain-http"]  # bare flag: auto
    assert main(base) == 0  # auto: claude-code (CLAUDE_CONFIG_DIR exists) and cursor (~/.cursor exists)
    out = capsys.readouterr().out
    assert f"Installed skill 'code-review' for claude-code → {claude_dir / 'skills/code-review'}" in out
    assert f"Installed skill 'tools' for cursor → {user_home / '.cursor/skills/tools'}" in out
    assert not (user_home / ".codex").exists()

    (claude_dir / "skills/code-review/SKILL.md").write_text("edited\n")
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "skill directory already exists (use -o to overwrite)" in err and "failed to install 4 skill(s)" in err
    assert (claude_dir / "skills/code-review/SKILL.md").read_text() == "edited\n"

    assert main([*base, "-i"]) == 0
    assert capsys.readouterr().out.count("Skipped skill") == 4
    assert (claude_dir / "skills/code-review/SKILL.md").read_text() == "edited\n"

    assert main([*base, "-o", "-f", "model", "-f", "prompts:review"]) == 0  # only the review prompt, replaced
    out, err = capsys.readouterr()
    assert "Filter type 'model' has no effect with --as-skill (only 'prompts' filters apply)" in err
    assert len(out.splitlines()) == 2 and "tools" not in out
    assert (claude_dir / "skills/code-review/SKILL.md").read_bytes() == SKILL_MD


def test_unpack_as_skill_refuses_unsafe_layer_and_bad_agents(
        registry: object, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _push(registry, "evil", [("evil", "skills/evil", {"skills/evil/../../../escape/SKILL.md": b"x"}, False)])
    proj = tmp_path / "proj"
    argv = ["--config", str(tmp_path / "kh"), "unpack", ref, "--plain-http", "-d", str(proj)]
    assert main([*argv, "--as-skill=claude-code"]) == 1
    err = capsys.readouterr().err
    assert "Failed to install skill 'evil'" in err and "failed to install 1 skill(s)" in err
    assert not (tmp_path / "escape").exists() and not (proj / ".claude/skills").exists()

    assert main([*argv, "--as-skill=claude-code,vim"]) == 1
    assert "unknown agent 'vim'. Valid agents: claude-code, codex, cursor" in capsys.readouterr().err
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("CODEX_HOME", raising=False)
    assert main([*argv, "--as-skill"]) == 1
    assert "no installed agents detected. Specify agents explicitly, e.g. --as-skill=claude-code,cursor" in \
        capsys.readouterr().err


def test_skill_command_installs_embedded_skill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--config", str(tmp_path / "kh"), "skill", "-d", str(tmp_path), "--agents", "claude-code,cursor"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    skill = tmp_path / ".claude/skills/kitops/SKILL.md"
    assert f"Installed skill 'kitops' for claude-code → {skill.parent}" in out
    text = skill.read_text()
    assert front_matter_name(text) == "kitops" and "kitops-flows unpack" in text
    assert (tmp_path / ".cursor/skills/kitops/SKILL.md").read_text() == text
    assert main(argv) == 1
    assert "skill directory already exists (use -o to overwrite)" in capsys.readouterr().err
    assert main([*argv, "-o"]) == 0 and main([*argv, "-i"]) == 0
    assert "Skipped skill 'kitops'" in capsys.readouterr().out


def test_skill_names_and_shared_dirs(tmp_path: Path) -> None:
    assert sanitize_name("Code Review!") == "code-review"
    assert sanitize_name("..My_Skill.v2--") == "my_skill.v2"
    assert sanitize_name("???") == "unnamed-skill"
    assert len(sanitize_name("a" * 300)) == 255
    assert front_matter_name("# no front matter\nname: x\n") is None
    env = {"HOME": str(tmp_path), "CLAUDE_CONFIG_DIR": str(tmp_path / "c")}
    (tmp_path / "c").mkdir()
    targets = resolve_targets("claude-code", None, env)
    assert [t.skills_dir for t in targets] == [tmp_path / "c/skills"]
