"""Typed ``ModelKitOutput`` / ``ModelKitInput`` settings: checked when defined, honoured by the IO manager."""

# No `from __future__ import annotations`: Dagster inspects the real annotations.
import json
from pathlib import Path

import dagster as dg
import pytest

from kitops_flows.errors import KitopsError
from kitops_flows_dagster import KitRegistryResource, ModelKitInput, ModelKitIOManager, ModelKitOutput

pytestmark = pytest.mark.dagster


@pytest.mark.parametrize(("make", "message"), [
    (lambda: ModelKitOutput(layer="weights"), "use one of model, dataset, code, docs"),
    (lambda: ModelKitOutput(path="../x"), "without '..'"),
    (lambda: ModelKitInput(digest="sha256:" + "0" * 64, tag="v1"), "not both"),
    (lambda: ModelKitInput(digest="abc"), "sha256:<64 hex digits>"),
    (lambda: ModelKitInput(load="pickle"), "value, path, layers, descriptor"),
])
def test_bad_settings_fail_when_defined(make, message: str) -> None:  # noqa: ANN001
    with pytest.raises(KitopsError, match=message.replace("(", r"\(")):
        make()


def test_typed_settings_drive_the_io_manager(kitops_home: Path) -> None:
    kitops = KitRegistryResource(registry="", kitops_home=str(kitops_home))  # local store only

    @dg.asset(metadata=ModelKitOutput(layer="dataset", name="train", path="train.json", serializer="json").metadata())
    def train() -> list:
        return [1, 2, 3]

    @dg.asset(ins={"train": dg.AssetIn(metadata=ModelKitInput(layers="datasets", load="path").metadata())})
    def model(train: Path) -> dict:
        return {"rows": len(json.loads(Path(train).read_text())), "file": Path(train).name}

    result = dg.materialize([train, model], resources={"io_manager": ModelKitIOManager(kitops=kitops)})
    assert result.success
    assert result.output_for_node("model") == {"rows": 3, "file": "train.json"}
    [layer] = result.asset_materializations_for_node("train")[0].metadata["modelkit"].value["layers"]
    assert (layer["kind"], layer["path"]) == ("dataset", "train.json")


def test_ephemeral_store_is_one_per_step_so_pack_then_push_share_it(registry) -> None:  # noqa: ANN001
    kitops = KitRegistryResource(registry=registry.host, plain_http=True, repository_prefix="exec17-eph",
                                 kitops_home="ephemeral")
    a, b = kitops.get_client(step_key="s1").store.home, kitops.get_client(step_key="s1").store.home
    assert a == b != kitops.get_client(step_key="s2").store.home

    @dg.asset
    def packed_then_pushed(context: dg.AssetExecutionContext, kitops: KitRegistryResource) -> None:
        ctx = Path(kitops.get_client().store.home) / "ctx"  # any directory will do
        ctx.mkdir()
        (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\ncode:\n  - {path: x.py}\n")
        (ctx / "x.py").write_text("x = 1\n")
        ref = kitops.reference_for(["eph"], "v1")
        kitops.pack(ctx, reference=ref, push=False)
        context.add_output_metadata({"digest": kitops.push(ref).digest})  # another call: the same store

    result = dg.materialize([packed_then_pushed], resources={"kitops": kitops})
    assert result.success
    digest = result.asset_materializations_for_node("packed_then_pushed")[0].metadata["digest"].value
    assert digest.startswith("sha256:")
