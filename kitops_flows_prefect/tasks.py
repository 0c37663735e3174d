"""Ready Prefect tasks over ``KitOpsClient``: pack, push, pull selected layers, promote.

Each is a thin wrapper: the core does the work; the task adds the Prefect parts (block, lineage
run context, cache key, artifact, event, progress, logs, retries)::

    from prefect import flow
    from kitops_flows_prefect import pack_modelkit, pull_modelkit_layer, promote_modelkit

    @flow
    def retrain():
        mk = pack_modelkit("job/", ":nightly", registry="prod-registry", push=True)   # cached on content
        pull_modelkit_layer(mk.pinned, "/srv/model", layers=["model"], registry="prod-registry")
        promote_modelkit(mk.pinned, "production", registry="prod-registry")

``registry`` is a ``KitOpsRegistry`` block or the name of a saved one. References written as
``":tag"`` / ``"@sha256:…"`` (or ``None``) go to the block's registry and default repository.
Each task also works with ``.submit()`` / ``.map()`` (wrap the block, a block name or any other
shared argument in ``prefect.unmapped``: strings and blocks are iterable). Retries: 2, with
exponential backoff and jitter, for transient failures only (``retry_transient``); no timeout by
default (transfer times scale with size). Change them, or the caching, per call site with
``.with_options(retries=5, timeout_seconds=3600, cache_expiration=timedelta(days=7))``.

The core's log lines (pack steps, transfer progress, registry retries) appear in the task run's
logs without any logging configuration (see ``logs.py``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.tasks import exponential_backoff

from kitops_flows import lineage
from kitops_flows.api import KitOpsClient, ModelKitDescriptor, UnpackResult, parse_reference
from kitops_flows.errors import (
    AuthenticationError,
    FilterError,
    KitfileError,
    KitopsError,
    NotFoundError,
    PackError,
    ReferenceFormatError,
    TagExistsError,
    UnpackError,
)
from kitops_flows.idempotent import pack_and_push, promote_unless_there, push_unless_there
from kitops_flows.kitfile import Kitfile
from kitops_flows.lineage import StageEvent
from kitops_flows.signing import SignatureError, SigningKeyError

from . import signing
from .artifacts import TransferProgress, artifact_key, push_summary
from .blocks import KitOpsRegistry, resolve_registry
from .caching import MODELKIT_INPUTS
from .events import emit_promoted, emit_pushed
from .logs import redact, task_run_logs
from .runinfo import prefect_run_context
from .stores import task_fields

LOG = logging.getLogger(__name__)

RETRIES = 2
RETRY_BACKOFF_S = 10.0  # 10 s, then 20 s: registries recover from a restart or a 429 burst in that time
RETRY_JITTER = 0.5
LINEAGE_DEPTH = 3  # hops of upstream ModelKits drawn in the push artifact

#: Errors that another attempt cannot fix: bad input, missing things, refused credentials, tag policy.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    KitfileError, ReferenceFormatError, NotFoundError, AuthenticationError, TagExistsError, FilterError,
    UnpackError, PackError, SignatureError, SigningKeyError,
)


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry registry/S3/network failures, not mistakes.

    >>> from prefect.states import Failed
    >>> retry_transient(None, None, Failed(data=TagExistsError("tag v1 is immutable")))
    False
    """
    exc = getattr(state, "data", None)
    if isinstance(exc, PERMANENT_ERRORS):
        return False
    return isinstance(exc, (KitopsError, OSError, TimeoutError))


_RETRY_OPTIONS: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=RETRY_BACKOFF_S),
    "retry_jitter_factor": RETRY_JITTER,
    "retry_condition_fn": retry_transient,
}


# -- shared plumbing ---------------------------------------------------------------------------------------------


@dataclass
class _TaskKit:
    """What one task run works with: its block, its KitOpsClient (``kit``) and its progress callback."""

    block: KitOpsRegistry | None
    kit: KitOpsClient
    progress: TransferProgress

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.block.secret_values() if self.block is not None else ()


@contextlib.contextmanager
def _task_kit(registry: KitOpsRegistry | str | None, progress_artifact: bool | None,
             progress_key: str) -> Iterator[_TaskKit]:
    """Resolve the block, build the client and route the core's logs to this task run."""
    block = resolve_registry(registry)
    progress = TransferProgress(progress_key, enabled=progress_artifact)
    with contextlib.ExitStack() as cleanup:  # an ephemeral store lives as long as the task run
        kit = (block.get_client(progress=progress, cleanup=cleanup, **task_fields()) if block is not None
               else KitOpsClient(progress=progress))
        with task_run_logs(progress.threads, block.secret_values() if block is not None else ()):
            yield _TaskKit(block, kit, progress)
            progress.finish()


@overload
def _qualify(block: KitOpsRegistry | None, reference: str) -> str: ...


@overload
def _qualify(block: KitOpsRegistry | None, reference: None) -> str | None: ...


