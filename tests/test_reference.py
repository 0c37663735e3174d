"""Reference parsing follows kit's rules (pkg/lib/repo/util/reference.go) and rejects bad input clearly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitops_flows.errors import ReferenceFormatError
from kitops_flows.reference import parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "reference", "extra"),
    [
        ("model", "localhost", "model", "latest", ()),
        ("org/model:v1", "localhost", "org/model", "v1", ()),
        ("registry.io/model:v1", "registry.io", "model", "v1", ()),
        ("localhost:5000/a/b/c:t", "localhost:5000", "a/b/c", "t", ()),
        (f"reg.io/m@{DIGEST}", "reg.io", "m", DIGEST, ()),
        (f"reg.io/m:ignored@{DIGEST}", "reg.io", "m", DIGEST, ()),
        ("m:v1,v2,latest", "localhost", "m", "v1", ("v2", "latest")),
        (DIGEST, "localhost", "_", DIGEST, ()),
        ("127.0.0.1:5000/team/churn:2026-11-26", "127.0.0.1:5000", "team/churn", "2026-11-26", ()),
    ],
)
def test_parse_like_kit(text: str, registry: str, repository: str, reference: str, extra: tuple[str, ...]) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.reference, ref.extra_tags) == (registry, repository, reference, extra)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("Org/Model:v1", "must be lowercase"),
        ("https://reg.io/m:v1", "remove the scheme"),
        ("reg.io/m:" + "t" * 129, "invalid tag"),
        ("reg.io/m:.hidden", "invalid tag"),
        ("reg.io/m@sha256:1234", "invalid digest"),
        ("reg.io/-m:v1", "invalid repository"),
        ("reg.io/m m:v1", "invalid repository"),
        ("bad_host.io:99999999/m:v1", "invalid registry host"),
    ],
)
def test_bad_references_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ReferenceFormatError, match=message):
        parse_reference(text)


def test_str_round_trips() -> None:
    for text in ["reg.io/a/b:v1", f"reg.io/a@{DIGEST}", "localhost:5000/x:latest"]:
        assert str(parse_reference(text)) == text
    # kit: "localhost" without a port is not a registry, so the display form is what re-parses
    assert parse_reference("x/y:z").display() == "x/y:z"
    assert parse_reference("localhost/x:v1").repository == "localhost/x"


@given(st.text(max_size=80))
def test_parser_never_crashes(text: str) -> None:
    try:
        ref = parse_reference(text)
    except ReferenceFormatError:
        return
    # anything accepted must print back to something that parses to the same reference
    assert parse_reference(ref.display()).repo_path == ref.repo_path
