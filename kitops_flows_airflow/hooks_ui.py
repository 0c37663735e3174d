"""The ``kitops`` connection form (plain data: the provider info lists it without importing the hook)."""

from __future__ import annotations

from typing import Any


def ui_field_behaviour() -> dict[str, Any]:
    """Connection form: hidden/relabelled fields and placeholders (also listed in the provider info)."""
    return {
        "hidden-fields": ["schema"],
        "relabeling": {"host": "Registry", "login": "Username", "password": "Password or token"},
        "placeholders": {
            "host": "reg.example.com or http://127.0.0.1:5000 (http:// means plain HTTP)",
            "port": "optional, e.g. 5000",
            "login": "leave empty for anonymous pulls",
            "password": "password or access token",
            "extra": '{"repository": "team/churn", "kitops_home": "/data/kitops", "immutable_tags": true, '
                     '"plain_http": false, "tls_verify": true}',
        },
    }


def conn_fields() -> dict[str, Any]:
    """The ``conn-fields`` of the provider info: typed extra fields in Airflow 3's connection form."""
    return {
        "repository": {"label": "Default repository", "description": "e.g. team/churn",
                       "schema": {"type": ["string", "null"]}},
        "kitops_home": {"label": "Local store (KITOPS_HOME)",
                        "description": "where ModelKits are cached on workers; kit's default if empty",
                        "schema": {"type": ["string", "null"]}},
        "plain_http": {"label": "Plain HTTP", "schema": {"type": ["boolean", "null"], "default": False}},
        "tls_verify": {"label": "Verify TLS", "schema": {"type": ["boolean", "null"], "default": True}},
        "immutable_tags": {"label": "Immutable tags",
                           "description": "refuse to move an existing tag to another digest",
                           "schema": {"type": ["boolean", "null"], "default": False}},
        "signing_key": {"label": "Signing key (sign=True)", "sensitive": True,
                        "description": "cosign.key or PEM PKCS#8 private key, env://VAR or a path",
                        "schema": {"type": ["string", "null"]}},
        "signing_key_password": {"label": "Signing key password", "sensitive": True,
                                 "schema": {"type": ["string", "null"]}},
        "verify_key": {"label": "Verify key (cosign.pub)",
                       "description": "pulls, unpacks, sensors and promotions refuse ModelKits not signed by it",
                       "schema": {"type": ["string", "null"]}},
    }


__all__ = ["conn_fields", "ui_field_behaviour"]
