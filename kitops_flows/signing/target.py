"""The ModelKit a signature is about: registry, repository and manifest digest (tags resolved once).

>>> t = SigningTarget("127.0.0.1:5000", "team/churn", "sha256:" + "ab" * 32, 1234)
>>> t.docker_reference
'127.0.0.1:5000/team/churn'
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import KitopsError, NotFoundError
from ..mediatypes import OCI_MANIFEST
from ..reference import parse_reference
from ..sources import SourceLike, as_source


@dataclass(frozen=True)
class SigningTarget:
    registry: str
    repository: str
    digest: str
    size: int
    media_type: str = OCI_MANIFEST

    @property
    def docker_reference(self) -> str:
        """``<registry>/<repo>`` as cosign puts it in payloads and statement subjects."""
        return f"{self.registry}/{self.repository}"

    @property
    def pinned(self) -> str:
        return f"{self.docker_reference}@{self.digest}"

    @property
    def subject(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


def resolve_target(client: SourceLike, reference: str, action: str) -> SigningTarget:
    """Resolve a registry reference to its manifest (one GET: digest and size); refuse local-only ones."""
    ref = parse_reference(reference)
    if ref.is_local_only:
        raise KitopsError(
            f"cannot {action} {ref.display()}: signatures live in a registry and this reference names none; "
            f"use registry.example.com/{ref.repository}:{ref.tag or 'latest'} (push the ModelKit first)"
        )
    rc = as_source(client).registry(ref.registry)
    try:
        fetched = rc.get_manifest(ref.repository, ref.reference)  # verified against a digest reference
    except NotFoundError:
        raise NotFoundError(f"cannot {action} {ref}: it is not in the registry (push it first)") from None
    return SigningTarget(ref.registry, ref.repository, fetched.digest, len(fetched.data),
                         fetched.media_type or OCI_MANIFEST)


__all__ = ["SigningTarget", "resolve_target"]
