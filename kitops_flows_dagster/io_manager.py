"""``ModelKitIOManager``: every asset output is a ModelKit version; inputs pull only the layers they need.

>>> import dagster as dg
>>> kitops = KitRegistryResource(registry="registry.example.com", repository_prefix="ml")
>>> defs = dg.Definitions(assets=[...], resources={"io_manager": ModelKitIOManager(kitops=kitops),
...                                                "kitops": kitops})        # doctest: +SKIP

Writing (``handle_output``): the asset returns a ``Path`` (file or directory), any Python object
(serialised with ``serializer``, pickle by default), a ``Layer`` (e.g. an ``s3://`` source), a
``ModelKitContents`` (several layers) or a ``ModelKitDescriptor`` (already packed). The ModelKit goes to ``registry/prefix/<asset key>`` with
the tag ``tag_template`` (``{partition}``) or ``unpartitioned_tag_template`` (``{run_id}``).
The layer kind comes from the asset's metadata, typed and checked with ``ModelKitOutput`` (``config.py``)::

    @dg.asset(metadata=ModelKitOutput(layer="dataset", path="train.csv").metadata())
    # same as metadata={"kitops": {"layer": "dataset", "path": "train.csv"}}

Allowed output keys: ``layer`` (model, dataset, code, docs), ``name``, ``path``, ``serializer``,
``description``. ModelKits the step loaded through this IO manager become lineage parents, and
the Dagster run (job, run id, asset key, partition, code version) is recorded as provenance.
The data version is the manifest digest, so staleness follows content.

Reading (``load_input``): by default the digest recorded by the upstream's latest
materialisation (of the same partition) is pulled, never a moving tag. Per input::

    dg.AssetIn(metadata=ModelKitInput(layers=["datasets"], digest="sha256:…").metadata())   # or tag="v3"

Only the selected layers (kit filter syntax: ``model``, ``datasets:train``, ``code``) are fetched,
through the local blob cache, and extracted once per ModelKit digest and selection under
``unpack_dir``; treat those files as read-only. Small serialised values (at most
``memory_load_bytes``, a serializer with ``loads``) are read verified into memory instead. ``load`` says what the asset receives: ``value``
(default: one layer as its ``Path`` or deserialised object, several as ``{name or path: value}``),
``path`` (files only, nothing unpickled), ``layers`` (``Layer`` objects to re-pack) or
``descriptor`` (the ModelKitDescriptor, no layer pulled; also chosen by annotating the input
``ModelKitDescriptor``). Unknown keys are an error.

Same inputs, same ModelKit: re-materialising unchanged content gives the same manifest digest (the
pack reuses the ModelKit at the tag, in the local store or of the asset's last materialisation), so
the ``DataVersion`` stays and Dagster's staleness reports downstream assets FRESH; the push then
uploads nothing. Loading does not depend on one instance's event log: with no materialisation
recorded, an input resolves (asset key, partition) to its registry tag (``tag_template``; a
template using ``{run_id}`` cannot be resolved that way).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    ConfigurableIOManager,
    DagsterEventType,
    DagsterInvariantViolationError,
    DataVersion,
    InputContext,
    OutputContext,
)
from pydantic import Field

from kitops_flows.api import KitOpsClient, ModelKitDescriptor
from kitops_flows.errors import KitopsError, NotFoundError
from kitops_flows.idempotent import pack_and_push
from kitops_flows.lineage import graph
from kitops_flows.manifest import PlannedLayer
from kitops_flows.unpack_memory import SMALL_LAYERS_BYTES, read_small_layers

from .contents import Layer, ModelKitContents, serializers_of, stage
from .metadata import descriptor_from_metadata, lineage_markdown, modelkit_metadata, run_context
from .naming import tag_for
from .resource import KitRegistryResource
from .serializers import get_serializer

OUTPUT_KEYS = frozenset({"layer", "name", "path", "serializer", "description"})
INPUT_KEYS = frozenset({"layers", "digest", "tag", "load"})
#: value: objects deserialised, files as Paths; path: always Paths; layers: ``Layer`` tuples to re-pack;
#: descriptor: the ModelKitDescriptor only (no layer pulled).
LOAD_MODES = ("value", "path", "layers", "descriptor")
_LAYER_KIND = {"model": "model", "modelpart": "model", "dataset": "dataset", "code": "code", "docs": "docs"}
#: LOADED_INPUT metadata naming the ModelKit a step consumed (read back in handle_output for lineage).
LOADED_KEY = "kitops/pinned"

def _options(metadata: Mapping[str, Any] | None, allowed: frozenset[str], where: str) -> dict[str, Any]:
    raw = (metadata or {}).get("kitops") or {}
    raw = getattr(raw, "data", raw)  # a MetadataValue.json
    if not isinstance(raw, Mapping):
        raise KitopsError(f"{where}: metadata 'kitops' must be a dict with keys {sorted(allowed)}, not {raw!r}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise KitopsError(f"{where}: unknown key(s) {unknown} in metadata 'kitops'; allowed: {sorted(allowed)}")
    return dict(raw)

class ModelKitIOManager(ConfigurableIOManager):
    """Stores asset outputs as ModelKits in a registry (or the local store) and loads selected layers."""

    kitops: KitRegistryResource
    tag_template: str = Field(default="{partition}", description="Tag for partitioned assets.")
    unpartitioned_tag_template: str = Field(default="{run_id}", description="Tag for unpartitioned assets.")
    serializer: str = Field(default="pickle", description="pickle, json, text or 'module:Name' for Python objects.")
    unpack_dir: str | None = Field(default=None, description="Extraction cache; default <kitops_home>/dagster.")
    memory_load_bytes: int = Field(default=SMALL_LAYERS_BYTES, description=(
        "Serialised values whose layers total at most this many bytes are read (verified) into memory "
        "instead of unpack_dir; 0: always unpack."))
    lineage_depth: int = Field(default=2, description="ModelKit hops in the lineage graph metadata (0: none).")
    sign: bool = Field(default=False, description="Sign pushed outputs with the resource's signing_key.")

    # -- output ----------------------------------------------------------------------------------------
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if not context.has_asset_key:
            raise KitopsError(f"ModelKitIOManager stores asset outputs; op output {context.name!r} has no asset key")
        key = context.asset_key
        what = f"asset {key.to_user_string()}"
        client = self.kitops.get_client(**_step_fields(context))
        if isinstance(obj, ModelKitDescriptor):
            desc = obj  # packed (and pushed) by the asset itself: record it
        else:
            desc = self._pack(context, client, obj, what)
        context.log.info(f"{what}: ModelKit {desc.reference} = {desc.pinned} ({desc.size} bytes)")
        context.add_output_metadata(modelkit_metadata(desc, self._lineage(context, client, desc)))
        try:  # the one place Dagster lets an IO manager decide the data version
            context.step_context.set_data_version(key, DataVersion(desc.digest))
        except DagsterInvariantViolationError:
            pass  # built outside a run (build_output_context): no data version to set

    def _pack(self, context: OutputContext, client: KitOpsClient, obj: Any, what: str) -> ModelKitDescriptor:
        key = context.asset_key
        partition = ""
        if context.has_asset_partitions:
            keys = context.asset_partition_keys
            if len(keys) != 1:
                raise KitopsError(
                    f"{what}: one run materialises {len(keys)} partitions, but each partition is its own ModelKit "
                    "tag; launch one run per partition (backfill policy: single partition per run)"
                )
            partition = keys[0]
        template = self.tag_template if partition else self.unpartitioned_tag_template
        code_version = _code_version(context)
        tag = tag_for(template, partition=partition, run_id=context.run_id, asset=key.path[-1],
                      code_version=code_version)
        reference = self.kitops.reference_for(key.path, tag)
        if isinstance(obj, ModelKitContents):
            contents = obj
        elif isinstance(obj, Layer):
            contents = ModelKitContents(layers=(obj,))
        else:
            opts = _options(context.definition_metadata, OUTPUT_KEYS, what)
            layer = Layer(opts.get("layer", "model"), obj, name=opts.get("name", ""), path=opts.get("path", ""),
                          description=opts.get("description", ""), serializer=opts.get("serializer"))
            contents = ModelKitContents(layers=(layer,))
        run = run_context(run_id=context.run_id, job_name=context.job_name, asset_key=key.to_user_string(),
                          partition=partition, code_version=code_version, attempt=_attempt(context))
        parents = _loaded_parents(context)
        previous = _previous_version(context, key, partition)
        with tempfile.TemporaryDirectory(prefix="kitops-dagster-") as tmp:
            staged = stage(contents, Path(tmp), default_name=key.path[-1], default_serializer=self.serializer,
                           what=what)
            try:
                return pack_and_push(
                    client, staged.context_dir, kitfile=staged.kitfile, reference=reference,
                    sources=staged.sources or None, annotations=staged.annotations, run=run, parents=parents,
                    push=bool(self.kitops.registry), previous=previous,
                    sign=self.kitops.get_signing_key() if self.sign and self.kitops.registry else None,
                ).descriptor
            except KitopsError as e:
                raise type(e)(f"{what}: could not store ModelKit {reference}: {e}") from e

    def _lineage(self, context: OutputContext, client: KitOpsClient, desc: ModelKitDescriptor) -> str | None:
        if self.lineage_depth <= 0:
            return None
        try:
            # no registry tag listing: the cost stays O(depth), not one HEAD per tag of every repository
            return lineage_markdown(graph(client, desc.pinned, "up", self.lineage_depth, remote_tags=False))
        except KitopsError as e:  # metadata only: the ModelKit itself is stored and pushed
            context.log.warning(f"lineage graph of {desc.pinned} not rendered: {e}")
            return None

    # -- input ---------------------------------------------------------------------------------------
    def load_input(self, context: InputContext) -> Any:
        if not context.has_asset_key:
            raise KitopsError(f"ModelKitIOManager loads asset inputs; input {context.name!r} has no asset key")
        key = context.asset_key
        what = f"input {context.name!r} (asset {key.to_user_string()})"
        opts = _options(context.definition_metadata, INPUT_KEYS, what)
        if "digest" in opts and "tag" in opts:
            raise KitopsError(f"{what}: metadata 'kitops' pins by 'digest' or by 'tag', not both")
        client = self.kitops.get_client(**_step_fields(context))
        if "digest" in opts or "tag" in opts or not context.has_asset_partitions:
            value, desc = self._load_one(context, client, opts, "", what)
            self._record_loaded(context, opts, [desc])
            return value
        keys = list(context.asset_partition_keys)
        loaded = {pk: self._load_one(context, client, opts, pk, f"{what} partition {pk!r}") for pk in keys}
        self._record_loaded(context, opts, [desc for _, desc in loaded.values()])
        values = {pk: value for pk, (value, _) in loaded.items()}
        return values[keys[0]] if len(keys) == 1 else values

    @staticmethod
    def _record_loaded(context: InputContext, opts: Mapping[str, Any], loaded: list[ModelKitDescriptor]) -> None:
        """Name the loaded ModelKits on the LOADED_INPUT event: handle_output makes them lineage parents."""
        if len(loaded) != 1:
            # Dagster 1.13 turns input metadata into an observation of one upstream partition and
            # refuses it for a multi-partition input, so a fan-in records no parents.
            context.log.info(f"loaded {len(loaded)} ModelKits; Dagster cannot attach input metadata to a "
                             "multi-partition input, so they are not recorded as lineage parents")
            return
        layers = opts.get("layers")
        shown = layers if isinstance(layers, str) else ", ".join(layers or [])
        context.add_input_metadata({LOADED_KEY: loaded[0].pinned, "kitops/layers": shown or "all"})

    def _load_one(self, context: InputContext, client: KitOpsClient, opts: Mapping[str, Any], partition: str,
                  what: str) -> tuple[Any, ModelKitDescriptor]:
        desc = self._pin(context, client, opts, partition, what)
        if self.kitops.verify_key:  # before the extraction cache or the registry is touched
            try:
                client.verify_signature(desc.pinned, self.kitops.verify_key)
            except KitopsError as e:
                raise type(e)(f"{what}: refusing {desc.pinned}: {e}") from e
        layers = opts.get("layers")
        filters: list[str] = [layers] if isinstance(layers, str) else list(layers or [])
        mode = opts.get("load") or ("descriptor" if context.dagster_type.typing_type is ModelKitDescriptor else "value")
        if mode not in LOAD_MODES:
            raise KitopsError(f"{what}: metadata 'kitops' load={mode!r} is not one of {', '.join(LOAD_MODES)}")
        if mode == "descriptor":
            return desc, desc
        serializers = serializers_of(desc.annotations)
        if mode == "value" and serializers and not (self._cache_dir(client, desc, filters) / "layers.json").exists():
            small = self._in_memory(client, desc, filters, serializers, what)
            if small is not None:
                return small, desc
        selected, root = self._unpacked(client, desc, filters, what)
        if not selected:
            available = ", ".join(f"{l.kind}:{l.name or l.path}" for l in desc.layers)
            raise NotFoundError(f"{what}: layers {filters} select nothing in {desc.pinned} (it has {available})")
        if mode == "layers":
            return tuple(Layer(_LAYER_KIND.get(kind, "code"), root / path, name=name, path=path,
                               serializer=serializers.get(path)) for kind, name, path in selected), desc
        values: dict[str, Any] = {}
        for _, name, path in selected:
            target = root / path
            loaded = mode == "value" and path in serializers
            values[name or path] = get_serializer(serializers[path]).load(target) if loaded else target
        return (next(iter(values.values())) if len(values) == 1 else values), desc

    def _pin(self, context: InputContext, client: KitOpsClient, opts: Mapping[str, Any], partition: str,
             what: str) -> ModelKitDescriptor:
        """The ModelKit to load: the pinned digest/tag, else the upstream's latest recorded digest."""
        key = context.asset_key
        if "digest" in opts:
            return client.resolve(self.kitops.reference_for(key.path, str(opts["digest"])))
        if "tag" in opts:
            ref = self.kitops.reference_for(key.path, str(opts["tag"]))
            if self.kitops.registry:  # the registry decides what a tag means now, not a stale local copy
                ref = self.kitops.reference_for(key.path, str(client.inspect(ref, remote=True)["digest"]))
            return client.resolve(ref)
        recorded = _latest_descriptor(context, key, partition)
        if recorded is not None:
            return recorded
        tagged = self._from_registry_tag(context, client, partition)
        if tagged is not None:
            return tagged
        raise NotFoundError(
            f"{what}: {key.to_user_string()} has no ModelKit materialisation"
            f"{f' for partition {partition!r}' if partition else ''} in this instance, and its tag cannot be "
            "resolved in the registry; materialise it first, or pin one with "
            "AssetIn(metadata={'kitops': {'digest': 'sha256:…'}}) or {'tag': '…'}"
        )

    def _from_registry_tag(self, context: InputContext, client: KitOpsClient, partition: str) -> ModelKitDescriptor | None:
        """The ModelKit (asset key, partition) maps to by its tag, pinned: another instance may have materialised it."""
        template = self.tag_template if partition else self.unpartitioned_tag_template
        if not self.kitops.registry or "{run_id" in template:
            return None  # a run-id tag names one run, not "the latest" of this asset
        key = context.asset_key
        try:
            code_version = _code_version(context.upstream_output) if context.upstream_output is not None else ""
        except Exception:  # noqa: BLE001 - no upstream spec here: templates without {code_version} still resolve
            code_version = ""
        tag = tag_for(template, partition=partition, asset=key.path[-1], code_version=code_version)
        digest = client.remote_digest(self.kitops.reference_for(key.path, tag))
        if digest is None:
            return None
        context.log.info(f"{key.to_user_string()}: no materialisation recorded here; using its registry tag "
                         f"{tag} = {digest}")
        return client.resolve(self.kitops.reference_for(key.path, digest))

    def _in_memory(self, client: KitOpsClient, desc: ModelKitDescriptor, filters: Sequence[str],
                   serializers: Mapping[str, str], what: str) -> Any:
        """Small serialised values, read verified into memory (no directory); None: unpack them instead."""

        def readable(planned: Sequence[PlannedLayer]) -> bool:  # each one file a bytes-capable serializer wrote
            return all(p.entry.path in serializers and hasattr(get_serializer(serializers[p.entry.path]), "loads")
                       for p in planned)

        try:
            read = read_small_layers(client, desc.pinned, filters, max_bytes=self.memory_load_bytes, accept=readable)
        except KitopsError as e:
            raise type(e)(f"{what}: could not load {desc.pinned}: {e}") from e
        if read is None or any(read.file_of(p) is None for p in read.layers):
            return None
        values = {p.entry.name or p.entry.path: get_serializer(serializers[p.entry.path]).loads(read.file_of(p))
                  for p in read.layers}
        return next(iter(values.values())) if len(values) == 1 else values

    def _cache_dir(self, client: KitOpsClient, desc: ModelKitDescriptor, filters: Sequence[str]) -> Path:
        """Where the selection ``filters`` of ``desc`` is extracted (once per digest and selection)."""
        base = Path(self.unpack_dir).expanduser() if self.unpack_dir else client.store.home / "dagster" / "unpacked"
        selection = hashlib.sha256(json.dumps(sorted(filters)).encode()).hexdigest()[:16]
        return base / desc.digest.replace(":", "-") / selection

    def _unpacked(self, client: KitOpsClient, desc: ModelKitDescriptor, filters: Sequence[str],
                  what: str) -> tuple[list[tuple[str, str, str]], Path]:
        """Extract the selection once per (digest, filters); return its layers (kind, name, path) and root."""
        final = self._cache_dir(client, desc, filters)
        index = final / "layers.json"
        if not index.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=final.parent))
            try:
                result = client.unpack(desc.pinned, work / "files", filters=list(filters) or None,
                                       write_kitfile=False)
                rows = [[p.entry.kind, p.entry.name, p.entry.path] for p in result.layers]
                (work / "layers.json").write_text(json.dumps(rows))
                try:
                    os.rename(work, final)  # atomic: a selection is either complete or absent
                except OSError:
                    if not index.exists():  # not a concurrent twin that won the race
                        raise
            except KitopsError as e:
                raise type(e)(f"{what}: could not load {desc.pinned}: {e}") from e
            finally:
                shutil.rmtree(work, ignore_errors=True)
        rows = json.loads(index.read_text())
        return [(str(k), str(n), str(p)) for k, n, p in rows], final / "files"

