"""``kitops-flows skill`` and ``kitops-flows unpack REF --as-skill[=agents]`` (kit's §5.6).

    kitops-flows skill --agents claude-code               # ~/.claude/skills/kitops/SKILL.md
    kitops-flows skill -d . --agents claude-code,codex    # ./.claude/skills, ./.agents/skills
    kitops-flows unpack reg.example.com/team/helper:v1 --as-skill=claude-code -d .

Result lines go to stdout; any failed install exits 1 with ``failed to install N skill(s)``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .errors import KitopsError

if TYPE_CHECKING:
    from .api import KitOpsClient
    from .filters import LayerFilter
    from .skills import InstallResult

LOG = logging.getLogger("kitops_flows")


def _existing(args: argparse.Namespace) -> str:
    return "overwrite" if args.overwrite else "ignore" if args.ignore_existing else "error"


def _report(results: Sequence[InstallResult]) -> int:
    failed = [r for r in results if r.status == "failed"]
    for r in results:
        if r.status == "failed":
            LOG.error("%s", r.line)
        else:
            print(r.line)
    if failed:
        raise KitopsError(f"failed to install {len(failed)} skill(s)")
    return 0


def cmd_skill(args: argparse.Namespace, kit: KitOpsClient) -> int:
    from .skills import embedded_skill, install_skill, resolve_targets

    targets = resolve_targets(args.agents or "auto", args.dir)
    return _report(install_skill(embedded_skill(), targets, _existing(args)))


def prompt_filters(texts: Sequence[str] | None) -> list[LayerFilter]:
    """Only the ``prompts`` part of unpack's filters applies to --as-skill; other types warn."""
    from .filters import LayerFilter, parse_filters

    out = []
    for f in parse_filters(list(texts or [])):
        for t in sorted(f.types - {"prompts"}):
            LOG.warning("Filter type '%s' has no effect with --as-skill (only 'prompts' filters apply)", t)
        if "prompts" in f.types:
            out.append(LayerFilter(frozenset({"prompts"}), f.ids))
    return out or [LayerFilter(frozenset({"prompts"}))]


def unpack_as_skill(args: argparse.Namespace, kit: KitOpsClient) -> int:
    """Install every prompt layer holding a SKILL.md as a skill; other layers and the Kitfile stay packed."""
    from .indexes import select_variant
    from .reference import parse_reference
    from .skills import install_skill, read_prompt_skill, resolve_targets

    targets = resolve_targets(args.as_skill, args.dir)  # bad agent names fail before any download
    reference = args.reference
    if getattr(args, "label", None):
        reference = select_variant(kit, reference, args.label)
    ref = parse_reference(reference)
    loaded, planned = kit.source.selected_layers(ref, prompt_filters(args.filter))
    what = str(ref.display())
    results: list[InstallResult] = []
    for layer in (p for p in planned if p.entry.kind == "prompt"):
        label = layer.entry.name or layer.entry.path
        try:
            skill = read_prompt_skill(kit.store, layer, what=what, repository=ref.repository)
        except KitopsError as e:
            results.append(_failed(label, e))
            continue
        if skill is None:
            LOG.warning('Skipping prompt "%s": not a SKILL.md, cannot install as skill', label)
            continue
        results.extend(install_skill(skill, targets, _existing(args)))
    return _report(results)


def _failed(label: str, e: Exception) -> InstallResult:
    from pathlib import Path

    from .skills import InstallResult

    return InstallResult(label, (), Path(), "failed", str(e))


def as_skill_argv(argv: Sequence[str]) -> list[str]:
    """kit's ``--as-skill`` takes a value only as ``--as-skill=a,b``: a bare flag never eats the next word.

    >>> as_skill_argv(["unpack", "--as-skill", "team/helper:v1"])
    ['unpack', '--as-skill=auto', 'team/helper:v1']
    """
    out = list(argv)
    if "unpack" in out:
        end = out.index("--") if "--" in out else len(out)
        out[:end] = ["--as-skill=auto" if a == "--as-skill" else a for a in out[:end]]
    return out


def add_unpack_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--as-skill", nargs="?", const="auto", default=None, metavar="AGENTS",
                   help="install prompt layers holding a SKILL.md as agent skills (auto, or e.g. "
                        "--as-skill=claude-code,cursor); with -d into DIR/.claude/skills etc.")


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("skill", cmd_skill, "Install the kitops-flows SKILL.md (skill 'kitops') for AI agents",
            "kitops-flows skill -d . --agents claude-code")
    p.add_argument("-d", "--dir", help="project directory (skills go to DIR/.claude/skills etc.; "
                                       "default: each agent's global skills dir)")
    p.add_argument("--agents", help="comma-separated agents (claude-code, codex, cursor; default: auto-detect)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("-o", "--overwrite", action="store_true", help="replace an existing skill directory")
    g.add_argument("-i", "--ignore-existing", action="store_true", help="skip an existing skill directory")
