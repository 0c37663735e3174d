"""Lineage: where every ModelKit came from, what was built from it, and which one is in production.

Recorded at pack time (``KitOpsClient.pack`` calls ``collect_provenance`` then ``record_local``),
pushed with the ModelKit (``push_records``), queried from the registry or the local store::

    from kitops_flows.lineage import graph, upstream, downstream, promote, history, where
    upstream(kit, "127.0.0.1:5000/team/model:v1")          # datasets, S3 objects, code it came from
    downstream(kit, "127.0.0.1:5000/team/data:v1")         # every model trained on this dataset
    graph(kit, ref, "both").render("svg")
    promote(kit, "127.0.0.1:5000/team/model:v1", "production")

Standards only: OCI manifest annotations, OCI 1.1 referrers (API or tag schema), in-toto
Statement v1 with an SLSA Provenance v1 predicate. No extra database. This package imports only
the standard library and kitops_flows' core modules.
"""

from .graph import LineageEdge, LineageGraph, LineageNode, downstream, graph, upstream
from .model import STAGES, LineageError, NodeRef, pin
from .provenance import GitInfo, LocalFile, ParentInput, Provenance, RunContext, collect_provenance
from .records import ChildEdge, pull_records, push_records, read_provenance, record_local
from .stages import StageEvent, history, promote, where

__all__ = [
    "STAGES", "ChildEdge", "GitInfo", "LineageEdge", "LineageError", "LineageGraph", "LineageNode", "LocalFile",
    "NodeRef", "ParentInput", "Provenance", "RunContext", "StageEvent", "collect_provenance", "downstream",
    "graph", "history", "pin", "promote", "pull_records", "push_records", "read_provenance", "record_local",
    "upstream", "where",
]
