"""Prefect re-runs follow content, against the session's Prefect server and a real registry behind a counting
proxy: a retrain flow (pack, push and promote as separate tasks) run again with unchanged inputs gives one digest,
no layer upload and no second pushed/promoted event, also on a fresh worker with immutable tags; a cached pack whose
ModelKit is gone is packed again instead of failing the push forever; a changed input gives one new event each.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prefect")

from prefect import flow  # noqa: E402
from test_prefect import make_context, wait_for_events  # noqa: E402

from kitops_flows.api import KitOpsClient, LocalStore, ModelKitDescriptor  # noqa: E402
from kitops_flows_prefect import (  # noqa: E402
    PROMOTED,
    PUSHED,
    KitOpsRegistry,
    pack_modelkit,
    promote_modelkit,
    push_modelkit,
)

pytestmark = [pytest.mark.prefect, pytest.mark.integration]


@flow
def retrain(context: str, block: KitOpsRegistry) -> tuple[str, ModelKitDescriptor]:
    state = pack_modelkit(context, ":nightly", registry=block, return_state=True)
    mk = state.result()
    pushed = push_modelkit(mk, registry=block)
    promote_modelkit(pushed.pinned, "staging", registry=block)
    return state.name, pushed


@flow
def pack_only(context: str, block: KitOpsRegistry) -> tuple[str, ModelKitDescriptor]:
    state = pack_modelkit(context, ":local", registry=block, return_state=True)
    return state.name, state.result()


def _uploads(proxy: Any) -> list[str]:
    return [r.path for r in proxy.matching("/blobs/uploads/", "POST")]


def test_retrain_flow_rerun_with_unchanged_inputs_pushes_and_announces_nothing(
        prefect_server: None, registry: Any, proxy_factory: Any, tmp_path: Path) -> None:
    proxy = proxy_factory(registry.host)
    resource = f"oci://{proxy.host}/prefect/rerun"

    def block(home: str, immutable: bool = False) -> KitOpsRegistry:
        return KitOpsRegistry(registry=proxy.host, plain_http=True, repository="prefect/rerun",
                              kitops_home=str(tmp_path / home), immutable_tags=immutable)

    name1, first = retrain(str(make_context(tmp_path / "run1")), block("worker"))
    assert name1 == "Completed"
    assert len(wait_for_events(PUSHED, resource)) == 1 and len(wait_for_events(PROMOTED, resource)) == 1

    proxy.reset()  # the next night: same files (another job dir), same worker
    name2, second = retrain(str(make_context(tmp_path / "run2")), block("worker"))
    assert name2 == "Cached" and second.digest == first.digest
    assert _uploads(proxy) == [] and proxy.count("/manifests/", "PUT") == 0

    # a fresh worker container (empty store) with immutable tags: the cache still names a ModelKit the
    # registry holds, the push is a no-op instead of "not found in the local store", nothing is announced
    proxy.reset()
    shutil.rmtree(tmp_path / "worker")
    name3, third = retrain(str(make_context(tmp_path / "run3")), block("worker", immutable=True))
    assert third.digest == first.digest and name3 == "Cached"
    assert _uploads(proxy) == [] and proxy.count("/manifests/", "PUT") == 0
    assert len(wait_for_events(PUSHED, resource, count=2, timeout=5)) == 1
    assert len(wait_for_events(PROMOTED, resource, count=2, timeout=5)) == 1

    # a changed input: a new digest, one more pushed and one more promoted event
    name4, fourth = retrain(str(make_context(tmp_path / "run4", weights="[0.3, 0.4]")), block("worker"))
    assert name4 == "Completed" and fourth.digest != first.digest
    assert [e.resource["kitops.digest"] for e in wait_for_events(PUSHED, resource, count=2)] \
        == [fourth.digest, first.digest]
    assert len(wait_for_events(PROMOTED, resource, count=2)) == 2


def test_a_cached_pack_whose_modelkit_is_gone_is_packed_again(prefect_server: None, registry: Any,
                                                              tmp_path: Path) -> None:
    block = KitOpsRegistry(registry=registry.host, plain_http=True, repository="prefect/gone",
                           kitops_home=str(tmp_path / "home"))
    name1, first = pack_only(str(make_context(tmp_path / "c1")), block)
    name2, _ = pack_only(str(make_context(tmp_path / "c2")), block)
    assert (name1, name2) == ("Completed", "Cached")
    shutil.rmtree(tmp_path / "home")  # never pushed, and the store is gone: the cached result names nothing
    name3, again = pack_only(str(make_context(tmp_path / "c3")), block)
    assert name3 == "Completed"
    assert KitOpsClient(store=LocalStore(tmp_path / "home")).describe(again.pinned).digest == again.digest
    name4, _ = pack_only(str(make_context(tmp_path / "c4")), block)
    assert name4 == "Cached"  # reachable again: the new result is the cache entry
