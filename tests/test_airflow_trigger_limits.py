"""``ModelKitTrigger`` ends: it gives up after ``max_attempts`` checks or ``timeout`` seconds with an error event
naming the tag, and cancellation (triggerer stop, SIGTERM) stops it during its wait. Real registry."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from kitops_flows_airflow.triggers import ModelKitTrigger

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


@pytest.fixture
def conn(registry, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: ANN001
    monkeypatch.setenv("AIRFLOW_CONN_KITOPS_WATCH", json.dumps({"conn_type": "kitops", "host": f"http://{registry.host}"}))
    return "kitops_watch"


async def _events(trigger: ModelKitTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


@pytest.mark.parametrize(("limits", "reason"), [({"max_attempts": 3}, "3 checks (max_attempts)"),
                                                ({"timeout": 0.3}, "0.3 s (timeout)")])
def test_trigger_gives_up_with_an_error_event(registry, conn: str, kitops_home, limits: dict,  # noqa: ANN001
                                              reason: str) -> None:
    ref = f"{registry.host}/team/never:there"
    trigger = ModelKitTrigger(ref, kitops_conn_id=conn, kitops_home=str(kitops_home), poke_interval=0.05, **limits)
    trigger = ModelKitTrigger(**trigger.serialize()[1])  # the limits survive the trip through the triggerer's DB
    events = asyncio.run(asyncio.wait_for(_events(trigger), timeout=60))
    assert events == [{"status": "error",
                       "message": f"gave up watching {ref} after {reason}: the tag does not exist"}]


def test_cancelling_the_trigger_stops_it_during_its_wait(registry, conn: str, kitops_home) -> None:  # noqa: ANN001
    trigger = ModelKitTrigger(f"{registry.host}/team/never:there", kitops_conn_id=conn,
                              kitops_home=str(kitops_home), poke_interval=3600)

    async def cancel_after_first_check() -> asyncio.Task:
        task = asyncio.create_task(_events(trigger))
        await asyncio.sleep(1.0)  # the first registry check is done; it now waits an hour
        task.cancel()
        await asyncio.wait([task], timeout=30)
        return task

    task = asyncio.run(cancel_after_first_check())
    assert task.done() and task.cancelled()
