"""Cache keys from what a ModelKit is made of, so an unchanged re-run of a pack is a cache hit.

``MODELKIT_INPUTS`` is the cache policy of ``pack_modelkit``. Its key is a sha256 over:

* the core's inputs fingerprint (``kitops_flows.fingerprint``) of what the pack reads: the Kitfile's
  content and, per layer, each member's relative path, mode, size and sha256 (``.kitignore`` and
  kit's layer rules applied). Paths of the directory itself and timestamps are not part of it, so a
  fresh checkout or a new temp dir with the same files hits. Files are re-read only when their size
  or mtime changed since the last run (the stamps live in the block's store);
* every S3 source, by its object versions: ETag and VersionId from HEAD (single objects) or the
  listing (prefixes). A re-uploaded object with the same bytes has the same ETag (single-part);
* the reference, the registry block (address, default repository, store; never the password), the
  pack options, annotations, parents and whether the task pushes. A saved block's name is loaded, so
  a block re-saved under that name for another registry or repository is a cache miss. Without a push
  the result lives in the local store only, so the store's path is part of the key too.

Parents should be pinned (``repo@sha256:…``): a moving tag is hashed as its text.

    pack = pack_modelkit.with_options(cache_expiration=timedelta(days=30))   # keep the policy, bound it
    pack_modelkit.with_options(refresh_cache=True)                           # force a re-pack

A cached result is used only while its ModelKit is reachable (complete in the local store, or in its
registry; ``idempotent.reachable``). When it is gone (a fresh worker's empty store, a deleted tag) the
key moves on to the next slot of a short chain, so the task packs again and caches the new result there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext

import kitops_flows
import kitops_flows.api
from kitops_flows.api import source_fingerprints
from kitops_flows.errors import KitopsError
from kitops_flows.fingerprint import fingerprint_inputs
from kitops_flows.pack import load_kitfile
from kitops_flows.store import LocalStore, default_kitops_home
from kitops_flows.worker_store import EPHEMERAL

from .blocks import KitOpsRegistry, resolve_registry, s3_client_factory

LOG = logging.getLogger(__name__)

KEY_VERSION = "3"  # bump when the key's recipe changes, so old entries stop matching


def context_digest(context: Path, kitfile: Any, store: LocalStore) -> str:
    """The core's fingerprint of the files a pack of ``context`` reads (KitfileError if it has no valid Kitfile).

    ``store`` keeps the file stamps that let an unchanged file go unread on the next run.
    """
    kf, _ = load_kitfile(context, kitfile)
    return fingerprint_inputs(store, context, kf).digest


def _stamp_store(registry: Any) -> LocalStore:
    """Where the file stamps live: the block's store when it is one fixed place, else the default store."""
    block = registry if isinstance(registry, KitOpsRegistry) else None
    home = block.kitops_home if block is not None else None
    if home and "{" not in home and home.strip() != EPHEMERAL:
        return LocalStore(Path(home).expanduser())
    return LocalStore(default_kitops_home())


def s3_sources_digest(sources: Mapping[str, Any], session: Any = None) -> dict[str, str]:
    """``{entry: fingerprint}`` of each S3 source's current object versions (keys, ETags, VersionIds)."""
    return source_fingerprints(sources, session=session)


def _block_address(block: KitOpsRegistry) -> dict[str, Any]:
    """The parts of a block that decide where a pack lands (never its credentials)."""
    return {"registry": block.registry, "repository": block.repository,
            "kitops_home": block.kitops_home if block.kitops_home else None}


def _registry_identity(registry: Any) -> Any:
    """What of the registry argument affects the result: a block's address, also for a saved block's name.

    A name is loaded, so re-saving the block elsewhere (``save(name, overwrite=True)``) changes the key
    instead of returning the descriptor of a push to the old place. If loading fails the key falls back
    to the name, and the task itself then reports why the block cannot be loaded.
    """
    if isinstance(registry, KitOpsRegistry):
        return _block_address(registry)
    if isinstance(registry, str):
        try:
            block = resolve_registry(registry)
        except Exception as exc:  # noqa: BLE001 - any failure: key on the name, let the task raise
            LOG.debug("cache key: could not load KitOpsRegistry block %r (%s); keying on its name", registry, exc)
            return registry
        if block is not None:
            return _block_address(block)
    return registry  # None