def _latest_descriptor(context: InputContext, key: AssetKey, partition: str) -> ModelKitDescriptor | None:
    records_filter = AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None)
    for record in context.instance.fetch_materializations(records_filter, limit=1).records:
        materialization = record.asset_materialization
        if materialization is not None:
            return descriptor_from_metadata(materialization.metadata)
    return None

def _previous_version(context: OutputContext, key: AssetKey, partition: str) -> list[str]:
    """The asset's last recorded ModelKit (same partition): identical content keeps its digest, even when
    the tag differs (``{run_id}`` tags) and the local store is empty."""
    try:
        instance = context.step_context.instance
    except DagsterInvariantViolationError:
        return []
    records_filter = AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None)
    for record in instance.fetch_materializations(records_filter, limit=1).records:
        materialization = record.asset_materialization
        desc = descriptor_from_metadata(materialization.metadata) if materialization is not None else None
        if desc is not None:
            return [desc.pinned]
    return []


def _loaded_parents(context: OutputContext) -> list[str]:
    """ModelKits this step loaded through a ModelKitIOManager (recorded on its LOADED_INPUT events)."""
    try:
        step_key, instance = context.step_key, context.step_context.instance
    except DagsterInvariantViolationError:
        return []
    parents: list[str] = []
    for entry in instance.all_logs(context.run_id, of_type=DagsterEventType.LOADED_INPUT):
        event = entry.dagster_event
        if event is None or entry.step_key != step_key:
            continue
        value = getattr(event.event_specific_data, "metadata", {}).get(LOADED_KEY)
        pinned = getattr(value, "value", value)
        if isinstance(pinned, str) and pinned not in parents:
            parents.append(pinned)
    return parents

def _step_fields(context: InputContext | OutputContext) -> dict[str, object]:
    """``step_key`` and ``run_id`` of the running step, for the resource's ``kitops_home`` template."""
    try:
        step = context.step_context
    except DagsterInvariantViolationError:  # built outside a run (build_*_context)
        return {}
    return {"step_key": step.step.key, "run_id": step.run_id}

def _code_version(context: OutputContext) -> str:
    try:
        return context.asset_spec.code_version or ""
    except DagsterInvariantViolationError:
        return ""

def _attempt(context: OutputContext) -> int | None:
    try:
        return context.step_context.previous_attempt_count + 1
    except DagsterInvariantViolationError:
        return None

__all__ = ["INPUT_KEYS", "OUTPUT_KEYS", "ModelKitIOManager"]
