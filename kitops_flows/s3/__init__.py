"""S3 for ModelKits (boto3): objects become layers, listings become lineage, files go back to S3.

One module per job, none of them aware of the store, the registry or the API:

- ``uris``       ``s3://`` URIs, the boto3 client, botocore errors that name the URI and the fix
- ``listing``    what a URI holds now (object versions): ``S3Input``, fingerprints for cache keys
- ``streaming``  ``ObjectStreamer``: listed objects read in order with a bounded read-ahead window
- ``layers``     the pack hook: S3 sources as layer tars byte-identical to local files
- ``remote``     kit's remote datasets (``remotePath: s3://…``), checked at pack, downloaded verified
- ``write``      ``S3PrefixWriter``: safe, all-or-nothing writes of files into a prefix
- ``parallel``   ``BoundedPool``: write's calls on a few threads, bytes in flight capped, first failure stops all

What composes S3 with the store and registries lives above, beside the API:
``unpack_s3.unpack_to_s3`` and ``idempotent.pack_if_changed``.

>>> S3Uri.parse("s3://ml-data/churn/")
S3Uri(bucket='ml-data', key='churn/')
"""

from __future__ import annotations

from .layers import TarMember, plan_members, s3_layer_sources, write_s3_tar
from .listing import (
    ANNOTATION_FINGERPRINT,
    ANNOTATION_INPUTS_FINGERPRINT,
    ANNOTATION_OBJECTS,
    ANNOTATION_SIZE,
    ANNOTATION_SOURCE,
    MODES,
    S3Input,
    S3Object,
    S3Source,
    inputs_fingerprint,
    list_input,
    source_fingerprints,
)
from .remote import check_remote_datasets, download_remote_datasets
from .streaming import PART_SIZE, ObjectStreamer
from .uris import S3Uri, s3_client, s3_error
from .write import S3UnpackResult

__all__ = [
    "ANNOTATION_FINGERPRINT", "ANNOTATION_INPUTS_FINGERPRINT", "ANNOTATION_OBJECTS", "ANNOTATION_SIZE",
    "ANNOTATION_SOURCE", "MODES", "PART_SIZE", "ObjectStreamer", "S3Input", "S3Object", "S3Source",
    "S3UnpackResult", "S3Uri", "TarMember", "check_remote_datasets", "download_remote_datasets",
    "inputs_fingerprint", "list_input", "plan_members", "s3_client", "s3_error", "s3_layer_sources",
    "source_fingerprints", "write_s3_tar",
]
