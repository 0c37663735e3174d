"""Small layers of a ModelKit into memory: ModelKit source -> the verified layer reader -> ``MemorySink``.

For values an orchestrator hands between steps (a pickled object, a JSON file): no directory is
written. Only a selection whose stored layers total at most ``max_bytes`` is read (``None``
otherwise: unpack it to a directory), and the ``MemorySink`` refuses more than ``max_bytes`` of
files, so a layer that inflates on decompression cannot fill memory. The bytes returned were
verified (digest, diffId, member names) before this returns.

>>> read = read_small_layers(kit, "reg.example.com/team/churn@sha256:…", ["model"])  # doctest: +SKIP
>>> read.files                                                                         # doctest: +SKIP
{'churn.pkl': b'\\x80\\x05…'}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .filters import LayerFilter, parse_filter_list
from .kitfile import clean_path
from .layerreader import MemorySink, read_layers
from .manifest import PlannedLayer
from .reference import parse_reference
from .sources import HasModelKitSource
from .unpack import select_layers

#: The default bound: values larger than this belong in a directory (and are streamed there).
SMALL_LAYERS_BYTES = 16 << 20


@dataclass(frozen=True)
class SmallLayers:
    """The selected layers (kit's unpack order) and their files as ``{path: bytes}``."""

    layers: tuple[PlannedLayer, ...]
    files: dict[str, bytes]

    def file_of(self, layer: PlannedLayer) -> bytes | None:
        """The bytes of a single-file layer (its path in the ModelKit), None if it holds a directory."""
        return self.files.get(clean_path(layer.entry.path))


def read_small_layers(
    kit: HasModelKitSource,
    reference: str,
    filters: Sequence[str | LayerFilter] | str | None = None,
    *,
    max_bytes: int = SMALL_LAYERS_BYTES,
    accept: Callable[[Sequence[PlannedLayer]], bool] | None = None,
) -> SmallLayers | None:
    """Read the layers ``filters`` select into memory, verified; None when they are too large (or
    ``accept`` refuses them, or nothing is selected): then nothing was fetched or read."""
    source = kit.source
    ref = parse_reference(reference)
    loaded = source.load(ref)
    planned = select_layers(loaded.kitfile, loaded.manifest, parse_filter_list(filters), ref.display())
    if not planned or sum(p.layer.size for p in planned) > max_bytes or (accept is not None and not accept(planned)):
        return None
    source.ensure_blobs(ref, [p.layer for p in planned])
    sink = MemorySink(max_bytes=max_bytes)
    read_layers(source, planned, sink, what=ref.display())
    return SmallLayers(tuple(planned), sink.files)


__all__ = ["SMALL_LAYERS_BYTES", "SmallLayers", "read_small_layers"]
