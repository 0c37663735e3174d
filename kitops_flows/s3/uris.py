"""S3 URIs, the boto3 client, and botocore errors translated into ones that name the URI and the fix.

>>> S3Uri.parse("s3://ml-data/churn/").is_prefix
True
>>> str(s3_error(Exception("boom"), "s3://b/k", "reading"))
's3://b/k: reading failed: boom'

Credentials and endpoint come from boto3's chain (env, profile, instance role,
``AWS_ENDPOINT_URL_S3``) or a ``boto3.Session`` passed in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import S3CredentialsError, S3SourceError

WORKERS = 8  # parallel GETs of one streamer; the client's connection pool is sized for them
_GONE = ("NoSuchKey", "404", "NotFound")
_DENIED = ("AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch")
_CHANGED = ("PreconditionFailed", "412")


@dataclass(frozen=True)
class S3Uri:
    """``s3://bucket/key``; a key that is empty or ends in ``/`` is a prefix.

    >>> S3Uri.parse("s3://ml-data/churn/")
    S3Uri(bucket='ml-data', key='churn/')
    """

    bucket: str
    key: str

    @classmethod
    def parse(cls, text: str) -> S3Uri:
        if not isinstance(text, str) or not text.startswith("s3://"):
            raise S3SourceError(f"{text!r} is not an S3 URI: use s3://bucket/key or s3://bucket/prefix/")
        bucket, _, key = text[5:].partition("/")
        if len(bucket) < 3 or "?" in text or "#" in text:
            raise S3SourceError(f"{text!r} is not a valid S3 URI: expected s3://bucket/key (no query or fragment)")
        return cls(bucket, key)

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    def child(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def __str__(self) -> str:
        return self.child(self.key)



def s3_client(session: Any = None) -> Any:
    """An S3 client from ``session`` (a ``boto3.Session`` or anything with ``.client("s3")``), else boto3's chain.

    boto3 reads ``AWS_ENDPOINT_URL_S3`` itself, so S3-compatible stores need no code.
    """
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=WORKERS + 4)
    if session is None:
        session = boto3.session.Session()
    try:
        return session.client("s3", config=config)
    except TypeError:  # a test double that takes no config
        return session.client("s3")


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code or str(status or "")
    return ""


def s3_error(exc: BaseException, uri: str, action: str) -> S3SourceError:
    """Translate a botocore error into one that names the URI and the likely fix."""
    code = error_code(exc)
    if code == "NoSuchBucket":
        return S3SourceError(f"{uri}: bucket {S3Uri.parse(uri).bucket} does not exist (while {action})")
    if code in _DENIED:
        return S3CredentialsError(uri, action, code)
    if code in _CHANGED:
        return S3SourceError(f"{uri}: object changed while {action} (its ETag no longer matches the listing); "
                             "nothing was stored: retry once the writer has finished")
    if code in _GONE:
        return S3SourceError(f"{uri}: object not found while {action}")
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return S3CredentialsError(uri, action, "NoCredentials")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"):
        return S3SourceError(f"{uri}: cannot reach the S3 endpoint while {action} ({exc}); "
                             "check AWS_ENDPOINT_URL_S3 / network")
    return S3SourceError(f"{uri}: {action} failed: {exc}")


@contextlib.contextmanager
def translated(uri: str, action: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as e:
        raise s3_error(e, uri, action) from e


def etag_of(value: str | None) -> str:
    return (value or "").strip('"')


def iso_time(value: Any) -> str:
    """A boto3 timestamp as ISO 8601 (anything else as text)."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


__all__ = ["WORKERS", "S3Uri", "error_code", "etag_of", "iso_time", "s3_client", "s3_error", "translated"]