def _qualify(block: KitOpsRegistry | None, reference: str | None) -> str | None:
    """A block completes ``":tag"``/``"@digest"``/None; without one those are an error (None stays: no reference)."""
    if block is not None:
        return block.qualify(reference)
    if reference is not None and reference.startswith((":", "@")):
        raise KitopsError(
            f"reference {reference!r} needs a default registry and repository: pass registry=<KitOpsRegistry "
            "block or its saved name>, or a full reference such as registry.example.com/team/model:v1"
        )
    return reference


def _repo_path(reference: str) -> str:
    return parse_reference(reference).repo_path


def _progress_key(reference: str | None) -> str:
    try:
        return artifact_key(_repo_path(reference), "transfer") if reference else "kitops-transfer"
    except ReferenceFormatError:
        return "kitops-transfer"


def announce_push(client: KitOpsClient, desc: ModelKitDescriptor, *, secrets: tuple[str, ...] = (),
                  lineage_depth: int | None = LINEAGE_DEPTH) -> None:
    """The push artifact (keyed per repository) and the ``kitops.modelkit.pushed`` event."""
    mermaid, note = None, ""
    try:
        mermaid = lineage.graph(client, desc.pinned, "up", lineage_depth).to_mermaid()
    except KitopsError as e:  # the push succeeded; a lineage read problem must not fail it
        note = f"Lineage unavailable: {e}"
        LOG.warning("lineage of %s unavailable: %s", desc.pinned, e)
    create_markdown_artifact(
        markdown=redact(push_summary(desc, mermaid, note), secrets),
        key=artifact_key(desc.repo_path),
        description=f"ModelKit {desc.pinned}",
    )
    emit_pushed(desc)


# -- tasks --------------------------------------------------------------------------------------------------------


@task(name="pack-modelkit", cache_policy=MODELKIT_INPUTS, **_RETRY_OPTIONS)
def pack_modelkit(
    context_dir: str | Path,
    reference: str | None = None,
    *,
    registry: KitOpsRegistry | str | None = None,
    kitfile: str | Path | Kitfile | None = None,
    sources: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    parents: Sequence[str] = (),
    compression: str = "none",
    layer_format: str = "tar",
    push: bool = False,
    record_lineage: bool = True,
    progress_artifact: bool | None = None,
    sign: bool | str = False,
    sign_password: str | None = None,
) -> ModelKitDescriptor:
    """Pack ``context_dir`` (its Kitfile, or ``kitfile``) into a ModelKit; push it when ``push``.

    Cached on content: a re-run with the same files, S3 object versions, reference and options
    returns the earlier ModelKit without packing (task state ``Cached``), as long as that ModelKit is
    still reachable (in the local store, or in its registry); otherwise it packs again. Packing the
    same content again gives the same digest, and a push of a digest the tag already holds is a
    no-op: no upload, no artifact, no event. ``sources`` maps Kitfile
    entries to ``s3://`` objects or prefixes streamed into their layers. The flow run, task run and
    deployment are recorded in the ModelKit's provenance; ``parents`` (pinned references) too.
    A push also creates the repository's markdown artifact and the ``kitops.modelkit.pushed`` event.
    ``sign`` (with ``push``): sign it and attest its provenance, with the block's ``signing_key``
    (``True``) or the key in the Prefect ``Secret`` block of that name (see ``signing.py``).

    >>> mk = pack_modelkit("job/", ":v3", registry="prod-registry", push=True)    # doctest: +SKIP
    >>> mk.pinned                                                                  # doctest: +SKIP
    'registry.example.com/team/churn@sha256:…'
    """
    block = resolve_registry(registry)
    ref = _qualify(block, reference)
    with _task_kit(block, progress_artifact, _progress_key(ref)) as s:
        outcome = pack_and_push(
            s.kit, context_dir, kitfile=kitfile, reference=ref, compression=compression, layer_format=layer_format,
            annotations=annotations, sources=sources, run=prefect_run_context() if record_lineage else None,
            parents=parents, record_lineage=record_lineage, push=push,
            sign=_signing_key(block, sign, sign_password, push),
        )
        if outcome.new_to_repository:  # a digest the repository already held is not news
            announce_push(s.kit, outcome.descriptor, secrets=s.secrets)
    return outcome.descriptor


