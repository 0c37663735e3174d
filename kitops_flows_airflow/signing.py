"""Signing keys from Airflow's secret stores, for ``sign=`` / ``verify_key=`` on operators and the sensor.

Where the keys come from (the connection is the operator's ``kitops_conn_id``):

==========================  =====================================================================
``sign=True``               connection extra ``signing_key`` (PEM text, ``env://VAR`` or a file path)
                            and ``signing_key_password``
``sign="<variable>"``       Airflow Variable ``<variable>`` holds the private key PEM, and
                            ``<variable>_password`` its password (else ``signing_key_password``)
``verify_key=None``         connection extra ``verify_key`` if set (public key PEM, path or ``env://``)
``verify_key="…"``          that public key (PEM, path or ``env://VAR``; templated)
==========================  =====================================================================

The private key and its password are registered with the secrets masker before use and never
returned to XCom or put in a templated field; only the public key's fingerprint is reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kitops_flows.errors import KitopsError
from kitops_flows.signing import SigningKey, load_private_key

if TYPE_CHECKING:
    from .hooks import KitOpsHook

SIGNING_EXTRAS = ("signing_key", "signing_key_password", "verify_key")


def _extra(hook: KitOpsHook, name: str) -> str | None:
    if hook.kitops_conn_id is None:
        return None
    extra = hook.get_connection(hook.kitops_conn_id).extra_dejson or {}
    value = extra.get(name, extra.get(f"extra__kitops__{name}"))
    return str(value) if value not in (None, "") else None


def _mask(*values: str | None) -> None:
    from airflow.sdk.log import mask_secret

    for value in values:
        if value:
            mask_secret(value)
            for line in value.splitlines():  # PEM bodies are logged line by line if ever printed
                if len(line) > 8:
                    mask_secret(line)


def signing_key(hook: KitOpsHook, sign: bool | str | None) -> SigningKey | None:
    """The private key ``sign`` designates (see the module docstring), or None for no signing."""
    if not sign:
        return None
    if sign is True:
        pem, password = _extra(hook, "signing_key"), _extra(hook, "signing_key_password")
        if pem is None:
            raise KitopsError(f"sign=True but connection {hook.kitops_conn_id!r} has no extra 'signing_key'; "
                              "set it (PEM, env://VAR or a path) or pass sign='<Airflow Variable name>'")
    else:
        from airflow.sdk import Variable

        pem = Variable.get(str(sign), default=None)
        if pem is None:
            raise KitopsError(f"sign={sign!r}: there is no Airflow Variable {sign!r} holding a private key")
        password = Variable.get(f"{sign}_password", default=None) or _extra(hook, "signing_key_password")
    _mask(pem, password)
    return load_private_key(pem, password or "", what=f"signing key of {hook.kitops_conn_id or 'the task'}")


def verify_key(hook: KitOpsHook, value: str | None) -> str | None:
    """The public key to verify with: the argument, else the connection's ``verify_key`` extra."""
    return value if value not in (None, "", "None") else _extra(hook, "verify_key")


def check_signature(hook: KitOpsHook, client: Any, reference: str, value: str | None) -> str | None:
    """Verify ``reference`` if a key applies; return the signer's fingerprint (None when no key is set)."""
    key = verify_key(hook, value)
    if key is None:
        return None
    return client.verify_signature(reference, key).signed_by


__all__ = ["SIGNING_EXTRAS", "check_signature", "signing_key", "verify_key"]
