"""OpenLineage facets of the operators: S3 and parent-ModelKit inputs, the pushed ``oci://`` output.

The operators record what they read and wrote while they run (``LineageRecord``); with
``apache-airflow-providers-openlineage`` installed, its listener calls
``get_openlineage_facets_on_complete`` and sends::

    inputs   s3://ml-data            churn/2026-11-26/train.csv
             oci://reg.example.com   team/features            (version: sha256:… of the parent)
    outputs  oci://reg.example.com   team/churn               (version: sha256:… pushed)

A ModelKit repository is one dataset (as it is one Airflow asset); the digest is its version facet.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LineageRecord:
    """What a task read and wrote: ``(uri, version or None)`` pairs, in the order seen, without repeats."""

    inputs: list[tuple[str, str | None]] = field(default_factory=list)
    outputs: list[tuple[str, str | None]] = field(default_factory=list)

    def add_input(self, uri: str, version: str | None = None) -> None:
        if (uri, version) not in self.inputs:
            self.inputs.append((uri, version))

    def add_output(self, uri: str, version: str | None = None) -> None:
        if (uri, version) not in self.outputs:
            self.outputs.append((uri, version))


def dataset(uri: str, version: str | None = None) -> Any:
    """An OpenLineage dataset: namespace ``scheme://authority`` (bucket or registry), name the path."""
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.generated.dataset_version_dataset import DatasetVersionDatasetFacet

    parts = urllib.parse.urlsplit(uri)
    facets = {"version": DatasetVersionDatasetFacet(datasetVersion=version)} if version else {}
    return Dataset(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path.lstrip("/") or "/", facets=facets)


def operator_lineage(record: LineageRecord) -> Any:
    """The ``OperatorLineage`` the OpenLineage provider expects from ``get_openlineage_facets_on_complete``."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=[dataset(u, v) for u, v in record.inputs],
                           outputs=[dataset(u, v) for u, v in record.outputs])


__all__ = ["LineageRecord", "dataset", "operator_lineage"]
