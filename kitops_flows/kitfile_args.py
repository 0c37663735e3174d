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
from pathlib import Path
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
class KitfileArguments:
    """The pieces of a ModelKit named by task/operator arguments (shared by every orchestrator plugin)."""

    model: str | None = None
    datasets: Mapping[str, str] = field(default_factory=dict)
    code: Sequence[str] = ()
    docs: Sequence[str] = ()
    package: Mapping[str, Any] = field(default_factory=dict)
    model_name: str | None = None

    @property
    def given(self) -> bool:
        return bool(self.model or self.datasets or self.code or self.docs)

    def build(self, context_dir: str | Path | None) -> tuple[Path, Kitfile, dict[str, str]]:
        """``(context_dir, Kitfile, sources)`` ready for ``KitOpsClient.pack``."""
        unknown = sorted(set(self.package) - set(PACKAGE_FIELDS))
        if unknown:
            raise KitfileError(f"package has unknown fields {unknown}: use {', '.join(PACKAGE_FIELDS)}")
        local = [p for p in [self.model, *self.datasets.values(), *self.code, *self.docs] if p and not _is_s3(p)]
        context = self._context(context_dir, local)
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
        if self.model:
            name = self.model_name or package.get("name") or "model"
            if _is_s3(self.model):
                path = s3_layer_path("model", name, self.model)
                sources[path] = self.model
            else:
                path = rel(self.model, "model")
            kf.model = Model(name=name, path=path)
        for name, value in self.datasets.items():
            if _is_s3(value):
                kf.datasets.append(DatasetEntry(name=name, path=s3_layer_path("dataset", name, value)))
                sources[name] = value
            else:
                kf.datasets.append(DatasetEntry(name=name, path=rel(value, f"dataset {name}")))
        kf.code = [CodeEntry(path=rel(p, "code")) for p in self.code]
        kf.docs = [DocsEntry(path=rel(p, "docs")) for p in self.docs]
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


__all__ = ["S3_FOLDERS", "KitfileArguments", "s3_layer_path"]
