"""``KitOpsRegistry``: a Prefect block holding an OCI registry's address and credentials.

Save it once (UI, or code), then give its name to any kitops task::

    from pydantic import SecretStr
    from kitops_flows_prefect import KitOpsRegistry

    KitOpsRegistry(registry="registry.example.com", username="ci", password=SecretStr("…"),
                   repository="team/churn").save("prod-registry")

    kit = KitOpsRegistry.load("prod-registry").get_client()      # a KitOpsClient for that registry
    kit.push("registry.example.com/team/churn:v3")

Register the block type with the server: ``prefect block register -m kitops_flows_prefect``.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from prefect.blocks.abstract import CredentialsBlock
from prefect_aws import AwsCredentials
from pydantic import Field, SecretStr, model_validator

from kitops_flows.api import KitOpsClient, ProgressCallback, RegistryCredentials
from kitops_flows.aws import S3ClientFactory, merged_config
from kitops_flows.errors import KitopsError
from kitops_flows.settings import RegistrySettings, split_address


class KitOpsRegistry(CredentialsBlock):
    """An OCI registry for KitOps ModelKits (plus the local store that caches its blobs).

    ``registry`` may be written with a scheme: ``http://127.0.0.1:5000`` sets ``plain_http``.
    An empty ``username`` means anonymous access (or credentials from ``KITOPS_USERNAME``/
    ``KITOPS_PASSWORD``, kit's ``credentials.json`` or docker's config, as the ``kit`` CLI does).
    """

    _block_type_name = "KitOps Registry"
    _block_type_slug = "kitops-registry"
    _description = "An OCI registry for KitOps ModelKits: address, credentials and transfer settings."
    _documentation_url = "https://kitops.org/docs/modelkit/intro/"  # type: ignore[assignment]

    registry: str | None = Field(
        default=None,
        description="Registry host[:port], e.g. registry.example.com or 127.0.0.1:5000. "
        "Empty: only the local store.",
    )
    username: str | None = Field(default=None, description="Registry user; empty for anonymous access.")
    password: SecretStr | None = Field(default=None, description="Password or access token.")
    repository: str | None = Field(
        default=None,
        description="Default repository (e.g. team/churn) for references written as ':tag' or '@sha256:…'.",
    )
    plain_http: bool = Field(default=False, description="Talk HTTP instead of HTTPS (local or air-gapped registries).")
    tls_verify: bool = Field(default=True, description="Verify the registry's TLS certificate.")
    immutable_tags: bool = Field(
        default=False, description="Refuse to move an existing tag to a different ModelKit on push."
    )
    kitops_home: str | None = Field(
        default=None,
        description="Local ModelKit store (KITOPS_HOME); empty: $KITOPS_HOME or kit's default. A template per "
        "task run on separate workers: /scratch/kitops/{task_name}, {tmp}/kitops/{pid}; or 'ephemeral' for a "
        "throwaway store per task.",
    )

    aws_credentials: AwsCredentials | None = Field(
        default=None,
        description="prefect-aws AwsCredentials used for s3:// sources and sinks (keys, profile, region, endpoint "
        "URL in its client parameters); empty: boto3's default credential chain.",
    )
    signing_key: SecretStr | None = Field(
        default=None, description="Private key for sign=True: cosign.key (or PEM PKCS#8) text, or env://VAR."
    )
    signing_key_password: SecretStr | None = Field(default=None, description="Password of the signing key.")
    verify_key: str | None = Field(
        default=None,
        description="Public key (cosign.pub PEM, path or env://VAR): pulls and promotions refuse ModelKits "
        "not signed by it.",
    )

    @model_validator(mode="before")
    @classmethod
    def _split_scheme(cls, data: Any) -> Any:
        """``http://host:5000/`` -> registry ``host:5000`` with plain_http; registries carry no scheme or path."""
        if not isinstance(data, dict) or not isinstance(data.get("registry"), str):
            return data
        try:
            registry, scheme = split_address(data["registry"])
        except KitopsError as e:
            raise ValueError(str(e)) from None
        if scheme == "http" and "plain_http" not in data:
            data = {**data, "plain_http": True}
        data = {**data, "registry": registry}
        if isinstance(data.get("repository"), str):
            data["repository"] = data["repository"].strip("/") or None
        return data

    def settings(self) -> RegistrySettings:
        """The block as the core's registry settings."""
        return RegistrySettings(
            registry=self.registry, credentials=self.credentials(), plain_http=self.plain_http,
            tls_verify=self.tls_verify, kitops_home=self.kitops_home, repository=self.repository,
            immutable_tags=self.immutable_tags, login_hint=self.login_hint(), origin="the KitOpsRegistry block",
        )

    def credentials(self) -> RegistryCredentials | None:
        """The block's credentials as the core's value type (its repr hides the password)."""
        if not self.username:
            return None
        return RegistryCredentials(self.username, self.password.get_secret_value() if self.password else "")

    def get_client(self, progress: ProgressCallback | None = None, *,  # type: ignore[override]
                   cleanup: ExitStack | None = None, **task_fields: object) -> KitOpsClient:
        """A fresh ``KitOpsClient``: the block's credentials apply to its registry only, in memory only.

        ``kitops_home`` is a template filled with ``task_fields`` (``stores.task_fields()`` inside a task);
        an ``ephemeral`` store is removed when ``cleanup`` closes.

        >>> KitOpsRegistry(registry="127.0.0.1:5000", plain_http=True).get_client().plain_http
        True
        """
        return self.settings().client(progress=progress, s3_session=s3_client_factory(self.aws_credentials),
                                      cleanup=cleanup, **task_fields)

    def login_hint(self) -> str:
        """What to fix when the registry refuses this block's credentials (named, never the secret)."""
        name = getattr(self, "_block_document_name", None)
        which = f"KitOpsRegistry block {name!r}" if name else "the KitOpsRegistry block passed as registry="
        if not self.username:
            return (f"The {which} has no username: set its username and password (or KITOPS_REGISTRY_USERNAME/"
                    "PASSWORD on the worker)")
        return f"Check the username and password of the {which}"

    def qualify(self, reference: str | None) -> str:
        """Complete a reference with this registry and default repository.

        ``None`` -> ``registry/repository``; ``":v3"`` -> ``registry/repository:v3``;
        ``"@sha256:…"`` -> pinned in the default repository; anything else is returned unchanged
        (a reference without a registry host stays in the local store, as with kit).

        >>> KitOpsRegistry(registry="reg.example.com", repository="team/churn").qualify(":v3")
        'reg.example.com/team/churn:v3'
        """
        return self.settings().qualify(reference)

    def secret_values(self) -> tuple[str, ...]:
        """Strings that must never appear in logs or artifacts (used to redact forwarded log lines)."""
        password = self.password.get_secret_value() if self.password else ""
        signing = [f.get_secret_value() for f in (self.signing_key, self.signing_key_password) if f is not None]
        key_lines = [line for text in signing[:1] for line in text.splitlines() if len(line) > 8 and "---" not in line]
        return (*RegistryCredentials(self.username or "", password).secret_values(),
                *[s for s in signing if s], *key_lines)


