"""``modelkit_digest_check`` on a partitioned asset checks the partition it runs for (real registry, dg.materialize)."""

# No `from __future__ import annotations`: Dagster inspects the real annotations.
from pathlib import Path

import dagster as dg
import pytest

from kitops_flows_dagster import KitRegistryResource, ModelKitIOManager, modelkit_digest_check

pytestmark = pytest.mark.dagster


def test_digest_check_of_a_partition_reads_that_partitions_modelkit(registry, kitops_home: Path,  # noqa: ANN001
                                                                    tmp_path: Path) -> None:
    kitops = KitRegistryResource(registry=registry.host, plain_http=True, repository_prefix="exec17-check",
                                 kitops_home=str(kitops_home))

    @dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2026-11-01"))
    def daily(context: dg.AssetExecutionContext) -> dict:
        return {"day": context.partition_key}

    check = modelkit_digest_check(daily)
    resources = {"kitops": kitops, "io_manager": ModelKitIOManager(kitops=kitops)}
    instance = dg.DagsterInstance.ephemeral()
    for day in ("2026-11-02", "2026-11-03"):  # 11-03 is the latest materialisation
        assert dg.materialize([daily, check], resources=resources, instance=instance, partition_key=day).success

    # another build takes the tag of the older partition behind Dagster's back
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "Kitfile").write_text("manifestVersion: 1.0.0\ncode:\n  - {path: x.py}\n")
    (tmp_path / "other" / "x.py").write_text("x = 2\n")
    other = kitops.get_client().pack(tmp_path / "other", reference=f"{registry.host}/exec17-check/daily:2026-11-02",
                                     push=True)

    check_job = dg.define_asset_job("check_daily", selection=dg.AssetSelection.checks_for_assets(daily),
                                    partitions_def=daily.partitions_def)
    job = dg.Definitions(assets=[daily], asset_checks=[check], jobs=[check_job],
                         resources=resources).resolve_job_def("check_daily")

    def evaluate(day: str) -> dg.AssetCheckEvaluation:
        # a run of the check alone, as a schedule would launch it (partition_key= validates the selection's
        # assets, of which a checks-only selection has none, so the partition goes in as the run tag it becomes)
        result = job.execute_in_process(instance=instance, tags={"dagster/partition": day})
        [evaluation] = result.get_asset_check_evaluations()
        return evaluation

    moved = evaluate("2026-11-02")
    assert not moved.passed and moved.metadata["tag 2026-11-02"].value == other.digest
    assert evaluate("2026-11-03").passed
