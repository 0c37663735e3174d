"""``KitOpsHook``: an Airflow connection to an OCI registry, turned into a ``KitOpsClient``.

Connection type ``kitops`` (a ``docker`` connection works too: same host/login/password):

============  ===============================================================================
host          the registry: ``reg.example.com``, ``127.0.0.1:5000`` or ``http://127.0.0.1:5000``
port          optional, appended to host
login         username (empty for anonymous pulls)
password      password or token (masked in logs; never written to disk)
extra         ``plain_http`` (bool), ``tls_verify`` (bool), ``kitops_home`` (local store path),
              ``repository`` (default repository, e.g. ``team/churn``), ``immutable_tags`` (bool)
============  ===============================================================================

>>> hook = KitOpsHook("kitops_default")                                   # doctest: +SKIP
>>> kit = hook.get_client()                                               # doctest: +SKIP
>>> kit.push("reg.example.com/team/churn:v3")                            # doctest: +SKIP

As an environment variable::

    AIRFLOW_CONN_KITOPS_DEFAULT='{"conn_type": "kitops", "host": "reg.example.com", "login": "ci",
                                  "password": "…", "extra": {"repository": "team/churn"}}'
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import KitopsError, NotFoundError
from kitops_flows.settings import RegistrySettings, parse_flag, split_address

CONN_TYPE = "kitops"
#: The ``extra`` keys a kitops connection understands.
EXTRA_FIELDS = ("plain_http", "tls_verify", "kitops_home", "repository", "immutable_tags")


def settings_from_connection(conn: Any) -> RegistrySettings:
    """The core's RegistrySettings from an Airflow ``Connection`` of type ``kitops`` or ``docker``."""
    extra: Mapping[str, Any] = conn.extra_dejson or {}

    def get(name: str) -> Any:  # the UI form may store "extra__kitops__<name>"
        return extra.get(name, extra.get(f"extra__{CONN_TYPE}__{name}"))

    _, scheme = split_address(conn.host, conn.port)
    return RegistrySettings.parse(
        conn.host, port=conn.port, username=conn.login or None, password=conn.password or "",
        plain_http=parse_flag(get("plain_http"), scheme == "http", "connection extra plain_http"),
        tls_verify=parse_flag(get("tls_verify"), True, "connection extra tls_verify"),
        kitops_home=get("kitops_home") or None, repository=get("repository") or None,
        immutable_tags=parse_flag(get("immutable_tags"), False, "connection extra immutable_tags"),
        origin=f"the connection {conn.conn_id}",
    )


class KitOpsHook(BaseHook):
    """Connection to an OCI registry (and a local ModelKit store) for kitops-flows.

    :param kitops_conn_id: a ``kitops`` or ``docker`` connection; ``None`` uses no connection
        (the local store, and credentials from env vars / kit's or docker's config files).
    :param kitops_home: overrides the connection's local store path.
    """

    conn_name_attr = "kitops_conn_id"
    default_conn_name = "kitops_default"
    conn_type = CONN_TYPE
    hook_name = "KitOps (OCI registry)"

    def __init__(self, kitops_conn_id: str | None = default_conn_name, *, kitops_home: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kitops_conn_id = kitops_conn_id
        self.kitops_home = kitops_home
        self._settings: RegistrySettings | None = None

    @property
    def settings(self) -> RegistrySettings:
        """The connection's registry settings (read once; the password is registered for masking)."""
        if self._settings is None:
            if self.kitops_conn_id is None:
                self._settings = RegistrySettings()
            elif self.kitops_conn_id == self.default_conn_name and not _connection_exists(self.kitops_conn_id):
                # like the Amazon provider without aws_default: local store, credentials from env/config files
                self.log.info("no %s connection: using the local store and default registry credentials",
                              self.kitops_conn_id)
                self._settings = RegistrySettings()
            else:
                self._settings = settings_from_connection(self.get_connection(self.kitops_conn_id))
                mask_credentials(self._settings)
        return self._settings

    def get_conn(self) -> KitOpsClient:
        return self.get_client()

    def get_client(self, **task_fields: object) -> KitOpsClient:
        """A fresh KitOpsClient (one per task: it caches registry sessions, not global state).

        ``kitops_home`` (the hook's, else the connection's) is a template filled with ``task_fields``
        (see ``kitops_flows.worker_store``): ``/scratch/kitops/{task_id}``, or ``ephemeral``.
        """
        return self.settings.client(kitops_home=self.kitops_home, **task_fields)

    def qualify(self, reference: str | None) -> str:
        """See ``RegistrySettings.qualify``."""
        return self.settings.qualify(reference)

    def test_connection(self) -> tuple[bool, str]:
        """Contact the registry with the connection's credentials (the UI's *Test* button)."""
        try:
            settings = self.settings
            if not settings.registry:
                return False, "the connection has no host: set it to the registry, e.g. reg.example.com"
            client = settings.client(kitops_home=self.kitops_home)
            registry = client.registry_client(settings.registry)
            registry.ping()
            what = ""
            if settings.repository:
                try:
                    what = f", repository {settings.repository} has {len(registry.list_tags(settings.repository))} tag(s)"
                except NotFoundError:
                    what = f", repository {settings.repository} is empty so far"
        except KitopsError as e:
            return False, str(e)
        who = f" as {settings.credentials.username}" if settings.credentials else " anonymously"
        return True, f"registry {settings.registry} reachable{who}{what}"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        from .hooks_ui import ui_field_behaviour

        return ui_field_behaviour()


def _connection_exists(conn_id: str) -> bool:
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def mask_credentials(settings: RegistrySettings) -> None:
    """Register the password (and its basic-auth form) with Airflow's secrets masker: *** in every log."""
    if settings.credentials is None or not settings.credentials.secret_values():
        return
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        logging.getLogger(__name__).debug("secrets masker unavailable")
        return
    for secret in settings.credentials.secret_values():
        mask_secret(secret)


__all__ = ["CONN_TYPE", "KitOpsHook", "RegistrySettings", "mask_credentials", "settings_from_connection"]


class KitOpsHookMixin:
    """``hook`` and ``client`` for operators and sensors that carry ``kitops_conn_id`` / ``kitops_home``."""

    kitops_conn_id: str | None
    kitops_home: str | None
    aws_conn_id: str | None = None

    @cached_property
    def hook(self) -> KitOpsHook:
        return KitOpsHook(self.kitops_conn_id, kitops_home=self.kitops_home or None)

    @cached_property
    def client(self) -> KitOpsClient:
        from .aws import s3_client_factory
        from .stores import task_fields

        client = self.hook.get_client(**task_fields(self))
        client.s3_session = s3_client_factory(self.aws_conn_id)  # None: boto3's default chain
        return client