def s3_client_factory(credentials: AwsCredentials | None,
                      source: str = "the KitOpsRegistry block's aws_credentials") -> S3ClientFactory | None:
    """S3 clients from an ``AwsCredentials`` block, with its client parameters (endpoint URL, TLS, config)."""
    if credentials is None:
        return None

    def make(config: Any) -> Any:
        params = credentials.aws_client_parameters.get_params_override()
        params["config"] = merged_config(config, params.get("config"))
        return credentials.get_boto3_session().client("s3", **params)

    return S3ClientFactory(make, source)


def resolve_registry(registry: KitOpsRegistry | str | None) -> KitOpsRegistry | None:
    """A block, the name of a saved block (loaded from the Prefect API), or None."""
    if registry is None or isinstance(registry, KitOpsRegistry):
        return registry
    if isinstance(registry, str):
        loaded = KitOpsRegistry.load(registry)
        if not isinstance(loaded, KitOpsRegistry):  # load is async-dispatched: sync callers get the block
            raise KitopsError(f"KitOpsRegistry.load({registry!r}) did not return a block; call it from sync code")
        return loaded
    raise KitopsError(
        f"registry must be a KitOpsRegistry block or the name of a saved one, not {type(registry).__name__}"
    )


__all__ = ["KitOpsRegistry", "resolve_registry", "s3_client_factory"]
