"""Sign-off: cosign-compatible signatures and provenance attestations for ModelKits, verified before use.

    from kitops_flows.signing import generate_key_pair, load_private_key, load_public_key
    key = load_private_key("cosign.key", password)          # cosign's format or PEM PKCS#8
    kit.sign("127.0.0.1:5000/team/churn:v3", key)           # .sig (+ .att with the provenance)
    kit.verify_signature("127.0.0.1:5000/team/churn:v3", load_public_key("cosign.pub"))
    kit.unpack(ref, "/srv", verify_key="cosign.pub")        # refused unless signed by that key

Modules: ``keys`` (key formats and sources), ``payload`` (simple signing), ``dsse`` (envelopes,
statements, bundles), ``layout`` (manifest/index bytes), ``placement`` (registry storage: tags or
referrers), ``sign``, ``verify``, ``policy`` (verify before use). The format rules are those of
``cosign`` v3 (see docs/signing.md).
"""

from .errors import SignatureError, SigningKeyError
from .keys import SigningKey, VerifyKey, generate_key_pair, load_private_key, load_public_key, write_key_pair
from .policy import KeySpec, SignaturePolicy, verified_reference
from .sign import SignResult, sign_modelkit
from .verify import Verification, verify_attestation, verify_modelkit

__all__ = [
    "KeySpec", "SignResult", "SignatureError", "SignaturePolicy", "SigningKey", "SigningKeyError", "Verification",
    "VerifyKey", "generate_key_pair", "load_private_key", "load_public_key", "sign_modelkit", "verified_reference",
    "verify_attestation", "verify_modelkit", "write_key_pair",
]
