"""PUT a manifest, recovering when the registry momentarily denies a blob it was just sent.

A registry can deny a blob it has while another client commits the same blob to the same repository:
distribution 2.8's filesystem driver rewrites the repository's blob link in place, so for a moment it
reads empty (distribution/distribution#4478, fixed in v3). Eight pipelines pushing ModelKits that share a
layer hit this in most runs. Callers say how to recover (push the blobs again, or check they are there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .client import RegistryClient
from .errors import RegistryHTTPError

LOG = logging.getLogger("kitops_flows")

#: Manifest PUTs answered "blob unknown" right after the blobs were pushed are retried this often.
MANIFEST_BLOB_RETRIES = 3
_BLOB_UNKNOWN = frozenset({"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"})


def put_manifest_recovering(client: RegistryClient, repo: str, reference: str, data: bytes, media_type: str,
                            recover: Callable[[], None], retries: int = MANIFEST_BLOB_RETRIES) -> None:
    """PUT ``data``; on "blob unknown" wait (0.1 s doubling), call ``recover`` and try again, ``retries`` times.

    >>> put_manifest_recovering(rc, "team/churn", "v1", manifest, OCI_MANIFEST,
    ...                         recover=lambda: push_blobs_again())          # doctest: +SKIP
    """
    for attempt in range(retries + 1):
        try:
            client.put_manifest(repo, reference, data, media_type)
            return
        except RegistryHTTPError as e:
            if attempt == retries or not _BLOB_UNKNOWN & set(e.codes):
                raise
            LOG.info("Registry reported a blob of %s:%s unknown (%s); checking blobs and retrying", repo,
                     reference, e)
        time.sleep(0.1 * 2**attempt)
        recover()


__all__ = ["MANIFEST_BLOB_RETRIES", "put_manifest_recovering"]
