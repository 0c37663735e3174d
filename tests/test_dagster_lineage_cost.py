"""Lineage metadata costs the same registry requests per materialisation however many tags a repository has
(before: every tag of the repository and of its parents was listed and HEADed each step). Real registry
behind a counting proxy."""

# No `from __future__ import annotations`: Dagster inspects the real annotations.
from pathlib import Path

import dagster as dg
import pytest

from kitops_flows_dagster import KitRegistryResource, ModelKitIOManager

pytestmark = pytest.mark.dagster


def test_requests_per_materialisation_do_not_grow_with_the_tag_count(registry, proxy_factory,  # noqa: ANN001
                                                                    kitops_home: Path) -> None:
    proxy = proxy_factory(registry.host)
    kitops = KitRegistryResource(registry=proxy.host, plain_http=True, repository_prefix="exec17-cost",
                                 kitops_home=str(kitops_home))
    daily = dg.DailyPartitionsDefinition(start_date="2026-11-01")

    @dg.asset(partitions_def=daily)
    def features(context: dg.AssetExecutionContext) -> dict:
        return {"day": context.partition_key}

    @dg.asset(partitions_def=daily)
    def scores(features: dict) -> dict:
        return {"scored": features["day"]}

    resources = {"kitops": kitops, "io_manager": ModelKitIOManager(kitops=kitops)}
    instance = dg.DagsterInstance.ephemeral()
    counts = []
    for day in range(1, 7):  # each run adds a tag to both repositories
        proxy.reset()
        assert dg.materialize([features, scores], resources=resources, instance=instance,
                              partition_key=f"2026-11-{day:02d}").success
        counts.append(len(proxy.matching()))
        assert proxy.count("/tags/list") == 0
    assert counts[-1] == counts[1], counts  # the 6th run costs what the 2nd did
