"""A ModelKit's layers into an S3 prefix: ModelKit source -> the verified layer reader -> ``s3.write``.

This composes the store and registries (``sources``) with S3, so it sits beside the API, above
both; ``KitOpsClient.unpack_to_s3`` calls it.

>>> unpack_to_s3(kit, "reg.example.com/team/churn@sha256:…", ["datasets"], "s3://serve/churn/")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import S3SourceError
from .extract import Member
from .filters import parse_filter_list
from .layerreader import read_layers
from .s3.uris import S3Uri, error_code, s3_client, s3_error, translated
from .s3.write import PlannedFile, S3PrefixWriter, S3UnpackResult, hash_file

if TYPE_CHECKING:
    from .api import KitOpsClient

LOG = logging.getLogger("kitops_flows")


def unpack_to_s3(
    kit: KitOpsClient,
    reference: str,
    filters: Sequence[str] | str | None,
    dest: str,
    *,
    session: Any = None,
    existing: str = "error",
    delete: bool = False,
) -> S3UnpackResult:
    """Extract the layers ``filters`` select straight into ``dest`` (an ``s3://bucket/prefix/``).

    Each file lands at ``<prefix><path in the layer>``, the same names ``unpack`` would write under
    a directory; directories are implicit in S3 and not written.

    Verification before visibility: every selected blob is first read once locally, hashing it
    (digest, and diffId when compressed), checking every member name and type, and hashing each
    file (sha256, MD5). Only then is the prefix listed and anything written, by an
    ``s3.write.S3PrefixWriter``: objects already holding the same bytes are skipped (sync);
    different ones are refused (``existing="error"``, the default), kept (``"skip"``) or replaced
    only after every new object is uploaded and verified (``"overwrite"``); ``delete=True`` then
    removes keys the ModelKit does not have. A completion marker ``<prefix>.kitops-flows/complete.json``
    is written last. If anything fails, every object that existed before is as it was.

    >>> unpack_to_s3(kit, "reg.example.com/team/churn@sha256:…", ["datasets:train"], "s3://serve/churn/")  # doctest: +SKIP
    """
    loc = S3Uri.parse(dest)
    if not loc.is_prefix:
        raise S3SourceError(f"{dest}: the destination must be a prefix ending in '/' (e.g. s3://bucket/path/)")
    source = kit.source
    loaded, planned = source.selected_layers(reference, parse_filter_list(filters))
    s3 = s3_client(session if session is not None else kit.s3_session)
    files: list[PlannedFile] = []

    def plan(name: str, reader: Any, _size: int) -> None:
        files.append(PlannedFile(name, *hash_file(reader)))

    read_layers(source, planned, _Files(plan), what=reference)  # pass 1: verify and hash, nothing written
    writer = S3PrefixWriter(s3, loc, files, existing=existing, delete=delete)
    _check_bucket(s3, loc)
    with translated(str(loc), "listing the destination"):
        writer.prepare()
    try:
        total = read_layers(source, planned, _Files(writer.write), what=reference)
        outcome = writer.commit({"reference": reference, "digest": loaded.manifest_desc.digest,
                                 "layers": [p.layer.digest for p in planned]})
    except BaseException as e:
        from botocore.exceptions import BotoCoreError, ClientError

        problems = writer.rollback()  # every object that existed before is as it was (else: problems say where)
        err = s3_error(e, str(loc), "writing") if isinstance(e, (ClientError, BotoCoreError)) else e
        for problem in problems:
            err.add_note(problem)
        if err is e:
            raise
        raise err from e
    LOG.info("Unpacked %d file(s) of %s to %s (%d uploaded, %d replaced, %d already there, %d deleted)",
             len(outcome.keys), reference, loc, len(outcome.uploaded), len(outcome.replaced),
             len(outcome.skipped), len(outcome.deleted))
    return S3UnpackResult(str(loc), tuple(p.layer.digest for p in planned), tuple(outcome.keys), total,
                          uploaded=tuple(outcome.uploaded), replaced=tuple(outcome.replaced),
                          skipped=tuple(outcome.skipped), kept=tuple(outcome.kept), deleted=tuple(outcome.deleted),
                          marker=outcome.marker)


class _Files:
    """A layer-reader sink that hands each file (not directories: S3 has none) to ``write(name, reader, size)``."""

    def __init__(self, write: Callable[[str, Any, int], None]) -> None:
        self._write = write

    def add(self, member: Member) -> None:
        if not member.is_dir:
            self._write(member.name, member.data, member.size)


def _check_bucket(s3: Any, loc: S3Uri) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3.head_bucket(Bucket=loc.bucket)
    except ClientError as e:
        if error_code(e) in ("404", "NoSuchBucket", "NotFound"):
            raise S3SourceError(f"{loc}: bucket {loc.bucket} does not exist; create it first") from e
        raise s3_error(e, str(loc), "checking the destination bucket") from e
    except BotoCoreError as e:
        raise s3_error(e, str(loc), "checking the destination bucket") from e


__all__ = ["unpack_to_s3"]
