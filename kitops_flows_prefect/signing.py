"""Signing keys from Prefect's secret stores, for ``sign=`` / ``verify_key=`` on the kitops tasks.

==============================  ====================================================================
``sign=True``                   the ``KitOpsRegistry`` block's ``signing_key`` and ``signing_key_password``
                                (``SecretStr`` fields)
``sign="<secret block>"``       a Prefect ``Secret`` block holding the private key PEM; its password from
                                ``sign_password="<secret block>"`` or the registry block's field
``verify_key=None``             the block's ``verify_key`` if set (public key PEM, path or ``env://VAR``)
``verify_key="…"``              that public key
==============================  ====================================================================

Task arguments only ever name where a secret is (a block name, ``True``); key bytes and passwords
are read inside the task and are never parameters, results, artifacts or log lines.
"""

from __future__ import annotations

from kitops_flows.errors import KitopsError
from kitops_flows.signing import SigningKey, load_private_key

from .blocks import KitOpsRegistry


def _secret(name: str, what: str) -> str:
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name).get()  # type: ignore[union-attr]
    except ValueError as e:
        raise KitopsError(f"{what}: no Prefect Secret block named {name!r} ({e})") from None
    return str(value)


def signing_key(block: KitOpsRegistry | None, sign: bool | str, sign_password: str | None = None) -> SigningKey | None:
    """The private key ``sign`` designates (see the module docstring), or None for no signing."""
    if not sign:
        return None
    block_password = block.signing_key_password.get_secret_value() if block and block.signing_key_password else None
    if sign is True:
        if block is None or block.signing_key is None:
            raise KitopsError("sign=True needs a KitOpsRegistry block with signing_key set, or sign='<Secret block>'")
        pem = block.signing_key.get_secret_value()
    else:
        pem = _secret(str(sign), f"sign={sign!r}")
    password = _secret(sign_password, f"sign_password={sign_password!r}") if sign_password else block_password
    return load_private_key(pem, password or "", what="signing key")


def verify_key(block: KitOpsRegistry | None, value: str | None) -> str | None:
    """The public key to verify with: the argument, else the block's ``verify_key``."""
    return value or (block.verify_key if block is not None else None) or None


__all__ = ["signing_key", "verify_key"]
