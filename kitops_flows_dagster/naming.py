"""Where an asset's ModelKit lives: repository from the asset key, tag from the partition or run.

Pure functions, so the IO manager, the sensor and the asset check agree on names.

>>> repository_for(["ML", "churn model"], "team")
'team/ml/churn-model'
>>> tag_for("{partition}", partition="2026-11-26", run_id="c0ffee00-1234", asset="churn")
'2026-11-26'
>>> tag_for("{partition}", partition="2026-11-26|eu", run_id="r", asset="a")
'2026-11-26_eu'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kitops_flows.errors import ReferenceFormatError

_REPO_BAD = re.compile(r"[^a-z0-9._-]+")
_REPO_SEPARATORS = re.compile(r"[._-]{2,}")
_TAG_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_TAG_OK = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_PLACEHOLDERS = ("partition", "run_id", "run_id_short", "asset", "code_version")


def _component(text: str) -> str:
    """One OCI repository path component: lowercase alphanumerics joined by single ``.``, ``_`` or ``-``."""
    cleaned = _REPO_BAD.sub("-", text.lower())
    cleaned = _REPO_SEPARATORS.sub(lambda m: m.group(0)[0], cleaned)
    return cleaned.strip("._-")


def repository_for(asset_key_path: Sequence[str], prefix: str = "") -> str:
    """``prefix/asset/key/parts``, each part made a valid OCI repository component."""
    parts = [c for c in (_component(p) for p in [*prefix.split("/"), *asset_key_path]) if c]
    if not parts:
        raise ReferenceFormatError(
            f"asset key {list(asset_key_path)!r} with prefix {prefix!r} gives no valid repository name; "
            "use letters and digits in the asset key or set repository_prefix"
        )
    return "/".join(parts)


def tag_for(template: str, *, partition: str = "", run_id: str = "", asset: str = "", code_version: str = "") -> str:
    """Fill ``template`` and make the result a valid OCI tag (characters outside ``[A-Za-z0-9_.-]`` become ``_``)."""
    values = {"partition": partition, "run_id": run_id, "run_id_short": run_id[:8], "asset": asset,
              "code_version": code_version}
    try:
        text = template.format(**values)
    except (KeyError, IndexError) as e:
        raise ReferenceFormatError(
            f"tag template {template!r} uses unknown placeholder {e}; use {', '.join('{' + p + '}' for p in _PLACEHOLDERS)}"
        ) from None
    tag = _TAG_BAD.sub("_", text)
    if not _TAG_OK.fullmatch(tag):
        raise ReferenceFormatError(
            f"tag template {template!r} gives {tag!r}, not a valid OCI tag (1-128 of [A-Za-z0-9_.-], "
            "not starting with '.' or '-'); change the template"
        )
    return tag


def join_reference(registry: str, repository: str, tag_or_digest: str) -> str:
    """``registry/repository:tag`` or ``registry/repository@sha256:…`` (no registry: the local store)."""
    repo = f"{registry}/{repository}" if registry else repository
    sep = "@" if tag_or_digest.startswith("sha256:") else ":"
    return f"{repo}{sep}{tag_or_digest}"


__all__ = ["join_reference", "repository_for", "tag_for"]
