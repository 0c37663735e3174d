"""``modelkit_digest_check``: does the asset's ModelKit still resolve to the digest Dagster recorded?

Tags can be moved or deleted behind Dagster's back (``kit push`` of another build to the same
tag, a registry clean-up). The check reads the latest materialisation's descriptor and asks the
registry (or the local store, without a registry) what each recorded tag points at now, and
whether the pinned digest still exists::

    defs = dg.Definitions(assets=[churn_model], asset_checks=[modelkit_digest_check(churn_model)], ...)
"""

# No `from __future__ import annotations`: Dagster inspects the real annotation of `context`.
import warnings
from collections.abc import Sequence
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    MetadataValue,
    PartitionsDefinition,
    PreviewWarning,
    asset_check,
)

from kitops_flows.errors import NotFoundError

from .metadata import descriptor_from_metadata
from .resource import KitRegistryResource


def modelkit_digest_check(
    asset: AssetsDefinition | AssetKey | str | Sequence[str],
    *,
    name: str = "modelkit_digest_resolves",
    resource_key: str = "kitops",
    blocking: bool = False,
    partitions_def: PartitionsDefinition | None = None,
) -> AssetChecksDefinition:
    """An asset check on ``asset`` (stored by ModelKitIOManager) comparing recorded and current digests.

    For a partitioned asset (an ``AssetsDefinition``, or ``partitions_def=``) the check is partitioned too
    and checks the ModelKit recorded for the partition it runs for, not the latest materialisation.
    """
    key = asset.key if isinstance(asset, AssetsDefinition) else AssetKey.from_coercible(asset)
    if partitions_def is None and isinstance(asset, AssetsDefinition):
        partitions_def = asset.partitions_def

    def _check(context: AssetCheckExecutionContext) -> AssetCheckResult:
        kitops: KitRegistryResource = getattr(context.resources, resource_key)
        partition = context.partition_key if context.has_partition_key else None
        materialization = _recorded(context, key, partition)
        desc = descriptor_from_metadata(materialization.metadata) if materialization is not None else None
        if desc is None:
            what = f"{key.to_user_string()}{f' partition {partition!r}' if partition else ''}"
            return AssetCheckResult(passed=False, description=f"{what} has no recorded ModelKit")
        client, remote = kitops.get_client(), bool(kitops.registry)
        repo = desc.pinned.rsplit("@", 1)[0]
        problems: list[str] = []
        meta: dict[str, object] = {"expected": MetadataValue.text(desc.digest)}
        try:
            client.inspect(desc.pinned, remote=remote)
        except NotFoundError:
            problems.append(f"{desc.pinned} no longer exists")
        for tag in desc.tags:
            try:
                actual = str(client.inspect(f"{repo}:{tag}", remote=remote)["digest"])
            except NotFoundError:
                actual = "(missing)"
            meta[f"tag {tag}"] = MetadataValue.text(actual)
            if actual != desc.digest:
                problems.append(f"{repo}:{tag} points at {actual}, not the recorded {desc.digest}")
        return AssetCheckResult(passed=not problems, metadata=meta,
                                description="; ".join(problems) or f"{desc.reference} resolves to {desc.digest}")

    with warnings.catch_warnings():  # a partitioned check is a Dagster preview (1.13): say it once here, not per load
        warnings.simplefilter("ignore", PreviewWarning)
        return asset_check(asset=key, name=name, required_resource_keys={resource_key}, blocking=blocking,
                           partitions_def=partitions_def,
                           description="The recorded ModelKit digest still exists and its tags still point at it.",
                           )(_check)


def _recorded(context: AssetCheckExecutionContext, key: AssetKey, partition: str | None) -> Any:
    """The latest materialisation of ``key`` (of ``partition`` when given)."""
    if partition is None:
        event = context.instance.get_latest_materialization_event(key)
        return event.asset_materialization if event is not None else None
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
    return records[0].asset_materialization if records else None


__all__ = ["modelkit_digest_check"]
