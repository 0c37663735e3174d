"""Dagster metadata for a ModelKit version, and the Dagster run as lineage ``RunContext``.

Every materialisation carries the same keys, so the UI, sensors, checks and ``load_input`` read
one shape::

    reference   registry/repo:tag              pinned   registry/repo@sha256:…
    digest      sha256:…                       size     bytes (config + layers)
    layers      table: kind, name, path, size, digest
    lineage     Markdown with a Mermaid graph of the inputs (upstream ModelKits, S3 objects, code)
    modelkit    the full descriptor as JSON (no credentials: see ModelKitDescriptor)
    dagster/uri oci://registry/repo@sha256:…
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from kitops_flows.api import ModelKitDescriptor
from kitops_flows.lineage import LineageGraph, RunContext

KEY_REFERENCE = "reference"
KEY_PINNED = "pinned"
KEY_DIGEST = "digest"
KEY_DESCRIPTOR = "modelkit"
KEY_URI = "dagster/uri"

_LAYER_SCHEMA = TableSchema(columns=[
    TableColumn("kind", "string"), TableColumn("name", "string"), TableColumn("path", "string"),
    TableColumn("size", "int"), TableColumn("digest", "string"),
])


def oci_uri(desc: ModelKitDescriptor) -> str:
    return f"oci://{desc.registry}/{desc.repository}@{desc.digest}"


def lineage_markdown(graph: LineageGraph) -> str:
    """The graph as a fenced Mermaid block (Dagster's UI renders Markdown metadata)."""
    return "```mermaid\n" + graph.to_mermaid() + "```\n"


def modelkit_metadata(desc: ModelKitDescriptor, lineage: str | None = None) -> dict[str, Any]:
    """Output metadata for one ModelKit version."""
    rows = [TableRecord({"kind": l.kind, "name": l.name, "path": l.path, "size": l.size, "digest": l.digest})
            for l in desc.layers]
    meta: dict[str, Any] = {
        KEY_REFERENCE: MetadataValue.text(desc.reference),
        KEY_PINNED: MetadataValue.text(desc.pinned),
        KEY_DIGEST: MetadataValue.text(desc.digest),
        "size": MetadataValue.int(desc.size),
        "layers": MetadataValue.table(rows, schema=_LAYER_SCHEMA),
        KEY_DESCRIPTOR: MetadataValue.json(desc.to_dict()),
        KEY_URI: MetadataValue.text(oci_uri(desc)),  # Dagster's UriMetadataSet key
    }
    if lineage:
        meta["lineage"] = MetadataValue.md(lineage)
    return meta


def descriptor_from_metadata(metadata: Mapping[str, Any]) -> ModelKitDescriptor | None:
    """The descriptor recorded by ``modelkit_metadata`` (None when the event has none)."""
    value = metadata.get(KEY_DESCRIPTOR)
    data = getattr(value, "data", value)
    if not isinstance(data, dict) or "digest" not in data:
        return None
    return ModelKitDescriptor.from_dict(data)


def run_context(*, run_id: str, job_name: str, asset_key: str, partition: str = "", code_version: str = "",
                attempt: int | None = None) -> RunContext:
    """The provenance ``run=`` record for a Dagster materialisation."""
    extra = {"asset_key": asset_key}
    if code_version:
        extra["code_version"] = code_version
    return RunContext(orchestrator="dagster", pipeline=job_name, run_id=run_id, task=asset_key,
                      partition=partition, attempt=attempt, extra=extra)


__all__ = ["KEY_DESCRIPTOR", "KEY_DIGEST", "KEY_PINNED", "KEY_REFERENCE", "descriptor_from_metadata",
           "lineage_markdown", "modelkit_metadata", "oci_uri", "run_context"]
