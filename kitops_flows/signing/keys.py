"""ECDSA P-256 key pairs in the formats cosign reads and writes.

Private keys: cosign's ``ENCRYPTED SIGSTORE PRIVATE KEY`` (scrypt + NaCl secretbox around PKCS#8 DER;
the legacy ``ENCRYPTED COSIGN PRIVATE KEY`` type is read too) and plain PEM PKCS#8, optionally
password-encrypted. Public keys: PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo).

>>> key = generate_key_pair()
>>> pem = key.to_cosign_pem(b"s3cret", scrypt_n=32768)
>>> load_private_key(pem, b"s3cret").public_key == key.public_key
True
>>> load_public_key(key.public_key.to_pem()).fingerprint == key.public_key.fingerprint
True

Where key material comes from (``read_key_material``): PEM text or bytes as given, ``env://NAME``
(cosign's own syntax) for an environment variable, anything else is a file path. Orchestrator
plugins resolve their secret stores to PEM text and pass it in; nothing here logs key bytes or
passwords, and the key types' ``repr`` shows only the public fingerprint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..gojson import Struct, marshal
from .errors import SigningKeyError

COSIGN_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
LEGACY_COSIGN_PEM_TYPE = "ENCRYPTED COSIGN PRIVATE KEY"
KDF_NAME = "scrypt"
CIPHER_NAME = "nacl/secretbox"
SCRYPT_N = 65536  # cosign's default for new keys
ALLOWED_SCRYPT = {(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)}  # go-securesystemslib CheckParams
SCRYPT_MAXMEM = 256 << 20  # OpenSSL's default limit (32 MiB) is below N=65536, r=8
PASSWORD_ENV = "COSIGN_PASSWORD"
ENV_SCHEME = "env://"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pem_wrap(pem_type: str, der: bytes) -> bytes:
    """PEM with 64-character lines and a final newline, as Go's ``pem.EncodeToMemory`` writes it."""
    body = _b64(der)
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("\n".join([f"-----BEGIN {pem_type}-----", *lines, f"-----END {pem_type}-----"]) + "\n").encode()


def pem_unwrap(data: bytes, what: str) -> tuple[str, bytes]:
    """(type, DER) of the first PEM block in ``data``."""
    text = data.decode("ascii", errors="replace")
    start = text.find("-----BEGIN ")
    if start < 0:
        raise SigningKeyError(f"{what} is not PEM (no '-----BEGIN' line); give a cosign.key/cosign.pub or a PEM file")
    header_end = text.find("-----", start + 11)
    pem_type = text[start + 11:header_end]
    end = text.find(f"-----END {pem_type}-----", header_end)
    if header_end < 0 or end < 0:
        raise SigningKeyError(f"{what}: the PEM block {pem_type!r} has no END line")
    body = "".join(text[header_end + 5:end].split())
    try:
        return pem_type, base64.b64decode(body, validate=True)
    except ValueError:
        raise SigningKeyError(f"{what}: the PEM block {pem_type!r} is not valid base64") from None


@dataclass(frozen=True, eq=False)
class VerifyKey:
    """An ECDSA P-256 public key. ``fingerprint`` (``sha256:<hex of SPKI DER>``) names it in records.

    ``hint`` is cosign's bundle ``publicKey.hint``: base64(SHA-256(SPKI DER)).
    """

    key: ec.EllipticCurvePublicKey = field(repr=False)

    @property
    def der(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hashlib.sha256(self.der).hexdigest()

    @property
    def hint(self) -> str:
        return _b64(hashlib.sha256(self.der).digest())

    def to_pem(self) -> bytes:
        return pem_wrap("PUBLIC KEY", self.der)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True if ``signature`` (ASN.1 DER, or raw 64-byte r‖s as cosign also accepts) signs ``data``."""
        candidates = [signature]
        if len(signature) == 64:
            candidates.append(encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                                   int.from_bytes(signature[32:], "big")))
        for sig in candidates:
            try:
                self.key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
                return True
            except (InvalidSignature, ValueError):
                continue
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)

    def __repr__(self) -> str:
        return f"VerifyKey({self.fingerprint})"


@dataclass(frozen=True, eq=False)
class SigningKey:
    """An ECDSA P-256 private key. Its ``repr`` names only the public fingerprint, never key bytes."""

    key: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def public_key(self) -> VerifyKey:
        return VerifyKey(self.key.public_key())

    def sign(self, data: bytes, *, deterministic: bool = False) -> bytes:
        """ASN.1 DER ECDSA-P256-SHA256 signature; ``deterministic`` uses RFC 6979 (stable test goldens)."""
        algo = ec.ECDSA(hashes.SHA256(), deterministic_signing=True) if deterministic else ec.ECDSA(hashes.SHA256())
        return self.key.sign(data, algo)

    def pkcs8_der(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def to_cosign_pem(self, password: bytes | str, *, scrypt_n: int = SCRYPT_N) -> bytes:
        """cosign's ``ENCRYPTED SIGSTORE PRIVATE KEY`` (what ``cosign generate-key-pair`` writes)."""
        return pem_wrap(COSIGN_PEM_TYPE, encrypt_cosign(self.pkcs8_der(), _pw(password), scrypt_n=scrypt_n))

    def to_pkcs8_pem(self, password: bytes | str | None = None) -> bytes:
        """PEM PKCS#8 (``PRIVATE KEY``, or ``ENCRYPTED PRIVATE KEY`` with a password)."""
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(_pw(password)) if password else serialization.NoEncryption())
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)

    def __repr__(self) -> str:
        return f"SigningKey(public {self.public_key.fingerprint})"


