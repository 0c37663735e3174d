"""Dagster: ``ModelKitIOManager(sign=True)`` signs outputs with the resource's ``signing_key`` (``dg.EnvVar``),
and a resource with ``verify_key`` refuses unsigned upstream ModelKits before anything is extracted, in real
``dg.materialize`` runs against docker-registry.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cosign_check import cosign_verify, cosign_verify_attestation

from kitops_flows.signing import SignatureError, generate_key_pair

dg = pytest.importorskip("dagster")
from kitops_flows_dagster import KitRegistryResource, ModelKitIOManager  # noqa: E402

pytestmark = [pytest.mark.dagster, pytest.mark.integration]


def test_io_manager_signs_outputs_and_refuses_unsigned_inputs(registry, kitops_home: Path, tmp_path: Path,  # noqa: ANN001
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_key_pair()
    pub = key.public_key.to_pem().decode()
    monkeypatch.setenv("DAGSTER_TEST_COSIGN_KEY", key.to_cosign_pem("dagster-key-pw-5c1e").decode())
    monkeypatch.setenv("DAGSTER_TEST_COSIGN_PASSWORD", "dagster-key-pw-5c1e")
    base = {"registry": registry.host, "plain_http": True, "repository_prefix": "dagster-sign"}
    signer = KitRegistryResource(**base, kitops_home=str(kitops_home), signing_key=dg.EnvVar("DAGSTER_TEST_COSIGN_KEY"),
                                 signing_key_password=dg.EnvVar("DAGSTER_TEST_COSIGN_PASSWORD"))
    plain = KitRegistryResource(**base, kitops_home=str(kitops_home))

    @dg.asset
    def weights() -> list[int]:
        return [1, 2, 3]

    @dg.asset
    def scored(weights: list[int]) -> int:
        return sum(weights)

    instance = dg.DagsterInstance.ephemeral()
    signed_run = dg.materialize([weights], instance=instance,
                                resources={"io_manager": ModelKitIOManager(kitops=signer, sign=True)})
    pinned = signed_run.get_asset_materialization_events()[0].materialization.metadata["modelkit"].value["pinned"]
    digest = pinned.split("@", 1)[1]
    assert cosign_verify(registry.host, "dagster-sign/weights", digest, pub.encode())
    assert cosign_verify_attestation(registry.host, "dagster-sign/weights", digest, pub.encode())

    # a consumer that trusts the key loads the signed upstream
    consumer = KitRegistryResource(**base, kitops_home=str(tmp_path / "consumer"), verify_key=pub)
    ok = dg.materialize([weights, scored], instance=instance, selection=[scored],
                        resources={"io_manager": ModelKitIOManager(kitops=consumer)})
    assert ok.success and ok.output_for_node("scored") == 6

    # the upstream re-materialised (new content) without a signature: refused, nothing extracted or downloaded
    @dg.asset(name="weights")
    def weights_v2() -> list[int]:
        return [4, 5, 6]

    dg.materialize([weights_v2], instance=instance, resources={"io_manager": ModelKitIOManager(kitops=plain)})
    home = tmp_path / "consumer2"
    strict = KitRegistryResource(**base, kitops_home=str(home), verify_key=pub)
    with pytest.raises(SignatureError, match="unsigned: "):
        dg.materialize([weights_v2, scored], instance=instance, selection=[scored],
                       resources={"io_manager": ModelKitIOManager(kitops=strict)})
    assert not (home / "dagster").exists()
    assert not (home / "storage" / "blobs").exists() or not list((home / "storage" / "blobs").rglob("*/*"))
    # resource operations verify too
    unsigned = instance.get_latest_materialization_event(dg.AssetKey("weights")).asset_materialization
    unsigned_pinned = unsigned.metadata["modelkit"].value["pinned"]
    with pytest.raises(SignatureError, match="unsigned: "):
        strict.pull_layer(unsigned_pinned, ["model"], tmp_path / "out")
    with pytest.raises(SignatureError, match="unsigned: "):
        strict.promote(unsigned_pinned, "production")
    assert strict.promote(pinned, "production").signed_by == key.public_key.fingerprint
