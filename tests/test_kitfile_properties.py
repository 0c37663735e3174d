"""Property tests (hypothesis) for the two parsers that read untrusted text: the Kitfile and references.

The Kitfile parser must never fail with anything but ``KitfileError`` (whatever bytes a user or a
registry hands it), must read back exactly what it writes, and must write the same config bytes
every time. The reference parser must never fail with anything but ``ReferenceFormatError`` and
must print back what it accepted. ``tests/test_reference.py`` has the basic never-crashes case;
this file adds generated *near-valid* references, which reach much deeper into the grammar.
"""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kitops_flows.errors import KitfileError, ReferenceFormatError
from kitops_flows.kitfile import (
    CodeEntry,
    DatasetEntry,
    DocsEntry,
    Kitfile,
    LayerInfo,
    McpServerEntry,
    Model,
    ModelPart,
    Package,
    PromptEntry,
)
from kitops_flows.reference import parse_reference
from kitops_flows.yaml12 import dump, loads

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- generated Kitfiles ---------------------------------------------------------------------------------

# Any text a YAML 1.2 document can carry (the YAML writer escapes what must be escaped), except a leading
# line break: kit's YAML writer (yaml.v3) drops it from block scalars and yaml12 copies that on purpose
# (see yaml12._literal), so kit itself does not round-trip such strings.
_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")
_text = st.text(max_size=24).filter(lambda s: not s.startswith(_BREAKS))
_word = st.text(alphabet=string.ascii_letters + string.digits + "._-/ ", max_size=16)
_int64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
# Config blobs are read as Go reads JSON (numbers are float64), so only ints a float64 holds exactly
# keep their bytes through from_json -> to_json; kit behaves the same.
_int53 = st.integers(min_value=-(1 << 53), max_value=1 << 53)
# yaml.v3 writes -0.0 as `-0`, which it (and we) read back as the int 0, so a second dump says `0`:
# Go's own round trip is not a fixed point there (test_negative_zero_is_written_as_go_writes_it), so
# the generated floats leave it out (x + 0.0 turns -0.0 into 0.0 and keeps every other value).
_float = st.floats(allow_nan=False, allow_infinity=False).map(lambda x: x + 0.0)


def _params_of(integers: st.SearchStrategy[int]) -> st.SearchStrategy[object]:
    scalar = st.one_of(st.none(), st.booleans(), integers, _float, _text)
    return st.recursive(
        scalar,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
        max_leaves=12,
    )


_scalar = st.one_of(st.none(), st.booleans(), _int64, _float, _text)
_digest = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h)
_layer_info = st.one_of(st.none(), st.builds(LayerInfo, digest=_digest, diff_id=_digest))


def _kitfiles(with_layer_info: bool) -> st.SearchStrategy[Kitfile]:
    info = _layer_info if with_layer_info else st.none()
    # YAML keeps int64 exactly; the JSON round trip (Go float64) only ints up to 2**53
    _params = _params_of(_int53 if with_layer_info else _int64)
    part = st.builds(ModelPart, name=_text, path=_text, license=_text, type=_word, layer_info=info)
    model = st.builds(
        Model, name=_text, path=_text, license=_text, framework=_text, format=_text, version=_text,
        description=_text, parts=st.lists(part, max_size=2), parameters=st.one_of(st.none(), _params),
        layer_info=info,
    )
    return st.builds(
        Kitfile,
        manifest_version=st.just("1.0.0"),
        package=st.builds(Package, name=_text, version=_text, description=_text, license=_text,
                          authors=st.lists(_text, max_size=3)),
        model=st.one_of(st.none(), model),
        code=st.lists(st.builds(CodeEntry, path=_text, description=_text, license=_text, layer_info=info),
                      max_size=2),
        datasets=st.lists(
            st.builds(DatasetEntry, name=_text, path=_text, remote_path=_text, remote_hash=_text,
                      description=_text, license=_text, parameters=st.one_of(st.none(), _params),
                      layer_info=info),
            max_size=2),
        docs=st.lists(st.builds(DocsEntry, path=_text, description=_text, layer_info=info), max_size=2),
        prompts=st.lists(st.builds(PromptEntry, name=_text, path=_text, description=_text, layer_info=info),
                         max_size=2),
        mcp_servers=st.lists(st.builds(McpServerEntry, name=_text, path=_text, description=_text,
                                       layer_info=info), max_size=2),
    )


