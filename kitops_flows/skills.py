"""Agent skills: kit's ``skill`` command and ``unpack --as-skill`` (kit-features-1.17.md §5.6).

A skill is a directory holding a ``SKILL.md`` in an AI agent's skills directory. Prompt layers that
contain a ``SKILL.md`` are installed as skills; the layer is untrusted, so it is read through the
verified layer reader (names checked, files and directories only, digests verified) into memory
(10 MiB per entry and per layer) before anything is written.

    targets = resolve_targets("claude-code,cursor", project_dir=None)   # or "auto"
    skill = read_prompt_skill(store, planned_layer, what="team/helper:v1", repository="team/helper")
    results = install_skill(skill, targets, existing="error")
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .digests import CHUNK
from .errors import KitopsError, UnpackError
from .extract import Member
from .layerreader import BlobOpener, read_layer
from .manifest import PlannedLayer

MAX_SKILL_BYTES = 10 << 20  # kit's limit, per entry and per layer
UNNAMED = "unnamed-skill"


@dataclass(frozen=True)
class Agent:
    """Where one agent keeps skills: its global config dir (+ ``skills``) and its project-relative dir."""

    name: str
    config_env: str | None  # env var overriding the global config dir
    config_dir: str  # relative to $HOME
    project_dir: str  # relative to -d DIR

    def global_config(self, env: Mapping[str, str]) -> Path:
        if self.config_env and env.get(self.config_env):
            return Path(env[self.config_env])
        return Path(env.get("HOME") or Path.home()) / self.config_dir

    def skills_dir(self, project_dir: Path | None, env: Mapping[str, str]) -> Path:
        return project_dir / self.project_dir if project_dir is not None else self.global_config(env) / "skills"


AGENTS: tuple[Agent, ...] = (
    Agent("claude-code", "CLAUDE_CONFIG_DIR", ".claude", ".claude/skills"),
    Agent("codex", "CODEX_HOME", ".codex", ".agents/skills"),
    Agent("cursor", None, ".cursor", ".cursor/skills"),
)


@dataclass(frozen=True)
class Target:
    """One agent's skills directory (agents sharing a directory are listed together, installed once)."""

    agents: tuple[str, ...]
    skills_dir: Path


def resolve_targets(spec: str, project_dir: Path | str | None, env: Mapping[str, str] | None = None) -> list[Target]:
    """``auto`` (agents whose global config dir exists) or ``a,b``: the skills dirs to install into."""
    env = os.environ if env is None else env
    by_name = {a.name: a for a in AGENTS}
    if spec.strip() in ("", "auto"):
        chosen = [a for a in AGENTS if a.global_config(env).is_dir()]
        if not chosen:
            raise KitopsError("no installed agents detected. Specify agents explicitly, e.g. "
                              "--as-skill=claude-code,cursor")
    else:
        chosen = []
        for name in (n.strip() for n in spec.split(",") if n.strip()):
            if name not in by_name:
                raise KitopsError(f"unknown agent '{name}'. Valid agents: {', '.join(by_name)}")
            if by_name[name] not in chosen:
                chosen.append(by_name[name])
    project = Path(project_dir) if project_dir is not None else None
    targets: dict[Path, list[str]] = {}
    for agent in chosen:
        targets.setdefault(agent.skills_dir(project, env), []).append(agent.name)
    return [Target(tuple(names), d) for d, names in targets.items()]


def sanitize_name(name: str) -> str:
    """kit's skill-name rule: lowercase, runs outside ``[a-z0-9._]`` -> ``-``, trimmed, at most 255 chars."""
    out = re.sub(r"[^a-z0-9._]+", "-", name.lower()).strip(".-")[:255].strip(".-")
    return out or UNNAMED


