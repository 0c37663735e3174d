"""What an asset hands the IO manager, and how it becomes a pack context (files + a Kitfile).

An asset may return a ``Path`` (a file or directory: one layer), any Python object (one layer
holding the serialised file), a ``ModelKitContents`` (several layers, e.g. dataset + model +
code) or a ``ModelKitDescriptor`` (already packed and pushed: only recorded). ``Layer.source``
may also be an ``s3://`` URI, which the core streams into the layer without a local copy.

>>> contents = ModelKitContents(
...     layers=(Layer("dataset", "s3://ml-data/churn/2026-11-26/train.csv", name="train"),
...             Layer("model", Path("/tmp/out/model")), Layer("code", Path("examples/churn"))),
...     name="churn", description="nightly churn model")
>>> [layer.kind for layer in contents.layers]
['dataset', 'model', 'code']

Files are hard-linked into the staging directory when they can be (same filesystem), so a
multi-gigabyte model is not copied before it is hashed and stored.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kitops_flows.errors import KitfileError, PackError
from kitops_flows.kitfile_args import KitfileArguments, LayerArgument, s3_layer_path

from .serializers import get_serializer

KINDS = ("model", "dataset", "code", "docs")
#: Manifest annotation: JSON ``{layer path: serializer}`` for layers holding a serialised Python object.
ANNOTATION_SERIALIZERS = "ml.kitops-flows.dagster.serializers"


@dataclass(frozen=True)
class Layer:
    """One layer: its kind (model, dataset, code, docs) and where its content comes from.

    ``source`` is a ``Path`` (file or directory), an ``s3://`` URI string, or any Python object
    (written with ``serializer``). A ``Path`` with ``serializer`` set is a file that serializer
    already wrote (re-packing a loaded layer): it is recorded so loaders deserialise it. ``path`` is
    the path inside the ModelKit (default: the file or directory name; for S3 the core's rule,
    ``kitfile_args.s3_layer_path``: ``data/train.csv``; ``<name><extension>`` for objects); ``name``
    the Kitfile entry name (datasets and the model).
    """

    kind: str
    source: Any
    name: str = ""
    path: str = ""
    description: str = ""
    serializer: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PackError(f"layer kind {self.kind!r} is not one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class ModelKitContents:
    """Several layers packed into one ModelKit, plus the Kitfile's package section."""

    layers: tuple[Layer, ...]
    name: str = ""
    version: str = ""
    description: str = ""
    authors: tuple[str, ...] = ()
    license: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StagedPack:
    """A pack context ready for ``KitOpsClient.pack``: its directory, Kitfile, S3 sources and annotations."""

    context_dir: Path
    kitfile: Path
    sources: dict[str, str]
    annotations: dict[str, str]


def _is_s3(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("s3://")


def _default_path(layer: Layer, fallback_name: str, serializer_ext: str) -> str:
    if isinstance(layer.source, os.PathLike):
        return Path(layer.source).name
    if _is_s3(layer.source):  # the core's rule, as for every plugin's Kitfile arguments
        return s3_layer_path(layer.kind, layer.name or fallback_name, layer.source)
    return f"{layer.name or fallback_name}{serializer_ext}"


def _check_inside(path: str, what: str) -> str:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or str(pure) in (".", ""):
        raise PackError(f"{what}: layer path {path!r} must be a relative path inside the ModelKit, without '..'")
    return str(pure)


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copy2(src, dst)
    return dst


def _place(source: Path, target: Path, what: str) -> None:
    if not source.exists():
        raise PackError(f"{what}: {source} does not exist; return a path to a file or directory that exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(source), str(target))


def stage(contents: ModelKitContents, workdir: Path, *, default_name: str, default_serializer: str,
          what: str) -> StagedPack:
    """Lay out ``contents`` under ``workdir/context/`` and build its Kitfile with the core's ``KitfileArguments``.

    Files and serialised objects are placed at their layer paths; ``s3://`` sources stay URIs. The
    Kitfile comes from the same arguments path as Airflow's and Prefect's, so the same layers give
    the same Kitfile in every plugin.
    """
    context = workdir / "context"
    context.mkdir(parents=True)
    package = {k: v for k, v in (("name", contents.name or default_name), ("version", contents.version),
                                 ("description", contents.description), ("authors", list(contents.authors)),
                                 ("license", contents.license)) if v}
    arguments: list[LayerArgument] = []
    serialized: dict[str, str] = {}
    seen: set[str] = set()
    models = 0
    for layer in contents.layers:
        spec = layer.serializer or default_serializer
        plain = isinstance(layer.source, os.PathLike) or _is_s3(layer.source)
        serializer = None if plain else get_serializer(spec)
        path = _check_inside(layer.path or _default_path(layer, default_name, serializer.extension if serializer else ""),
                             what)
        if path in seen:
            raise PackError(f"{what}: two layers use the path {path!r}; give one of them another Layer(path=...)")
        seen.add(path)
        models += layer.kind == "model"
        if models > 1:
            raise PackError(f"{what}: a ModelKit holds one model layer; make the others datasets, code or docs")
        if _is_s3(layer.source):
            value = layer.source
        elif serializer is not None:
            (context / path).parent.mkdir(parents=True, exist_ok=True)
            serializer.dump(layer.source, context / path)
            serialized[path] = spec
            value = str(context / path)
        else:
            _place(Path(layer.source), context / path, what)
            if layer.serializer:
                serialized[path] = layer.serializer
            value = str(context / path)
        arguments.append(LayerArgument(layer.kind, value, name=layer.name or default_name, path=path,
                                       description=layer.description))
    try:
        _, kitfile, sources = KitfileArguments(layers=arguments, package=package).build(context)
    except KitfileError as e:
        raise PackError(f"{what}: {e}") from e
    annotations = dict(contents.annotations)
    if serialized:
        annotations[ANNOTATION_SERIALIZERS] = json.dumps(serialized, sort_keys=True, separators=(",", ":"))
    kitfile_path = workdir / "Kitfile"
    kitfile_path.write_text(kitfile.to_yaml(), encoding="utf-8")
    return StagedPack(context, kitfile_path, sources, annotations)


def serializers_of(annotations: Mapping[str, str]) -> dict[str, str]:
    """The ``{layer path: serializer}`` map a ModelKit packed by the IO manager carries (empty if none)."""
    raw = annotations.get(ANNOTATION_SERIALIZERS)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


__all__ = ["ANNOTATION_SERIALIZERS", "KINDS", "Layer", "ModelKitContents", "StagedPack", "serializers_of", "stage"]
