"""S3 clients made by the orchestrator's own AWS credentials (a connection, block or resource).

``KitOpsClient(s3_session=...)`` takes anything with ``.client("s3", config=...)``: a ``boto3.Session``,
or an ``S3ClientFactory`` wrapping the orchestrator's client maker, so endpoint URLs, roles and
profiles configured there apply too. The plugins build one each::

    S3ClientFactory(lambda config: aws_hook.get_client_type("s3", config=config), "aws_conn_id 'aws_moto'")
    S3ClientFactory(lambda config: s3_resource.get_client(), "S3Resource")

>>> calls = []
>>> f = S3ClientFactory(lambda config: calls.append(config) or "client", "test")
>>> f.client("s3", config="cfg"), calls
('client', ['cfg'])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import KitopsError, S3CredentialsError


@dataclass(frozen=True)
class S3ClientFactory:
    """Makes S3 clients from an orchestrator's credentials; ``source`` names them in errors (never secrets)."""

    make: Callable[[Any], Any] = field(repr=False)  # botocore Config (or None) -> S3 client
    source: str = "the orchestrator's AWS credentials"

    def client(self, service: str, config: Any = None) -> Any:
        if service != "s3":
            raise KitopsError(f"{self.source} is used for S3 only, not {service!r}")
        return self.make(config)

    def __str__(self) -> str:
        return self.source


@contextlib.contextmanager
def credentials_named(session: object) -> Iterator[None]:
    """Make S3 credential errors raised inside name ``session``'s source (an ``S3ClientFactory``'s).

    The translation of botocore's errors happens deep in the S3 code, which sees a client, not where its
    credentials came from; ``KitOpsClient`` wraps its S3 operations in this, so an Airflow user reads
    "check aws_conn_id 'aws_prod'" instead of boto3's environment and profile chain.
    """
    try:
        yield
    except S3CredentialsError as e:
        if isinstance(session, S3ClientFactory):
            e.credentials = session.source
        raise


def merged_config(ours: Any, theirs: Any) -> Any:
    """Our retry/pool botocore ``Config`` merged under one the orchestrator configured (theirs wins)."""
    if ours is None:
        return theirs
    if theirs is None:
        return ours
    return ours.merge(theirs)


__all__ = ["S3ClientFactory", "credentials_named", "merged_config"]
