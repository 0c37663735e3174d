"""Verify a ModelKit's signatures and attestations the way ``cosign verify`` / ``verify-attestation`` do.

>>> verify_modelkit(kit, "127.0.0.1:5000/team/churn:v3", load_public_key("cosign.pub"))   # doctest: +SKIP
Verification(reference='127.0.0.1:5000/team/churn@sha256:…', mode='tag', signed_by='sha256:…', ...)

Order (signing spec §7): resolve the reference to its manifest digest; look for Sigstore bundles
among the referrers (API, else the ``sha256-<hex>`` index); if one parses, only bundles count,
otherwise the legacy ``sha256-<hex>.sig`` (``.att``) layers. Each candidate is checked on its own
and success needs one that passes; every rejected one yields one line in ``SignatureError.failures``:

- ``unsigned: …``                  nothing signed this digest (no tag, no bundle);
- ``wrong key: …``                 the signature does not verify with any given key;
- ``payload for another digest: …`` a valid signature, but over another ModelKit;
- ``tampered payload: …``          the payload's bytes do not match its descriptor digest;
- ``malformed: …``                 missing annotation, bad base64, unparseable JSON/bundle.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import DigestMismatchError, KitopsError
from ..sources import SourceLike, as_source
from .dsse import PAYLOAD_TYPE, Envelope, parse_bundle, parse_envelope, parse_statement, predicate_uri
from .errors import SignatureError
from .keys import VerifyKey
from .layout import SIGNATURE_ANNOTATION, attestation_tag, signature_tag
from .payload import parse_simple_signing
from .placement import SignatureRepository, StoredLayer
from .target import SigningTarget, resolve_target


@dataclass(frozen=True)
class Verification:
    """A passed verification: which digest, which key signed it, in which storage mode, how many passed."""

    reference: str
    digest: str
    signed_by: str
    mode: str
    verified: int
    failures: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _keys(keys: VerifyKey | Sequence[VerifyKey]) -> list[VerifyKey]:
    out = [keys] if isinstance(keys, VerifyKey) else list(keys)
    if not out:
        raise KitopsError("no verification key given")
    return out


def _which(keys: list[VerifyKey], signature: bytes, data: bytes) -> VerifyKey | None:
    return next((k for k in keys if k.verify(signature, data)), None)


def _key_names(keys: list[VerifyKey]) -> str:
    return ", ".join(k.fingerprint[:19] + "…" for k in keys)


def _env_signer(keys: list[VerifyKey], env: Envelope) -> VerifyKey | None:
    from .dsse import pae

    data = pae(env.payload_type, env.payload)
    return next((k for k in keys for sig, _ in env.signatures if k.verify(sig, data)), None)


def verify_modelkit(client: SourceLike, reference: str, keys: VerifyKey | Sequence[VerifyKey], *,
                    annotations: Mapping[str, str] | None = None) -> Verification:
    """``cosign verify --key``: pass if at least one signature of the digest verifies; else SignatureError."""
    target = resolve_target(client, reference, "verify")
    return _run(client, target, _keys(keys), annotations or {}, predicate=None)


def verify_attestation(client: SourceLike, reference: str, keys: VerifyKey | Sequence[VerifyKey], *,
                       predicate_type: str = "slsaprovenance1") -> Verification:
    """``cosign verify-attestation --key --type``: a verified statement of that predicate type must exist."""
    target = resolve_target(client, reference, "verify the attestation of")
    return _run(client, target, _keys(keys), {}, predicate=predicate_uri(predicate_type))


def _run(client: SourceLike, target: SigningTarget, keys: list[VerifyKey], annotations: Mapping[str, str],
         predicate: str | None) -> Verification:
    repo = SignatureRepository(as_source(client).registry(target.registry), target.repository)
    failures: list[str] = []
    passed: list[VerifyKey] = []
    bundles = _parseable_bundles(repo, target, failures)
    if bundles:
        mode = "referrers"
        for where, b, ptype in bundles:
            key = _check_bundle(where, b.envelope, keys, target, annotations, failures)
            if key is not None and predicate is not None and ptype != predicate:
                failures.append(f"other predicate: {where} is a {ptype} statement, not {predicate}")
                continue
            if key is not None:
                passed.append(key)
    else:
        mode = "tag"
        tag = signature_tag(target.digest) if predicate is None else attestation_tag(target.digest)
        layers = repo.read_layers(tag)
        if layers is None:
            failures.append(f"unsigned: {target.pinned} has no {'signatures' if predicate is None else 'attestations'}"
                            f" (no {tag} tag and no signature bundle among its referrers)")
        for layer in layers or []:
            where = f"layer {layer.index} of {repo.where}:{tag}"
            key = (_check_sig_layer(repo, layer, where, keys, target, annotations, failures) if predicate is None
                   else _check_att_layer(repo, layer, where, keys, target, predicate, failures))
            if key is not None:
                passed.append(key)
    if not passed:
        if not failures:
            failures.append(f"unsigned: {target.pinned} has no signature layers")
        raise SignatureError(
            f"{target.pinned}: no valid {'signature' if predicate is None else 'attestation'} for key(s) "
            f"{_key_names(keys)}:\n  " + "\n  ".join(failures), tuple(failures))
    return Verification(target.pinned, target.digest, passed[0].fingerprint, mode, len(passed), tuple(failures))


# -- legacy layers --------------------------------------------------------------------------------------------

def _fetch(repo: SignatureRepository, layer: StoredLayer, where: str, failures: list[str]) -> bytes | None:
    try:
        return repo.read_blob(layer.digest, layer.size, where)
    except DigestMismatchError as e:
        failures.append(f"tampered payload: {where}: {e}")
    except KitopsError as e:
        failures.append(f"malformed: {where}: payload cannot be read ({e})")
    return None


def _check_sig_layer(repo: SignatureRepository, layer: StoredLayer, where: str, keys: list[VerifyKey],
                     target: SigningTarget, annotations: Mapping[str, str], failures: list[str]) -> VerifyKey | None:
    if SIGNATURE_ANNOTATION not in layer.annotations:
        failures.append(f"malformed: {where} has no {SIGNATURE_ANNOTATION} annotation")
        return None
    try:  # strict standard base64 with padding, as cosign's legacy path decodes it
        signature = base64.b64decode(layer.annotations[SIGNATURE_ANNOTATION], validate=True)
    except (binascii.Error, ValueError):
        failures.append(f"malformed: {where}: the signature annotation is not standard padded base64")
        return None
    payload = _fetch(repo, layer, where, failures)
    if payload is None:
        return None
    key = _which(keys, signature, payload)
    if key is None:
        failures.append(f"wrong key: {where}: the signature does not verify with {_key_names(keys)} "
                        "(signed with another key, or the payload was altered)")
        return None
    try:
        claims = parse_simple_signing(payload)
    except ValueError as e:
        failures.append(f"malformed: {where}: the payload is not a simple-signing document ({e})")
        return None
    if claims.digest != target.digest:
        failures.append(f"payload for another digest: {where} signs {claims.digest or 'no digest'}, "
                        f"not {target.digest}")
        return None
    return key if _annotations_match(annotations, claims.optional, where, failures) else None


def _check_att_layer(repo: SignatureRepository, layer: StoredLayer, where: str, keys: list[VerifyKey],
                     target: SigningTarget, predicate: str, failures: list[str]) -> VerifyKey | None:
    if SIGNATURE_ANNOTATION not in layer.annotations:
        failures.append(f"malformed: {where} has no {SIGNATURE_ANNOTATION} annotation")
        return None
    blob = _fetch(repo, layer, where, failures)
    if blob is None:
        return None
    try:
        env = parse_envelope(json.loads(blob), where)
    except ValueError as e:
        failures.append(f"malformed: {where}: not a DSSE envelope ({e})")
        return None
    key = _check_envelope(where, env, keys, target, {}, failures)
    if key is None:
        return None
    ptype = str(parse_statement(env.payload, where).get("predicateType", ""))
    if ptype != predicate:
        failures.append(f"other predicate: {where} is a {ptype} statement, not {predicate}")
        return None
    return key


# -- bundles -----------------------------------------------------------------------------------------------

def _parseable_bundles(repo: SignatureRepository, target: SigningTarget,
                       failures: list[str]) -> list[tuple[str, Any, str]]:
    out = []
    for ref in repo.bundles(target.digest):
        where = f"bundle {ref.manifest_digest} in {repo.where}"
        try:
            data = repo.read_blob(ref.layer_digest, ref.layer_size, where)
            b = parse_bundle(data, where)
        except DigestMismatchError as e:
            failures.append(f"tampered payload: {where}: {e}")
            continue
        except (ValueError, KitopsError) as e:
            failures.append(f"malformed: {where}: {e}")
            continue
        out.append((where, b, _statement_type(b.envelope)))
    return out


def _statement_type(env: Envelope) -> str:
    try:
        return str(parse_statement(env.payload, "statement").get("predicateType", ""))
    except ValueError:
        return ""


def _check_bundle(where: str, env: Envelope, keys: list[VerifyKey], target: SigningTarget,
                  annotations: Mapping[str, str], failures: list[str]) -> VerifyKey | None:
    if len(env.signatures) != 1:
        failures.append(f"malformed: {where} has {len(env.signatures)} DSSE signatures; exactly one is allowed")
        return None
    if env.signatures[0][1]:
        failures.append(f"wrong key: {where} names keyid {env.signatures[0][1]!r}, which is not the given key")
        return None
    return _check_envelope(where, env, keys, target, annotations, failures)


def _check_envelope(where: str, env: Envelope, keys: list[VerifyKey], target: SigningTarget,
                    annotations: Mapping[str, str], failures: list[str]) -> VerifyKey | None:
    if env.payload_type != PAYLOAD_TYPE:
        failures.append(f"malformed: {where}: payloadType is {env.payload_type!r}, not {PAYLOAD_TYPE}")
        return None
    key = _env_signer(keys, env)
    if key is None:
        failures.append(f"wrong key: {where}: the DSSE signature does not verify with {_key_names(keys)} "
                        "(signed with another key, or the statement was altered)")
        return None
    try:
        statement = parse_statement(env.payload, where)
    except ValueError as e:
        failures.append(f"malformed: {where}: the statement is not a valid in-toto statement ({e})")
        return None
    hexpart = target.digest.split(":", 1)[1]
    subjects = [s for s in statement["subject"] if (s.get("digest") or {}).get("sha256") == hexpart]
    if not subjects:
        named = [f"sha256:{(s.get('digest') or {}).get('sha256', '')}" for s in statement["subject"]]
        failures.append(f"payload for another digest: {where} is about {', '.join(named) or 'no subject'}, "
                        f"not {target.digest}")
        return None
    subject_ann = subjects[0].get("annotations") or {}
    return key if _annotations_match(annotations, subject_ann, where, failures) else None


def _annotations_match(wanted: Mapping[str, str], have: Mapping[str, Any], where: str, failures: list[str]) -> bool:
    for k, v in wanted.items():
        if str(have.get(k)) != v:
            failures.append(f"annotation mismatch: {where} has {k}={have.get(k)!r}, wanted {v!r}")
            return False
    return True


__all__ = ["Verification", "verify_attestation", "verify_modelkit"]
