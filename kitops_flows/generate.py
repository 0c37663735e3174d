"""``init``: write a first Kitfile for a directory with the heuristics of ``kit init``.

>>> import pathlib, tempfile
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> for name, size in [("model.safetensors", 10), ("train.csv", 3), ("README.md", 1), ("run.sh", 1)]:
...     _ = (d / name).write_bytes(b"x" * size)
>>> print(generate_kitfile(d, name="churn").to_yaml(), end="")
manifestVersion: 1.0.0
package:
  name: churn
model:
  name: model
  path: model.safetensors
code:
  - path: .
datasets:
  - path: train.csv
docs:
  - path: README.md
    description: Readme file

How files are classified (kit's ``pkg/lib/kitfile/generate``): by name first (README*, LICENSE*,
prompt files such as SKILL.md or ``*.prompt*``), then by suffix (weights, metadata, docs,
datasets); the largest weights file (if it is more than 1.5x the average) is the model and the
others are parts; metadata files (.json/.yaml/.xml/.txt) join the model as parts, or become
datasets when there is no model. A sub-directory is one layer when all its files have one type;
``docs/`` is docs and ``src``, ``pkg``, ``lib``, ``build`` are code; any unclassified top-level
file (or more than five unclassified directories) gives a single ``code: .`` layer.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from .errors import KitfileError
from .kitfile import (
    DEFAULT_KITFILE_NAMES,
    CodeEntry,
    DatasetEntry,
    DocsEntry,
    Kitfile,
    McpServerEntry,
    Model,
    ModelPart,
    Package,
    PromptEntry,
)

LOG = logging.getLogger(__name__)

__all__ = ["FileType", "detect_file_type", "detect_license", "generate_kitfile"]


class FileType(IntEnum):
    """File categories in kit's order (the order matters when a directory's type is decided)."""

    MODEL = 0
    DATASET = 1
    CODE = 2
    DOCS = 3
    METADATA = 4
    PROMPT = 5
    MCP = 6
    UNKNOWN = 7


MODEL_SUFFIXES = (
    ".safetensors", ".pkl", ".joblib",
    ".bin", ".pth", ".pt", ".mar", ".pt2", ".ptl",
    ".pb", ".ckpt", ".tflite", ".tfrecords",
    ".npy", ".npz",
    ".keras", ".h5", ".caffemodel", ".pmml", ".coreml",
    ".gguf", ".ggml", ".ggmf", ".llamafile", ".onnx",
)
DOCS_SUFFIXES = (".md", ".adoc", ".html", ".pdf")
METADATA_SUFFIXES = (".json", ".yaml", ".xml", ".txt")
DATASET_SUFFIXES = (".tar", ".zip", ".parquet", ".csv")
PROMPT_FILE_NAMES = ("agents.md", "skill.md", "claude.md")  # compared case-insensitively
MCP_SUFFIX = ".mcpb"
DOCS_DIR_NAMES = ("docs",)
CODE_DIR_NAMES = ("src", "pkg", "lib", "build")
_MAX_LICENSE_BYTES = 1 << 20


def detect_file_type(name: str) -> FileType:
    """Classify one file by its name (suffix checks are case-sensitive, as in kit).

    >>> [detect_file_type(n).name for n in ("w.gguf", "SKILL.md", "a.prompt.txt", "x.json", "y.csv", "z.sh")]
    ['MODEL', 'PROMPT', 'PROMPT', 'METADATA', 'DATASET', 'UNKNOWN']
    """
    base = os.path.basename(name).lower()
    if base in PROMPT_FILE_NAMES or ".prompt" in base:  # before suffixes: SKILL.md is not a doc
        return FileType.PROMPT
    if name.endswith(MODEL_SUFFIXES):
        return FileType.MODEL
    if name.endswith(METADATA_SUFFIXES):
        return FileType.METADATA
    if name.endswith(DOCS_SUFFIXES):
        return FileType.DOCS
    if name.endswith(DATASET_SUFFIXES):
        return FileType.DATASET
    if name.endswith(MCP_SUFFIX):
        return FileType.MCP
    return FileType.UNKNOWN


# -- directory listing (what kit's DirectoryListingFromFS records) -----------------------------------------

@dataclass(frozen=True)
class _File:
    name: str
    path: str  # slash-separated, relative to the context directory
    size: int


@dataclass
class _Dir:
    name: str
    path: str
    files: list[_File] = field(default_factory=list)
    subdirs: list[_Dir] = field(default_factory=list)


def _listing(root: Path, rel: str = ".") -> _Dir:
    """Regular files and directories, sorted by name; symlinks and special files are skipped."""
    here = _Dir(os.path.basename(rel) if rel != "." else ".", rel)
    try:
        entries = sorted(os.scandir(root / rel), key=lambda e: e.name.encode("utf-8", "surrogateescape"))
    except OSError as e:
        raise KitfileError(f"failed to read directory {root / rel}: {e.strerror}") from None
    for entry in entries:
        child = entry.name if rel == "." else f"{rel}/{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            here.subdirs.append(_listing(root, child))
        elif entry.is_file(follow_symlinks=False):
            here.files.append(_File(entry.name, child, entry.stat(follow_symlinks=False).st_size))
    return here


# -- license detection ---------------------------------------------------------------------------------------

_SPDX_RE = re.compile(r"SPDX-License-Identifier:\s*([A-Za-z0-9.+-]+)")
# Distinctive phrases of common license texts -> SPDX id (kit uses google/licensecheck's full matcher).
_LICENSE_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("MIT", ("permission is hereby granted, free of charge",)),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "neither the name")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",)),
    ("MPL-2.0", ("mozilla public license", "version 2.0")),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",)),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
)


def detect_license(path: Path) -> str:
    """The SPDX id of a license file, or ``""`` when it cannot be told (kit then warns).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "LICENSE"
    >>> _ = p.write_text("MIT License\\n\\nPermission is hereby granted, free of charge, to any person ...")
    >>> detect_license(p)
    'MIT'
    """
    try:
        with open(path, "rb") as f:
            text = f.read(_MAX_LICENSE_BYTES).decode("utf-8", "replace")
    except OSError as e:
        LOG.warning("Unable to determine license type (%s: %s)", path, e.strerror)
        return ""
    spdx = set(_SPDX_RE.findall(text))
    if len(spdx) == 1:
        return spdx.pop()
    folded = " ".join(text.lower().split())
    for spdx_id, phrases in _LICENSE_MARKERS:
        if all(p in folded for p in phrases):
            if spdx_id == "BSD-2-Clause" and "neither the name" in folded:
                continue
            return spdx_id
    LOG.warning("Unable to determine license type of %s", path)
    return ""


# -- generation ----------------------------------------------------------------------------------------------

def generate_kitfile(
    directory: str | Path,
    *,
    name: str | None = None,
    description: str | None = None,
    author: str | None = None,
) -> Kitfile:
    """A Kitfile describing ``directory`` the way ``kit init`` would; nothing is written."""
    root = Path(directory)
    if not root.is_dir():
        raise KitfileError(f"cannot generate a Kitfile: {root} is not a directory")
    listing = _listing(root)
    kf = Kitfile(
        manifest_version="1.0.0",
        package=Package(name=name or "", description=description or "", authors=[author] if author else []),
    )
    catch_all = False
    unprocessed: list[str] = []
    model_files: list[_File] = []
    metadata_files: list[_File] = []
    license_id = ""

    for f in listing.files:
        if f.name in DEFAULT_KITFILE_NAMES:
            continue
        lower = f.name.lower()
        if lower.startswith("readme"):
            kf.docs.append(DocsEntry(path=f.name, description="Readme file"))
            continue
        if lower.startswith("license"):
            kf.docs.append(DocsEntry(path=f.name, description="License file"))
            license_id = detect_license(root / f.path)
            continue
        kind = detect_file_type(f.path)
        if kind is FileType.MODEL:
            model_files.append(f)
        elif kind is FileType.METADATA:
            metadata_files.append(f)
        elif kind is FileType.DOCS:
            kf.docs.append(DocsEntry(path=f.path))
        elif kind is FileType.DATASET:
            kf.datasets.append(DatasetEntry(path=f.path))
        elif kind is FileType.PROMPT:
            kf.prompts.append(PromptEntry(path=f.path))
        elif kind is FileType.MCP:  # newer kit: an MCP bundle is its own layer; it needs a name
            kf.mcp_servers.append(McpServerEntry(name=f.name[: -len(MCP_SUFFIX)], path=f.path))
        else:
            catch_all = True

    for sub in listing.subdirs:
        files, handled = _add_directory(kf, sub)
        if not handled:
            unprocessed.append(sub.path)
        model_files.extend(files)

    if model_files:
        _add_model(kf, model_files)
        assert kf.model is not None
        kf.model.parts.extend(ModelPart(path=f.path) for f in metadata_files)
    else:
        kf.datasets.extend(DatasetEntry(path=f.path) for f in metadata_files)

    if catch_all or len(unprocessed) > 5:
        kf.code = [CodeEntry(path=".")]  # one layer for everything is cleaner than '.' plus 'src'
    else:
        kf.code.extend(CodeEntry(path=p) for p in unprocessed)

    # Attach the license where it most plausibly applies (kit's order, including its quirk of
    # writing an empty license to the single dataset/code entry).
    if kf.model is not None and license_id:
        kf.model.license = license_id
    elif len(kf.datasets) == 1:
        kf.datasets[0].license = license_id
    elif len(kf.code) == 1:
        kf.code[0].license = license_id
    else:
        kf.package.license = license_id
    return kf


def _add_directory(kf: Kitfile, d: _Dir) -> tuple[list[_File], bool]:
    """Add ``d`` as one layer if its contents have a single type; return its model files and
    whether it was handled (unhandled directories become code layers)."""
    if d.name in DOCS_DIR_NAMES:
        kf.docs.append(DocsEntry(path=d.path))
        return [], True
    if d.name in CODE_DIR_NAMES:
        kf.code.append(CodeEntry(path=d.path))
        return [], True
    by_type: dict[FileType, list[str]] = {}
    if d.subdirs:  # nested directories are not inspected: they count as unknown content
        by_type[FileType.UNKNOWN] = [s.path for s in d.subdirs]
    model_files: list[_File] = []
    metadata_files: list[_File] = []
    for f in d.files:
        kind = detect_file_type(f.name)
        if kind is FileType.MODEL:
            model_files.append(f)
        elif kind is FileType.METADATA:
            metadata_files.append(f)
        by_type.setdefault(kind, []).append(f.path)
    kinds = sorted(k for k, v in by_type.items() if v and k is not FileType.METADATA)
    if len(kinds) > 1:
        return model_files, False  # mixed contents
    overall = kinds[0] if kinds else FileType.UNKNOWN
    if overall is FileType.MODEL:
        return model_files + metadata_files, True
    if overall is FileType.DATASET:
        kf.datasets.append(DatasetEntry(path=d.path))
    elif overall is FileType.DOCS:
        kf.docs.append(DocsEntry(path=d.path))
    elif overall is FileType.PROMPT:
        kf.prompts.append(PromptEntry(path=d.path))
    else:
        return model_files, False
    return model_files, True


def _stem_path(f: _File) -> str:
    """The path without the file's extension (Go's filepath.Ext: from the last dot of the name)."""
    dot = f.name.rfind(".")
    return f.path[: len(f.path) - (len(f.name) - dot)] if dot >= 0 else f.path


def _add_model(kf: Kitfile, files: list[_File]) -> None:
    if len(files) == 1:
        kf.model = Model(name=_stem_path(files[0]), path=files[0].path)
        return
    largest = max(files, key=lambda f: f.size)  # first of equal sizes, as kit's strict '>' scan
    average = sum(f.size for f in files) // len(files)
    if largest.size > average + average // 2:
        kf.model = Model(name=_stem_path(largest), path=largest.path)
        kf.model.parts = [ModelPart(path=f.path) for f in files if f is not largest]
    else:  # a model split in similar-sized shards: first one is the model, in listing order
        kf.model = Model(path=files[0].path, parts=[ModelPart(path=f.path) for f in files[1:]])
