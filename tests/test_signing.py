"""Signing: cosign's key format, byte-exact payloads/manifests, and sign -> verify on the real registry.

Goldens come from shared/signing-spec.md §8 (cosign's own test key, RFC 6979 signatures). Signatures
written to the registry are checked twice: by ``kitops_flows.signing.verify`` and by the independent
verifier in ``tests/cosign_check.py`` (requests + pyca cryptography, following the spec's §7).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import requests
from cosign_check import cosign_verify, cosign_verify_attestation
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kitops_flows.api import KitOpsClient, LocalStore
from kitops_flows.cli import main
from kitops_flows.errors import KitopsError
from kitops_flows.lineage import graph as upstream_graph
from kitops_flows.lineage import history, promote
from kitops_flows.signing import (
    SignatureError,
    SigningKey,
    SigningKeyError,
    generate_key_pair,
    load_private_key,
    load_public_key,
    verify_attestation,
)
from kitops_flows.signing.dsse import SIGN_PREDICATE, bundle, pae, sign_statement
from kitops_flows.signing.keys import COSIGN_PEM_TYPE, encrypt_cosign, pem_wrap
from kitops_flows.signing.layout import (
    SIGNATURE_ANNOTATION,
    Layer,
    fallback_index,
    index_entry,
    layered_config,
    layered_manifest,
    referrer_manifest,
)
from kitops_flows.signing.payload import SIMPLE_SIGNING_MEDIA_TYPE, simple_signing_payload

D = 0x99E95DFE4495DC60D307D8D2193958EE2DA7EF976EAFE2D236B5B62E4421FBE1
SALT = base64.b64decode("7OuFwelmfY5uHwchiDRsmtjspgfef1F2Ne8aCN5KaZY=")
NONCE = base64.b64decode("P4y88hBovSkOLmstlUAhbpt2t+lS5LPH")
CIPHERTEXT = ("2puC7rfWI9hwnreCk8iFCFUpBTkK4I6R/lPErpCzJWPjIYyxxeH/P6UnvpRGuXekSMorLthKjghCRe7/645GAkhVmKD/vxAtKa/"
              "lMZlCRCqezBFPWuw3ixTmglaobudURmElncF8iYo0S1YzcVN1QpcbvsGMqIXG5engmxjyt+Aqyre1tCF4WMmSPehIc6PjwhuClGiZ"
              "IQdoLg==")
PUBLIC_PEM = (b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7z9gA/tqa9iHt/f9F3ulyVi4lwqU\n"
              b"LfHWfhG2mK4eyJ8LDcLstb+VVhxj3pkMjc3fNo+sSfiIY2NLR7c+DG1V4w==\n-----END PUBLIC KEY-----\n")
SUBJECT = "sha256:eeaf81a428042091a4d3b3b3d9823d073d54fb7f217470373c4db13e708a9ca8"
REPO = "localhost:5000/models/demo"
SIG_B64 = "MEYCIQCn4CHwsoGbdmYoiTetrdiA3fwSdzWOywjJ9dDQSvOjVwIhANFq/f+1YDGaZeX/scPtv1v8d63FUe42v32Qk2nvtRrR"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def fixed_key() -> SigningKey:
    return SigningKey(ec.derive_private_key(D, ec.SECP256R1()))


# -- keys ------------------------------------------------------------------------------------------------------

def test_cosign_key_vector_is_reproduced_byte_for_byte(fixed_key: SigningKey) -> None:
    envelope = encrypt_cosign(fixed_key.pkcs8_der(), b"hello", scrypt_n=32768, salt=SALT, nonce=NONCE)
    doc = json.loads(envelope)
    assert len(envelope) == 414 and doc["ciphertext"] == CIPHERTEXT
    assert list(doc) == ["kdf", "cipher", "ciphertext"] and doc["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    pem = pem_wrap(COSIGN_PEM_TYPE, envelope)
    assert all(len(line) <= 64 for line in pem.decode().splitlines()) and pem.endswith(b"-----\n")
    loaded = load_private_key(pem, "hello")
    assert loaded.public_key.to_pem() == PUBLIC_PEM
    assert loaded.public_key.hint == "8QV788EU1UhvC9s8cCWW1hVBWCSJgNS+SfbGH9xixZE="
    assert load_private_key(pem.replace(b"SIGSTORE", b"COSIGN"), "hello").public_key == loaded.public_key


def test_key_loading_refuses_what_cosign_refuses(fixed_key: SigningKey, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pem = fixed_key.to_cosign_pem("pw", scrypt_n=32768)
    with pytest.raises(SigningKeyError, match="wrong password"):
        load_private_key(pem, "nope")
    with pytest.raises(SigningKeyError, match="not one cosign accepts"):
        fixed_key.to_cosign_pem("pw", scrypt_n=16384)
    doc = json.loads(encrypt_cosign(fixed_key.pkcs8_der(), b"pw", scrypt_n=32768))
    doc["kdf"]["params"]["N"] = 16384
    with pytest.raises(SigningKeyError, match="scrypt parameters N=16384"):
        load_private_key(pem_wrap(COSIGN_PEM_TYPE, json.dumps(doc).encode()), "pw")
    sec1 = fixed_key.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption())
    with pytest.raises(SigningKeyError, match="not PKCS#8"):
        load_private_key(pem_wrap(COSIGN_PEM_TYPE, encrypt_cosign(sec1, b"pw", scrypt_n=32768)), "pw")
    with pytest.raises(SigningKeyError, match="EC PRIVATE KEY"):
        load_private_key(fixed_key.key.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.TraditionalOpenSSL,
                                                     serialization.NoEncryption()))
    with pytest.raises(SigningKeyError, match="is a private key"):
        load_public_key(pem)
    # PEM PKCS#8, plain and encrypted; env:// and files; COSIGN_PASSWORD when no password is passed
    assert load_private_key(fixed_key.to_pkcs8_pem()).public_key == fixed_key.public_key
    assert load_private_key(fixed_key.to_pkcs8_pem("pw"), "pw").public_key == fixed_key.public_key
    monkeypatch.setenv("SIGN_KEY", pem.decode())
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    assert load_private_key("env://SIGN_KEY").public_key == fixed_key.public_key
    (tmp_path / "k.pub").write_bytes(PUBLIC_PEM)
    assert load_public_key(tmp_path / "k.pub") == fixed_key.public_key
    with pytest.raises(SigningKeyError, match="MISSING is not set"):
        load_private_key("env://MISSING")
    with pytest.raises(SigningKeyError, match="does not exist.*generate-key-pair"):
        load_public_key(tmp_path / "nope.pub")
    # a key's repr names the public fingerprint only
    assert "PRIVATE" not in repr(fixed_key) and fixed_key.public_key.fingerprint in repr(fixed_key)


# -- byte-exact formats ---------------------------------------------------------------------------------------------

def test_payload_config_manifest_bundle_referrer_and_index_goldens(fixed_key: SigningKey) -> None:
    payload = simple_signing_payload(REPO, SUBJECT)
    assert (len(payload), _sha(payload)) == (242, "217b43e3ea10241fad2dd854912856a51ecd907ae7d9bfa945870ef5d69936be")
    signature = fixed_key.sign(payload, deterministic=True)
    assert base64.b64encode(signature).decode() == SIG_B64
    layer = Layer(SIMPLE_SIGNING_MEDIA_TYPE, payload, {SIGNATURE_ANNOTATION: SIG_B64})
    config = layered_config([layer.digest])
    assert (len(config), _sha(config)) == (233, "43948c1152b95d5b3694f0caba201db5e8a8f3177bfac375dcfb4519dcda0818")
    manifest = layered_manifest(config, [layer.descriptor()])
    assert (len(manifest), _sha(manifest)) == (558, "f5fbca7abe35732766ae74334be88fe803a188ce520d0095dff81e4bf68f5e75")
    statement = sign_statement(SUBJECT)
    assert len(statement) == 230
    assert pae("application/vnd.in-toto+json", statement).startswith(
        b'DSSEv1 28 application/vnd.in-toto+json 230 {"_type":')
    blob = bundle(statement, fixed_key, deterministic=True)
    assert (len(blob), _sha(blob)) == (659, "d8bf757b0f26fd4b0a6a95201171adaf8cd3637c86da02a2ab91044d27e5f9e1")
    subject = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1234, "digest": SUBJECT}
    ref = referrer_manifest(blob, subject, SIGN_PREDICATE, "2026-01-02T03:04:05Z")
    assert (len(ref), _sha(ref)) == (878, "51482df1ecfcb41b925cf65d138c3259853799b7011c12367a7d1ebbf705c359")
    index = fallback_index([index_entry(ref, "application/vnd.dev.sigstore.bundle.v0.3+json")])
    assert (len(index), _sha(index)) == (303, "5ed91a7c6d8161c8d6e400c2d880313a60e5a661aac3395039e4faa7cde78b1b")
    # randomized (cosign-style) signatures verify with an independent check
    fixed_key.public_key.key.verify(fixed_key.sign(payload), payload, ec.ECDSA(__import__(
        "cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()))


# -- registry round trips ----------------------------------------------------------------------------------------

KITFILE = "manifestVersion: 1.0.0\npackage: {name: demo}\nmodel: {name: m, path: model.bin}\n"


def _pushed(kit: KitOpsClient, tmp_path: Path, ref: str, content: str = "weights") -> str:
    ctx = tmp_path / f"ctx-{_sha(ref.encode() + content.encode())[:8]}"
    ctx.mkdir()
    (ctx / "Kitfile").write_text(KITFILE)
    (ctx / "model.bin").write_text(content)
    return kit.pack(ctx, reference=ref, push=True).digest


def _tags(ref: str) -> list[str]:
    out = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{ref}"], capture_output=True,
                         check=True, text=True).stdout
    return json.loads(out)["Tags"]


def _raw(registry: object, repo: str, ref: str) -> dict:
    r = requests.get(f"{registry.url}/v2/{repo}/manifests/{ref}",  # type: ignore[attr-defined]
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                               "application/vnd.oci.image.index.v1+json"}, timeout=10)
    r.raise_for_status()
    return r.json()


def test_sign_verify_round_trip_with_sig_and_att_tags(registry, kitops_home, tmp_path: Path,  # noqa: ANN001
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    key, pub = generate_key_pair(), None
    pub = key.public_key.to_pem()
    ref = f"{registry.host}/sign/tags:v1"
    digest = _pushed(kit, tmp_path, ref)
    result = kit.sign(ref, key, mode="auto")  # distribution 2.8 has no referrers API: legacy tags
    assert (result.mode, result.digest, result.added) == ("tag", digest, True)
    hexd = digest.split(":")[1]
    assert {f"sha256-{hexd}.sig", f"sha256-{hexd}.att", "v1"} <= set(_tags(f"{registry.host}/sign/tags"))
    sig = _raw(registry, "sign/tags", f"sha256-{hexd}.sig")
    assert [l["mediaType"] for l in sig["layers"]] == [SIMPLE_SIGNING_MEDIA_TYPE]
    assert set(sig["layers"][0]["annotations"]) == {SIGNATURE_ANNOTATION}
    att = _raw(registry, "sign/tags", f"sha256-{hexd}.att")["layers"][0]
    assert att["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert att["annotations"] == {SIGNATURE_ANNOTATION: "", "predicateType": "https://slsa.dev/provenance/v1"}
    # both verifiers accept it; the attestation carries the SLSA provenance predicate
    assert kit.verify_signature(ref, key.public_key).signed_by == key.public_key.fingerprint
    assert cosign_verify(registry.host, "sign/tags", digest, pub)
    statement = cosign_verify_attestation(registry.host, "sign/tags", digest, pub)
    assert statement and statement["_type"] == "https://in-toto.io/Statement/v0.1"
    assert statement["subject"] == [{"name": f"{registry.host}/sign/tags", "digest": {"sha256": hexd}}]
    assert statement["predicate"]["buildDefinition"]["buildType"]
    assert verify_attestation(kit, ref, key.public_key).mode == "tag"
    # signing again with the same key adds no layer; another key appends one, and both verify
    assert kit.sign(ref, key).added is False
    other = generate_key_pair()
    kit.sign(ref, other, attest=False)
    assert len(_raw(registry, "sign/tags", f"sha256-{hexd}.sig")["layers"]) == 2
    assert cosign_verify(registry.host, "sign/tags", digest, other.public_key.to_pem())
    assert kit.verify_signature(ref, other.public_key).signed_by == other.public_key.fingerprint
    # the lineage graph shows them on the node (present, not verified), discover beside the provenance
    node = next(n for n in upstream_graph(kit, ref, "up").nodes.values() if n.digest == digest)
    assert node.signatures == ("att", "sig")
    assert "cosign: att, sig" in upstream_graph(kit, ref, "up").to_mermaid()
    # discover lists them beside the provenance
    assert main(["discover", ref, "--plain-http"]) == 0
    tree = capsys.readouterr().out
    assert "provenance" in tree and f"sha256-{hexd}.sig" in tree and f"sha256-{hexd}.att" in tree


def test_sign_verify_round_trip_with_bundle_referrers_on_the_fallback_index(registry, kitops_home,  # noqa: ANN001
                                                                             tmp_path: Path) -> None:
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    key = generate_key_pair()
    ref = f"{registry.host}/sign/bundles:v1"
    digest = _pushed(kit, tmp_path, ref)
    # distribution 2.8 has no referrers API (404): bundles are listed in the sha256-<hex> index tag
    assert requests.get(f"{registry.url}/v2/sign/bundles/referrers/{digest}", timeout=5).status_code == 404
    result = kit.sign(ref, key, mode="referrers")
    assert result.mode == "referrers" and result.attestation
    index = _raw(registry, "sign/bundles", digest.replace(":", "-"))
    bundle_entries = [m for m in index["manifests"] if m.get("artifactType") ==
                      "application/vnd.dev.sigstore.bundle.v0.3+json"]
    assert len(bundle_entries) == 2
    digests = [m["digest"] for m in bundle_entries]
    assert digests == sorted(digests)
    referrer = _raw(registry, "sign/bundles", result.signature.split("@", 1)[1])
    assert referrer["subject"]["digest"] == digest
    assert referrer["annotations"]["dev.sigstore.bundle.predicateType"] == SIGN_PREDICATE
    pub = key.public_key.to_pem()
    assert cosign_verify(registry.host, "sign/bundles", digest, pub)
    assert cosign_verify_attestation(registry.host, "sign/bundles", digest, pub)
    assert kit.verify_signature(ref, pub, attestation=True).mode == "referrers"
    assert [n.signatures for n in upstream_graph(kit, ref, "up").nodes.values() if n.digest == digest] == [("bundle",)]
    assert not cosign_verify(registry.host, "sign/bundles", digest, generate_key_pair().public_key.to_pem())


def _fail_lines(kit: KitOpsClient, ref: str, pub: object) -> tuple[str, ...]:
    with pytest.raises(SignatureError) as info:
        kit.verify_signature(ref, pub)
    return info.value.failures


def test_unsigned_wrong_key_and_every_tampering_are_refused(registry, kitops_home, tmp_path: Path) -> None:  # noqa: ANN001
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    key = generate_key_pair()
    repo = "sign/tamper"
    ref, other_ref = f"{registry.host}/{repo}:v1", f"{registry.host}/{repo}:v2"
    digest = _pushed(kit, tmp_path, ref)
    other_digest = _pushed(kit, tmp_path, other_ref, "other weights")
    rc = kit.registry_client(registry.host)
    hexd = digest.split(":")[1]

    lines = _fail_lines(kit, ref, key.public_key)
    assert len(lines) == 1 and lines[0].startswith("unsigned: ") and f"sha256-{hexd}.sig" in lines[0]
    kit.sign(ref, key, attest=False)
    assert _fail_lines(kit, ref, generate_key_pair().public_key)[0].startswith("wrong key: layer 1 of ")

    sig_tag = f"sha256-{hexd}.sig"
    original = rc.get_manifest(repo, sig_tag).data
    good = json.loads(original)

    def put(doc: dict) -> None:
        rc.put_manifest(repo, sig_tag, json.dumps(doc).encode(), "application/vnd.oci.image.manifest.v1+json")

    # the signature annotation altered (one base64 character) -> does not verify
    bad = json.loads(original)
    s = bad["layers"][0]["annotations"][SIGNATURE_ANNOTATION]
    bad["layers"][0]["annotations"][SIGNATURE_ANNOTATION] = s[:10] + ("A" if s[10] != "A" else "B") + s[11:]
    put(bad)
    assert _fail_lines(kit, ref, key.public_key)[0].startswith("wrong key: ")
    assert not cosign_verify(registry.host, repo, digest, key.public_key.to_pem())
    # URL-safe base64 is refused (cosign decodes strictly)
    bad = json.loads(original)
    raw_sig = base64.b64decode(bad["layers"][0]["annotations"][SIGNATURE_ANNOTATION])
    bad["layers"][0]["annotations"][SIGNATURE_ANNOTATION] = base64.urlsafe_b64encode(raw_sig).decode().rstrip("=")
    put(bad)
    assert _fail_lines(kit, ref, key.public_key)[0].startswith("malformed: ")
    # the payload changed (one byte flipped), descriptor updated to match -> signature no longer covers it
    payload = bytearray(requests.get(f"{registry.url}/v2/{repo}/blobs/{good['layers'][0]['digest']}", timeout=5).content)
    payload[payload.index(b"cosign container")] ^= 0x01
    new_digest = "sha256:" + _sha(bytes(payload))
    rc.push_blob(repo, new_digest, len(payload), lambda: __import__("io").BytesIO(bytes(payload)))
    bad = json.loads(original)
    bad["layers"][0]["digest"] = new_digest
    put(bad)
    assert _fail_lines(kit, ref, key.public_key)[0].startswith("wrong key: ")
    # the payload blob's bytes altered in the registry's storage -> its digest no longer matches
    put(good)
    blob = registry.blob_path(good["layers"][0]["digest"])
    stored = blob.read_bytes()
    blob.write_bytes(stored.replace(b"critical", b"critic4l"))
    assert _fail_lines(kit, ref, key.public_key)[0].startswith("tampered payload: ")
    blob.write_bytes(stored)
    assert kit.verify_signature(ref, key.public_key).digest == digest
    # a valid signature of v1 copied onto v2's .sig tag: payload for another digest
    rc.put_manifest(repo, f"sha256-{other_digest.split(':')[1]}.sig", original,
                    "application/vnd.oci.image.manifest.v1+json")
    lines = _fail_lines(kit, other_ref, key.public_key)
    assert lines[0].startswith("payload for another digest: ") and digest in lines[0]
    assert not cosign_verify(registry.host, repo, other_digest, key.public_key.to_pem())
    # the manifest under the tag replaced (tag moved to other content): that digest is unsigned
    moved = rc.get_manifest(repo, "v2").data
    rc.put_manifest(repo, "v1", moved, "application/vnd.oci.image.manifest.v1+json")
    assert _fail_lines(kit, ref, key.public_key)[0].startswith("payload for another digest: ")
    third = _pushed(kit, tmp_path, f"{registry.host}/{repo}:v3", "third")
    rc.put_manifest(repo, "v1", rc.get_manifest(repo, third).data, "application/vnd.oci.image.manifest.v1+json")
    assert _fail_lines(kit, ref, key.public_key)[0].startswith("unsigned: ")
    # pinned by digest, the original still verifies
    assert kit.verify_signature(f"{registry.host}/{repo}@{digest}", key.public_key).digest == digest


def test_verify_before_use_refuses_before_a_byte_is_extracted(registry, kitops_home, tmp_path: Path) -> None:  # noqa: ANN001
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    key = generate_key_pair()
    signed, unsigned = f"{registry.host}/sign/use:signed", f"{registry.host}/sign/use:unsigned"
    _pushed(kit, tmp_path, signed)
    kit.sign(signed, key)
    _pushed(kit, tmp_path, unsigned, "unsigned weights")
    pub_file = tmp_path / "cosign.pub"
    pub_file.write_bytes(key.public_key.to_pem())
    def use(n: int, fresh: KitOpsClient, dest: Path, r: str) -> object:
        if n == 0:
            return fresh.pull(r, verify_key=pub_file)
        if n == 1:
            return fresh.pull_layer(r, ["model"], dest, verify_key=str(pub_file))
        return fresh.unpack(r, dest, verify_key=key.public_key)

    for n in range(3):
        fresh = KitOpsClient(store=LocalStore(tmp_path / f"fresh-{n}"), plain_http=True)
        dest = tmp_path / f"dest-{n}"
        call = functools.partial(use, n, fresh, dest)
        with pytest.raises(SignatureError, match="unsigned: "):
            call(unsigned)
        assert not dest.exists()
        blobs = fresh.store.storage / "blobs" / "sha256"
        assert not blobs.exists() or not list(blobs.iterdir())  # not even the manifest or config was fetched
        call(signed)
    assert (tmp_path / "dest-2" / "model.bin").read_text() == "weights"
    # a local-only reference cannot be verified (signatures live in a registry)
    with pytest.raises(KitopsError, match="names no registry"):
        kit.unpack("team/local:v1", tmp_path / "x", verify_key=key.public_key)


def test_promote_requires_signature_and_history_records_the_signer(registry, kitops_home,  # noqa: ANN001
                                                                   tmp_path: Path, capsys) -> None:  # noqa: ANN001
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    key = generate_key_pair()
    ref = f"{registry.host}/sign/promote:v1"
    _pushed(kit, tmp_path, ref)
    with pytest.raises(SignatureError, match="unsigned: "):
        promote(kit, ref, "production", require_signature=key.public_key)
    assert history(kit, f"{registry.host}/sign/promote") == []
    kit.sign(ref, key)
    event = promote(kit, ref, "production", require_signature=key.public_key)
    assert event.signed_by == key.public_key.fingerprint
    assert [e.signed_by for e in history(kit, f"{registry.host}/sign/promote")] == [key.public_key.fingerprint]
    assert main(["history", f"{registry.host}/sign/promote", "--plain-http"]) == 0
    assert key.public_key.fingerprint in capsys.readouterr().out


def test_cli_generate_sign_verify(registry, kitops_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
                                  capsys: pytest.CaptureFixture[str]) -> None:
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    ref = f"{registry.host}/sign/cli:v1"
    digest = _pushed(kit, tmp_path, ref)
    monkeypatch.setenv("COSIGN_PASSWORD", "correct horse")
    prefix = tmp_path / "release"
    assert main(["generate-key-pair", "--output-key-prefix", str(prefix)]) == 0
    out = capsys.readouterr()
    assert (prefix.with_suffix(".key").stat().st_mode & 0o777) == 0o600
    assert b"ENCRYPTED SIGSTORE PRIVATE KEY" in prefix.with_suffix(".key").read_bytes()
    assert main(["generate-key-pair", "--output-key-prefix", str(prefix)]) == 1  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err
    assert "correct horse" not in out.out + out.err
    assert main(["sign", ref, "--key", f"{prefix}.key", "--plain-http"]) == 0
    signed = json.loads(capsys.readouterr().out)
    assert signed["digest"] == digest and signed["mode"] == "tag"
    assert main(["verify", ref, "--key", f"{prefix}.pub", "--attestation", "--plain-http"]) == 0
    assert json.loads(capsys.readouterr().out)["signed_by"] == signed["signed_by"]
    assert cosign_verify(registry.host, "sign/cli", digest, prefix.with_suffix(".pub").read_bytes())
    other = tmp_path / "other.pub"
    other.write_bytes(generate_key_pair().public_key.to_pem())
    assert main(["verify", ref, "--key", str(other), "--plain-http"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("wrong key: ") and "verification failed" in captured.err
    monkeypatch.setenv("COSIGN_PASSWORD", "wrong")
    assert main(["sign", ref, "--key", f"{prefix}.key", "--plain-http"]) == 1
    assert "wrong password" in capsys.readouterr().err
    assert main(["verify"]) == 0  # no reference: the local store check, as before
    assert "checked" in capsys.readouterr().err