@task(name="push-modelkit", **_RETRY_OPTIONS)
def push_modelkit(
    modelkit: ModelKitDescriptor | str,
    destination: str | None = None,
    *,
    registry: KitOpsRegistry | str | None = None,
    immutable: bool | None = None,
    progress_artifact: bool | None = None,
    lineage_depth: int | None = LINEAGE_DEPTH,
    sign: bool | str = False,
    sign_password: str | None = None,
) -> ModelKitDescriptor:
    """Push a packed ModelKit (blobs the registry lacks, then the manifest, then tags).

    ``modelkit`` is what ``pack_modelkit`` returned or a local reference. ``destination``
    defaults to the reference itself; with a block, a local-only reference (``team/churn:v3``)
    goes to the block's registry under the same repository and tag. ``immutable`` overrides the
    block's ``immutable_tags``. Creates the repository's artifact and emits ``kitops.modelkit.pushed`` when
    the digest is new to the repository; pushing a digest the tag already holds is a no-op (also when
    the local store no longer has it, e.g. on a fresh worker), with no artifact and no event.
    ``sign``: as for ``pack_modelkit`` (a no-op push is signed too; the same key adds nothing twice).
    """
    block = resolve_registry(registry)
    source = modelkit.reference if isinstance(modelkit, ModelKitDescriptor) else modelkit
    dest = _push_destination(block, source, destination)
    with _task_kit(block, progress_artifact, _progress_key(dest)) as s:
        key = _signing_key(block, sign, sign_password, True)  # a bad key fails before anything is pushed
        result = push_unless_there(s.kit, modelkit, dest, immutable=immutable)
        if key is not None:
            s.kit.sign(result.descriptor.pinned, key)
        if result.new_to_repository:
            announce_push(s.kit, result.descriptor, secrets=s.secrets, lineage_depth=lineage_depth)
    return result.descriptor


def _signing_key(block: KitOpsRegistry | None, sign: bool | str, sign_password: str | None,
                 push: bool) -> Any:
    if sign and not push:
        raise KitopsError("sign= signs the ModelKit in its registry: it needs push=True")
    return signing.signing_key(block, sign, sign_password)


def _push_destination(block: KitOpsRegistry | None, source: str, destination: str | None) -> str | None:
    if destination is not None:
        return _qualify(block, destination)
    if block is None or not block.registry:
        return None
    src = parse_reference(source)
    if not src.is_local_only:
        return None
    return f"{block.registry}/{src.repository}" + (f":{src.tag}" if src.tag else "")


@task(name="pull-modelkit-layer", **_RETRY_OPTIONS)
def pull_modelkit_layer(
    modelkit: ModelKitDescriptor | str,
    dest: str | Path,
    layers: Sequence[str] | str = ("model",),
    *,
    registry: KitOpsRegistry | str | None = None,
    existing: str = "overwrite",
    progress_artifact: bool | None = None,
    verify_key: str | None = None,
    labels: dict[str, str] | None = None,
) -> UnpackResult:
    """Fetch and extract only the layers ``layers`` selects (kit filter syntax) into ``dest``.

    ``labels``: ``modelkit`` names a ModelKit index; take the variant carrying these labels
    (``{"device": "cuda"}``), as ``kit unpack -l`` does.

    ``layers``: ``"model"``, ``"datasets:train"``, ``"code:src/"``, ``"model,docs"``… Other layers
    are not downloaded. Every blob is verified before anything lands in ``dest``, and blobs already
    in the local store are not downloaded again. ``existing``: ``overwrite`` (default, so a re-run
    of the same flow works), ``ignore`` or ``error``. Returns ``UnpackResult`` (``.dest``, ``.paths``).
    ``verify_key`` (default: the block's): refuse, before anything is fetched, a ModelKit not signed by it.

    >>> res = pull_modelkit_layer(mk.pinned, "/srv/churn", layers=["model"])   # doctest: +SKIP
    >>> res.paths[0] / "model.json"                                             # doctest: +SKIP
    """
    block = resolve_registry(registry)
    raw = modelkit.pinned if isinstance(modelkit, ModelKitDescriptor) else modelkit
    ref = _qualify(block, raw)
    with _task_kit(block, progress_artifact, _progress_key(ref)) as s:
        return s.kit.pull_layer(ref, layers, dest, existing=existing, labels=labels,
                                   verify_key=signing.verify_key(block, verify_key))


@task(name="promote-modelkit", **_RETRY_OPTIONS)
def promote_modelkit(
    modelkit: ModelKitDescriptor | str,
    stage: str = "production",
    *,
    registry: KitOpsRegistry | str | None = None,
    require_signature: str | None = None,
) -> StageEvent:
    """Move the repository's ``stage`` tag (staging, production, retired) to this ModelKit, auditably.

    The move is recorded in the registry's hash-chained stage history and emitted as the
    ``kitops.modelkit.promoted`` event. Pass a pinned reference (``mk.pinned``) to promote exactly
    what was evaluated. If the stage already holds it, nothing is written and no event is emitted
    (the stage's last event is returned). ``require_signature`` (default:
    the block's ``verify_key``): refuse unless signed by that public key; ``signed_by`` names the key.
    """
    block = resolve_registry(registry)
    raw = modelkit.pinned if isinstance(modelkit, ModelKitDescriptor) else modelkit
    ref = _qualify(block, raw)
    with _task_kit(block, False, "kitops-promote") as s:
        key = signing.verify_key(block, require_signature)
        if key is not None:  # also when the stage already holds it: a promotion gate is checked every time
            s.kit.verify_signature(ref, key)
        event, moved = promote_unless_there(s.kit, ref, stage, require_signature=key)
    if moved:
        emit_promoted(event)
    return event


__all__ = ["PERMANENT_ERRORS", "announce_push", "pack_modelkit", "promote_modelkit", "pull_modelkit_layer",
           "push_modelkit", "retry_transient"]
