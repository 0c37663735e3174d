"""``ModelKitTrigger``: wait, in the triggerer, until a tag exists or moves to a new digest.

The registry is polled with the synchronous client in a worker thread (``asyncio.to_thread``),
so the triggerer's event loop never blocks on HTTP.

>>> ModelKitTrigger("reg.example.com/team/churn:staging", previous_digest="sha256:…")   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import KitopsError
from kitops_flows.reference import parse_reference

from .hooks import KitOpsHook, RegistrySettings, settings_from_connection


def probe_tag(client: KitOpsClient, reference: str, previous_digest: str | None = None) -> dict[str, Any] | None:
    """``{"reference", "digest", "pinned", "previous_digest"}`` once ``reference`` resolves to a digest
    other than ``previous_digest`` in its registry; ``None`` while it does not exist or has not moved.

    Errors other than "not found" (bad credentials, unreachable registry) raise.
    """
    ref = parse_reference(reference)
    if ref.is_local_only:
        raise KitopsError(f"cannot watch {reference}: it names no registry (use registry/repository:tag)")
    digest = client.registry_client(ref.registry).manifest_digest(ref.repository, ref.reference)
    if digest is None or digest == previous_digest:
        return None
    return {
        "reference": reference,
        "digest": digest,
        "pinned": ref.with_reference(digest).display(),
        "previous_digest": previous_digest,
    }


class ModelKitTrigger(BaseTrigger):
    """Fires once ``reference`` exists in its registry (and differs from ``previous_digest``).

    Event payload: ``{"status": "success", "modelkit": probe_tag(...)}`` or
    ``{"status": "error", "message": ...}``, also when it gives up: after ``timeout`` seconds or
    ``max_attempts`` registry checks (None: no limit). Cancellation (the triggerer stopping, the task
    being cleared or SIGTERM) stops it at once: the pending wait is cancelled, not finished.
    """

    def __init__(self, reference: str, *, previous_digest: str | None = None,
                 kitops_conn_id: str | None = KitOpsHook.default_conn_name, kitops_home: str | None = None,
                 poke_interval: float = 60.0, timeout: float | None = None, max_attempts: int | None = None) -> None:
        super().__init__()
        self.reference = reference
        self.previous_digest = previous_digest
        self.kitops_conn_id = kitops_conn_id
        self.kitops_home = kitops_home
        self.poke_interval = poke_interval
        self.timeout = timeout
        self.max_attempts = max_attempts

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"reference": self.reference, "previous_digest": self.previous_digest,
             "kitops_conn_id": self.kitops_conn_id, "kitops_home": self.kitops_home,
             "poke_interval": self.poke_interval, "timeout": self.timeout, "max_attempts": self.max_attempts},
        )

    async def _client(self) -> KitOpsClient:
        from airflow.sdk.exceptions import AirflowNotFoundException

        settings = RegistrySettings()
        if self.kitops_conn_id is not None:
            try:  # the async lookup: a sync one from the event loop can deadlock the triggerer
                settings = settings_from_connection(await KitOpsHook.aget_connection(self.kitops_conn_id))
            except AirflowNotFoundException:
                if self.kitops_conn_id != KitOpsHook.default_conn_name:
                    raise  # a named connection must exist; only the default one may be absent
        return settings.client(kitops_home=self.kitops_home)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        loop = asyncio.get_running_loop()
        deadline = None if self.timeout is None else loop.time() + self.timeout
        attempts = 0
        try:
            client = await self._client()
            while True:
                attempts += 1
                found = await asyncio.to_thread(probe_tag, client, self.reference, self.previous_digest)
                if found is not None:
                    yield TriggerEvent({"status": "success", "modelkit": found})
                    return
                if self.max_attempts is not None and attempts >= self.max_attempts:
                    yield self._gave_up(f"{attempts} checks (max_attempts)")
                    return
                if deadline is not None and loop.time() + self.poke_interval > deadline:
                    yield self._gave_up(f"{self.timeout:g} s (timeout)")
                    return
                self.log.info("%s: not there yet (or unchanged); next check in %ss", self.reference,
                              self.poke_interval)
                await asyncio.sleep(self.poke_interval)
        except KitopsError as e:
            yield TriggerEvent({"status": "error", "message": f"watching {self.reference}: {e}"})
        except asyncio.CancelledError:
            self.log.info("stopped watching %s (cancelled after %d checks)", self.reference, attempts)
            raise

    def _gave_up(self, after: str) -> TriggerEvent:
        state = f"did not move from {self.previous_digest}" if self.previous_digest else "does not exist"
        return TriggerEvent({"status": "error", "message": f"gave up watching {self.reference} after {after}: "
                                                          f"the tag {state}"})


__all__ = ["ModelKitTrigger", "probe_tag"]