@SETTINGS
@given(_kitfiles(with_layer_info=False))
def test_yaml_round_trip(kf: Kitfile) -> None:
    text = kf.to_yaml()
    assert Kitfile.from_yaml(text) == kf, text
    assert Kitfile.from_yaml(text).to_yaml() == text


@SETTINGS
@given(_kitfiles(with_layer_info=True))
def test_to_json_is_stable_and_reads_back(kf: Kitfile) -> None:
    data = kf.to_json()
    assert kf.to_json() == data  # deterministic
    json.loads(data)  # valid JSON
    again = Kitfile.from_json(data)
    # Go reads JSON numbers as float64, so ints come back as floats; the bytes must not change
    assert again.to_json() == data
    assert [(e.kind, e.path, e.entry.layer_info) for e in again.layer_entries()] == \
        [(e.kind, e.path, e.entry.layer_info) for e in kf.layer_entries()]


@SETTINGS
@given(_kitfiles(with_layer_info=True))
def test_validate_raises_only_kitfile_error(kf: Kitfile) -> None:
    try:
        warnings = kf.validate()
    except KitfileError as e:
        assert str(e)
        return
    assert all(isinstance(w, str) for w in warnings)


# -- hostile Kitfile text ---------------------------------------------------------------------------------

_yaml_token = st.sampled_from(list("{}[]:,-?!&*|>'\"#%@` \n\t\\") + [
    "manifestVersion", "package", "model", "name", "path", "parts", "datasets", "parameters", "<<", "~", "1.0.0",
    "0x1F", "\x00", "\ufeff", "\x85", "&a", "*a", "!!binary", "!!str", "!!map", "\u2028", "\n  ", "\n- "])
_yaml_ish = st.lists(_yaml_token, max_size=40).map("".join)


def _parse_only_kitfile_error(text: str) -> None:
    try:
        Kitfile.from_yaml(text, source="hostile")
    except KitfileError as e:
        assert "hostile" in str(e)  # names the source


@SETTINGS
@given(st.one_of(st.text(max_size=200), _yaml_ish))
def test_from_yaml_fails_only_with_kitfile_error(text: str) -> None:
    _parse_only_kitfile_error(text)


@SETTINGS
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 st.recursive(_scalar, lambda i: st.one_of(st.lists(i, max_size=3), st.dictionaries(
                     st.sampled_from(["manifestVersion", "package", "model", "name", "path", "parts", "code",
                                      "datasets", "digest", "diffId", "parameters", "authors"]), i, max_size=4)),
                              max_leaves=15).map(lambda v: json.dumps(v).encode())))
def test_from_json_fails_only_with_kitfile_error(data: bytes) -> None:
    try:
        Kitfile.from_json(data, source="config blob")
    except KitfileError as e:
        assert "config blob" in str(e)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 20000, id="deeply-nested-flow-sequence"),
        pytest.param("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 3000)), id="deeply-nested-block-map"),
        pytest.param("manifestVersion: 1.0.0\x00\n", id="nul-byte"),
        pytest.param("manifestVersion: 1.0.0\npackage: {name: \x07}\n", id="control-character"),
        pytest.param("a: &a [*a]", id="self-referencing-alias"),
    ],
)
def test_hostile_kitfile_text_is_a_kitfile_error(text: str) -> None:
    with pytest.raises(KitfileError, match="hostile"):
        Kitfile.from_yaml(text, source="hostile")


