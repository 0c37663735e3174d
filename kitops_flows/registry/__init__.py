"""The only package that talks HTTP to OCI registries.

* ``client.RegistryClient`` / ``FetchedManifest``: blobs (HEAD, mount, streamed chunked or
  monolithic upload, verified resumable download, verifying stream) and manifests/tags/referrers.
* ``auth``: the Basic/Bearer challenge dance with a per-scope token cache.
* ``credentials``: ``RegistryCredentials`` and ``resolve_credentials`` (env vars, kit's
  credentials.json, docker config, credential helpers).
* ``login``: ``login`` (checks, then saves) and ``logout``.
* ``retry.RetryPolicy``, ``upload_policy.UploadPolicy``, ``ranged.ParallelDownload``: tunables, one
  table each (``ranged`` also holds the parallel ranged download of one blob).
* ``errors``: registry-specific subclasses of ``kitops_flows.errors`` classes.

    from kitops_flows.registry import RegistryClient, resolve_credentials
    creds = resolve_credentials("127.0.0.1:5000", kitops_home=home)
    with RegistryClient("127.0.0.1:5000", credentials=creds, plain_http=True) as client:
        print(client.list_tags("team/model"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names resolve on first use (PEP 562): `from kitops_flows.registry import RegistryCredentials` loads only
# credentials.py, while RegistryClient brings in requests (~100 ms), which `kitops-flows list` never needs.
_EXPORTS = {
    "auth": ("Challenge", "parse_challenge"),
    "client": ("MANIFEST_ACCEPT", "MAX_MANIFEST_SIZE", "FetchedManifest", "RegistryClient"),
    "credentials": ("ENV_PASSWORD", "ENV_REGISTRY", "ENV_USERNAME", "RegistryCredentials", "remove_credentials",
                    "resolve_credentials", "store_credentials"),
    "errors": ("RegistryAuthError", "RegistryHTTPError", "RegistryNotFoundError", "RegistryUnreachableError"),
    "login": ("login", "logout"),
    "ranged": ("ONE_STREAM", "ParallelDownload"),
    "retry": ("NO_RETRY", "RetryPolicy"),
    "upload_policy": ("DEFAULT_CHUNK_SIZE", "KIT_RULES", "UploadPolicy", "UploadRule"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [  # the names of _EXPORTS (a test keeps the two equal)
    "DEFAULT_CHUNK_SIZE", "ENV_PASSWORD", "ENV_REGISTRY", "ENV_USERNAME", "KIT_RULES", "MANIFEST_ACCEPT",
    "MAX_MANIFEST_SIZE", "NO_RETRY", "ONE_STREAM", "Challenge", "FetchedManifest", "ParallelDownload",
    "RegistryAuthError", "RegistryClient", "RegistryCredentials", "RegistryHTTPError", "RegistryNotFoundError",
    "RegistryUnreachableError", "RetryPolicy", "UploadPolicy", "UploadRule", "login", "logout", "parse_challenge",
    "remove_credentials", "resolve_credentials", "store_credentials",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    from .auth import Challenge, parse_challenge
    from .client import MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, FetchedManifest, RegistryClient
    from .credentials import (
        ENV_PASSWORD,
        ENV_REGISTRY,
        ENV_USERNAME,
        RegistryCredentials,
        remove_credentials,
        resolve_credentials,
        store_credentials,
    )
    from .errors import RegistryAuthError, RegistryHTTPError, RegistryNotFoundError, RegistryUnreachableError
    from .login import login, logout
    from .ranged import ONE_STREAM, ParallelDownload
    from .retry import NO_RETRY, RetryPolicy
    from .upload_policy import DEFAULT_CHUNK_SIZE, KIT_RULES, UploadPolicy, UploadRule
