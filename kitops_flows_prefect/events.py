"""Prefect events for ModelKits, so automations can start downstream deployments.

Every push emits ``kitops.modelkit.pushed``; every promotion ``kitops.modelkit.promoted``. The
resource is the repository (a stable id, the same as the asset key ``oci://<registry>/<repo>``);
the version is in labels, so one automation trigger covers every version::

    {"prefect.resource.id": "oci://127.0.0.1:5000/team/churn", "prefect.resource.name": "team/churn",
     "kitops.registry": "127.0.0.1:5000", "kitops.repository": "team/churn",
     "kitops.digest": "sha256:…", "kitops.tag": "v3", "kitops.pinned": "127.0.0.1:5000/team/churn@sha256:…"}

An automation trigger for it (``prefect.yaml`` of the consumer deployment)::

    triggers:
      - type: event
        match: {"prefect.resource.id": "oci://registry.example.com/team/churn"}
        expect: ["kitops.modelkit.pushed"]
        parameters: {"reference": "{{ event.resource['kitops.pinned'] }}"}
"""

from __future__ import annotations

from typing import Any

from prefect.assets import Asset, AssetProperties
from prefect.events import Event, emit_event

from kitops_flows.api import ModelKitDescriptor, parse_reference
from kitops_flows.lineage import StageEvent

PUSHED = "kitops.modelkit.pushed"
PROMOTED = "kitops.modelkit.promoted"


def resource_id(repo_path: str) -> str:
    """``oci://<registry>/<repository>``: the event resource and Prefect asset key of a repository."""
    return f"oci://{repo_path}"


def modelkit_asset(repository: str | ModelKitDescriptor, description: str | None = None) -> Asset:
    """The Prefect asset of a ModelKit repository (``oci://<registry>/<repo>``), for ``@materialize``.

    Tags and digests are dropped: the asset is the repository, each push is a new version of it.

    >>> modelkit_asset("127.0.0.1:5000/team/churn:v3").key
    'oci://127.0.0.1:5000/team/churn'
    """
    if isinstance(repository, ModelKitDescriptor):
        repo_path = repository.repo_path
    else:
        repo_path = parse_reference(repository).repo_path
    name = repo_path.split("/", 1)[1] if "/" in repo_path else repo_path
    return Asset(key=resource_id(repo_path), properties=AssetProperties(name=name, description=description))


def _repository_resource(registry: str, repository: str) -> dict[str, str]:
    return {
        "prefect.resource.id": resource_id(f"{registry}/{repository}"),
        "prefect.resource.name": repository,
        "kitops.registry": registry,
        "kitops.repository": repository,
    }


def emit_pushed(desc: ModelKitDescriptor) -> Event | None:
    """Emit ``kitops.modelkit.pushed`` for a pushed ModelKit; returns the event (None when events are off)."""
    resource = {
        **_repository_resource(desc.registry, desc.repository),
        "kitops.digest": desc.digest,
        "kitops.tag": desc.tags[0] if desc.tags else "",
        "kitops.tags": ",".join(desc.tags),
        "kitops.pinned": desc.pinned,
    }
    payload: dict[str, Any] = {
        "reference": desc.reference,
        "pinned": desc.pinned,
        "size": desc.size,
        "layers": [{"kind": l.kind, "path": l.path, "name": l.name, "digest": l.digest, "size": l.size}
                   for l in desc.layers],
    }
    return emit_event(event=PUSHED, resource=resource, payload=payload)


def emit_promoted(event: StageEvent) -> Event | None:
    """Emit ``kitops.modelkit.promoted`` for a stage move (``kitops.stage`` says which stage)."""
    registry, _, repository = event.repository.partition("/")
    resource = {
        **_repository_resource(registry, repository),
        "kitops.digest": event.digest,
        "kitops.stage": event.stage,
        "kitops.previous": event.previous,
        "kitops.pinned": f"{event.repository}@{event.digest}",
    }
    return emit_event(event=PROMOTED, resource=resource, payload=event.to_dict())


__all__ = ["PROMOTED", "PUSHED", "emit_promoted", "emit_pushed", "modelkit_asset", "resource_id"]
