"""``ModelKitSensor``: wait until a ModelKit tag exists, or moves to a new digest.

>>> ModelKitSensor(task_id="wait_for_staging", reference="reg.example.com/team/churn:staging",
...                previous_digest="{{ ti.xcom_pull('deployed')['digest'] }}", deferrable=True)  # doctest: +SKIP

The sensor's XCom is ``{"reference", "digest", "pinned", "previous_digest"}``: consume ``pinned``.
With ``deferrable=True`` the wait happens in the triggerer (``ModelKitTrigger``), not in a worker slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowException

from .hooks import KitOpsHook, KitOpsHookMixin
from .signing import check_signature
from .triggers import ModelKitTrigger, probe_tag

if TYPE_CHECKING:
    from airflow.sdk import Context


class ModelKitSensor(KitOpsHookMixin, BaseSensorOperator):
    """Succeeds when ``reference`` (``registry/repo:tag``) exists and differs from ``previous_digest``.

    :param reference: the tag to watch (``":tag"`` = the connection's default repository).
    :param previous_digest: the digest already seen; empty or ``None`` = wait only for existence.
    :param deferrable: wait in the triggerer (``operators.default_deferrable`` by default).
    :param verify_key: public key the new ModelKit must be signed with (default: the connection's
        ``verify_key`` extra, if any): an unsigned or untrusted one fails the task instead of succeeding.
    """

    template_fields: Sequence[str] = ("kitops_conn_id", "kitops_home", "previous_digest", "reference", "verify_key")
    ui_color = "#dfe9ff"

    def __init__(self, *, reference: str, previous_digest: str | None = None,
                 kitops_conn_id: str | None = KitOpsHook.default_conn_name, kitops_home: str | None = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
                 verify_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reference = reference
        self.previous_digest = previous_digest
        self.kitops_conn_id = kitops_conn_id
        self.kitops_home = kitops_home
        self.deferrable = deferrable
        self.verify_key = verify_key

    def _previous(self) -> str | None:
        # a template that pulled nothing renders as "" or "None"
        return self.previous_digest if self.previous_digest not in (None, "", "None") else None

    def _trusted(self, found: dict[str, Any]) -> dict[str, Any]:
        """``found`` with ``signed_by`` once its signature passed (SignatureError fails the task)."""
        signed_by = check_signature(self.hook, self.client, found["pinned"], self.verify_key)
        return {**found, "signed_by": signed_by} if signed_by else found

    def poke(self, context: Context) -> PokeReturnValue | bool:
        reference = self.hook.qualify(self.reference)
        found = probe_tag(self.client, reference, self._previous())
        if found is None:
            self.log.info("%s: not there yet%s", reference,
                          f" (still {self._previous()})" if self._previous() else "")
            return False
        self.log.info("%s is now %s", reference, found["digest"])
        return PokeReturnValue(is_done=True, xcom_value=self._trusted(found))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        reference = self.hook.qualify(self.reference)
        found = probe_tag(self.client, reference, self._previous())
        if found is not None:
            return self._trusted(found)
        self.defer(
            trigger=ModelKitTrigger(reference, previous_digest=self._previous(), kitops_conn_id=self.kitops_conn_id,
                                    kitops_home=str(self.client.store.home),  # this task's store, template filled
                                    poke_interval=self.poke_interval,
                                    timeout=float(self.timeout)),  # the trigger gives up when the sensor would
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        if not event or event.get("status") != "success":
            message = (event or {}).get("message", "the trigger ended without an event")
            raise AirflowException(f"{self.task_id}: {message}")
        self.log.info("%s is now %s", event["modelkit"]["reference"], event["modelkit"]["digest"])
        return self._trusted(event["modelkit"])


__all__ = ["ModelKitSensor"]
