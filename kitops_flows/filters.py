"""kit's unpack filters: ``<type>[,<type>...][:<id>[,<id>...]]``, repeatable and OR-ed (spec §7).

>>> f = parse_filters(["datasets:train", "model"])
>>> selects(f, "datasets", "train", "data/train.csv"), selects(f, "code", "", "src")
(True, False)
>>> selects([], "code", "", "src")            # no filter means everything
True

An id matches an entry's ``name`` or its literal Kitfile ``path`` (not cleaned, as in kit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import FilterError

FILTER_TYPES = ("kitfile", "model", "datasets", "code", "prompts", "docs", "mcpservers")

# kit layer kind -> filter type (model parts are selected with "model")
KIND_TO_FILTER_TYPE = {
    "model": "model",
    "modelpart": "model",
    "dataset": "datasets",
    "code": "code",
    "docs": "docs",
    "prompt": "prompts",
    "mcpb": "mcpservers",
}


@dataclass(frozen=True)
class LayerFilter:
    types: frozenset[str]
    ids: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> LayerFilter:
        if text.count(":") > 1:
            raise FilterError(
                f"invalid filter {text!r}: should be in format <type1>,<type2>[:<filter1>,<filter2>]"
            )
        type_part, _, id_part = text.partition(":")
        types = [t.strip() for t in type_part.split(",") if t.strip()]
        if not types:
            raise FilterError(f"invalid filter {text!r}: no layer type given (one of {', '.join(FILTER_TYPES)})")
        for t in types:
            if t not in FILTER_TYPES:
                raise FilterError(f"invalid filter type {t} (must be one of {', '.join(FILTER_TYPES)})")
        ids = [i for i in id_part.split(",") if i] if id_part else []
        return cls(frozenset(types), frozenset(ids))

    def matches(self, filter_type: str, name: str, path: str) -> bool:
        if filter_type not in self.types:
            return False
        return not self.ids or name in self.ids or path in self.ids


def parse_filters(texts: Iterable[str] | str | None) -> list[LayerFilter]:
    if texts is None:
        return []
    if isinstance(texts, str):
        texts = [texts]
    return [LayerFilter.parse(t) for t in texts]


def parse_filter_list(filters: Iterable[str | LayerFilter] | str | None) -> list[LayerFilter]:
    """Filters given as text, parsed ``LayerFilter`` values, or a mix (what the API accepts).

    >>> parse_filter_list(["model", LayerFilter(frozenset({"code"}))]) == parse_filters(["model", "code"])
    True
    """
    if filters is None:
        return []
    if isinstance(filters, str):
        filters = [filters]
    return [f if isinstance(f, LayerFilter) else LayerFilter.parse(f) for f in filters]


def selects(filters: Sequence[LayerFilter], filter_type: str, name: str, path: str) -> bool:
    return not filters or any(f.matches(filter_type, name, path) for f in filters)


def wants_kitfile(filters: Sequence[LayerFilter]) -> bool:
    return not filters or any("kitfile" in f.types for f in filters)