def generate_key_pair() -> SigningKey:
    """A new ECDSA P-256 key (cosign's default curve)."""
    return SigningKey(ec.generate_private_key(ec.SECP256R1()))


def _pw(password: bytes | str) -> bytes:
    return password.encode() if isinstance(password, str) else bytes(password)


# -- cosign's encrypted envelope (go-securesystemslib encrypted/encrypted.go) ------------------------------

def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM, dklen=32)


def encrypt_cosign(plaintext: bytes, password: bytes, *, scrypt_n: int = SCRYPT_N,
                   salt: bytes | None = None, nonce: bytes | None = None) -> bytes:
    """The JSON envelope cosign puts in the PEM body. ``salt``/``nonce`` are for test vectors only."""
    from nacl.secret import SecretBox

    if (scrypt_n, 8, 1) not in ALLOWED_SCRYPT:
        raise SigningKeyError(f"scrypt N={scrypt_n} is not one cosign accepts (32768, 65536 or 131072)")
    salt = salt if salt is not None else secrets.token_bytes(32)
    nonce = nonce if nonce is not None else secrets.token_bytes(24)
    box = SecretBox(_scrypt(password, salt, scrypt_n, 8, 1))
    sealed = box.encrypt(plaintext, nonce).ciphertext
    doc = Struct([
        ("kdf", Struct([("name", KDF_NAME), ("params", Struct([("N", scrypt_n), ("r", 8), ("p", 1)])),
                        ("salt", _b64(salt))])),
        ("cipher", Struct([("name", CIPHER_NAME), ("nonce", _b64(nonce))])),
        ("ciphertext", _b64(sealed)),
    ])
    return marshal(doc)


def decrypt_cosign(envelope: bytes, password: bytes, what: str) -> bytes:
    """PKCS#8 DER from cosign's envelope; SigningKeyError on wrong password, unknown KDF/cipher or bad params."""
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        doc = json.loads(envelope)
        kdf, cipher = doc["kdf"], doc["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        sealed = base64.b64decode(doc["ciphertext"], validate=True)
    except (ValueError, KeyError, TypeError) as e:
        raise SigningKeyError(f"{what} is not a cosign encrypted key ({type(e).__name__}: {e})") from None
    if kdf.get("name") != KDF_NAME or cipher.get("name") != CIPHER_NAME:
        raise SigningKeyError(f"{what}: unsupported KDF/cipher {kdf.get('name')!r}/{cipher.get('name')!r} "
                        f"(cosign keys use {KDF_NAME}/{CIPHER_NAME})")
    if (n, r, p) not in ALLOWED_SCRYPT:
        raise SigningKeyError(f"{what}: scrypt parameters N={n} r={r} p={p} are not one of cosign's three sets")
    if len(nonce) != 24:
        raise SigningKeyError(f"{what}: the secretbox nonce is {len(nonce)} bytes, not 24")
    try:
        return SecretBox(_scrypt(password, salt, n, r, p)).decrypt(sealed, nonce)
    except CryptoError:
        raise SigningKeyError(f"{what}: wrong password (decryption failed); set {PASSWORD_ENV} or pass the "
                        "password the key was created with") from None


# -- loading ------------------------------------------------------------------------------------------------

def read_key_material(source: str | bytes | Path, what: str = "key") -> bytes:
    """PEM bytes from PEM text/bytes, ``env://NAME`` or a file path (see the module docstring)."""
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and "-----BEGIN " in source:
        return source.encode()
    if isinstance(source, str) and source.startswith(ENV_SCHEME):
        name = source[len(ENV_SCHEME):]
        value = os.environ.get(name)
        if not value:
            raise SigningKeyError(f"{what}: environment variable {name} is not set or empty")
        return value.encode()
    path = Path(source).expanduser()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"{what} file {path} does not exist; create a pair with `kitops-flows generate-key-pair`"
                        ) from None
    except OSError as e:
        raise SigningKeyError(f"{what} file {path} cannot be read: {e.strerror}") from None


