"""``modelkit_sensor``: start a job when a new ModelKit version appears in a repository.

Whoever pushed it (a Dagster run, ``kit push`` on a laptop, another pipeline), the sensor sees
it: each tick lists the repository's tags with the core client and compares the digest of each
tag with the cursor (JSON ``{tag: digest}``). A new tag, or a tag moved to another digest, gives
one ``RunRequest`` with ``run_key = tag@digest`` (so a retried tick never starts a second run)
and run tags ``kitops/reference``, ``kitops/pinned`` and ``kitops/digest`` that the job reads::

    new_data = modelkit_sensor("new_churn_data", repository="registry.example.com/ml/churn-data",
                               job=retrain_job, tag_patterns=["20*"], partition_key_from_tag=True)

    @dg.asset
    def model(context):
        pinned = context.run.tags["kitops/pinned"]        # consume exactly what was pushed

Bookkeeping tags (`reference.is_internal_tag`: referrers fallback `sha256-…`, cosign `.sig`/`.att`, the stage
log) are skipped by `KitOpsClient.list_tags`.
"""

# No `from __future__ import annotations`: Dagster inspects the real annotation of `context`.
import fnmatch
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from kitops_flows.errors import KitopsError, NotFoundError

from .resource import KitRegistryResource

TAG_REFERENCE = "kitops/reference"
TAG_PINNED = "kitops/pinned"
TAG_DIGEST = "kitops/digest"


@dataclass(frozen=True)
class ModelKitVersion:
    """A tag of a repository and the digest it points at (what the sensor reports)."""

    repository: str
    tag: str
    digest: str

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"


def _default_run_request(version: ModelKitVersion, partition_key_from_tag: bool) -> RunRequest:
    return RunRequest(
        run_key=f"{version.tag}@{version.digest}",
        tags={TAG_REFERENCE: version.reference, TAG_PINNED: version.pinned, TAG_DIGEST: version.digest},
        partition_key=version.tag if partition_key_from_tag else None,
    )


def new_versions(seen: dict[str, str], current: dict[str, str], patterns: Sequence[str] | None) -> dict[str, str]:
    """Tags of ``current`` that are new or moved since ``seen`` and match one of ``patterns`` (None: all).

    >>> new_versions({"v1": "sha256:a"}, {"v1": "sha256:a", "v2": "sha256:b", "x": "sha256:c"}, ["v*"])
    {'v2': 'sha256:b'}
    """
    return {tag: digest for tag, digest in sorted(current.items())
            if seen.get(tag) != digest and (patterns is None or any(fnmatch.fnmatchcase(tag, p) for p in patterns))}


def modelkit_sensor(
    name: str,
    *,
    repository: str | None = None,
    asset_key: AssetKey | str | Sequence[str] | None = None,
    job: Any = None,  # a JobDefinition or define_asset_job(...)
    job_name: str | None = None,
    tag_patterns: Sequence[str] | None = None,
    partition_key_from_tag: bool = False,
    run_request_fn: Callable[[ModelKitVersion], RunRequest | None] | None = None,
    resource_key: str = "kitops",
    minimum_interval_seconds: int = 60,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition:
    """A sensor over one repository: ``repository`` (``registry/repo``) or the one ``asset_key`` maps to.

    ``run_request_fn`` replaces the default RunRequest (return None to skip a version).
    """
    if (repository is None) == (asset_key is None):
        raise KitopsError(f"modelkit_sensor {name!r}: give exactly one of repository= or asset_key=")
    key = AssetKey.from_coercible(asset_key) if asset_key is not None else None

    @sensor(name=name, job=job, job_name=job_name, minimum_interval_seconds=minimum_interval_seconds,
            default_status=default_status, required_resource_keys={resource_key})
    def _sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        kitops: KitRegistryResource = getattr(context.resources, resource_key)
        repo = repository if repository is not None else kitops.repo_path_for(key.path)  # type: ignore[union-attr]
        try:
            current = kitops.get_client().list_tags(repo)  # one HEAD per tag, no config downloads
        except NotFoundError:
            return SkipReason(f"repository {repo} does not exist (yet)")
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        fresh = new_versions(seen, current, tag_patterns)
        cursor = json.dumps(current, sort_keys=True)  # a deleted then re-pushed tag counts as new again
        requests = []
        for tag, digest in fresh.items():
            version = ModelKitVersion(repo, tag, digest)
            request = run_request_fn(version) if run_request_fn else _default_run_request(version, partition_key_from_tag)
            if request is not None:
                requests.append(request)
        if not requests:
            context.update_cursor(cursor)
            return SkipReason(f"no new ModelKit version in {repo} ({len(current)} tags seen)")
        context.log.info(f"{len(requests)} new ModelKit version(s) in {repo}: {', '.join(fresh)}")
        return SensorResult(run_requests=requests, cursor=cursor)

    return _sensor


__all__ = ["TAG_DIGEST", "TAG_PINNED", "TAG_REFERENCE", "ModelKitVersion", "modelkit_sensor", "new_versions"]
