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
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from kitops_flows.api import KitOpsClient, LocalStore
from kitops_flows.errors import KitopsError, NotFoundError
from kitops_flows.progress import ProgressCallback
from kitops_flows.registry import RegistryCredentials
from kitops_flows.worker_store import render_kitops_home

CONN_TYPE = "kitops"
#: The ``extra`` keys a kitops connection understands.
EXTRA_FIELDS = ("plain_http", "tls_verify", "kitops_home", "repository", "immutable_tags")


def _flag(value: Any, default: bool, name: str) -> bool:
    """Read a boolean extra: the UI stores strings, JSON connections real booleans."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise KitopsError(f"connection extra {name}={value!r} is not a boolean: use true or false")


@dataclass(frozen=True)
class RegistrySettings:
    """What a connection says about a registry; ``client()`` builds the KitOpsClient.

    ``credentials`` is kept out of ``repr`` (RegistryCredentials hides the password anyway).
    """

    registry: str | None = None
    credentials: RegistryCredentials | None = field(default=None, repr=False)
    plain_http: bool = False
    tls_verify: bool = True
    kitops_home: str | None = None
    repository: str | None = None
    immutable_tags: bool = False

    @classmethod
    def from_connection(cls, conn: Any) -> RegistrySettings:
        """Read an Airflow ``Connection`` of type ``kitops`` or ``docker``."""
        extra: Mapping[str, Any] = conn.extra_dejson or {}

        def get(name: str) -> Any:  # the UI form may store "extra__kitops__<name>"
            return extra.get(name, extra.get(f"extra__{CONN_TYPE}__{name}"))

        registry, scheme = _split_host(conn.host or "", conn.port)
        plain_http = _flag(get("plain_http"), scheme == "http", "plain_http")
        creds = RegistryCredentials(conn.login, conn.password or "") if conn.login else None
        return cls(
            registry=registry,
            credentials=creds,
            plain_http=plain_http,
            tls_verify=_flag(get("tls_verify"), True, "tls_verify"),
            kitops_home=get("kitops_home") or None,
            repository=(get("repository") or "").strip("/") or None,
            immutable_tags=_flag(get("immutable_tags"), False, "immutable_tags"),
        )

    def client(self, *, kitops_home: str | Path | None = None,
               progress: ProgressCallback | None = None) -> KitOpsClient:
        """A KitOpsClient for this registry; credentials are passed in memory only."""
        home = kitops_home or self.kitops_home
        store = LocalStore(home) if home else LocalStore.default()
        creds = {self.registry: self.credentials} if self.registry and self.credentials else None
        return KitOpsClient(
            store=store, plain_http=self.plain_http, tls_verify=self.tls_verify, credentials=creds,
            immutable_tags=self.immutable_tags, progress=progress,
        )

    def qualify(self, reference: str | None) -> str:
        """Complete a reference with the connection's registry and default repository.

        ``None`` -> ``registry/repository``; ``":v3"`` -> ``registry/repository:v3``;
        ``"@sha256:…"`` -> pinned in the default repository; any other reference is returned as is
        (a reference without a registry part stays local-only, as in kit).
        """
        if reference is None or reference.startswith((":", "@")):
            if not self.registry or not self.repository:
                raise KitopsError(
                    f"no ModelKit reference given and the connection defines no default "
                    f"{'repository' if self.registry else 'registry'}: pass reference='registry/repo:tag' "
                    "or set host and extra.repository on the connection"
                )
            return f"{self.registry}/{self.repository}{reference or ''}"
        return reference


def _split_host(host: str, port: int | None) -> tuple[str | None, str | None]:
    """``http://reg:5000/v2/`` -> ``("reg:5000", "http")``; registry hosts carry no scheme or path."""
    host = host.strip()
    if not host:
        return None, None
    scheme = None
    if "://" in host:
        parts = urllib.parse.urlsplit(host)
        scheme, host = parts.scheme.lower(), parts.netloc
    host = host.split("/", 1)[0]
    if port and ":" not in host:
        host = f"{host}:{port}"
    return host or None, scheme


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
                self._settings = RegistrySettings.from_connection(self.get_connection(self.kitops_conn_id))
                mask_credentials(self._settings)
        return self._settings

    def get_conn(self) -> KitOpsClient:
        return self.get_client()

    def get_client(self, **task_fields: object) -> KitOpsClient:
        """A fresh KitOpsClient (one per task: it caches registry sessions, not global state).

        ``kitops_home`` (the hook's, else the connection's) is a template filled with ``task_fields``
        (see ``kitops_flows.worker_store``): ``/scratch/kitops/{task_id}``, or ``ephemeral``.
        """
        home = render_kitops_home(self.kitops_home or self.settings.kitops_home, **task_fields)
        return self.settings.client(kitops_home=home, progress=None)

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


__all__ = ["CONN_TYPE", "KitOpsHook", "RegistrySettings", "mask_credentials"]


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