def front_matter_name(text: str) -> str | None:
    """The ``name:`` of a SKILL.md's YAML front matter (between leading ``---`` lines), if any."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for line in lines[1:]:
        if line.strip() == "---":
            return None
        m = re.match(r"name:\s*(.*?)\s*$", line)
        if m:
            value = m.group(1).strip("'\"")
            return value or None
    return None


@dataclass
class Skill:
    """A skill read from a prompt layer: its sanitised name and its files (relative to the prompt path)."""

    name: str
    files: dict[str, bytes]
    dirs: list[str] = field(default_factory=list)
    source: str = ""  # the prompt, for messages


class _SkillSink:
    """Collects a prompt layer's members in memory within kit's limits (10 MiB per entry and per layer)."""

    def __init__(self, what: str) -> None:
        self.files: dict[str, bytes] = {}
        self.dirs: list[str] = []
        self.total = 0
        self.what = what

    def add(self, member: Member) -> None:
        if member.is_dir:
            self.dirs.append(member.name)
            return
        assert member.data is not None
        if member.size > MAX_SKILL_BYTES:
            raise UnpackError(f"entry {member.name!r} is larger than {MAX_SKILL_BYTES} bytes; cannot install as skill")
        chunks, size = [], 0
        while chunk := member.data.read(CHUNK):
            size += len(chunk)
            self.total += len(chunk)
            if size > MAX_SKILL_BYTES:
                raise UnpackError(f"entry {member.name!r} is larger than {MAX_SKILL_BYTES} bytes; cannot install as skill")
            if self.total > MAX_SKILL_BYTES:
                raise UnpackError(f"layer holds more than {MAX_SKILL_BYTES} bytes; cannot install as skill")
            chunks.append(chunk)
        self.files[member.name] = b"".join(chunks)


def _strip_prefix(name: str, prefix: str) -> str | None:
    if not prefix or prefix == ".":
        return name
    if name == prefix:
        return ""
    return name[len(prefix) + 1:] if name.startswith(prefix + "/") else None


def _name_from_path(path: str) -> str:
    clean = path.replace("\\", "/")
    if clean.endswith("/"):
        return clean.rstrip("/").rsplit("/", 1)[-1]
    parts = clean.strip("/").split("/")
    if parts[-1] == "SKILL.md":
        return parts[-2] if len(parts) > 1 else ""
    return parts[-1].rsplit(".", 1)[0] if "." in parts[-1] else parts[-1]


def read_prompt_skill(blobs: BlobOpener, layer: PlannedLayer, *, what: str, repository: str) -> Skill | None:
    """Read one prompt layer (verified); the Skill it holds, or None when it has no ``SKILL.md``.

    Raises ``KitopsError`` for a zstd layer (kit installs only uncompressed or gzip prompts), an entry or
    layer over 10 MiB, or an unsafe member.
    """
    if layer.media.compression not in ("none", "gzip"):
        raise KitopsError(f"unsupported compression type {layer.media.compression}")
    sink = _SkillSink(what)
    read_layer(blobs, layer, sink, what=what)
    raw_path = layer.entry.path
    prefix = raw_path.replace("\\", "/").strip("/")
    prefix = "" if prefix in ("", ".") else prefix
    if prefix in sink.files:  # the prompt path is a file (e.g. skills/x/SKILL.md): its directory is the root
        prefix = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    files = {rel: data for name, data in sink.files.items() if (rel := _strip_prefix(name, prefix))}
    dirs = [rel for d in sink.dirs if (rel := _strip_prefix(d, prefix))]
    skill_md = next((n for n in sorted(files, key=lambda n: (n.count("/"), n)) if n.rsplit("/", 1)[-1] == "SKILL.md"),
                    None)
    if skill_md is None:
        return None
    name = (front_matter_name(files[skill_md].decode("utf-8", "replace")) or layer.entry.name
            or _name_from_path(raw_path) or repository.rsplit("/", 1)[-1])
    return Skill(sanitize_name(name), files, dirs, source=layer.entry.name or layer.entry.path)


@dataclass(frozen=True)
class InstallResult:
    """One skill x target outcome; ``line`` is what the CLI prints."""

    skill: str
    agents: tuple[str, ...]
    path: Path
    status: str  # installed, skipped, failed
    error: str = ""

    @property
    def line(self) -> str:
        who = ", ".join(self.agents)
        if self.status == "installed":
            return f"Installed skill '{self.skill}' for {who} → {self.path}"
        if self.status == "skipped":
            return f"Skipped skill '{self.skill}' for {who} → {self.path} (already exists)"
        return f"Failed to install skill '{self.skill}'" + (f" for {who}" if who else "") + f": {self.error}"


def install_skill(skill: Skill, targets: Sequence[Target], existing: str = "error") -> list[InstallResult]:
    """Write ``skill`` into each target's skills dir (``existing``: error, overwrite or ignore)."""
    results = []
    for t in targets:
        dest = t.skills_dir / skill.name
        try:
            if os.path.lexists(dest) and existing == "ignore":
                results.append(InstallResult(skill.name, t.agents, dest, "skipped"))
                continue
            if os.path.lexists(dest) and existing != "overwrite":
                raise KitopsError("skill directory already exists (use -o to overwrite)")
            _write_skill(skill, dest)
            results.append(InstallResult(skill.name, t.agents, dest, "installed"))
        except (OSError, KitopsError) as e:
            msg = str(e) if isinstance(e, KitopsError) else f"{dest}: {e.strerror or e}"
            results.append(InstallResult(skill.name, t.agents, dest, "failed", msg))
    return results


def _write_skill(skill: Skill, dest: Path) -> None:
    """Write into a sibling staging dir, then swap it in: a failure leaves no half-written skill."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{skill.name}.", dir=dest.parent))
    try:
        for d in skill.dirs:
            (staging / d).mkdir(parents=True, exist_ok=True)
        for rel, data in skill.files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o644)
        staging.chmod(0o755)
        if os.path.lexists(dest):
            old = dest.with_name(f".{skill.name}.old.{os.getpid()}")
            os.replace(dest, old)
            os.replace(staging, dest)
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
        else:
            os.replace(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def embedded_skill() -> Skill:
    """kitops-flows' own SKILL.md (package data), installed by ``kitops-flows skill`` as skill ``kitops``."""
    from importlib.resources import files

    return Skill("kitops", {"SKILL.md": files("kitops_flows").joinpath("SKILL.md").read_bytes()}, source="kitops")