def _p256_private(key: object, what: str) -> SigningKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError(f"{what} is not an ECDSA P-256 private key (the only kind cosign generates)")
    return SigningKey(key)


def load_private_key(source: str | bytes | Path, password: bytes | str | None = None, *,
                     what: str = "private key") -> SigningKey:
    """A signing key from cosign's encrypted format or PEM PKCS#8 (plain or encrypted).

    ``password`` None reads ``$COSIGN_PASSWORD`` (as cosign does) when the key is encrypted.
    """
    data = read_key_material(source, what)
    pem_type, der = pem_unwrap(data, what)
    pw = _pw(password) if password is not None else os.environ.get(PASSWORD_ENV, "").encode()
    if pem_type in (COSIGN_PEM_TYPE, LEGACY_COSIGN_PEM_TYPE):
        plain = decrypt_cosign(der, pw, what)
        try:
            key = serialization.load_der_private_key(plain, password=None)
        except ValueError:
            raise SigningKeyError(f"{what}: the decrypted key is not PKCS#8 DER (cosign rejects SEC1 keys too)") from None
        if not _is_pkcs8(plain):
            raise SigningKeyError(f"{what}: the decrypted key is not PKCS#8 DER (cosign rejects SEC1 keys too)")
        return _p256_private(key, what)
    if pem_type in ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"):
        try:
            key = serialization.load_der_private_key(der, password=pw if pem_type.startswith("ENCRYPTED") else None)
        except (ValueError, TypeError) as e:
            hint = " (wrong password?)" if pem_type.startswith("ENCRYPTED") else ""
            raise SigningKeyError(f"{what}: cannot read the PKCS#8 key{hint}: {e}") from None
        return _p256_private(key, what)
    raise SigningKeyError(f"{what}: PEM type {pem_type!r} is not supported; use a cosign key "
                    f"({COSIGN_PEM_TYPE}) or PKCS#8 (PRIVATE KEY / ENCRYPTED PRIVATE KEY)")


def _is_pkcs8(der: bytes) -> bool:
    """PKCS#8 is SEQUENCE { INTEGER 0, AlgorithmIdentifier SEQUENCE, … }; SEC1 starts with INTEGER 1."""
    if len(der) < 8 or der[0] != 0x30:
        return False
    offset = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    return der[offset:offset + 4] == b"\x02\x01\x00\x30"


def load_public_key(source: str | bytes | Path, *, what: str = "public key") -> VerifyKey:
    """A verification key from PEM ``PUBLIC KEY`` (cosign.pub); a private key file gives its public half."""
    data = read_key_material(source, what)
    pem_type, der = pem_unwrap(data, what)
    if pem_type != "PUBLIC KEY":
        if "PRIVATE KEY" in pem_type:
            raise SigningKeyError(f"{what} is a private key ({pem_type}); verify with the public key (cosign.pub)")
        raise SigningKeyError(f"{what}: PEM type {pem_type!r} is not supported; give a PEM 'PUBLIC KEY' (cosign.pub)")
    try:
        key = serialization.load_der_public_key(der)
    except ValueError as e:
        raise SigningKeyError(f"{what}: not a valid SubjectPublicKeyInfo ({e})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError(f"{what} is not an ECDSA P-256 key; only cosign's default key type is supported")
    return VerifyKey(key)


def write_key_pair(key: SigningKey, password: bytes | str, prefix: Path | str = "cosign", *,
                   force: bool = False) -> tuple[Path, Path]:
    """Write ``<prefix>.key`` (0600, cosign format) and ``<prefix>.pub`` (0644); refuse to overwrite."""
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for p in (key_path, pub_path):
        if p.exists() and not force:
            raise SigningKeyError(f"{p} already exists; remove it or pass --force to overwrite it")
    pem = key.to_cosign_pem(password)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(key_path, 0o600)
    pub_path.write_bytes(key.public_key.to_pem())
    os.chmod(pub_path, 0o644)
    return key_path, pub_path


__all__ = [
    "COSIGN_PEM_TYPE", "SigningKey", "VerifyKey", "decrypt_cosign", "encrypt_cosign", "generate_key_pair",
    "load_private_key", "load_public_key", "pem_unwrap", "pem_wrap", "read_key_material", "write_key_pair",
]
