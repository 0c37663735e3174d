"""kit's unpack filter syntax: types, ids by name or literal path, OR-ed filters, clear errors."""

from __future__ import annotations

import pytest

from kitops_flows.errors import FilterError
from kitops_flows.filters import LayerFilter, parse_filters, selects, wants_kitfile


def test_type_and_ids() -> None:
    f = LayerFilter.parse("datasets,code:train,src/")
    assert f.types == {"datasets", "code"} and f.ids == {"train", "src/"}
    assert f.matches("datasets", "train", "data/train.csv")
    assert f.matches("code", "", "src/")
    assert not f.matches("code", "", "src")  # ids are literal paths, not cleaned (as kit)
    assert not f.matches("model", "train", "x")


def test_filters_are_ored_and_empty_means_all() -> None:
    filters = parse_filters(["model", "docs:README.md"])
    assert selects(filters, "model", "m", "weights")
    assert selects(filters, "docs", "", "README.md")
    assert not selects(filters, "docs", "", "other.md")
    assert selects([], "prompts", "", "p")
    assert wants_kitfile([]) and not wants_kitfile(filters)
    assert wants_kitfile(parse_filters("kitfile"))


@pytest.mark.parametrize(("text", "message"), [
    ("weights", "invalid filter type weights"),
    ("model:a:b", "should be in format"),
    (":x", "no layer type"),
])
def test_bad_filters(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        LayerFilter.parse(text)
