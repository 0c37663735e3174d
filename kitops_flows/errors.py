"""Exception types for kitops-flows.

Every error says what was wrong, where (file, field, reference, URI) and, when there is an
obvious fix, how to fix it. The CLI prints ``str(error)`` on one line and exits non-zero; the
orchestrator plugins let these propagate so the task fails with the same message.
"""

from __future__ import annotations


class KitopsError(Exception):
    """Base class of every error raised on purpose by kitops-flows."""


class KitfileError(KitopsError):
    """A Kitfile could not be read, parsed or validated."""


class ReferenceFormatError(KitopsError, ValueError):
    """A ModelKit reference (``registry/repo:tag@digest``) is malformed."""


class NotFoundError(KitopsError):
    """A reference, tag, blob or file does not exist."""


class NotInLocalStoreError(NotFoundError):
    """A ModelKit is not in this task's local store (on separate workers: packed elsewhere, not pushed)."""


class DigestMismatchError(KitopsError):
    """Content did not hash to the digest it was addressed by."""


class StoreError(KitopsError):
    """The local store is inconsistent or could not be written."""


class PackError(KitopsError):
    """A ModelKit could not be packed from its context directory."""


class UnpackError(KitopsError):
    """A ModelKit could not be unpacked (conflicting files, bad filter...)."""


class UnsafeLayerError(UnpackError):
    """A layer contains an entry that would escape or subvert the destination."""


class FilterError(UnpackError, ValueError):
    """An unpack filter expression is malformed."""


class RegistryError(KitopsError):
    """A registry answered with an error or could not be reached."""


class AuthenticationError(RegistryError):
    """The registry refused the credentials (or asked for some and none were given)."""


class TagExistsError(RegistryError):
    """An immutable tag already points at a different digest."""


class S3SourceError(KitopsError):
    """An S3 source or destination could not be read or written."""


#: Where credentials come from when nobody said: boto3's own chain.
BOTO3_CREDENTIALS = "the credentials boto3 found (env, profile, role or the session passed in)"


class S3CredentialsError(S3SourceError):
    """S3 refused the credentials, or there were none. The message names where they came from.

    ``credentials`` starts as boto3's chain; ``KitOpsClient`` replaces it with the orchestrator's source
    (an Airflow connection, a Prefect block, a Dagster resource) when it was given one, so the error
    points at what the user configured, not at boto3:

    >>> e = S3CredentialsError("s3://b/k", "listing", "AccessDenied")
    >>> e.credentials = "Airflow connection 'aws_prod' (aws_conn_id)"
    >>> str(e)
    "s3://b/k: access denied while listing (AccessDenied); check Airflow connection 'aws_prod' (aws_conn_id) and the bucket policy"
    """

    def __init__(self, uri: str, action: str, code: str, credentials: str = BOTO3_CREDENTIALS) -> None:
        super().__init__(uri, action, code, credentials)
        self.uri, self.action, self.code, self.credentials = uri, action, code, credentials

    def __reduce__(self) -> tuple[type[S3CredentialsError], tuple[str, str, str, str]]:
        # crosses process boundaries (Dagster's multiprocess executor, Dask) with the credentials' source
        return type(self), (self.uri, self.action, self.code, self.credentials)

    def __str__(self) -> str:
        if self.code == "NoCredentials":
            fix = ("set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or pass a boto3 session"
                   if self.credentials == BOTO3_CREDENTIALS else f"check {self.credentials}: it gave none")
            return f"{self.uri}: no AWS credentials found while {self.action}; {fix}"
        return (f"{self.uri}: access denied while {self.action} ({self.code}); check {self.credentials} "
                "and the bucket policy")
