"""Verify before use: which keys a consumer trusts, checked before any layer of a ModelKit is fetched.

>>> policy = SignaturePolicy.of("cosign.pub")                                   # doctest: +SKIP
>>> kit.unpack("127.0.0.1:5000/team/churn:v3", "/srv", verify_key=policy)     # doctest: +SKIP

``verify_key=`` on ``KitOpsClient.pull``/``pull_layer``/``unpack`` (and the plugins) accepts a
``SignaturePolicy``, a ``VerifyKey``, PEM text/bytes, ``env://NAME`` or a path to ``cosign.pub``.
The reference is pinned to the verified digest, so a tag moved after the check is not followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import NotFoundError
from ..reference import Reference
from ..sources import SourceLike, as_source
from .errors import SignatureError
from .keys import VerifyKey, load_public_key
from .verify import Verification, verify_attestation, verify_modelkit


@dataclass(frozen=True)
class SignaturePolicy:
    """Trust: any one of ``keys`` must have signed the ModelKit; ``require_attestation`` also needs a
    verified SLSA provenance attestation from one of them."""

    keys: tuple[VerifyKey, ...]
    require_attestation: bool = False

    @classmethod
    def of(cls, value: KeySpec | None) -> SignaturePolicy | None:
        """None stays None (no check); anything else becomes a policy of one key."""
        if value is None or value == "" or isinstance(value, SignaturePolicy):
            return value or None
        if isinstance(value, VerifyKey):
            return cls((value,))
        return cls((load_public_key(value if isinstance(value, (bytes, Path)) else str(value),
                                    what="verify key"),))

    @property
    def fingerprints(self) -> tuple[str, ...]:
        return tuple(k.fingerprint for k in self.keys)

    def check(self, client: SourceLike, reference: str) -> Verification:
        """Verify ``reference`` (a registry reference); SignatureError with one line per failure."""
        result = verify_modelkit(client, reference, self.keys)
        if self.require_attestation:
            verify_attestation(client, result.reference, self.keys)
        return result


KeySpec = SignaturePolicy | VerifyKey | str | bytes | Path


def verified_reference(client: SourceLike, ref: Reference, policy: SignaturePolicy) -> Reference:
    """``ref`` pinned to a digest whose signature passed ``policy`` (local copy's digest if it has one)."""
    if ref.is_local_only:
        raise SignatureError(
            f"cannot verify {ref.display()}: it names no registry, and signatures live in the registry; use "
            f"registry.example.com/{ref.repository}:{ref.tag or 'latest'}, or drop verify_key")
    digest = ref.digest
    if digest is None:
        try:
            digest = as_source(client).store.resolve(ref).digest  # what would be unpacked from the local store
        except NotFoundError:
            digest = None
    pinned = ref.with_reference(digest) if digest else ref
    result = policy.check(client, str(pinned))
    return ref.with_reference(result.digest)


__all__ = ["KeySpec", "SignaturePolicy", "verified_reference"]
