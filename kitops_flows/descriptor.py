"""The OCI content descriptor: media type, digest, size (and annotations, artifact type).

>>> Descriptor.from_dict({"mediaType": "application/octet-stream", "digest": "sha256:" + "0" * 64, "size": 3}).size
3
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import StoreError
from .reference import is_digest

__all__ = ["Descriptor"]


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (the fields the store keeps)."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    artifact_type: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Keys in Go's ocispec.Descriptor order, empty ones omitted."""
        d: dict[str, object] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(sorted(self.annotations.items()))
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object], what: str = "descriptor") -> Descriptor:
        try:
            digest = str(d["digest"])
            size = d["size"]
        except (KeyError, TypeError) as e:
            raise StoreError(f"{what} is missing field {e}") from None
        if not is_digest(digest):
            raise StoreError(f"{what} has an invalid digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise StoreError(f"{what} has an invalid size {size!r}")
        ann = d.get("annotations")
        return cls(
            media_type=str(d.get("mediaType") or ""),
            digest=digest,
            size=size,
            annotations=dict(ann) if isinstance(ann, dict) else None,
            artifact_type=str(d["artifactType"]) if d.get("artifactType") else None,
        )