def _s3_session(registry: Any) -> Any:
    """The block's AwsCredentials as an S3 client factory (None: boto3's default chain)."""
    try:
        block = resolve_registry(registry)
    except Exception:  # noqa: BLE001 - the task reports an unloadable block itself
        return None
    return s3_client_factory(block.aws_credentials) if block is not None else None


def _plain(value: Any) -> Any:
    """JSON-able form of an argument (paths and sequences normalised; unknown objects by repr)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def modelkit_inputs_key(inputs: Mapping[str, Any]) -> str | None:
    """The cache key of a ``pack_modelkit`` call from its arguments; None (no caching) without a context dir."""
    context_dir = inputs.get("context_dir")
    if context_dir is None:
        return None
    context = Path(context_dir).expanduser().absolute()
    if not context.is_dir():
        return None  # let the task run and raise its own clear error
    kitfile = inputs.get("kitfile")
    if isinstance(kitfile, (str, Path)) and not Path(kitfile).is_absolute():
        kitfile = context / kitfile
    try:
        context_fp = context_digest(context, kitfile, _stamp_store(inputs.get("registry")))
    except KitopsError as exc:
        LOG.debug("cache key: not caching (%s)", exc)
        return None  # let the task run and raise its own clear error
    doc: dict[str, Any] = {
        "version": KEY_VERSION,
        "kitops_flows": kitops_flows.__version__,
        "context": context_fp,
        "registry": _registry_identity(inputs.get("registry")),
    }
    if inputs.get("sources"):
        doc["sources"] = s3_sources_digest(inputs["sources"], session=_s3_session(inputs.get("registry")))
    for name in ("reference", "annotations", "compression", "layer_format", "parents", "push", "record_lineage"):
        doc[name] = _plain(inputs.get(name))
    if inputs.get("sign"):  # True or a Secret block's name: never key material
        doc["sign"] = _plain(inputs["sign"])
    if not inputs.get("push"):
        registry = inputs.get("registry")
        home = registry.kitops_home if isinstance(registry, KitOpsRegistry) else None
        if home and ("{" in home or home.strip() == EPHEMERAL):
            return None  # a store per task run: an earlier run's unpushed ModelKit is not in this one's store
        doc["store"] = str(home or os.environ.get("KITOPS_HOME", "")) or "default"
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


#: How many unreachable cached results in a row a key steps over before giving up (then it packs uncached).
MAX_STALE_SLOTS = 8


def _slot(key: str, n: int) -> str:
    return key if n == 0 else hashlib.sha256(f"{key}:stale:{n}".encode()).hexdigest()


def _cached_is_reachable(record_result: Any, inputs: Mapping[str, Any]) -> bool:
    """Whether a cached pack result still names a usable ModelKit (any other result: trust it)."""
    from kitops_flows.api import ModelKitDescriptor
    from kitops_flows.idempotent import reachable

    if not isinstance(record_result, ModelKitDescriptor):
        return True
    block = resolve_registry(inputs.get("registry"))
    client = block.get_client() if block is not None else kitops_flows.api.KitOpsClient()
    return reachable(client, record_result)


def reachable_key(task_ctx: TaskRunContext | None, key: str, inputs: Mapping[str, Any]) -> str | None:
    """``key``, or the next slot after cached results whose ModelKit is no longer reachable."""
    store = getattr(task_ctx, "result_store", None)
    if store is None:
        return key
    for n in range(MAX_STALE_SLOTS):
        slot = _slot(key, n)
        try:
            if not store.exists(slot):
                return slot
            result = store.read(slot).result
        except Exception as exc:  # noqa: BLE001 - an unreadable record: let Prefect's own lookup decide
            LOG.debug("cache key: record %s unreadable (%s)", slot, exc)
            return slot
        if _cached_is_reachable(result, inputs):
            return slot
        LOG.info("Cached ModelKit %s is no longer reachable (store or registry): packing again",
                 getattr(result, "pinned", result))
    return None


@dataclass
class ModelKitInputs(CachePolicy):
    """Prefect cache policy keyed on a pack's content digests, valid while the ModelKit is reachable."""

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        key = modelkit_inputs_key(inputs)
        return reachable_key(task_ctx, key, inputs) if key is not None else None


MODELKIT_INPUTS = ModelKitInputs()

__all__ = ["MODELKIT_INPUTS", "ModelKitInputs", "context_digest", "modelkit_inputs_key", "reachable_key",
           "s3_sources_digest"]
