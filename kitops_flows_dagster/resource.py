"""``KitRegistryResource``: one registry (or just the local store) and a KitOpsClient for it.

>>> import dagster as dg
>>> kitops = KitRegistryResource(
...     registry="registry.example.com", repository_prefix="ml",
...     username="ci-bot", password=dg.EnvVar("KITOPS_REGISTRY_PASSWORD"), immutable_tags=True)
>>> kitops.reference_for(["churn_model"], "2026-11-26")
'registry.example.com/ml/churn_model:2026-11-26'

Inside an asset::

    @dg.asset
    def served(kitops: KitRegistryResource) -> None:
        kitops.pull_layer("registry.example.com/ml/churn_model@sha256:…", ["model"], "/srv/model")

With ``registry=""`` ModelKits stay in the local store (``kitops_home``): no network at all.
The password is passed to the core as ``RegistryCredentials`` for this registry only; it is
never logged nor written into metadata, and ``repr`` of the credentials hides it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from kitops_flows.api import KitOpsClient, ModelKitDescriptor, UnpackResult
from kitops_flows.aws import S3ClientFactory
from kitops_flows.errors import KitopsError
from kitops_flows.lineage import StageEvent, promote
from kitops_flows.settings import RegistrySettings
from kitops_flows.signing import SigningKey, load_private_key
from kitops_flows.worker_store import EPHEMERAL, render_kitops_home

from .naming import join_reference, repository_for


class KitRegistryResource(ConfigurableResource):
    """Registry settings and the local ModelKit store for Dagster assets, sensors and checks."""

    registry: str = Field(default="", description="Registry host[:port], e.g. ghcr.io; empty = local store only.")
    username: str | None = Field(default=None, description="Registry user; None = env vars / docker config.")
    password: str | None = Field(default=None, description="Registry password or token; use dg.EnvVar(...).")
    plain_http: bool = Field(default=False, description="Talk HTTP, not HTTPS (local test registries).")
    tls_verify: bool = Field(default=True, description="Verify the registry's TLS certificate.")
    kitops_home: str | None = Field(
        default=None,
        description="Local store root; None = $KITOPS_HOME or kit's default. A template for a store per step "
        "on separate workers: /scratch/kitops/{step_key} (filled by the IO manager and checks), "
        "{tmp}/kitops/{run_id}-{pid}; or 'ephemeral' for a throwaway store per process.",
    )
    repository_prefix: str = Field(default="", description="Prepended to repositories derived from asset keys.")
    immutable_tags: bool = Field(default=False, description="Refuse to move an existing tag to another digest.")
    concurrency: int = Field(default=4, description="Parallel blob transfers.")
    signing_key: str | None = Field(
        default=None, description="Private key for sign=True (cosign.key or PEM PKCS#8 text); use dg.EnvVar(...).")
    signing_key_password: str | None = Field(default=None, description="Its password; use dg.EnvVar(...).")
    verify_key: str | None = Field(
        default=None, description="Public key (cosign.pub PEM, path or env://VAR): ModelKits not signed by it are "
        "refused by loads, pulls and promotions.")
    s3: S3Resource | None = Field(
        default=None,
        description="dagster-aws S3Resource whose credentials/endpoint read and write s3:// data; None = boto3's "
        "default chain.",
    )
    _ephemeral_homes: dict = PrivateAttr(default_factory=dict)  # (pid, step key) -> throwaway store

    def get_client(self, **step_fields: object) -> KitOpsClient:
        """A new client for this registry; cheap, and holds no state shared between runs.

        ``kitops_home`` is a template (``kitops_flows.worker_store``) filled with ``step_fields``: the IO
        manager passes ``step_key`` and ``run_id``; inside an asset or check body they are read from the
        running step. Sensors have no step: use only ``{pid}``/``{host}``/``{tmp}`` there.
        """
        if (self.username is None) != (self.password is None):
            raise KitopsError(
                "KitRegistryResource: set both username and password (or neither, to use KITOPS_REGISTRY_* env "
                "vars or the docker config)"
            )
        fields = {**_current_step_fields(), **step_fields} if self.kitops_home else {}
        home = None
        if (self.kitops_home or "").strip() == EPHEMERAL:
            # one throwaway store per step (and process), so pack() then push() in an asset body share it
            key = (os.getpid(), str(fields.get("step_key") or ""))
            if key not in self._ephemeral_homes:
                self._ephemeral_homes[key] = render_kitops_home(EPHEMERAL)
            home = self._ephemeral_homes[key]
        return self.settings().client(kitops_home=home, s3_session=self._s3_factory(), ephemeral=home is not None, **fields)

    def settings(self) -> RegistrySettings:
        """The resource as the core's registry settings (``registry`` may be written ``http://host:port``)."""
        return RegistrySettings.parse(
            self.registry, plain_http=True if self.plain_http else None, username=self.username,
            password=self.password, tls_verify=self.tls_verify, kitops_home=self.kitops_home,
            immutable_tags=self.immutable_tags, concurrency=self.concurrency, origin="the KitRegistryResource",
        )

    def get_signing_key(self) -> SigningKey:
        """The resource's private key (``signing_key``/``signing_key_password``, typically ``dg.EnvVar``)."""
        if not self.signing_key:
            raise KitopsError("KitRegistryResource: sign=True needs signing_key (e.g. dg.EnvVar('COSIGN_KEY'))")
        return load_private_key(self.signing_key, self.signing_key_password or "", what="KitRegistryResource.signing_key")

    def _s3_factory(self) -> S3ClientFactory | None:
        s3 = self.s3
        if s3 is None:
            return None
        return S3ClientFactory(lambda _config: s3.get_client(), "KitRegistryResource.s3 (S3Resource)")

    # -- naming --------------------------------------------------------------------------------------
    def repository_for(self, asset_key_path: Sequence[str]) -> str:
        """The repository (without registry) an asset key maps to."""
        return repository_for(asset_key_path, self.repository_prefix)

    def repo_path_for(self, asset_key_path: Sequence[str]) -> str:
        """``registry/repository`` for an asset key (just the repository for the local store)."""
        repo = self.repository_for(asset_key_path)
        registry = self.settings().registry
        return f"{registry}/{repo}" if registry else repo

    def reference_for(self, asset_key_path: Sequence[str], tag_or_digest: str) -> str:
        """``registry/prefix/asset/key:tag`` (or ``@sha256:…``)."""
        return join_reference(self.settings().registry or "", self.repository_for(asset_key_path), tag_or_digest)

    # -- operations for use inside assets -------------------------------------------------------------
    def pack(self, context_dir: Path | str, *, reference: str, push: bool | None = None,
             **kwargs: object) -> ModelKitDescriptor:
        """``KitOpsClient.pack``; pushes when the resource has a registry (unless ``push=False``)."""
        do_push = bool(self.registry) if push is None else push
        return self.get_client().pack(context_dir, reference=reference, push=do_push, **kwargs)  # type: ignore[arg-type]

    def push(self, source: str, destination: str | None = None, *, sign: bool = False) -> ModelKitDescriptor:
        return self.get_client().push(source, destination, sign=self.get_signing_key() if sign else None)

    def pull(self, reference: str, *, labels: dict[str, str] | None = None) -> ModelKitDescriptor:
        """``KitOpsClient.pull``; ``labels`` pick one variant of the ModelKit index ``reference`` names. Refused
        unless signed by ``verify_key`` when the resource sets one."""
        return self.get_client().pull(reference, labels=labels, verify_key=self.verify_key or None)

    def pull_layer(self, reference: str, filters: Sequence[str] | str, dest: Path | str, *,
                   existing: str = "error", labels: dict[str, str] | None = None) -> UnpackResult:
        """Fetch (through the local blob cache) and extract only the layers ``filters`` select; ``labels`` pick one
        variant of the ModelKit index ``reference`` names. Refused unless signed by ``verify_key`` if set."""
        return self.get_client().pull_layer(reference, filters, dest, existing=existing, labels=labels,
                                            verify_key=self.verify_key or None)

    def resolve(self, reference: str) -> ModelKitDescriptor:
        return self.get_client().resolve(reference)

    def promote(self, reference: str, stage: str) -> StageEvent:
        """Move ``stage`` (staging, production, retired) to the ModelKit and record the move
        (requiring a signature by ``verify_key`` when the resource sets one)."""
        return promote(self.get_client(), reference, stage, require_signature=self.verify_key or None)

def _current_step_fields() -> dict[str, object]:
    """``step_key``/``run_id`` of the asset or check body running in this thread (Dagster's context var)."""
    try:
        from dagster._core.execution.context.compute import current_execution_context
    except ImportError:  # pragma: no cover - a Dagster without it: the IO manager still passes the fields
        return {}
    ctx = current_execution_context.get()
    if ctx is None:
        return {}
    op_ctx = getattr(ctx, "op_execution_context", ctx)
    try:
        return {"step_key": op_ctx.get_step_execution_context().step.key, "run_id": op_ctx.run_id}
    except Exception:  # noqa: BLE001 - outside a step (direct invocation): no step fields
        return {}


__all__ = ["KitRegistryResource"]
