"""Unpack selected layers of a ModelKit from the local store into a directory — verified and atomic.

Layers are untrusted input: each is extracted by ``extract.py`` (no absolute or ``..`` names, no
links or devices) into a staging directory beside ``dest``, its digest (and diffId when
compressed) is checked before anything reaches ``dest``, and only then are the files moved
into place. A failure at any point leaves ``dest`` exactly as it was.

A staging dir is named ``.<dest name>.unpack-<host>-<pid>-<random>``; a process killed mid-unpack
leaves one behind, and the next unpack into the same ``dest`` on that host removes it once its
process is gone.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import UnpackError
from .extract import DirectorySink, merge_tree
from .filters import KIND_TO_FILTER_TYPE, LayerFilter, selects, wants_kitfile
from .kitfile import Kitfile
from .layerreader import read_layers
from .manifest import Manifest, PlannedLayer, clean_path, plan_layers
from .store import LocalStore

LOG = logging.getLogger("kitops_flows")

#: What to do with files that already exist in dest (kit: error, -o/--overwrite, -i/--ignore-existing).
EXISTING_POLICIES = ("error", "overwrite", "ignore")


@dataclass(frozen=True)
class UnpackResult:
    dest: Path
    layers: tuple[PlannedLayer, ...]
    kitfile_written: bool

    @property
    def paths(self) -> list[Path]:
        """Where each unpacked entry's files are (``dest / entry.path``)."""
        return [self.dest / clean_path(p.entry.path) for p in self.layers]

    def to_dict(self) -> dict[str, object]:
        """Plain JSON (XCom, artifacts, metadata): ``dest``, ``paths``, ``layers`` (kind, path, name, digest,
        size) and ``kitfile_written``."""
        layers = [{"kind": p.entry.kind, "path": p.entry.path, "name": p.entry.name, "digest": p.layer.digest,
                   "size": p.layer.size} for p in self.layers]
        return {"dest": str(self.dest), "paths": [str(p) for p in self.paths], "layers": layers,
                "kitfile_written": self.kitfile_written}


def select_layers(kitfile: Kitfile, manifest: Manifest, filters: Sequence[LayerFilter], what: str) -> list[PlannedLayer]:
    """The planned layers the filters select, in kit's unpack order."""
    order = {"model": 0, "modelpart": 1, "dataset": 2, "code": 3, "docs": 4, "prompt": 5, "mcpb": 6}
    chosen = [
        p for p in plan_layers(kitfile, manifest, what)
        if selects(filters, KIND_TO_FILTER_TYPE[p.entry.kind], p.entry.name, p.entry.path)
    ]
    return sorted(chosen, key=lambda p: order[p.entry.kind])  # stable: Kitfile order within a kind


def unpack_layers(
    store: LocalStore,
    manifest: Manifest,
    kitfile: Kitfile,
    dest: Path | str,
    *,
    filters: Sequence[LayerFilter] = (),
    existing: str = "error",
    write_kitfile: bool = True,
    what: str = "ModelKit",
) -> UnpackResult:
    """Extract the layers ``filters`` select (every blob must be in ``store``) into ``dest``."""
    if existing not in EXISTING_POLICIES:
        raise UnpackError(f"invalid existing-file policy {existing!r}: use one of {', '.join(EXISTING_POLICIES)}")
    planned = select_layers(kitfile, manifest, filters, what)
    dest = Path(dest).expanduser().absolute()
    staging: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _sweep_dead_staging(dest)
        staging = Path(tempfile.mkdtemp(prefix=f"{_staging_prefix(dest)}{os.getpid()}-", dir=dest.parent))
        read_layers(store, planned, DirectorySink(staging), what=what)
        kitfile_written = False
        if write_kitfile and wants_kitfile(filters):
            kitfile_written = _stage_kitfile(kitfile, staging, dest, existing)
        if not dest.exists():
            os.chmod(staging, 0o755)
            os.rename(staging, dest)  # fresh destination: one atomic rename
        else:
            if not dest.is_dir():
                raise UnpackError(f"unpack destination {dest} exists and is not a directory")
            merge_tree(staging, dest, existing=existing)
    except OSError as e:  # disk full, read-only, permissions: name the place, not just the errno
        code = errno.errorcode.get(e.errno or 0, "")
        hint = "; free some space or unpack elsewhere" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise UnpackError(
            f"cannot unpack {what} into {dest}: {e.strerror or e}{f' ({code})' if code else ''}"
            f"{f' at {e.filename}' if e.filename else ''}; the destination was left as it was{hint}"
        ) from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    for p in planned:
        LOG.info("Unpacked %s layer %s to %s", p.entry.kind, p.layer.digest, dest / clean_path(p.entry.path))
    return UnpackResult(dest, tuple(planned), kitfile_written)


def _staging_prefix(dest: Path) -> str:
    """``.<dest name>.unpack-<host id>-``: the host id keeps a shared filesystem's other hosts' dirs apart."""
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    return f".{dest.name}.unpack-{host}-"


def _sweep_dead_staging(dest: Path) -> None:
    """Remove staging dirs beside ``dest`` that unpacks on this host left when they were killed."""
    owner = re.compile(re.escape(_staging_prefix(dest)) + r"(\d+)-")
    for name in os.listdir(dest.parent):
        m = owner.match(name)
        if m and not _process_alive(int(m.group(1))):
            LOG.info("Removing %s, left by an interrupted unpack (process %s)", dest.parent / name, m.group(1))
            shutil.rmtree(dest.parent / name, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _stage_kitfile(kitfile: Kitfile, staging: Path, dest: Path, existing: str) -> bool:
    """Put the Kitfile (YAML) in staging, following kit's rule for an existing one."""
    text = kitfile.to_yaml().encode()
    current = dest / "Kitfile"
    if current.exists():
        if current.is_file() and current.read_bytes() == text:
            return False
        if existing != "overwrite":
            if existing == "ignore":
                return False
            raise UnpackError(
                f"failed to unpack: Kitfile exists in {dest} and does not match model's Kitfile "
                "(use overwrite to replace it)"
            )
    (staging / "Kitfile").write_bytes(text)
    os.chmod(staging / "Kitfile", 0o644)
    return True
