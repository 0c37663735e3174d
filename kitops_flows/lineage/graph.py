"""Lineage queries: walk parents (upstream) or children (downstream) of a ModelKit.

Upstream reads the ModelKit's own manifest annotation (``ml.kitops-flows.parents``, part of the
manifest digest) and its provenance statement (S3 objects, code); downstream reads the child-edge
referrers recorded on each parent, so "which models used this dataset" is one walk of one
repository per level, with no catalog scan.

>>> g = graph(kit, "127.0.0.1:5000/team/data:v1", direction="down", depth=3)   # doctest: +SKIP
>>> [n.label for n in downstream(kit, "127.0.0.1:5000/team/data:v1")]          # doctest: +SKIP
['127.0.0.1:5000/team/model', '127.0.0.1:5001/other/finetuned']
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import KitopsError, NotFoundError
from ..manifest import ANNOTATION_CREATED, Manifest
from ..reference import is_internal_tag
from ..sources import ModelKitSource, SourceLike, as_source
from .model import ANNOTATION_PARENTS, NodeRef, pin, short_digest
from .records import child_edges, run_summaries, statements_of
from .referrers import RecordReader
from .render import render, to_dot, to_mermaid

DIRECTIONS = ("up", "down", "both")
COSIGN_TAG = re.compile(r"sha256-([0-9a-f]{64})\.(sig|att)")
BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"  # cosign v3's signatures in OCI 1.1 referrers


@dataclass(frozen=True)
class LineageNode:
    """One node of a lineage graph. ``kind``: ``modelkit``, ``s3`` (an object version) or ``code`` (a commit).

    ``missing`` marks a ModelKit named by a record but not found where it was said to be. ``runs``: every
    run that produced this digest (one provenance record each; newest first), see ``records.run_summaries``.
    ``signatures``: the cosign artifacts the registry holds for this digest (``sig``, ``att`` tags;
    ``bundle`` referrers), as found, not verified: ``kitops-flows verify REF --key`` checks them.
    """

    id: str
    kind: str
    label: str
    digest: str = ""
    repo_path: str = ""
    tags: tuple[str, ...] = ()
    created: str = ""
    name: str = ""
    version: str = ""
    uri: str = ""
    missing: bool = False
    runs: tuple[dict[str, Any], ...] = ()
    signatures: tuple[str, ...] = ()

    @property
    def short_digest(self) -> str:
        return short_digest(self.digest) if self.digest else ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tags"] = list(self.tags)
        d["runs"] = [dict(r) for r in self.runs]
        d["signatures"] = list(self.signatures)
        d["shortDigest"] = self.short_digest
        return {k: v for k, v in d.items() if v not in ("", [], False) or k in ("id", "kind", "label")}


@dataclass(frozen=True)
class LineageEdge:
    """``source`` (the input) was used to build ``target``."""

    source: str
    target: str
    relation: str


@dataclass
class LineageGraph:
    """A lineage graph around ``root`` (node ids: the manifest digest for ModelKits, the URI otherwise)."""

    root: str
    direction: str
    nodes: dict[str, LineageNode] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)

    def add_edge(self, edge: LineageEdge) -> None:
        if edge not in self.edges:
            self.edges.append(edge)

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "direction": self.direction,
                "nodes": [n.to_dict() for n in self.nodes.values()], "edges": [asdict(e) for e in self.edges]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_mermaid(self) -> str:
        return to_mermaid(self)

    def to_dot(self) -> str:
        return to_dot(self)

    def render(self, fmt: str) -> bytes:
        """``json``, ``mermaid``, ``dot`` as UTF-8, or ``png``/``svg`` through Graphviz ``dot``."""
        return render(self, fmt)


@dataclass
class _Walker:
    source: ModelKitSource
    reader: RecordReader
    graph: LineageGraph
    remote_tags: bool = True  # False: tags from the local store only (no per-tag registry HEADs)
    _tags: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    _cosign: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # repo_path -> digest -> {sig, att}

    def tags(self, node: NodeRef) -> tuple[str, ...]:
        if node.repo_path not in self._tags:
            by_digest: dict[str, list[str]] = {}
            local_repos = self.source.store.list_repos()
            for entry in self.source.store.list_entries(node.repo_path) if node.repo_path in local_repos else []:
                by_digest.setdefault(entry.descriptor.digest, []).extend(entry.tags)
            if self.reader.remote and self.remote_tags and not node.is_local_only:
                rc = self.source.registry(node.registry)
                try:
                    tags = rc.list_tags(node.repository)
                except NotFoundError:
                    tags = []
                for tag in tags:
                    cosign = COSIGN_TAG.fullmatch(tag)
                    if cosign:  # cosign's sha256-<hex>.sig/.att: a signature of that digest exists
                        self._cosign.setdefault(node.repo_path, {}).setdefault(
                            f"sha256:{cosign[1]}", set()).add(cosign[2])
                    if is_internal_tag(tag):
                        continue  # our own bookkeeping tags
                    digest = rc.manifest_digest(node.repository, tag)
                    if digest and tag not in by_digest.setdefault(digest, []):
                        by_digest[digest].append(tag)
            self._tags[node.repo_path] = by_digest
        return tuple(sorted(set(self._tags[node.repo_path].get(node.digest, []))))

    def signatures(self, node: NodeRef) -> tuple[str, ...]:
        """Which cosign artifacts exist for the node (after ``tags``, which lists the repository once)."""
        found = set(self._cosign.get(node.repo_path, {}).get(node.digest, set()))
        if self.reader.remote and not node.is_local_only and any(
                (d.artifact_type or "").startswith(BUNDLE_MEDIA_PREFIX) for d in self.reader.referrers(node)):
            found.add("bundle")
        return tuple(sorted(found))

    def modelkit(self, node: NodeRef) -> tuple[LineageNode, Manifest | None]:
        """The node for a ModelKit (name, version, build time, tags) and its manifest; missing if unreadable."""
        if node.digest in self.graph.nodes:
            return self.graph.nodes[node.digest], None
        try:
            manifest = Manifest.from_bytes(self.reader.manifest_bytes(node), f"manifest of {node.pinned}")
        except NotFoundError:
            lnode = LineageNode(node.digest, "modelkit", node.repo_path, node.digest, node.repo_path, missing=True)
            self.graph.nodes[node.digest] = lnode
            return lnode, None
        name = version = ""
        try:
            config = json.loads(self.reader.blob(node, manifest.config))
            package = config.get("package") or {}
            name = package.get("name") or (config.get("model") or {}).get("name") or ""
            version = package.get("version") or ""
        except (NotFoundError, ValueError, AttributeError):
            pass  # ModelPack configs carry no Kitfile; the node keeps its digest and tags
        lnode = LineageNode(
            id=node.digest, kind="modelkit", label=node.repo_path, digest=node.digest, repo_path=node.repo_path,
            tags=self.tags(node), created=manifest.annotations.get(ANNOTATION_CREATED, ""), name=name,
            version=version, runs=tuple(run_summaries(statements_of(self.reader, node))),
            signatures=self.signatures(node),
        )
        self.graph.nodes[node.digest] = lnode
        return lnode, manifest

    def parents(self, node: NodeRef, manifest: Manifest | None) -> list[tuple[NodeRef, str]]:
        """Parent ModelKits (annotation, then statement for relations) and leaf inputs added to the graph."""
        relations: dict[str, str] = {}
        found: dict[str, NodeRef] = {}
        if manifest is not None:
            for text in filter(None, manifest.annotations.get(ANNOTATION_PARENTS, "").split(",")):
                parent = NodeRef.parse(text.strip(), f"{ANNOTATION_PARENTS} annotation of {node.pinned}")
                found[parent.digest] = parent
        statements = statements_of(self.reader, node)
        for statement in statements[:1]:
            deps = statement.get("predicate", {}).get("buildDefinition", {}).get("resolvedDependencies", [])
            for dep in deps:
                self._leaf_input(node, dep, found, relations)
        return [(p, relations.get(d, "parent")) for d, p in found.items()]

    def _leaf_input(self, node: NodeRef, dep: dict[str, Any], found: dict[str, NodeRef],
                    relations: dict[str, str]) -> None:
        ann = dep.get("annotations") or {}
        kind, uri = ann.get("kind"), str(dep.get("uri", ""))
        if kind == "modelkit" and uri.startswith("oci://"):
            parent = NodeRef.parse(uri[len("oci://"):], f"provenance of {node.pinned}")
            found.setdefault(parent.digest, parent)
            relations[parent.digest] = str(ann.get("relation", "parent"))
        elif kind in ("s3", "code"):
            digest = dep.get("digest") or {}
            node_id = uri if kind == "s3" else f"git:{digest.get('gitCommit', '')}"
            label = str(dep.get("name") or uri) if kind == "s3" else f"{uri[4:] or 'git'} {digest.get('gitCommit', '')[:12]}"
            if kind == "code" and ann.get("dirty"):
                label += " (dirty)"
            self.graph.nodes.setdefault(node_id, LineageNode(node_id, kind, label, uri=uri))
            self.graph.add_edge(LineageEdge(node_id, node.digest, "s3" if kind == "s3" else "code"))


def graph(kit: SourceLike, reference: str, direction: str = "up", depth: int | None = None, *,
          remote: bool = True, remote_tags: bool = True) -> LineageGraph:
    """The lineage graph around a ModelKit: ``up`` (inputs), ``down`` (what was built from it) or ``both``.

    ``depth`` limits the number of ModelKit hops (None: until the records end). ``remote=False``
    reads only the local store. ``remote_tags=False`` labels nodes with local tags only: listing a
    repository's tags costs one HEAD per tag (a year of daily tags is 365), so per-run metadata skips it.
    """
    if direction not in DIRECTIONS:
        raise KitopsError(f"invalid lineage direction {direction!r}: use one of {', '.join(DIRECTIONS)}")
    if depth is not None and depth < 0:
        raise KitopsError(f"invalid lineage depth {depth}: use 0 or more (or no limit)")
    source = as_source(kit)
    root = pin(source, reference, remote=remote)
    walker = _Walker(source, RecordReader(source, remote), LineageGraph(root.digest, direction), remote_tags)
    walker.modelkit(root)
    for way in ("up", "down") if direction == "both" else (direction,):
        _walk(walker, root, way, depth)
    return walker.graph


def _walk(walker: _Walker, root: NodeRef, way: str, depth: int | None) -> None:
    queue: deque[tuple[NodeRef, int]] = deque([(root, 0)])
    expanded: set[str] = set()
    while queue:
        node, level = queue.popleft()
        if node.digest in expanded or (depth is not None and level >= depth):
            continue
        expanded.add(node.digest)
        lnode, manifest = walker.modelkit(node)
        if lnode.missing:
            continue
        if way == "up":
            if manifest is None:  # already built as a node earlier: read its manifest for the parents
                manifest = Manifest.from_bytes(walker.reader.manifest_bytes(node), f"manifest of {node.pinned}")
            for parent, relation in walker.parents(node, manifest):
                walker.modelkit(parent)
                walker.graph.add_edge(LineageEdge(parent.digest, node.digest, relation))
                queue.append((parent, level + 1))
        else:
            for edge in child_edges(walker.reader, node):
                walker.modelkit(edge.child)
                walker.graph.add_edge(LineageEdge(node.digest, edge.child.digest, edge.relation))
                queue.append((edge.child, level + 1))


def upstream(kit: SourceLike, reference: str, depth: int | None = None, *, remote: bool = True) -> list[LineageNode]:
    """Everything a ModelKit was built from (ModelKits, S3 objects, code), nearest first."""
    source = as_source(kit)
    g = graph(source, reference, "up", depth, remote=remote)
    return [n for i, n in g.nodes.items() if i != g.root]


def downstream(kit: SourceLike, reference: str, depth: int | None = None, *,
               remote: bool = True) -> list[LineageNode]:
    """Every ModelKit built from this one (children, grandchildren...), nearest first."""
    source = as_source(kit)
    g = graph(source, reference, "down", depth, remote=remote)
    return [n for i, n in g.nodes.items() if i != g.root]


__all__ = ["LineageEdge", "LineageGraph", "LineageNode", "downstream", "graph", "pin", "upstream"]
