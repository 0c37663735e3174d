"""kit's remote datasets: ``remotePath: s3://…`` checked at pack time and downloaded, verified, at unpack.

>>> download_remote_datasets(kit.info("reg.example.com/team/churn:v7"), "/data")   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import posixpath
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ..digests import CHUNK
from ..errors import PackError, S3SourceError, UnsafeLayerError
from ..kitfile import Kitfile, clean_path
from .uris import S3Uri, etag_of, s3_client, translated

LOG = logging.getLogger("kitops_flows")


def check_remote_datasets(kf: Kitfile, *, session: Any = None, s3: Any = None,
                          skip: Collection[str] = ()) -> None:
    """Pack-time check of a Kitfile's S3 ``remotePath`` datasets: each exists (as kit checks) and its ETag
    equals ``remoteHash``. URIs in ``skip`` were just listed by the caller."""
    s3 = s3 if s3 is not None else s3_client(session)
    for ds in kf.datasets:
        if not ds.remote_path.startswith("s3://") or ds.remote_path in skip:
            continue
        loc = S3Uri.parse(ds.remote_path)
        if loc.is_prefix:
            raise PackError(f"dataset {ds.name or ds.path}: remotePath {ds.remote_path} must name one object, not a prefix")
        with translated(ds.remote_path, "checking the remote dataset"):
            head = s3.head_object(Bucket=loc.bucket, Key=loc.key)
        etag = etag_of(head.get("ETag"))
        if ds.remote_hash and etag_of(ds.remote_hash) != etag:
            raise S3SourceError(f"{ds.remote_path}: remoteHash {ds.remote_hash} in the Kitfile does not match the "
                                f"object's ETag {etag}; update remoteHash or restore the object")


def download_remote_datasets(
    kitfile: Kitfile, dest: Path | str, session: Any = None, *, overwrite: bool = False, s3: Any = None,
) -> list[Path]:
    """Download every ``remotePath: s3://...`` dataset of ``kitfile`` to ``dest/<path>``, verified.

    Each object is fetched with ``If-Match: <remoteHash>`` (a changed object fails with S3SourceError
    instead of being downloaded), its size is checked and, when the ETag is a plain MD5 (single-part,
    not KMS-encrypted), its content too. Bytes go to a temp file next to the target, renamed into
    place only when verified. ModelKit-reference remote datasets are not handled here.

    >>> download_remote_datasets(kit.info("reg.example.com/team/churn:v7"), "/data")   # doctest: +SKIP
    """
    s3 = s3 if s3 is not None else s3_client(session)
    root = Path(dest).expanduser().absolute()
    written = []
    for ds in kitfile.datasets:
        if not ds.remote_path.startswith("s3://"):
            continue
        loc = S3Uri.parse(ds.remote_path)
        if loc.is_prefix:
            raise S3SourceError(f"{ds.remote_path}: remote datasets must name one object")
        rel = clean_path(ds.path or posixpath.basename(loc.key))
        if rel in (".", "..") or rel.startswith(("/", "../")):
            raise UnsafeLayerError(f"dataset {ds.name or rel}: path {ds.path!r} for {ds.remote_path} leaves {root}")
        target = root / rel
        if target.exists() and not overwrite:
            raise S3SourceError(f"{target} already exists (remote dataset {ds.remote_path}); pass overwrite=True")
        target.parent.mkdir(parents=True, exist_ok=True)
        _download_verified(s3, loc, etag_of(ds.remote_hash), target)
        written.append(target)
        LOG.info("Downloaded remote dataset %s to %s", ds.remote_path, target)
    return written


def _download_verified(s3: Any, loc: S3Uri, etag: str, target: Path) -> None:
    kwargs: dict[str, Any] = {"Bucket": loc.bucket, "Key": loc.key}
    if etag:
        kwargs["IfMatch"] = f'"{etag}"'
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, translated(str(loc), "downloading the remote dataset"):
            resp = s3.get_object(**kwargs)
            got = etag_of(resp.get("ETag"))
            if etag and got != etag:
                raise S3SourceError(f"{loc}: ETag {got} does not match remoteHash {etag}; the object changed since packing")
            md5 = hashlib.md5(usedforsecurity=False)
            size = 0
            for chunk in resp["Body"].iter_chunks(CHUNK):
                md5.update(chunk)
                size += len(chunk)
                f.write(chunk)
        if size != int(resp["ContentLength"]):
            raise S3SourceError(f"{loc}: downloaded {size} bytes, expected {resp['ContentLength']}")
        plain_md5 = len(got) == 32 and "-" not in got and resp.get("ServerSideEncryption") != "aws:kms"
        if plain_md5 and md5.hexdigest() != got:
            raise S3SourceError(f"{loc}: content MD5 {md5.hexdigest()} does not match ETag {got} (corrupted download)")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


__all__ = ["check_remote_datasets", "download_remote_datasets"]
