"""Operators: pack, push, pull, unpack and promote ModelKits from Airflow tasks.

Every operator is a thin ``execute()`` over ``KitOpsClient`` (through ``KitOpsHook``) and returns a
small JSON value to XCom: the ModelKit descriptor (``ModelKitDescriptor.to_dict()``: reference,
``pinned`` digest reference, per-layer digests), never a credential. Downstream tasks should
consume ``pinned``, not a moving tag::

    pack = KitPackOperator(
        task_id="pack", context_dir="/data/job/{{ ds_nodash }}", model="model",
        datasets={"train": "s3://ml-data/churn/{{ ds }}/train.csv"}, code=["src"],
        reference="reg.example.com/team/churn:{{ ds_nodash }}", push=True,
    )
    KitUnpackOperator(task_id="fetch_model", reference=pack.output["pinned"], filters=["model"],
                      dest="/srv/churn")

Pushes emit an asset event for ``oci://<registry>/<repository>`` (see ``assets.py``) with the
digest and tag in its ``extra``, only when the digest is new to that repository: re-running a
logical date, or a nightly run with unchanged inputs, lands on the same digest (same content, same
ModelKit), pushes nothing and triggers nothing, also with immutable tags. ``force_asset_event=True``
(or declaring ``outlets=[modelkit_asset(...)]``) emits one on every successful run. The Airflow run
(dag, run, task, try, logical date) is recorded in the ModelKit's provenance automatically, one
record per run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias, BaseOperator

from kitops_flows.api import ModelKitDescriptor
from kitops_flows.idempotent import pack_and_push
from kitops_flows.indexes import select_variant
from kitops_flows.kitfile_args import KitfileArguments
from kitops_flows.lineage import RunContext, promote
from kitops_flows.reference import parse_reference

from .assets import GROUP, descriptor_uri, event_extra, modelkit_alias, modelkit_asset, pinned_from_events
from .hooks import KitOpsHook, KitOpsHookMixin
from .openlineage import LineageRecord, operator_lineage
from .signing import signing_key, verify_key

if TYPE_CHECKING:
    from airflow.sdk import Context

ORCHESTRATOR = "airflow"


def run_context(context: Context) -> RunContext:
    """The Airflow run producing a ModelKit, for its provenance record."""
    ti = context["ti"]
    extra: dict[str, str] = {}
    logical_date = context.get("logical_date")
    if logical_date is not None:
        extra["logical_date"] = logical_date.isoformat()
    map_index = getattr(ti, "map_index", -1)
    if map_index is not None and map_index >= 0:
        extra["map_index"] = str(map_index)
    return RunContext(
        orchestrator=ORCHESTRATOR,
        pipeline=ti.dag_id,
        run_id=context["run_id"],
        task=ti.task_id,
        partition=str(context.get("partition_key") or ""),
        attempt=ti.try_number,
        extra=extra,
    )


def _is_templated(value: object) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def parent_references(parents: object) -> list[str]:
    """References from ``parents``: strings, descriptor dicts pulled from XCom, or lists of either."""
    if parents is None or parents == "":
        return []
    if isinstance(parents, (str, Mapping)):
        parents = [parents]
    refs: list[str] = []
    for item in parents:  # type: ignore[union-attr]
        if isinstance(item, Mapping):
            pinned = item.get("pinned") or item.get("reference")
            if not pinned:
                raise ValueError(f"parent {item!r} is not a ModelKit descriptor (no 'pinned' key)")
            refs.append(str(pinned))
        elif isinstance(item, str) and item:
            refs.append(item)
        else:
            raise ValueError(f"parent {item!r} is neither a reference nor a ModelKit descriptor")
    return refs


class KitOpsBaseOperator(KitOpsHookMixin, BaseOperator):
    """Shared plumbing: the hook/client, run context, lineage and asset events.

    :param kitops_conn_id: a ``kitops`` (or ``docker``) connection; ``None`` for no connection.
    :param kitops_home: local ModelKit store for this task (overrides the connection's); a template such as
        ``/scratch/kitops/{task_id}``, or ``ephemeral`` for a throwaway store (see ``stores.py``).
    :param aws_conn_id: an Airflow AWS connection for ``s3://`` data (see ``aws.py``); None: boto3's chain.
    :param force_asset_event: emit the repository's asset event through AssetAlias outlets even when
        the digest is not new to the repository (declared Asset outlets always get one).
    """

    template_fields: Sequence[str] = ("aws_conn_id", "kitops_conn_id", "kitops_home")
    ui_color = "#dfe9ff"

    def __init__(self, *, kitops_conn_id: str | None = KitOpsHook.default_conn_name,
                 kitops_home: str | None = None, aws_conn_id: str | None = None, force_asset_event: bool = False,
                 **kwargs: Any) -> None:
        # each key of the returned dict is also its own XCom, so pack.output["pinned"] resolves under a
        # real scheduler (XComArg["key"] reads the XCom named "key", not a key of return_value)
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        self.kitops_conn_id = kitops_conn_id
        self.kitops_home = kitops_home
        self.aws_conn_id = aws_conn_id
        self.force_asset_event = force_asset_event

    # -- lineage / assets ---------------------------------------------------------------------------
    def _collector(self) -> Any:
        from airflow.sdk.lineage import get_hook_lineage_collector

        return get_hook_lineage_collector()

    @cached_property
    def _openlineage(self) -> LineageRecord:
        return LineageRecord()

    def _lineage_input(self, uri: str, version: str | None = None) -> None:
        self._collector().add_input_asset(context=self.hook, uri=uri, name=uri)
        self._openlineage.add_input(uri, version)

    def _lineage_output(self, uri: str, extra: dict[str, Any]) -> None:
        self._collector().add_output_asset(context=self.hook, uri=uri, name=uri, asset_extra=extra)
        self._openlineage.add_output(uri, extra.get("digest"))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """S3 and ModelKit inputs, the pushed ModelKit output (see ``openlineage.py``)."""
        return operator_lineage(self._openlineage)

    def _emit_asset_event(self, context: Context, descriptor: ModelKitDescriptor, *, new: bool = True,
                          **more: Any) -> None:
        """Fill the outlet events of the pushed repository (declared Asset, or through an AssetAlias).

        ``new``: the digest is new to the repository. Otherwise nothing goes through the AssetAlias
        outlets (unless ``force_asset_event``); a declared Asset gets its event from Airflow anyway.
        """
        uri = descriptor_uri(descriptor)
        extra = event_extra(descriptor, **more)
        events = context["outlet_events"]
        matched = False
        for outlet in self.outlets:
            if isinstance(outlet, Asset) and outlet.uri == uri:
                events[outlet].extra.update(extra)
                matched = True
            elif isinstance(outlet, AssetAlias):
                matched = True
                if new or self.force_asset_event:
                    events[outlet].add(Asset(name=uri, uri=uri, group=GROUP), extra=extra)
                else:
                    self.log.info("%s is not new to %s: no asset event (force_asset_event=True to emit one)",
                                  descriptor.pinned, uri)
        if not matched and any(isinstance(o, Asset) and o.uri.startswith("oci://") for o in self.outlets):
            self.log.warning("pushed %s, which matches none of this task's oci:// outlets", uri)
        self._lineage_output(uri, {"digest": descriptor.digest})


def _auto_outlets(reference: object, outlets: Any, emit_asset: bool) -> list[Any]:
    """Outlets plus the pushed repository's asset when the reference is known at parse time."""
    declared = list(outlets) if isinstance(outlets, (list, tuple)) else ([outlets] if outlets else [])
    if not emit_asset or not isinstance(reference, str) or _is_templated(reference):
        return declared
    if reference.startswith((":", "@")):
        return declared  # completed from the connection at run time: declare outlets explicitly
    asset, alias = modelkit_asset(reference), modelkit_alias(reference)
    if asset.uri.startswith("oci://localhost/") or any(
            getattr(o, "uri", None) == asset.uri or getattr(o, "name", None) == alias.name for o in declared):
        return declared
    return [*declared, alias]  # an alias: only a digest new to the repository emits an event


class KitPackOperator(KitOpsBaseOperator):
    """Pack a ModelKit (from a Kitfile, or from arguments) into the local store; push it if asked.

    Either ``context_dir`` holds a Kitfile (or ``kitfile`` names one), or the ModelKit is described
    by ``model``, ``datasets`` (name -> local path or ``s3://`` URI, streamed without a local copy),
    ``code``, ``docs`` and ``package`` (name, version, description, license, authors).

    :param reference: ``registry/repo:tag`` (``":tag"`` = the connection's default repository).
    :param sources: extra Kitfile entry -> ``s3://`` mapping (see ``KitOpsClient.pack``).
    :param parents: parent ModelKits: references or descriptors from upstream XCom.
    :param push: push after packing; the task then emits the repository's asset event if the digest
        is new to the repository.
    :param emit_asset: add ``modelkit_alias(reference)`` to the outlets when the reference is
        static (templated references: declare ``outlets=[modelkit_alias(...)]``).
    :param skip_if_unchanged: do not pack when the ModelKit the reference's tag holds was built from the
        same inputs (local files, S3 object versions, Kitfile, options); see ``idempotent.pack_and_push``.
    :param previous: earlier versions (references or descriptors): identical content reuses their digest.
    :param sign: sign the pushed ModelKit (and attest its provenance): ``True`` = the connection's
        ``signing_key`` extra, a string = the Airflow Variable holding the key (see ``signing.py``).
    :return: ``ModelKitDescriptor.to_dict()`` plus ``packed`` (False: skipped as unchanged) and
        ``new_to_repository``.
    """

    template_fields: Sequence[str] = (
        *KitOpsBaseOperator.template_fields, "annotations", "code", "context_dir", "datasets", "docs",
        "kitfile", "model", "package", "parents", "previous", "reference", "sources",
    )
    template_fields_renderers = {"datasets": "json", "sources": "json", "package": "json", "annotations": "json"}

    def __init__(
        self,
        *,
        context_dir: str | None = None,
        kitfile: str | None = None,
        reference: str | None = None,
        model: str | None = None,
        datasets: Mapping[str, str] | None = None,
        code: Sequence[str] | str | None = None,
        docs: Sequence[str] | str | None = None,
        package: Mapping[str, Any] | None = None,
        sources: Mapping[str, str] | None = None,
        parents: Any = None,
        push: bool = False,
        compression: str = "none",
        annotations: Mapping[str, str] | None = None,
        record_lineage: bool = True,
        emit_asset: bool = True,
        skip_if_unchanged: bool = False,
        previous: Any = None,
        sign: bool | str = False,
        **kwargs: Any,
    ) -> None:
        if sign and not push:
            raise ValueError("sign= signs the ModelKit in its registry: it needs push=True")
        if push:
            kwargs["outlets"] = _auto_outlets(reference, kwargs.get("outlets"), emit_asset)
        super().__init__(**kwargs)
        self.context_dir = context_dir
        self.kitfile = kitfile
        self.reference = reference
        self.model = model
        self.datasets = dict(datasets or {})
        self.code = [code] if isinstance(code, str) else list(code or [])
        self.docs = [docs] if isinstance(docs, str) else list(docs or [])
        self.package = dict(package or {})
        self.sources = dict(sources or {})
        self.parents = parents
        self.push = push
        self.compression = compression
        self.annotations = dict(annotations or {})
        self.record_lineage = record_lineage
        self.emit_asset = emit_asset
        self.skip_if_unchanged = skip_if_unchanged
        self.previous = previous
        self.sign = sign

    def kitfile_arguments(self) -> KitfileArguments:
        """The operator's model/datasets/code/docs/package arguments, as the core's one Kitfile path takes them."""
        return KitfileArguments(model=self.model, datasets=self.datasets, code=self.code, docs=self.docs,
                                package=self.package)

    def execute(self, context: Context) -> dict[str, Any]:
        args = self.kitfile_arguments()
        sources = dict(self.sources)
        kitfile: Any = self.kitfile
        if args.given:
            if self.kitfile:
                raise ValueError("pass either kitfile= or model/datasets/code/docs arguments, not both")
            context_dir, kitfile, arg_sources = args.build(self.context_dir)
            sources.update(arg_sources)
        elif self.context_dir is None:
            raise ValueError("nothing to pack: pass context_dir= (with a Kitfile) or model/datasets/code/docs")
        else:
            context_dir = Path(self.context_dir)
        reference = self.hook.qualify(self.reference) if (self.reference or self.push) else None
        parents = parent_references(self.parents)
        outcome = pack_and_push(
            self.client, context_dir, kitfile=kitfile, reference=reference, compression=self.compression,
            annotations=self.annotations, sources=sources or None, run=run_context(context),
            parents=parents, record_lineage=self.record_lineage, push=self.push,
            skip_if_unchanged=self.skip_if_unchanged, previous=parent_references(self.previous),
            sign=signing_key(self.hook, self.sign),
        )
        descriptor = outcome.descriptor
        self.log.info("%s %s (%d layers, %d bytes)", "Packed" if outcome.packed else "Inputs unchanged, kept",
                      descriptor.pinned, len(descriptor.layers), descriptor.size)
        for uri in sources.values():
            self._lineage_input(uri)
        for parent in parents:
            self._lineage_input(modelkit_asset(parent).uri, parse_reference(parent).digest)
        if self.push:
            self._emit_asset_event(context, descriptor, new=outcome.new_to_repository)
        return {**descriptor.to_dict(), "packed": outcome.packed, "new_to_repository": outcome.new_to_repository}


class KitPushOperator(KitOpsBaseOperator):
    """Push a ModelKit from the local store to its registry (blobs first, then manifest, then tag).

    :param source: local reference, e.g. ``reg.example.com/team/churn:v3`` or a descriptor's ``reference``.
    :param destination: another reference to push to (default: ``source``).
    :param immutable: refuse to move an existing tag (default: the connection's ``immutable_tags``).
    :param sign: sign the pushed ModelKit, as ``KitPackOperator``'s ``sign``.
    :return: ``ModelKitDescriptor.to_dict()`` of the pushed ModelKit.
    """

    template_fields: Sequence[str] = (*KitOpsBaseOperator.template_fields, "destination", "source")

    def __init__(self, *, source: str, destination: str | None = None, immutable: bool | None = None,
                 emit_asset: bool = True, sign: bool | str = False, **kwargs: Any) -> None:
        kwargs["outlets"] = _auto_outlets(destination or source, kwargs.get("outlets"), emit_asset)
        super().__init__(**kwargs)
        self.source = source
        self.destination = destination
        self.immutable = immutable
        self.sign = sign

    def execute(self, context: Context) -> dict[str, Any]:
        source = self.hook.qualify(self.source)
        destination = self.hook.qualify(self.destination) if self.destination else None
        result = self.client.push_result(source, destination, immutable=self.immutable,
                                         sign=signing_key(self.hook, self.sign))
        self._emit_asset_event(context, result.descriptor, new=result.new_to_repository)
        return {**result.descriptor.to_dict(), "new_to_repository": result.new_to_repository}


class KitPullOperator(KitOpsBaseOperator):
    """Pull a whole ModelKit (every layer, verified) into the local store of this worker.

    Prefer ``KitUnpackOperator`` with filters when a task needs only some layers.

    :param labels: ``reference`` names a ModelKit index: pull the variant with these labels
        (e.g. ``{"device": "cuda"}``), tagged locally with the index's tag.
    :param verify_key: public key the ModelKit must be signed with (default: the connection's
        ``verify_key`` extra, if any); checked before any layer is downloaded.
    :return: ``ModelKitDescriptor.to_dict()``.
    """

    template_fields: Sequence[str] = (*KitOpsBaseOperator.template_fields, "reference", "labels", "verify_key")

    def __init__(self, *, reference: str, labels: dict[str, str] | None = None, verify_key: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reference = reference
        self.labels = labels
        self.verify_key = verify_key

    def execute(self, context: Context) -> dict[str, Any]:
        descriptor = self.client.pull(self.hook.qualify(self.reference), labels=self.labels or None,
                                      verify_key=verify_key(self.hook, self.verify_key))
        self._lineage_input(descriptor_uri(descriptor), descriptor.digest)
        return descriptor.to_dict()


class KitUnpackOperator(KitOpsBaseOperator):
    """Extract selected layers of a ModelKit into a directory; only those layers are downloaded.

    :param reference: what to unpack. ``None``: the ModelKit whose push triggered this DAG run
        (the newest event of ``asset``, or of any ``oci://`` asset), pinned by digest.
    :param dest: destination directory.
    :param filters: kit's filters, e.g. ``["model"]``, ``["datasets:train"]``, ``["code:src"]``;
        none means everything.
    :param existing: ``error`` (default), ``overwrite`` or ``ignore`` for files already in ``dest``.
    :param asset: the asset whose triggering event names the ModelKit (with ``reference=None``).
    :param labels: ``reference`` names a ModelKit index: unpack the variant with these labels.
    :param verify_key: public key the ModelKit must be signed with (default: the connection's
        ``verify_key`` extra, if any); an unsigned ModelKit is refused before anything is extracted.
    :return: ``{"reference", "pinned", "digest", "dest", "paths", "layers"}``.
    """

    template_fields: Sequence[str] = (*KitOpsBaseOperator.template_fields, "dest", "filters", "reference", "labels",
                                      "verify_key")

    def __init__(self, *, dest: str, reference: str | None = None, filters: Sequence[str] | str | None = None,
                 existing: str = "error", write_kitfile: bool = False, asset: Asset | None = None,
                 labels: dict[str, str] | None = None, verify_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reference = reference
        self.labels = labels
        self.dest = dest
        self.filters = [filters] if isinstance(filters, str) else list(filters or [])
        self.existing = existing
        self.write_kitfile = write_kitfile
        self.asset = asset
        self.verify_key = verify_key

    def execute(self, context: Context) -> dict[str, Any]:
        if self.reference:
            reference = self.hook.qualify(self.reference)
        else:
            reference = pinned_from_events(context["triggering_asset_events"], self.asset)
            self.log.info("Unpacking %s, from the asset event that triggered this run", reference)
        if self.labels:
            reference = select_variant(self.client, reference, self.labels)
        key = verify_key(self.hook, self.verify_key)
        if key is not None:  # before anything of the ModelKit is fetched; then use the verified digest
            reference = self.client.verify_signature(reference, key).reference
        descriptor = self.client.resolve(reference)  # pin a tag to its digest once, before fetching
        result = self.client.unpack(descriptor.pinned, self.dest, filters=self.filters or None,
                                    existing=self.existing, write_kitfile=self.write_kitfile)
        self._lineage_input(descriptor_uri(descriptor), descriptor.digest)
        self.log.info("Unpacked %d layer(s) of %s into %s", len(result.layers), descriptor.pinned, result.dest)
        return {"reference": reference, "pinned": descriptor.pinned, "digest": descriptor.digest, **result.to_dict()}


class KitPromoteOperator(KitOpsBaseOperator):
    """Move a stage tag (``staging``, ``production``, ``retired``) to a ModelKit, with an audit record.

    Declare ``outlets=[modelkit_asset(repo)]`` to also emit an asset event (``extra`` has ``stage``).

    :param require_signature: public key the ModelKit must be signed with (default: the connection's
        ``verify_key`` extra, if any); the event records the signer's fingerprint (``signed_by``).
    :return: the stage event: ``{"stage", "repository", "digest", "previous", "time", "user", ...}``.
    """

    template_fields: Sequence[str] = (*KitOpsBaseOperator.template_fields, "reference", "require_signature", "stage")

    def __init__(self, *, reference: str, stage: str, require_signature: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reference = reference
        self.stage = stage
        self.require_signature = require_signature

    def execute(self, context: Context) -> dict[str, Any]:
        reference = self.hook.qualify(self.reference)
        event = promote(self.client, reference, self.stage,
                        require_signature=verify_key(self.hook, self.require_signature))
        self.log.info("Promoted %s@%s to %s (previously %s)", event.repository, event.digest, event.stage,
                      event.previous or "nothing")
        if any(isinstance(o, (Asset, AssetAlias)) for o in self.outlets):
            descriptor = self.client.resolve(parse_reference(reference).with_reference(event.digest).display())
            self._emit_asset_event(context, descriptor, stage=event.stage)
        return event.to_dict()


__all__ = [
    "KitOpsBaseOperator", "KitPackOperator", "KitPromoteOperator", "KitPullOperator", "KitPushOperator",
    "KitUnpackOperator", "parent_references", "run_context",
]
