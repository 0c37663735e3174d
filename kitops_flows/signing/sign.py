"""Sign a ModelKit in its registry, cosign-compatibly: a signature over the manifest digest, and its
provenance statement as an in-toto attestation.

>>> key = load_private_key("cosign.key", "pw")                                    # doctest: +SKIP
>>> sign_modelkit(kit, "127.0.0.1:5000/team/churn:v3", key).signature             # doctest: +SKIP
'127.0.0.1:5000/team/churn:sha256-….sig'

Only the manifest (a few KiB) is read: the manifest digest already commits to every layer, so
signing a 100 GiB ModelKit costs what signing a 1 KiB one does.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from ..errors import KitopsError
from ..sources import SourceLike, as_source
from .dsse import DSSE_MEDIA_TYPE, SIGN_PREDICATE, SLSA_PROVENANCE_V1, attestation_statement, bundle, envelope
from .keys import SigningKey
from .layout import PREDICATE_ANNOTATION, SIGNATURE_ANNOTATION, Layer, attestation_tag, signature_tag
from .payload import SIMPLE_SIGNING_MEDIA_TYPE, simple_signing_payload
from .placement import MODES, SignatureRepository, StoredLayer
from .target import SigningTarget, resolve_target

LOG = logging.getLogger("kitops_flows")


@dataclass(frozen=True)
class SignResult:
    """Where a signature (and attestation) went; ``signed_by`` is the public key's fingerprint."""

    reference: str
    digest: str
    signed_by: str
    mode: str
    signature: str
    attestation: str | None
    added: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_modelkit(client: SourceLike, reference: str, key: SigningKey, *, mode: str = "auto",
                  attest: bool = True, annotations: Mapping[str, str] | None = None,
                  provenance: Callable[[str], Mapping[str, Any] | None] | None = None) -> SignResult:
    """Sign ``reference`` (a ModelKit already in its registry); also attest its provenance when it has one.

    ``provenance(pinned)`` returns the ModelKit's verified provenance statement, or None when it has
    none (``KitOpsClient.sign`` passes the lineage reader); without it nothing is attested.

    ``mode``: ``tag`` (``sha256-<hex>.sig``/``.att``), ``referrers`` (Sigstore bundles as OCI 1.1
    referrers, with the ``sha256-<hex>`` index on registries without the API), or ``auto``:
    referrers where the registry has the referrers API, tags elsewhere. Signing twice with the same
    key adds nothing (``added`` False).
    """
    if mode not in MODES:
        raise KitopsError(f"unknown signature mode {mode!r}: use one of {', '.join(MODES)}")
    target = resolve_target(client, reference, "sign")
    repo = SignatureRepository(as_source(client).registry(target.registry), target.repository)
    api = repo.has_referrers_api(target.digest) if mode != "tag" else False  # one probe, only when it matters
    if mode == "auto":
        mode = "referrers" if api else "tag"
    statement = _provenance_attestation(provenance, target) if attest else None  # reading it costs requests
    if mode == "tag":
        added, where = _sign_tag(repo, target, key, annotations)
        att = _attest_tag(repo, target, key, statement) if attest and statement else None
    else:
        where = repo.put_bundle(target.subject, bundle(_sign_statement(target, annotations), key),
                                SIGN_PREDICATE, _utc_now(), api=api)
        where, added = f"{target.docker_reference}@{where}", True
        att = None
        if attest and statement:
            att_digest = repo.put_bundle(target.subject, bundle(statement, key), SLSA_PROVENANCE_V1, _utc_now(), api=api)
            att = f"{target.docker_reference}@{att_digest}"
    LOG.info("Signed %s with key %s (%s)%s", target.pinned, key.public_key.fingerprint, where,
             f"; provenance attested at {att}" if att else "")
    return SignResult(target.pinned, target.digest, key.public_key.fingerprint, mode, where, att, added)


def _sign_statement(target: SigningTarget, annotations: Mapping[str, str] | None) -> bytes:
    from .dsse import sign_statement

    return sign_statement(target.digest, annotations)


def _sign_tag(repo: SignatureRepository, target: SigningTarget, key: SigningKey,
              annotations: Mapping[str, str] | None) -> tuple[bool, str]:
    payload = simple_signing_payload(target.docker_reference, target.digest, annotations)
    sig = base64.b64encode(key.sign(payload)).decode()
    layer = Layer(SIMPLE_SIGNING_MEDIA_TYPE, payload, {SIGNATURE_ANNOTATION: sig})

    def same_signer(old: StoredLayer, old_payload: bytes) -> bool:
        # cosign's Find: same payload, same non-signature annotations, and the old signature is ours
        others = {k: v for k, v in old.annotations.items() if k != SIGNATURE_ANNOTATION}
        try:
            old_sig = base64.b64decode(old.annotations.get(SIGNATURE_ANNOTATION, ""), validate=True)
        except ValueError:
            return False
        return not others and key.public_key.verify(old_sig, old_payload)

    tag = signature_tag(target.digest)
    added = repo.append(tag, layer, same_signer)
    return added, f"{target.docker_reference}:{tag}"


def _attest_tag(repo: SignatureRepository, target: SigningTarget, key: SigningKey, statement: bytes) -> str:
    from ..gojson import marshal

    blob = marshal(envelope(statement, key))
    layer = Layer(DSSE_MEDIA_TYPE, blob, {SIGNATURE_ANNOTATION: "", PREDICATE_ANNOTATION: SLSA_PROVENANCE_V1})
    tag = attestation_tag(target.digest)
    repo.append(tag, layer)  # every attest appends, as cosign does
    return f"{target.docker_reference}:{tag}"


def _provenance_attestation(provenance: Callable[[str], Mapping[str, Any] | None] | None,
                            target: SigningTarget) -> bytes | None:
    """cosign's attestation statement around the ModelKit's SLSA provenance predicate, if it has one."""
    statement = provenance(target.pinned) if provenance is not None else None
    if statement is None:
        return None
    return attestation_statement(target.docker_reference, target.digest, statement.get("predicate") or {},
                                 str(statement.get("predicateType") or SLSA_PROVENANCE_V1))


__all__ = ["SignResult", "sign_modelkit"]
