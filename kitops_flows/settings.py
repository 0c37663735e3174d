"""One registry's settings, as every plugin's connection, block or resource describes them.

The Airflow connection, the Prefect block and the Dagster resource each map their fields to a
``RegistrySettings``; parsing the address, completing references and building the client happen
here, once.

>>> s = RegistrySettings.parse("http://127.0.0.1:5000/", repository="team/churn", origin="the test settings")
>>> s.registry, s.plain_http, s.qualify(":v3")
('127.0.0.1:5000', True, '127.0.0.1:5000/team/churn:v3')
>>> RegistrySettings.parse("reg.example.com", port=5443).registry
'reg.example.com:5443'
>>> RegistrySettings(origin="the test settings").qualify(None)
Traceback (most recent call last):
...
kitops_flows.errors.KitopsError: no ModelKit reference given (None) and the test settings defines no default registry: pass reference='registry/repo:tag' or set the registry and its default repository
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .api import KitOpsClient
from .errors import KitopsError
from .progress import ProgressCallback
from .registry import RegistryCredentials
from .worker_store import EPHEMERAL, render_kitops_home

__all__ = ["RegistrySettings", "parse_flag", "split_address"]


def split_address(address: str | None, port: int | None = None) -> tuple[str | None, str | None]:
    """``http://reg:5000/v2/`` -> ``("reg:5000", "http")``: a registry is a host[:port], without scheme or path.

    >>> split_address("https://ghcr.io/"), split_address("127.0.0.1", 5000), split_address("")
    (('ghcr.io', 'https'), ('127.0.0.1:5000', None), (None, None))
    """
    text = (address or "").strip()
    if not text:
        return None, None
    scheme = None
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise KitopsError(f"registry {text!r}: use a host such as registry.example.com, or an http(s):// URL")
        text = parts.netloc
    host = text.split("/", 1)[0]
    if port and ":" not in host:
        host = f"{host}:{port}"
    return host or None, scheme


def parse_flag(value: Any, default: bool, name: str) -> bool:
    """A boolean setting as forms store it (``"true"``, ``"0"``…) or a real bool; empty means ``default``.

    >>> parse_flag("Yes", False, "plain_http"), parse_flag("", True, "tls_verify")
    (True, True)
    """
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise KitopsError(f"{name}={value!r} is not a boolean: use true or false")


@dataclass(frozen=True)
class RegistrySettings:
    """A registry (or none: only the local store), credentials for it, and transfer settings.

    ``kitops_home`` is a store path or a template (``worker_store.render_kitops_home``).
    ``origin`` names where the settings come from in error messages ("the connection kitops_default").
    ``credentials`` is kept out of ``repr`` (``RegistryCredentials`` hides the password anyway).
    """

    registry: str | None = None
    credentials: RegistryCredentials | None = field(default=None, repr=False)
    plain_http: bool = False
    tls_verify: bool = True
    kitops_home: str | os.PathLike[str] | None = None
    repository: str | None = None
    immutable_tags: bool = False
    concurrency: int = 4
    ca_cert: str | os.PathLike[str] | None = None  # a PEM bundle of CAs to trust for the registry
    login_hint: str | None = None  # what to fix when the registry refuses the credentials (never the secret)
    origin: str = field(default="the registry settings", compare=False)

    @classmethod
    def parse(cls, address: str | None, *, port: int | None = None, plain_http: bool | None = None,
              username: str | None = None, password: str | None = None, repository: str | None = None,
              **options: Any) -> RegistrySettings:
        """Settings from an address that may carry a scheme (``http://`` means plain HTTP unless
        ``plain_http`` says otherwise) and a username/password (no username: no credentials here, so
        env vars, kit's and docker's config files apply, as with kit)."""
        registry, scheme = split_address(address, port)
        credentials = RegistryCredentials(username, password or "") if username else None
        return cls(registry=registry, credentials=credentials,
                   plain_http=scheme == "http" if plain_http is None else plain_http,
                   repository=(repository or "").strip("/") or None, **options)

    def client(self, *, kitops_home: str | os.PathLike[str] | None = None, progress: ProgressCallback | None = None,
               s3_session: object | None = None, cleanup: ExitStack | None = None, ephemeral: bool = False,
               **task_fields: object) -> KitOpsClient:
        """A new KitOpsClient for this registry; the credentials apply to it only, in memory only.

        ``kitops_home`` (else the settings') is rendered with ``task_fields``; an ``ephemeral`` store
        is removed when ``cleanup`` closes, and pushing packs stream past it (``ephemeral_store``).
        ``ephemeral=True`` says a ``kitops_home`` path given here is such a store, rendered already.
        """
        template = kitops_home or self.kitops_home
        ephemeral = ephemeral or str(template or "").strip() == EPHEMERAL
        home: Path | None = render_kitops_home(template, cleanup=cleanup, **task_fields)
        creds = {self.registry: self.credentials} if self.registry and self.credentials else None
        return KitOpsClient.from_home(
            home, plain_http=self.plain_http, tls_verify=self.tls_verify, credentials=creds,
            immutable_tags=self.immutable_tags, concurrency=self.concurrency, progress=progress,
            s3_session=s3_session, ca_cert=self.ca_cert, login_hint=self.login_hint, ephemeral_store=ephemeral,
        )

    def qualify(self, reference: str | None) -> str:
        """Complete a reference with the registry and default repository.

        ``None`` -> ``registry/repository``; ``":v3"`` -> ``registry/repository:v3``;
        ``"@sha256:…"`` -> pinned in the default repository; any other reference is returned as is
        (a reference without a registry part stays local-only, as in kit).
        """
        if reference is not None and not reference.startswith((":", "@")):
            return reference
        if not self.registry or not self.repository:
            missing = "repository" if self.registry else "registry"
            raise KitopsError(
                f"no ModelKit reference given ({reference!r}) and {self.origin} defines no default {missing}: "
                "pass reference='registry/repo:tag' or set the registry and its default repository"
            )
        return f"{self.registry}/{self.repository}{reference or ''}"
