"""Errors of the signing package: one base per kind of failure, each with one clear line."""

from __future__ import annotations

from ..errors import KitopsError


class SigningKeyError(KitopsError):
    """A key or its password cannot be read: wrong format, wrong password, missing file or variable."""


class SignatureError(KitopsError):
    """A ModelKit's signature (or attestation) is missing or does not verify.

    ``failures`` holds one line per rejected signature (``unsigned: …``, ``wrong key: …``,
    ``payload for another digest: …``, ``tampered payload: …``); ``str()`` joins them.
    """

    def __init__(self, message: str, failures: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.failures = failures


__all__ = ["SignatureError", "SigningKeyError"]