def test_billion_laughs_is_refused_or_cheap() -> None:
    """Aliases expanding to millions of nodes must not hang or exhaust memory."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i-1}"] * 10) + "]" for i in range(1, 9)]
    text = "manifestVersion: 1.0.0\nmodel:\n  parameters:\n" + "".join(f"    {line}\n" for line in lines)
    import time

    started = time.monotonic()
    try:
        kf = Kitfile.from_yaml(text, source="hostile")
        kf.to_json()
    except KitfileError:
        pass
    assert time.monotonic() - started < 10


# -- references ----------------------------------------------------------------------------------------------

_component = st.from_regex(r"\A[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z", fullmatch=True).filter(lambda s: len(s) < 40)
_repo = st.lists(_component, min_size=1, max_size=3).map("/".join)
_tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z", fullmatch=True)
_host = st.one_of(
    st.tuples(st.sampled_from(["reg.io", "127.0.0.1", "ghcr.io", "my-reg.example.com", "localhost"]),
              st.one_of(st.none(), st.integers(1, 65535))).map(lambda t: t[0] + (f":{t[1]}" if t[1] else "")),
)
_hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@SETTINGS
@given(_host, _repo, st.one_of(_tag.map(lambda t: ":" + t), _hex64.map(lambda h: "@sha256:" + h)))
def test_valid_references_parse_and_print_back(host: str, repo: str, suffix: str) -> None:
    # "localhost" with no port is not a registry for kit: it becomes part of the repository
    assume("." in host or ":" in host)
    text = f"{host}/{repo}{suffix}"
    ref = parse_reference(text)
    assert (ref.registry, ref.repository) == (host, repo)
    assert ref.reference == suffix[1:]
    assert str(ref) == text
    assert parse_reference(str(ref)) == ref


_mutations = st.sampled_from([
    " ", "\t", "\n", "\x00", "\\", "..", "//", "::", "@@", "#", "?", "%", "A", "é", "\u202e", "${x}", "$(id)",
    "'", '"', ";", "|", "*", "[", "]", "http://", "https://", "oci://", ",", "@sha256:", ":" + "t" * 129,
])


@SETTINGS
@given(_host, _repo, _tag, _mutations, st.integers(min_value=0, max_value=200))
def test_mutated_references_fail_only_with_reference_error(host: str, repo: str, tag: str, junk: str,
                                                           where: int) -> None:
    text = f"{host}/{repo}:{tag}"
    where = where % (len(text) + 1)
    mutated = text[:where] + junk + text[where:]
    try:
        ref = parse_reference(mutated)
    except ReferenceFormatError as e:
        assert str(e)
        return
    # accepted: every part must be in the grammar a registry accepts
    assert ref.registry == ref.registry.strip() and "/" not in ref.registry and "://" not in ref.registry
    assert all(c not in ref.repository for c in " \t\n\x00\\#?%;|*[]'\"$@")
    for t in ref.tags:
        assert 1 <= len(t) <= 128 and all(c in string.ascii_letters + string.digits + "._-" for c in t)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http://127.0.0.1:5000/team/m:v1", "remove the scheme"),
        ("oci://reg.io/team/m:v1", "remove the scheme"),
        ("reg.io:5000/path/in/host:v1/m", "invalid"),
        ("reg.io/team/m:v1/extra", "invalid tag"),
        ("reg.io/team/m:" + "x" * 129, "invalid tag"),
        ("reg.io/team/m:v1,bad tag", "invalid tag"),
        ("reg.io/team/m:v1,", "invalid tag"),
        ("reg.io/team/m@sha256:" + "A" * 64, "invalid digest"),
        ("reg.io/team/m@md5:abc", "invalid digest"),
        ("reg.io/team/m\x00:v1", "invalid repository"),
        ("reg.io/team/../m:v1", "invalid repository"),
        ("reg.io/te$am/m:v1", "invalid repository"),
        ("re g.io:5000/m:v1", "invalid"),
        ("user:pass@reg.io/m:v1", "invalid"),
        ("[::1:5000/m:v1", "invalid"),
    ],
)
def test_bad_references_are_named_in_the_error(text: str, message: str) -> None:
    with pytest.raises(ReferenceFormatError, match=message):
        parse_reference(text)


def test_negative_zero_is_written_as_go_writes_it() -> None:
    """yaml.v3: FormatFloat(-0.0, 'g') is `-0`, and the plain scalar `-0` resolves to the int 0."""
    assert dump({"p": -0.0}) == "p: -0\n"
    again = loads(dump({"p": -0.0}))
    assert again == {"p": 0} and type(again["p"]) is int
