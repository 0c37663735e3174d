"""ModelKit repositories as Airflow assets: ``oci://<registry>/<repository>``.

One asset per *repository*, never per version: the digest and tag of each new version travel in
the asset event's ``extra``. (Putting the digest in the URI would make every version a new asset
that no DAG is scheduled on; fragments are dropped by Airflow and ``?`` is not a selector.)

>>> from kitops_flows_airflow.assets import modelkit_asset
>>> modelkit_asset("127.0.0.1:5000/team/churn:v3").uri
'oci://127.0.0.1:5000/team/churn'

A DAG scheduled on that asset runs when a new version is pushed, and reads which one::

    with DAG("deploy", schedule=[modelkit_asset("reg.example.com/team/churn")]):
        KitUnpackOperator(task_id="pull", filters=["model"], dest="/srv/churn")   # reference from the event

Registered under ``asset-uris`` in the provider info, so ``Asset("oci://Reg.Example.com/team/churn:v3")``
normalises to the same asset.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from airflow.sdk import Asset, AssetAlias

from kitops_flows.api import ModelKitDescriptor
from kitops_flows.reference import parse_reference

SCHEME = "oci"
#: Asset group shown in the Airflow UI (``Asset.group``): these assets are models.
GROUP = "model"
#: Name prefix of the per-repository AssetAlias that only new digests go through (``modelkit_alias``).
ALIAS_PREFIX = "kitops-new-versions:"


def repository_uri(reference: str) -> str:
    """``oci://registry/repository`` for any ModelKit reference (tag and digest dropped)."""
    ref = parse_reference(reference)
    return f"{SCHEME}://{ref.registry.lower()}/{ref.repository}"


def descriptor_uri(descriptor: ModelKitDescriptor) -> str:
    """``oci://registry/repository`` of a ModelKit descriptor."""
    return f"{SCHEME}://{descriptor.registry.lower()}/{descriptor.repository}"


def modelkit_asset(reference: str) -> Asset:
    """The Airflow asset of a ModelKit repository: use it as an outlet, inlet or schedule.

    ``reference`` may be ``registry/repo``, ``registry/repo:tag`` or ``registry/repo@sha256:…``:
    all name the same asset.
    """
    uri = repository_uri(reference)
    return Asset(name=uri, uri=uri, group=GROUP)


def modelkit_alias(reference: str) -> AssetAlias:
    """The alias through which ModelKit operators emit the repository's asset event only for a new digest.

    Operators add ``modelkit_alias(reference)`` to their outlets when the reference is static. An event
    goes through it only when the pushed digest is new to the repository, so re-running unchanged
    content triggers nothing downstream. DAGs are still scheduled on ``modelkit_asset(...)``. To get an
    event on every successful run instead, declare ``outlets=[modelkit_asset(...)]`` (an Asset always
    gets an event when its task succeeds), or pass ``force_asset_event=True``.

    >>> modelkit_alias("127.0.0.1:5000/team/churn:v3").name
    'kitops-new-versions:oci://127.0.0.1:5000/team/churn'
    """
    return AssetAlias(name=f"{ALIAS_PREFIX}{repository_uri(reference)}", group=GROUP)


def create_asset(
    reference: str | None = None,
    *,
    registry: str | None = None,
    repository: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Asset:
    """Asset factory registered for the ``oci`` scheme (used by Airflow's hook-lineage collector)."""
    if reference is None:
        if not registry or not repository:
            raise ValueError("create_asset needs a reference, or both registry and repository")
        reference = f"{registry}/{repository}"
    uri = repository_uri(reference)
    return Asset(name=uri, uri=uri, group=GROUP, extra=extra or {})


def sanitize_uri(uri: urllib.parse.SplitResult) -> urllib.parse.SplitResult:
    """Normalise an ``oci://`` asset URI: lower-case host, no tag or digest (one asset per repository).

    Airflow calls this for every ``oci`` URI (``asset-uris`` handler); a ValueError makes the DAG
    fail to parse with this message.
    """
    if not uri.netloc:
        raise ValueError(f"oci asset URI {uri.geturl()!r} has no registry: use oci://<registry>/<repository>")
    path = uri.path.strip("/")
    if not path:
        raise ValueError(f"oci asset URI {uri.geturl()!r} has no repository: use oci://<registry>/<repository>")
    if uri.query:
        raise ValueError(
            f"oci asset URI {uri.geturl()!r} has a query; layer selection belongs in the operator's filters"
        )
    repository = path.split("@", 1)[0]
    head, _, last = repository.rpartition("/")
    if ":" in last:  # a tag on the last path component; ports only appear in the netloc
        repository = f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]
    return uri._replace(netloc=uri.netloc.lower(), path=f"/{repository}")


def convert_asset_to_openlineage(asset: Asset, lineage_context: Any) -> Any:
    """OpenLineage dataset for an ``oci`` asset: namespace ``oci://registry``, name = repository."""
    from airflow.providers.common.compat.openlineage.facet import Dataset as OpenLineageDataset

    parsed = urllib.parse.urlsplit(asset.uri)
    return OpenLineageDataset(namespace=f"{parsed.scheme}://{parsed.netloc}", name=parsed.path.lstrip("/"))


def event_extra(descriptor: ModelKitDescriptor, **more: Any) -> dict[str, Any]:
    """The asset-event ``extra`` of a ModelKit version: small, JSON-safe, no credentials."""
    extra: dict[str, Any] = {
        "digest": descriptor.digest,
        "pinned": descriptor.pinned,
        "tags": list(descriptor.tags),
        "tag": descriptor.tags[0] if descriptor.tags else None,
        "registry": descriptor.registry,
        "repository": descriptor.repository,
        "size": descriptor.size,
        "layers": [{"kind": l.kind, "path": l.path, "name": l.name, "digest": l.digest, "size": l.size}
                   for l in descriptor.layers],
    }
    extra.update(more)
    return extra


def pinned_from_events(triggering_asset_events: Mapping[Any, Iterable[Any]], asset: Asset | None = None) -> str:
    """The ``registry/repo@sha256:…`` of the newest ModelKit event that triggered this run.

    ``triggering_asset_events`` is the task context entry of that name. With ``asset`` only that
    repository's events count; otherwise any ``oci://`` asset's. Raises LookupError when there is
    none (the run was not triggered by a ModelKit push).
    """
    candidates: list[Any] = []
    for key, events in triggering_asset_events.items():
        uri = getattr(key, "uri", "")
        if asset is not None and uri != asset.uri:
            continue
        if asset is None and not uri.startswith(f"{SCHEME}://"):
            continue
        candidates.extend(e for e in events if isinstance(getattr(e, "extra", None), Mapping) and e.extra.get("pinned"))
    if not candidates:
        what = asset.uri if asset is not None else "any oci:// asset"
        raise LookupError(
            f"this run was not triggered by a ModelKit event for {what}; pass reference= explicitly "
            "or schedule the DAG on modelkit_asset(...)"
        )
    newest = max(candidates, key=lambda e: e.timestamp)
    return str(newest.extra["pinned"])


__all__ = [
    "ALIAS_PREFIX", "GROUP", "SCHEME", "convert_asset_to_openlineage", "create_asset", "descriptor_uri", "event_extra",
    "modelkit_alias", "modelkit_asset",
    "pinned_from_events", "repository_uri", "sanitize_uri",
]
