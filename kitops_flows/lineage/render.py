"""Render a LineageGraph as Mermaid, Graphviz DOT, or PNG/SVG through Debian's ``dot``.

Node labels: repository, short digest, tags and build time for ModelKits; the URI for S3 objects
and code. Edges point from an input to what was built from it.

>>> from .graph import LineageGraph, LineageNode
>>> g = LineageGraph("sha256:" + "a" * 64, "up")
>>> g.nodes[g.root] = LineageNode(g.root, "modelkit", "localhost/m", g.root, "localhost/m", ("v1",))
>>> print(to_mermaid(g).splitlines()[1])
  n0["localhost/m<br/>sha256:aaaaaaaaaaaa<br/>v1"]
"""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

from ..errors import KitopsError

if TYPE_CHECKING:
    from .graph import LineageGraph, LineageNode

FORMATS = ("json", "mermaid", "dot", "png", "svg")
DOT_TIMEOUT_S = 60


def _label_lines(node: LineageNode) -> list[str]:
    if node.kind != "modelkit":
        return [node.label]
    lines = [node.label, node.short_digest]
    if node.tags:
        lines.append(", ".join(node.tags))
    if node.name or node.version:
        lines.append(" ".join(x for x in (node.name, node.version) if x))
    if node.created:
        lines.append(node.created)
    if len(node.runs) > 1:  # the same content built again: one digest, one provenance record per run
        lines.append(f"built by {len(node.runs)} runs")
    if node.signatures:  # present in the registry; `kitops-flows verify REF --key` says by whom
        lines.append("cosign: " + ", ".join(node.signatures))
    if node.missing:
        lines.append("(not found)")
    return lines


def _ids(graph: LineageGraph) -> dict[str, str]:
    """Short, syntax-safe identifiers (n0, n1, ...) in node order."""
    return {node_id: f"n{i}" for i, node_id in enumerate(graph.nodes)}


def to_mermaid(graph: LineageGraph) -> str:
    ids = _ids(graph)
    out = ["graph LR"]
    for node_id, node in graph.nodes.items():
        text = "<br/>".join(_mermaid_escape(x) for x in _label_lines(node))
        shape = ('["', '"]') if node.kind == "modelkit" else ('[("', '")]') if node.kind == "s3" else ('(["', '"])')
        out.append(f"  {ids[node_id]}{shape[0]}{text}{shape[1]}")
    for e in graph.edges:
        out.append(f"  {ids[e.source]} -->|{_mermaid_escape(e.relation)}| {ids[e.target]}")
    if graph.root in ids:
        out.append(f"  style {ids[graph.root]} stroke-width:3px")
    return "\n".join(out) + "\n"


def _mermaid_escape(text: str) -> str:
    return (text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
            .replace("|", "#124;"))


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: LineageGraph) -> str:
    ids = _ids(graph)
    out = ["digraph lineage {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9];']
    for node_id, node in graph.nodes.items():
        attrs = {"label": "\n".join(_label_lines(node))}
        attrs["shape"] = {"modelkit": "box", "s3": "cylinder", "code": "note"}.get(node.kind, "box")
        if node_id == graph.root:
            attrs["penwidth"] = "2.5"
        if node.missing:
            attrs["style"] = "dashed"
        body = ", ".join(f"{k}={_dot_quote(v)}" for k, v in attrs.items())
        out.append(f"  {ids[node_id]} [{body}];")
    for e in graph.edges:
        out.append(f"  {ids[e.source]} -> {ids[e.target]} [label={_dot_quote(e.relation)}];")
    out.append("}")
    return "\n".join(out) + "\n"


def render(graph: LineageGraph, fmt: str) -> bytes:
    """Bytes of the graph in ``fmt`` (one of FORMATS)."""
    if fmt == "json":
        return (graph.to_json() + "\n").encode()
    if fmt == "mermaid":
        return to_mermaid(graph).encode()
    if fmt == "dot":
        return to_dot(graph).encode()
    if fmt in ("png", "svg"):
        return run_dot(to_dot(graph), fmt)
    raise KitopsError(f"unknown lineage format {fmt!r}: use one of {', '.join(FORMATS)}")


def run_dot(dot_source: str, fmt: str) -> bytes:
    """Lay out DOT with Graphviz; a clear error when it is not installed."""
    exe = shutil.which("dot")
    if exe is None:
        raise KitopsError(
            f"rendering {fmt} needs Graphviz's `dot` on PATH: install it (apt-get install graphviz) "
            "or use --format dot / mermaid"
        )
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot_source.encode(), capture_output=True,
                              timeout=DOT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise KitopsError(f"Graphviz `dot -T{fmt}` took over {DOT_TIMEOUT_S}s; try --format dot") from None
    if proc.returncode != 0:
        raise KitopsError(f"Graphviz `dot -T{fmt}` failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


__all__ = ["FORMATS", "render", "run_dot", "to_dot", "to_mermaid"]
