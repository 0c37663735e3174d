"""Dagster re-materialisations follow content, with ``dg.materialize`` against a real registry behind a counting
proxy: unchanged inputs keep the DataVersion (the manifest digest), Dagster's own staleness resolver reports the
downstream asset FRESH, nothing is uploaded and the ModelKit sensor requests no run; a retry on another worker
(empty store, empty event log, immutable tags) succeeds and loads its input from the partition's registry tag; a
changed input gives a new digest, a STALE downstream and exactly one run request.
"""

# No `from __future__ import annotations`: Dagster inspects the real annotation of `context`.
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._utils.test.data_versions import get_stale_status_resolver
from test_dagster import _descriptor, _materialization, _registry_resource

from kitops_flows_dagster import ModelKitIOManager, modelkit_sensor

pytestmark = [pytest.mark.dagster, pytest.mark.integration]

DAY = "2026-11-20"
daily = dg.DailyPartitionsDefinition(start_date="2026-11-01")


def _assets(source: dict[str, Any]) -> list[dg.AssetsDefinition]:
    @dg.asset(partitions_def=daily, metadata={"kitops": {"layer": "dataset", "serializer": "json"}})
    def features() -> dict[str, list[int]]:
        return {"x": list(source["x"])}

    @dg.asset(partitions_def=daily, metadata={"kitops": {"layer": "model", "serializer": "json"}}, code_version="v1")
    def trained(features: dict[str, list[int]]) -> dict[str, int]:
        return {"w": sum(features["x"])}

    return [features, trained]


def _stale(instance: dg.DagsterInstance, assets: list[dg.AssetsDefinition], key: str) -> Any:
    return get_stale_status_resolver(instance, assets).get_status(dg.AssetKey(key), DAY)


def _layer_uploads(proxy: Any) -> list[str]:
    """Completed blob uploads (PUT …/blobs/uploads/…?digest=…): callers filter for the ModelKit's own blobs."""
    return [r.path for r in proxy.matching("/blobs/uploads/", "PUT")]


def test_unchanged_rematerialisation_keeps_the_data_version_and_downstream_fresh(
        registry, proxy_factory, tmp_path: Path) -> None:  # noqa: ANN001
    from dagster._core.definitions.data_version import StaleStatus

    proxy = proxy_factory(registry.host)
    source: dict[str, Any] = {"x": [1, 2, 3]}
    assets = _assets(source)
    kitops = _registry_resource(proxy.host, tmp_path / "worker-1", "rerun")
    resources = {"kitops": kitops, "io_manager": ModelKitIOManager(kitops=kitops)}
    job = dg.define_asset_job("trained_job", selection=["trained"], partitions_def=daily)
    sensor = modelkit_sensor("trained_versions", asset_key="trained", job=job, partition_key_from_tag=True)
    defs = dg.Definitions(assets=assets, jobs=[job], sensors=[sensor], resources=resources)

    def tick(cursor: str | None) -> tuple[list[dg.RunRequest], str | None]:
        with dg.build_sensor_context(cursor=cursor, resources={"kitops": kitops}, definitions=defs) as context:
            data = sensor.evaluate_tick(context)
        return list(data.run_requests or []), data.cursor

    instance = dg.DagsterInstance.ephemeral()
    first = dg.materialize(assets, resources=resources, instance=instance, partition_key=DAY)
    assert first.success
    features, trained = _descriptor(first, "features"), _descriptor(first, "trained")
    assert _materialization(first, "trained").tags["dagster/data_version"] == trained.digest
    assert _stale(instance, assets, "trained") == StaleStatus.FRESH
    requests, cursor = tick(None)
    assert [r.tags["kitops/digest"] for r in requests] == [trained.digest]

    # the upstream again, unchanged: same DataVersion, so the downstream stays FRESH; nothing uploaded
    proxy.reset()
    again = dg.materialize(assets, resources=resources, instance=instance, partition_key=DAY, selection=["features"])
    assert again.success
    assert _descriptor(again, "features").digest == features.digest
    assert _materialization(again, "features").tags["dagster/data_version"] == features.digest
    assert _stale(instance, assets, "trained") == StaleStatus.FRESH
    assert not [p for p in _layer_uploads(proxy) if any(d in p for d in (l.digest for l in features.layers))]
    assert proxy.count(f"/manifests/{DAY}", "PUT") == 0

    # the whole pipeline again: one digest per asset, no new version for the sensor
    rerun = dg.materialize(assets, resources=resources, instance=instance, partition_key=DAY)
    assert _descriptor(rerun, "trained").digest == trained.digest
    assert tick(cursor)[0] == []

    # a retry on another worker: empty store, empty event log, immutable tags. The input resolves through
    # the partition's registry tag; the outputs land on the digests the tags hold, so nothing moves
    proxy.reset()
    other = _registry_resource(proxy.host, tmp_path / "worker-2", "rerun", immutable_tags=True)
    other_resources = {"kitops": other, "io_manager": ModelKitIOManager(kitops=other)}
    retry = dg.materialize(assets, resources=other_resources, instance=dg.DagsterInstance.ephemeral(),
                           partition_key=DAY, selection=["trained"])
    assert retry.success
    assert _descriptor(retry, "trained").digest == trained.digest
    config_and_layers = {trained.config_digest, *(l.digest for l in trained.layers)}
    assert not [p for p in _layer_uploads(proxy) if any(d in p for d in config_and_layers)]
    assert proxy.count(f"/manifests/{DAY}", "PUT") == 0
    assert tick(cursor)[0] == []

    # a changed input: new digests, the downstream STALE until re-materialised, exactly one run request
    source["x"] = [1, 2, 4]
    changed = dg.materialize(assets, resources=resources, instance=instance, partition_key=DAY,
                             selection=["features"])
    assert _descriptor(changed, "features").digest != features.digest
    assert _stale(instance, assets, "trained") == StaleStatus.STALE
    retrained = dg.materialize(assets, resources=resources, instance=instance, partition_key=DAY,
                               selection=["trained"])
    new = _descriptor(retrained, "trained")
    assert new.digest != trained.digest
    assert _stale(instance, assets, "trained") == StaleStatus.FRESH
    requests, _ = tick(cursor)
    assert [(r.partition_key, r.tags["kitops/digest"]) for r in requests] == [(DAY, new.digest)]


def test_loading_an_input_without_a_recorded_materialisation_uses_the_registry_tag(
        registry, tmp_path: Path) -> None:  # noqa: ANN001
    source: dict[str, Any] = {"x": [5, 6]}
    assets = _assets(source)
    kitops = _registry_resource(registry.host, tmp_path / "a", "tagload")
    first = dg.materialize(assets, resources={"kitops": kitops, "io_manager": ModelKitIOManager(kitops=kitops)},
                           instance=dg.DagsterInstance.ephemeral(), partition_key=DAY, selection=["features"])
    features = _descriptor(first, "features")
    other = _registry_resource(registry.host, tmp_path / "b", "tagload")
    loaded = dg.materialize(assets, resources={"kitops": other, "io_manager": ModelKitIOManager(kitops=other)},
                            instance=dg.DagsterInstance.ephemeral(), partition_key=DAY, selection=["trained"])
    assert loaded.success and loaded.output_for_node("trained") == {"w": 11}
    assert _descriptor(loaded, "trained").annotations["ml.kitops-flows.parents"] == features.pinned
