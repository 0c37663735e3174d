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

__all__ = [
    "DEFAULT_CHUNK_SIZE", "ENV_PASSWORD", "ENV_REGISTRY", "ENV_USERNAME", "KIT_RULES", "MANIFEST_ACCEPT",
    "MAX_MANIFEST_SIZE", "NO_RETRY", "ONE_STREAM", "Challenge", "FetchedManifest", "ParallelDownload", "RegistryAuthError", "RegistryClient",
    "RegistryCredentials", "RegistryHTTPError", "RegistryNotFoundError", "RegistryUnreachableError", "RetryPolicy",
    "UploadPolicy", "UploadRule", "login", "logout", "parse_challenge", "remove_credentials",
    "resolve_credentials", "store_credentials",
]
