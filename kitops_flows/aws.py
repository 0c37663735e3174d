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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import KitopsError


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


def merged_config(ours: Any, theirs: Any) -> Any:
    """Our retry/pool botocore ``Config`` merged under one the orchestrator configured (theirs wins)."""
    if ours is None:
        return theirs
    if theirs is None:
        return ours
    return ours.merge(theirs)


__all__ = ["S3ClientFactory", "merged_config"]
