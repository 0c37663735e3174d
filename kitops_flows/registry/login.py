"""``login`` / ``logout``: check credentials with the registry, then keep them in kit's credentials.json.

Unlike ``docker login``-less tools that save whatever they are given, nothing is written until the
registry (or its token service) accepted the credentials::

    login("ghcr.io", "me", token, kitops_home=home)     # raises AuthenticationError if refused
    logout("ghcr.io", kitops_home=home)
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import AuthenticationError
from .client import RegistryClient
from .credentials import RegistryCredentials, remove_credentials, store_credentials
from .retry import RetryPolicy

LOG = logging.getLogger("kitops_flows.registry")


def login(
    registry: str,
    username: str,
    password: str,
    *,
    kitops_home: Path | str,
    plain_http: bool = False,
    tls_verify: bool = True,
    ca_cert: str | Path | None = None,
) -> Path:
    """Verify ``username``/``password`` against ``registry`` (``GET /v2/`` + auth dance), then save them.

    Returns the credentials file written. The registry must ask for credentials and accept these:
    a registry that lets anyone in cannot vouch for them, so that is reported (and still saved,
    as ``docker login`` does) with a warning.
    """
    if not username or not password:
        raise AuthenticationError(f"login to {registry} needs both a username and a password")
    creds = RegistryCredentials(username, password)
    with RegistryClient(registry, credentials=creds, plain_http=plain_http, tls_verify=tls_verify,
                        ca_cert=ca_cert, retry=RetryPolicy(max_attempts=3, max_elapsed=30)) as client:
        client.ping()
        if client.auth.scheme is None:
            LOG.warning("registry %s allows anonymous access, so it did not check these credentials", registry)
        elif client.auth.scheme == "bearer":
            # GET /v2/ may accept any token; make sure the token service took the password itself
            client.auth.forget_tokens()
            client.auth.authorization(())
    return store_credentials(registry, creds, kitops_home=kitops_home)


def logout(registry: str, *, kitops_home: Path | str) -> bool:
    """Forget ``registry``'s credentials in ``$KITOPS_HOME/credentials.json``; False if there were none."""
    removed = remove_credentials(registry, kitops_home=kitops_home)
    if not removed:
        LOG.warning("not logged in to %s (nothing in %s)", registry, Path(kitops_home) / "credentials.json")
    return removed
