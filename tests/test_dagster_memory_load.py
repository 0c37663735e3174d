"""Dagster inputs: small serialised values come through the verified layer reader into memory
(``read_small_layers`` -> ``MemorySink``), larger ones and files through the unpack cache.

Runs ``dg.materialize`` against the real docker-registry behind a counting proxy: the small value's
blob is fetched once, no directory is written for it, a second load fetches nothing, and a blob
altered in the local store is refused by its digest instead of being unpickled.
"""

# No `from __future__ import annotations`: Dagster inspects the real annotation of `context`.
import os
from pathlib import Path

import dagster as dg
import pytest

from kitops_flows.api import KitOpsClient, ModelKitDescriptor
from kitops_flows.errors import DigestMismatchError
from kitops_flows.unpack_memory import read_small_layers
from kitops_flows_dagster import KitRegistryResource, ModelKitIOManager

pytestmark = [pytest.mark.dagster, pytest.mark.integration]


def _resource(host: str, home: Path) -> KitRegistryResource:
    return KitRegistryResource(registry=host, plain_http=True, kitops_home=str(home), repository_prefix="mem")


def _descriptor(result: dg.ExecuteInProcessResult, key: str) -> ModelKitDescriptor:
    found = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey(key)]
    return ModelKitDescriptor.from_dict(found[-1].materialization.metadata["modelkit"].value)  # type: ignore[arg-type]


def test_small_values_load_from_memory_large_ones_from_the_unpack_cache(registry, proxy_factory,  # noqa: ANN001
                                                                        kitops_home: Path, tmp_path: Path) -> None:
    proxy = proxy_factory(registry.host)
    producer, consumer = _resource(proxy.host, kitops_home / "producer"), _resource(proxy.host, kitops_home / "consumer")
    payload = os.urandom(64 << 10)

    @dg.asset(metadata={"kitops": {"layer": "dataset", "serializer": "json"}})
    def small() -> dict:
        return {"rows": [1, 2, 3], "note": "line\r\nbreak"}

    @dg.asset
    def large() -> bytes:
        return payload

    @dg.asset
    def both(small: dict, large: bytes) -> int:
        assert small == {"rows": [1, 2, 3], "note": "line\r\nbreak"} and large == payload
        return len(small["rows"]) + len(large)

    instance = dg.DagsterInstance.ephemeral()
    made = dg.materialize([small, large], resources={"io_manager": ModelKitIOManager(kitops=producer)},
                          instance=instance)
    small_desc, large_desc = _descriptor(made, "small"), _descriptor(made, "large")
    unpacked = tmp_path / "unpacked"
    io = ModelKitIOManager(kitops=consumer, memory_load_bytes=16 << 10, unpack_dir=str(unpacked))

    result = dg.materialize([small, large, both], resources={"io_manager": io}, instance=instance, selection=[both])
    assert result.output_for_node("both") == 3 + len(payload)
    # only the value above memory_load_bytes went to a directory
    assert sorted(p.name for p in unpacked.iterdir()) == [large_desc.digest.replace(":", "-")]
    small_blob = small_desc.layer("dataset")
    assert proxy.bytes_for(f"/blobs/{small_blob.digest}", method="GET") == small_blob.size

    fetched = proxy.bytes_for("/blobs/", method="GET")
    again = dg.materialize([small, large, both], resources={"io_manager": io}, instance=instance, selection=[both])
    assert again.output_for_node("both") == 3 + len(payload)
    assert proxy.bytes_for("/blobs/", method="GET") == fetched  # the store's blob cache serves the second load

    # the layer is read through the verifying reader: altered bytes in the store are refused, not parsed
    store = consumer.get_client().store
    path = store.blob_path(small_blob.digest)
    os.chmod(path, 0o644)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"[1, 2, 3]", b"[9, 9, 9]") if b"[1, 2, 3]" in data else data[:-1] + b"!")
    bad = dg.materialize([small, large, both], resources={"io_manager": io}, instance=instance, selection=[both],
                         raise_on_error=False)
    assert not bad.success
    failure = next(e for e in bad.all_events if e.is_step_failure)
    assert small_blob.digest in str(failure.event_specific_data.error)


def test_read_small_layers_bounds_and_verifies(kitops_home: Path, tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "params.json").write_text('{"lr": 0.1}')
    (job / "Kitfile").write_text("manifestVersion: 1.0.0\npackage:\n  name: p\ncode:\n  - path: params.json\n")
    kit = KitOpsClient.from_home(kitops_home)
    desc = kit.pack(job, reference="p:v1")
    read = read_small_layers(kit, desc.reference, ["code"])
    assert read is not None and read.files == {"params.json": b'{"lr": 0.1}'}
    assert read.file_of(read.layers[0]) == b'{"lr": 0.1}'
    assert read_small_layers(kit, desc.reference, ["code"], max_bytes=10) is None  # too large: unpack instead
    assert read_small_layers(kit, desc.reference, ["model"]) is None  # nothing selected
    assert read_small_layers(kit, desc.reference, None, accept=lambda planned: False) is None
    layer = desc.layer("code")
    path = kit.store.blob_path(layer.digest)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes().replace(b"0.1", b"0.9"))
    with pytest.raises(DigestMismatchError):
        read_small_layers(kit, desc.reference, ["code"])
