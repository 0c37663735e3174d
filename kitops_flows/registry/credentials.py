"""Registry credentials: where they come from and where ``login`` keeps them.

``resolve_credentials(registry, kitops_home=...)`` looks, in this order, at:

1. ``KITOPS_REGISTRY_USERNAME`` / ``KITOPS_REGISTRY_PASSWORD`` (both set). If ``KITOPS_REGISTRY``
   is also set, they apply only to that registry host; otherwise to every registry. Meant for CI
   and orchestrator workers, where a secret is injected as environment variables.
2. kit's ``$KITOPS_HOME/credentials.json`` (what ``kit login`` and ``kitops-flows login`` write).
3. ``$DOCKER_CONFIG/config.json``.
4. ``~/.docker/config.json``.

Files 2-4 use Docker's config.json format: ``{"auths": {"host": {"auth": base64("user:pass")}}}``
(``username``/``password`` fields are read too), plus ``credHelpers`` (per host) and
``credsStore`` (default), which run ``docker-credential-<name> get`` when that program exists and
are skipped otherwise. The first source that knows the registry wins::

    creds = resolve_credentials("ghcr.io", kitops_home=Path("~/.local/share/kitops").expanduser())
    if creds:
        print(creds)          # RegistryCredentials(username='me', password=***)
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from ..errors import AuthenticationError

LOG = logging.getLogger("kitops_flows.registry")

ENV_USERNAME = "KITOPS_REGISTRY_USERNAME"
ENV_PASSWORD = "KITOPS_REGISTRY_PASSWORD"
ENV_REGISTRY = "KITOPS_REGISTRY"
CREDENTIALS_FILE = "credentials.json"
DOCKER_HUB_KEY = "https://index.docker.io/v1/"  # the key docker and oras use for Docker Hub
_DOCKER_HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io"}
HELPER_TIMEOUT = 15.0


@dataclass(frozen=True)
class RegistryCredentials:
    """A username and password (or token) for one registry; the password never shows in repr/str."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"RegistryCredentials(username={self.username!r}, password=***)"

    __str__ = __repr__

    def basic_auth_value(self) -> str:
        """The ``Authorization`` header value for HTTP basic auth."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def secret_values(self) -> tuple[str, ...]:
        """Every form of the secret that could reach a log: the password and the basic-auth token.

        Orchestrator plugins hand these to their log maskers (Airflow's ``mask_secret``, our Prefect redactor).
        """
        if not self.password:
            return ()
        return self.password, self.basic_auth_value().removeprefix("Basic ")


def server_key(registry: str) -> str:
    """The ``auths`` key kit/oras/docker use for a registry host (Docker Hub has a legacy URL)."""
    return DOCKER_HUB_KEY if registry.lower() in _DOCKER_HUB_HOSTS else registry


def resolve_credentials(
    registry: str, *, kitops_home: Path | str | None, env: Mapping[str, str] | None = None
) -> RegistryCredentials | None:
    """Credentials for ``registry`` from env vars, kit's file, then docker's config (see module doc)."""
    env = os.environ if env is None else env
    user, password = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
    only_for = env.get(ENV_REGISTRY)
    if user and password is not None and (not only_for or _same_host(only_for, registry)):
        return RegistryCredentials(user, password)
    for path in _config_files(kitops_home, env):
        found = _from_config_file(path, registry)
        if found is not None:
            return found
    return None


def _config_files(kitops_home: Path | str | None, env: Mapping[str, str]) -> Iterator[Path]:
    if kitops_home is not None:
        yield Path(kitops_home) / CREDENTIALS_FILE
    if env.get("DOCKER_CONFIG"):
        yield Path(env["DOCKER_CONFIG"]) / "config.json"
    home = env.get("HOME") or str(Path.home())
    yield Path(home) / ".docker" / "config.json"


def _from_config_file(path: Path, registry: str) -> RegistryCredentials | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        LOG.warning("ignoring unreadable credentials file %s: %s", path, e)
        return None
    if not isinstance(doc, dict):
        return None
    helpers = doc.get("credHelpers") or {}
    for key, helper in helpers.items() if isinstance(helpers, dict) else ():
        if _same_host(key, registry) and isinstance(helper, str):
            return _from_helper(helper, registry)  # a per-host helper is authoritative for that host
    auths = doc.get("auths") or {}
    for key, entry in auths.items() if isinstance(auths, dict) else ():
        if _same_host(key, registry) and isinstance(entry, dict):
            creds = _from_auth_entry(entry, path, key)
            if creds is not None:
                return creds
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        return _from_helper(store, registry)
    return None


def _from_auth_entry(entry: dict[str, Any], path: Path, key: str) -> RegistryCredentials | None:
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(str(entry["auth"]), validate=False).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            LOG.warning("ignoring malformed auth entry for %s in %s", key, path)
            return None
        if sep and user:
            return RegistryCredentials(user, password)
    if entry.get("username") and entry.get("password") is not None:
        return RegistryCredentials(str(entry["username"]), str(entry["password"]))
    if entry.get("identitytoken"):
        LOG.warning("%s has an identity token for %s; identity tokens are not supported, skipping", path, key)
    return None


def _from_helper(name: str, registry: str) -> RegistryCredentials | None:
    """Run ``docker-credential-<name> get`` (the docker credential-helper protocol)."""
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        LOG.debug("credential helper docker-credential-%s is not installed; skipping", name)
        return None
    try:
        done = subprocess.run(  # noqa: S603 - the helper protocol: server URL on stdin, JSON on stdout
            [program, "get"], input=server_key(registry).encode(), capture_output=True, timeout=HELPER_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        LOG.warning("credential helper docker-credential-%s failed for %s: %s", name, registry, type(e).__name__)
        return None
    if done.returncode != 0:
        return None  # "credentials not found" is a non-zero exit by protocol
    try:
        doc = json.loads(done.stdout)
        user, secret = str(doc["Username"]), str(doc["Secret"])
    except (ValueError, KeyError, TypeError):
        LOG.warning("credential helper docker-credential-%s gave unreadable output for %s", name, registry)
        return None
    if user == "<token>":
        LOG.warning("credential helper for %s returned an identity token, which is not supported", registry)
        return None
    return RegistryCredentials(user, secret)


def _same_host(key: str, registry: str) -> bool:
    """``https://host/v1/`` and ``host`` name the same registry; Docker Hub has several names."""
    def norm(text: str) -> str:
        text = text.strip().lower()
        for prefix in ("https://", "http://"):
            if text.startswith(prefix):
                text = text[len(prefix):]
        text = text.split("/", 1)[0]
        return "docker.io" if text in _DOCKER_HUB_HOSTS else text

    return norm(key) == norm(registry)


# -- writing kit's credentials.json ---------------------------------------------------------------------

def store_credentials(registry: str, creds: RegistryCredentials, *, kitops_home: Path | str) -> Path:
    """Add or replace ``registry`` in ``$KITOPS_HOME/credentials.json`` (0600, atomic), keeping other entries."""
    path = Path(kitops_home) / CREDENTIALS_FILE
    doc = _load_for_update(path)
    auths = doc.setdefault("auths", {})
    for key in [k for k in auths if _same_host(k, registry)]:
        del auths[key]
    raw = f"{creds.username}:{creds.password}".encode()
    auths[server_key(registry)] = {"auth": base64.b64encode(raw).decode("ascii")}
    _write_private(path, doc)
    return path


def remove_credentials(registry: str, *, kitops_home: Path | str) -> bool:
    """Drop ``registry`` from credentials.json; False if it was not there."""
    path = Path(kitops_home) / CREDENTIALS_FILE
    if not path.exists():
        return False
    doc = _load_for_update(path)
    auths = doc.get("auths") or {}
    keys = [k for k in auths if _same_host(k, registry)]
    for key in keys:
        del auths[key]
    if keys:
        _write_private(path, doc)
    return bool(keys)


def _load_for_update(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"auths": {}}
    except (OSError, ValueError) as e:
        raise AuthenticationError(
            f"cannot update {path}: it is not valid JSON ({e}); fix or delete the file and log in again"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("auths", {}), dict):
        raise AuthenticationError(f"cannot update {path}: expected a JSON object with an \"auths\" object")
    return doc


def _write_private(path: Path, doc: dict[str, Any]) -> None:
    """Write JSON readable by the owner only, atomically (a crash never leaves half a file)."""
    write_atomic(path, (json.dumps(doc, indent="\t") + "\n").encode("utf-8"), mode=0o600)
