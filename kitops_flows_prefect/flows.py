"""``@modelkit_flow``: a Prefect flow whose returned directory becomes a packed, pushed ModelKit.

The decorated function prepares a pack context (a directory with a Kitfile) and returns its path,
or a ``ModelKitSpec`` to also choose the tag, S3 sources, parents or annotations. The flow then runs
``pack_modelkit(push=True)`` (content-cached, with artifact and event) and returns the descriptor::

    @modelkit_flow(reference=":nightly", registry="prod-registry", log_prints=True)
    def churn_model(rows: int = 2000) -> ModelKitSpec:
        job = Path(tempfile.mkdtemp())
        ...                                         # train into job/model, write job/Kitfile
        return ModelKitSpec(job, sources={"train": "s3://ml-data/churn/train.csv"})

    mk = churn_model(rows=5000)                    # a flow run (a subflow when called inside a flow)
    mk.pinned                                      # 'registry.example.com/team/churn@sha256:…'
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, overload

from prefect import Flow, flow

from kitops_flows.api import ModelKitDescriptor
from kitops_flows.errors import KitopsError
from kitops_flows.kitfile import Kitfile
from kitops_flows.kitfile_args import KitfileArguments

from .blocks import KitOpsRegistry
from .tasks import pack_modelkit

P = ParamSpec("P")


@dataclass(frozen=True)
class ModelKitSpec:
    """What to pack, as returned by a ``@modelkit_flow`` function.

    ``reference`` (full, or ``":tag"`` for the block's default repository) overrides the
    decorator's; ``sources`` maps Kitfile entries to ``s3://`` URIs streamed into their layers;
    ``from_arguments`` builds the Kitfile from model/datasets/code/docs as Airflow and Dagster do.
    """

    context_dir: str | Path
    reference: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    parents: Sequence[str] = ()
    kitfile: str | Path | Kitfile | None = None

    @classmethod
    def from_arguments(cls, arguments: KitfileArguments, context_dir: str | Path | None = None,
                       **fields: Any) -> ModelKitSpec:
        """A spec whose Kitfile comes from model/datasets/code/docs arguments (the core's one path).

        >>> ModelKitSpec.from_arguments(KitfileArguments(datasets={"train": "s3://b/churn/train.csv"}),
        ...                             "/job").kitfile.datasets[0].path
        'data/train.csv'
        """
        context, kitfile, sources = arguments.build(context_dir)
        extra = dict(fields.pop("sources", None) or {})
        return cls(context, kitfile=kitfile, sources={**extra, **sources}, **fields)


@overload
def modelkit_flow(fn: Callable[P, Any], /) -> Flow[P, ModelKitDescriptor]: ...


@overload
def modelkit_flow(
    fn: None = None, /, *, reference: str | None = ..., registry: KitOpsRegistry | str | None = ...,
    compression: str = ..., layer_format: str = ..., **flow_options: Any,
) -> Callable[[Callable[P, Any]], Flow[P, ModelKitDescriptor]]: ...


def modelkit_flow(
    fn: Callable[P, Any] | None = None,
    /,
    *,
    reference: str | None = None,
    registry: KitOpsRegistry | str | None = None,
    compression: str = "none",
    layer_format: str = "tar",
    **flow_options: Any,
) -> Flow[P, ModelKitDescriptor] | Callable[[Callable[P, Any]], Flow[P, ModelKitDescriptor]]:
    """Turn a function returning a pack context (path or ``ModelKitSpec``) into a flow that packs and pushes it.

    ``flow_options`` go to ``prefect.flow`` (``name``, ``retries``, ``log_prints``…); the flow's
    parameters are the function's. The pack is content-cached (see ``caching.py``), so a re-run
    producing identical files returns the ModelKit already pushed.
    """

    def decorate(func: Callable[P, Any]) -> Flow[P, ModelKitDescriptor]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> ModelKitDescriptor:
            spec = _as_spec(func(*args, **kwargs), func.__name__)
            return pack_modelkit(
                spec.context_dir, spec.reference or reference, registry=registry, kitfile=spec.kitfile,
                sources=dict(spec.sources) or None, annotations=dict(spec.annotations) or None,
                parents=tuple(spec.parents), compression=compression, layer_format=layer_format, push=True,
            )

        options = {"name": func.__name__.replace("_", "-"), **flow_options}
        return flow(**options)(run)

    return decorate(fn) if fn is not None else decorate


def _as_spec(value: Any, name: str) -> ModelKitSpec:
    if isinstance(value, ModelKitSpec):
        return value
    if isinstance(value, (str, Path)):
        return ModelKitSpec(value)
    raise KitopsError(
        f"@modelkit_flow function {name}() returned {type(value).__name__}; return the pack context directory "
        "(a path containing a Kitfile) or a ModelKitSpec"
    )


__all__ = ["ModelKitSpec", "modelkit_flow"]
