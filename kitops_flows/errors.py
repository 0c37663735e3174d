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
