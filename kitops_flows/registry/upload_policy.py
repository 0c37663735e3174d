"""How to upload a blob to a given registry: one monolithic PUT, or PATCH chunks then a PUT.

One table, as in kit's ``remote/upload-format.go``: some registries break on chunked uploads
(ghcr.io rejects PATCH bodies over ~4 MiB, Google Artifact/Container Registry wants monolithic
uploads, Amazon ECR answers 201 after the first chunk), so they always get a monolithic PUT; any
other registry gets a monolithic PUT below ``chunk_size`` and chunks of ``chunk_size`` above::

    >>> policy = UploadPolicy()
    >>> policy.mode_for("ghcr.io", 5 << 30), policy.mode_for("127.0.0.1:5000", 5 << 30)
    ('monolithic', 'chunked')
    >>> UploadPolicy(chunk_size=1 << 20).mode_for("registry.example.com", 2 << 20)
    'chunked'

Both modes stream from the file: nothing is read into memory whole. A registry that asks for bigger
chunks (OCI distribution 1.1's ``OCI-Chunk-Min-Length`` on the upload session) gets them. What bounds
a single big blob's push is the connection it goes over: an upload session takes the bytes in order
(each PATCH must start where the last ended), so unlike a download it cannot be split across
connections; chunk size only changes how many round trips are spent (one per chunk).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

UploadMode = Literal["monolithic", "chunked"]

DEFAULT_CHUNK_SIZE = 100 << 20  # kit's uploadChunkDefaultSize


@dataclass(frozen=True)
class UploadRule:
    """Registries whose host (port stripped, lowercased) fully matches ``pattern`` always use ``mode``."""

    pattern: str
    mode: UploadMode
    why: str = ""

    def matches(self, host: str) -> bool:
        return re.fullmatch(self.pattern, host) is not None


KIT_RULES: tuple[UploadRule, ...] = (
    UploadRule(r"ghcr\.io", "monolithic", "ghcr.io answers 416 to PATCH bodies over 4 MiB"),
    UploadRule(r".*\.pkg\.dev", "monolithic", "Google Artifact Registry has no chunked uploads"),
    UploadRule(r"(.*\.)?gcr\.io", "monolithic", "Google Container Registry has no chunked uploads"),
    UploadRule(r"(.*\.)?amazonaws\.com(\.cn)?", "monolithic", "ECR answers 201 after the first chunk"),
)


@dataclass(frozen=True)
class UploadPolicy:
    """``rules`` are checked in order; with no match, blobs of ``chunk_size`` or more are chunked."""

    chunk_size: int = DEFAULT_CHUNK_SIZE
    rules: tuple[UploadRule, ...] = field(default=KIT_RULES)

    def __post_init__(self) -> None:
        if self.chunk_size <= 0:
            raise ValueError(f"upload chunk_size must be positive, got {self.chunk_size}")

    def mode_for(self, registry: str, size: int) -> UploadMode:
        host = _hostname(registry)
        for rule in self.rules:
            if rule.matches(host):
                return rule.mode
        return "monolithic" if size < self.chunk_size else "chunked"


def _hostname(registry: str) -> str:
    """``Reg.Example.com:5000`` -> ``reg.example.com``; ``[::1]:5000`` -> ``::1``."""
    host = registry.lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
