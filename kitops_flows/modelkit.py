"""Value types returned by the API: what a pack/push/pull produced, small and JSON-safe.

These go to XCom, Prefect results/artifacts and Dagster metadata, so ``to_dict()`` holds only
plain JSON types and never a credential.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .descriptor import Descriptor
from .kitfile import Kitfile
from .manifest import ANNOTATION_CREATED, Manifest, plan_layers
from .reference import DEFAULT_REGISTRY


@dataclass(frozen=True)
class LayerSummary:
    """One layer of a ModelKit: which Kitfile entry it holds and its digests.

    ``kind`` is kit's layer type (model, modelpart, dataset, code, docs, prompt, mcpb).
    """

    kind: str
    path: str
    name: str
    media_type: str
    digest: str
    diff_id: str
    size: int


@dataclass(frozen=True)
class ModelKitDescriptor:
    """Identity of a ModelKit version: ``registry/repository`` + manifest digest (+ tags).

    >>> d.pinned            # doctest: +SKIP
    '127.0.0.1:5000/team/churn@sha256:4f2a...'
    """

    registry: str
    repository: str
    digest: str
    tags: tuple[str, ...]
    size: int
    config_digest: str
    layers: tuple[LayerSummary, ...]
    created: str | None = None
    name: str | None = None
    version: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def repo_path(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def _display_repo(self) -> str:
        # kit's default registry is implicit: "localhost/x" would re-parse as repository "localhost/x"
        return self.repository if self.registry == DEFAULT_REGISTRY else self.repo_path

    @property
    def pinned(self) -> str:
        """``registry/repo@sha256:…``: what downstream should consume (never a moving tag)."""
        return f"{self._display_repo}@{self.digest}"

    @property
    def reference(self) -> str:
        """``registry/repo:tag`` for the first tag, else the pinned reference."""
        return f"{self._display_repo}:{self.tags[0]}" if self.tags else self.pinned

    def layer(self, kind: str, path_or_name: str | None = None) -> LayerSummary:
        """The first layer of ``kind`` (and name or Kitfile path, if given); KeyError if none."""
        for layer in self.layers:
            if layer.kind == kind and path_or_name in (None, layer.path, layer.name):
                return layer
        raise KeyError(f"{self.pinned} has no {kind} layer {path_or_name or ''}".strip())

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["tags"] = list(self.tags)
        d["layers"] = [asdict(l) for l in self.layers]
        d["reference"] = self.reference
        d["pinned"] = self.pinned
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> ModelKitDescriptor:
        layers = tuple(LayerSummary(**l) for l in d["layers"])  # type: ignore[arg-type, union-attr]
        keys = {f for f in cls.__dataclass_fields__ if f != "layers"}
        kw = {k: d[k] for k in keys if k in d}
        kw["tags"] = tuple(kw.get("tags", ()))  # type: ignore[arg-type]
        return cls(layers=layers, **kw)  # type: ignore[arg-type]


def describe(
    registry: str,
    repository: str,
    manifest_desc: Descriptor,
    manifest: Manifest,
    kitfile: Kitfile,
    tags: list[str] | tuple[str, ...],
) -> ModelKitDescriptor:
    """Build the descriptor of a ModelKit from its manifest and Kitfile."""
    layers = []
    for planned in plan_layers(kitfile, manifest, f"{registry}/{repository}@{manifest_desc.digest}"):
        info = planned.entry.entry.layer_info
        layers.append(
            LayerSummary(
                kind=planned.entry.kind,
                path=planned.entry.path,
                name=planned.entry.name,
                media_type=planned.layer.media_type,
                digest=planned.layer.digest,
                diff_id=info.diff_id if info and info.diff_id else planned.layer.digest,
                size=planned.layer.size,
            )
        )
    size = manifest.config.size + sum(l.size for l in manifest.layers)
    return ModelKitDescriptor(
        registry=registry,
        repository=repository,
        digest=manifest_desc.digest,
        tags=tuple(tags),
        size=size,
        config_digest=manifest.config.digest,
        layers=tuple(layers),
        created=manifest.annotations.get(ANNOTATION_CREATED),
        name=kitfile.package.name or (kitfile.model.name if kitfile.model else None) or None,
        version=kitfile.package.version or None,
        annotations=dict(manifest.annotations),
    )


@dataclass(frozen=True)
class PushResult:
    """What a push changed in the registry (``KitOpsClient.push_result``).

    ``new_to_repository``: the repository did not hold this manifest before (announce it downstream);
    ``moved_tags``: tags written (a tag already at this digest is left alone); ``blobs_uploaded``: blobs
    sent (0 when the repository already had them all).
    """

    descriptor: ModelKitDescriptor
    new_to_repository: bool
    moved_tags: tuple[str, ...] = ()
    blobs_uploaded: int = 0

    @property
    def changed(self) -> bool:
        """True when the push created the manifest in the repository or moved a tag to it."""
        return self.new_to_repository or bool(self.moved_tags)
