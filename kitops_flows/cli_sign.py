"""``generate-key-pair``, ``sign`` and ``verify`` for the ``kitops-flows`` command line.

    kitops-flows generate-key-pair                          # cosign.key (encrypted) + cosign.pub
    COSIGN_PASSWORD=… kitops-flows sign reg.example.com/team/churn:v3 --key cosign.key
    kitops-flows verify reg.example.com/team/churn:v3 --key cosign.pub [--attestation]
    kitops-flows verify                                     # no reference: check the local store

Passwords come from ``$COSIGN_PASSWORD`` (as with cosign) or a prompt; keys from a file or
``env://NAME``. Neither is ever printed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from .errors import KitopsError

AddCommand = Callable[..., argparse.ArgumentParser]


def _password(confirm: bool) -> str:
    if "COSIGN_PASSWORD" in os.environ:
        return os.environ["COSIGN_PASSWORD"]
    if not sys.stdin.isatty():
        raise KitopsError("the key password is needed: set COSIGN_PASSWORD (it may be empty) or run in a terminal")
    first = getpass.getpass("Enter password for private key: ")
    if confirm and getpass.getpass("Enter password for private key again: ") != first:
        raise KitopsError("the passwords do not match")
    return first


def cmd_generate_key_pair(args: argparse.Namespace, kit: Any) -> int:
    from .signing import generate_key_pair, write_key_pair

    key = generate_key_pair()
    key_path, pub_path = write_key_pair(key, _password(confirm=True), args.output_key_prefix, force=args.force)
    print(f"Private key written to {key_path}", file=sys.stderr)
    print(f"Public key written to {pub_path}", file=sys.stderr)
    print(key.public_key.fingerprint)
    return 0


def cmd_sign(args: argparse.Namespace, kit: Any) -> int:
    from .signing import load_private_key

    password = os.environ.get("COSIGN_PASSWORD")
    try:
        key = load_private_key(args.key, password if password is not None else "")
    except KitopsError:
        if password is not None or not sys.stdin.isatty():
            raise
        key = load_private_key(args.key, _password(confirm=False))
    result = kit.sign(args.reference, key, mode=args.mode, attest=not args.no_attest)
    print(f"Signed {result.reference} with {result.signed_by} ({result.signature})", file=sys.stderr)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def make_verify(local_verify: Callable[[argparse.Namespace, Any], int]) -> Callable[[argparse.Namespace, Any], int]:
    """``verify``: a reference checks its signature in the registry; none keeps the local-store check."""
    def cmd_verify(args: argparse.Namespace, kit: Any) -> int:
        if args.reference is None:
            return local_verify(args, kit)
        if not args.key:
            raise KitopsError("verify REFERENCE needs --key cosign.pub (the public key to trust)")
        from .signing import SignatureError

        try:
            result = kit.verify_signature(args.reference, args.key, attestation=args.attestation)
        except SignatureError as e:
            for line in e.failures:
                print(line)
            print(f"Error: {args.reference}: verification failed", file=sys.stderr)
            return 1
        print(f"Verified {result.reference}: signed by {result.signed_by} ({result.mode})", file=sys.stderr)
        print(json.dumps(result.to_dict(), indent=2))
        return 0

    return cmd_verify


def register(add: AddCommand, network_flags: Callable[[argparse.ArgumentParser], None],
             local_verify: Callable[[argparse.Namespace, Any], int]) -> None:
    """Add the signing commands with ``cli.build_parser``'s ``add`` helper."""
    p = add("generate-key-pair", cmd_generate_key_pair,
            "Create a cosign-compatible ECDSA P-256 key pair (cosign.key encrypted with COSIGN_PASSWORD, cosign.pub)",
            "COSIGN_PASSWORD=… kitops-flows generate-key-pair --output-key-prefix release")
    p.add_argument("--output-key-prefix", default="cosign", help="write PREFIX.key and PREFIX.pub (default cosign)")
    p.add_argument("--force", action="store_true", help="overwrite existing key files")

    p = add("sign", cmd_sign, "Sign a pushed ModelKit (and attest its provenance), as cosign does",
            "COSIGN_PASSWORD=… kitops-flows sign reg.example.com/team/churn:v3 --key cosign.key")
    p.add_argument("reference")
    p.add_argument("--key", required=True, help="private key: a file (cosign.key or PEM PKCS#8) or env://VAR")
    p.add_argument("--mode", choices=("auto", "tag", "referrers"), default="auto",
                   help="where to store it: sha256-<hex>.sig tags, OCI 1.1 referrers, or auto (referrers "
                        "where the registry has the API)")
    p.add_argument("--no-attest", action="store_true", help="do not attest the provenance statement")
    network_flags(p)

    p = add("verify", make_verify(local_verify),
            "Verify a ModelKit's signature in its registry (--key), or with no reference re-hash the local store",
            "kitops-flows verify reg.example.com/team/churn:v3 --key cosign.pub")
    p.add_argument("reference", nargs="?")
    p.add_argument("--key", help="public key to trust (cosign.pub, PEM, or env://VAR)")
    p.add_argument("--attestation", action="store_true", help="also require a verified provenance attestation")
    network_flags(p)


__all__ = ["register"]
