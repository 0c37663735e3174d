"""A Kitfile from arguments (model path, dataset paths or ``s3://`` URIs, code, docs).

Local paths must lie inside the pack's context directory (they become the paths inside the
ModelKit); when no context directory is given, the deepest directory holding them all is used.
``s3://`` values become layer *sources* streamed by the core (no local copy); their path inside
the ModelKit is ``data/<file name>`` for an object and ``data/<name>`` for a prefix (``model/…``
for the model).

>>> spec = KitfileArguments(datasets={"train": "s3://ml/churn/train.csv"}, package={"name": "churn"})
>>> ctx, kf, sources = spec.build("/job")
>>> str(ctx), kf.package.name, kf.datasets[0].path, sources
('/job', 'churn', 'data/train.csv', {'train': 's3://ml/churn/train.csv'})
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from kitops_flows.errors import KitfileError
from kitops_flows.kitfile import CodeEntry, DatasetEntry, DocsEntry, Kitfile, Model, Package

PACKAGE_FIELDS = ("name", "version", "description", "license", "authors")


def _is_s3(value: str) -> bool:
    return value.startswith("s3://")


#: The folder inside the ModelKit an ``s3://`` source of each kind lands in when no path is given.
S3_FOLDERS = {"model": "model", "dataset": "data", "code": "code", "docs": "docs"}


def s3_layer_path(kind: str, label: str, uri: str) -> str:
    """Where an ``s3://`` source lands inside the ModelKit when no path is given (every plugin's rule).

    An object keeps its file name, a prefix takes the entry's label, under the kind's folder:

    >>> s3_layer_path("dataset", "train", "s3://b/churn/train.csv"), s3_layer_path("dataset", "train", "s3://b/churn/")
    ('data/train.csv', 'data/train')
    """
    folder = S3_FOLDERS[kind]
    key = uri[len("s3://"):].partition("/")[2]
    if not key or key.endswith("/"):
        return f"{folder}/{label}"
    return f"{folder}/{posixpath.basename(key)}"


@dataclass(frozen=True)
class LayerArgument:
    """One layer named by arguments: its kind, a local path or ``s3://`` URI, and optional Kitfile fields.

    ``name`` is the Kitfile entry name (model, datasets; for code and docs only the label of an S3
    prefix's folder); ``path`` the path inside the ModelKit of an ``s3://`` value (default: the rule
    of ``s3_layer_path``); a local value's path is its place in the context directory.

    >>> LayerArgument("dataset", "s3://b/churn/", name="train", description="raw rows").kind
    'dataset'
    """

    kind: str
    value: str
    name: str = ""
    path: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in S3_FOLDERS:
            raise KitfileError(f"layer kind {self.kind!r} is not one of {', '.join(S3_FOLDERS)}")


def _inside(path: str, what: str) -> str:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or str(pure) in ("", "."):
        raise KitfileError(f"{what}: path {path!r} must be a relative path inside the ModelKit, without '..'")
    return str(pure)


@dataclass(frozen=True)
class KitfileArguments:
    """The pieces of a ModelKit named by task/operator arguments (shared by every orchestrator plugin).

    ``model``, ``datasets``, ``code`` and ``docs`` are the operators' plain arguments; ``layers``
    adds entries with descriptions or explicit paths (Dagster's ``Layer``), after those.
    """

    model: str | None = None
    datasets: Mapping[str, str] = field(default_factory=dict)
    code: Sequence[str] = ()
    docs: Sequence[str] = ()
    package: Mapping[str, Any] = field(default_factory=dict)
    model_name: str | None = None
    layers: Sequence[LayerArgument] = ()

    @property
    def given(self) -> bool:
        return bool(self.model or self.datasets or self.code or self.docs or self.layers)

    def entries(self) -> list[LayerArgument]:
        """Every layer in Kitfile order of the arguments: the plain ones first, then ``layers``."""
        plain = [LayerArgument("model", self.model, name=self.model_name or "")] if self.model else []
        plain += [LayerArgument("dataset", v, name=n) for n, v in self.datasets.items()]
        plain += [LayerArgument("code", v) for v in self.code] + [LayerArgument("docs", v) for v in self.docs]
        return plain + list(self.layers)

    def build(self, context_dir: str | Path | None) -> tuple[Path, Kitfile, dict[str, str]]:
        """``(context_dir, Kitfile, sources)`` ready for ``KitOpsClient.pack``."""
        unknown = sorted(set(self.package) - set(PACKAGE_FIELDS))
        if unknown:
            raise KitfileError(f"package has unknown fields {unknown}: use {', '.join(PACKAGE_FIELDS)}")
        entries = self.entries()
        context = self._context(context_dir, [e.value for e in entries if not _is_s3(e.value)])
        sources: dict[str, str] = {}

        def rel(value: str, what: str) -> str:
            path = Path(value)
            path = path if path.is_absolute() else context / path
            try:
                relative = path.resolve().relative_to(context.resolve())
            except ValueError:
                raise KitfileError(
                    f"{what} {value} is outside the context directory {context}; pass context_dir= a "
                    "directory that contains it (paths inside the ModelKit are relative to it)"
                ) from None
            if not path.exists():
                raise KitfileError(f"{what} {path} does not exist")
            return relative.as_posix() or "."

        package = dict(self.package)
        package["authors"] = list(package.get("authors") or [])
        kf = Kitfile(manifest_version="1.0.0", package=Package(**package))
        for entry in entries:
            name = entry.name or (package.get("name") or entry.kind if entry.kind in ("model", "dataset") else "")
            what = f"dataset {name}" if entry.kind == "dataset" else entry.kind
            if _is_s3(entry.value):
                path = _inside(entry.path, what) if entry.path else s3_layer_path(entry.kind, name or "s3", entry.value)
                sources[name if entry.kind == "dataset" else path] = entry.value
            else:
                path = rel(entry.value, what)
                if entry.path and _inside(entry.path, what) != path:
                    raise KitfileError(f"{what}: path {entry.path!r} given for local {entry.value}, which is at "
                                       f"{path!r} in the context directory; move it there or leave path empty")
            if entry.kind == "model":
                if kf.model is not None:
                    raise KitfileError("a ModelKit holds one model layer; make the others datasets, code or docs")
                kf.model = Model(name=name, path=path, description=entry.description)
            elif entry.kind == "dataset":
                kf.datasets.append(DatasetEntry(name=name, path=path, description=entry.description))
            elif entry.kind == "code":
                kf.code.append(CodeEntry(path=path, description=entry.description))
            else:
                kf.docs.append(DocsEntry(path=path, description=entry.description))
        return context, kf, sources

    @staticmethod
    def _context(context_dir: str | Path | None, local: list[str]) -> Path:
        if context_dir is not None:
            return Path(context_dir).expanduser().absolute()
        absolute = [os.path.abspath(p) for p in local]
        if not absolute:
            raise KitfileError("only s3:// sources given: pass context_dir= (an empty directory will do)")
        common = Path(os.path.commonpath(absolute))
        # a single file (or files only) -> its directory; a single directory -> its parent, so the
        # directory's own name stays the path inside the ModelKit
        return common.parent if common.as_posix() in absolute or common.is_file() else common


__all__ = ["S3_FOLDERS", "KitfileArguments", "LayerArgument", "s3_layer_path"]
