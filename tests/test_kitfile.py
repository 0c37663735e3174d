"""Kitfile parsing, kit's JSON/YAML bytes, config blobs, validation and layer order.

The golden JSON/YAML strings follow kit's own round-trip cases (pkg/artifact/testdata/parameters)
and were cross-checked against a Go build using yaml.v3 3.0.1 and encoding/json.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from kitops_flows.errors import KitfileError
from kitops_flows.kitfile import (
    DatasetEntry,
    DocsEntry,
    Kitfile,
    LayerInfo,
    McpServerEntry,
    Model,
    ModelPart,
    Package,
    clean_path,
    is_modelkit_reference,
    path_type,
)


def kf(text: str) -> Kitfile:
    return Kitfile.from_yaml(textwrap.dedent(text))


HEADER = """\
manifestVersion: 1.0.0
package:
  name: demo-kit
model:
  name: demo-model
  path: /srv/models/demo
"""

# (parameters block as YAML, exact JSON of the parameters). The YAML is already in yaml.v3's
# canonical form, so to_yaml() must give back the input byte for byte.
ROUND_TRIPS = {
    "flat-map": (
        "  parameters:\n    alpha: a\n    beta: b\n    gamma: c\n",
        '{"alpha":"a","beta":"b","gamma":"c"}',
    ),
    "scalar-types": (
        '  parameters:\n    as-bool: false\n    as-float: 0.25\n    as-int: 42\n    as-neg: -7\n'
        '    quoted-bool: "false"\n    text: words\n',
        '{"as-bool":false,"as-float":0.25,"as-int":42,"as-neg":-7,"quoted-bool":"false","text":"words"}',
    ),
    "list": (
        "  parameters:\n    - first\n    - second\n",
        '["first","second"]',
    ),
    "nested": (
        "  parameters:\n    grid:\n      - - 1\n        - 2\n      - - 3\n    deep:\n      x:\n        y:\n          z: end\n"
        "    mixed:\n      - plain\n      - obj:\n          - k1: 1\n          - k2: 2\n",
        '{"deep":{"x":{"y":{"z":"end"}}},"grid":[[1,2],[3]],"mixed":["plain",{"obj":[{"k1":1},{"k2":2}]}]}',
    ),
    "literal-string": (
        "  parameters: |\n    only text\n",
        '"only text\\n"',
    ),
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIPS))
def test_parameters_round_trip_like_kit(case: str) -> None:
    params_yaml, params_json = ROUND_TRIPS[case]
    source = HEADER + params_yaml
    kitfile = Kitfile.from_yaml(source)
    if case != "nested":  # yaml.v3 sorts map keys on output; "nested" is written unsorted on purpose
        assert kitfile.to_yaml() == source
    assert kitfile.to_json() == (
        '{"manifestVersion":"1.0.0","package":{"name":"demo-kit"},'
        '"model":{"name":"demo-model","path":"/srv/models/demo","parameters":' + params_json + "}}"
    ).encode()


def test_nested_parameters_are_written_with_sorted_keys() -> None:
    out = Kitfile.from_yaml(HEADER + ROUND_TRIPS["nested"][0]).to_yaml()
    assert out.index("deep:") < out.index("grid:") < out.index("mixed:")
    assert Kitfile.from_yaml(out).to_json() == Kitfile.from_yaml(HEADER + ROUND_TRIPS["nested"][0]).to_json()


def test_json_struct_order_omitempty_and_layer_info() -> None:
    kitfile = Kitfile(
        manifest_version="1.0.0",
        model=Model(path="./model/", parts=[ModelPart(path="tok.json", type="tokenizer")],
                    layer_info=LayerInfo("sha256:aa", "sha256:bb")),
        datasets=[DatasetEntry(name="s3", path="data/remote", remote_path="s3://b/k", remote_hash="sha256:cc")],
        docs=[DocsEntry(), DocsEntry(path="README.md", description="<readme> & more")],
    )
    assert kitfile.to_json() == (
        b'{"manifestVersion":"1.0.0","package":{},'
        b'"model":{"path":"./model/","parts":[{"path":"tok.json","type":"tokenizer"}],'
        b'"digest":"sha256:aa","diffId":"sha256:bb"},'
        b'"datasets":[{"name":"s3","path":"data/remote","remotePath":"s3://b/k","remoteHash":"sha256:cc"}],'
        b'"docs":[{"path":""},{"path":"README.md","description":"\\u003creadme\\u003e \\u0026 more"}]}'
    )


def test_empty_containers_versus_absent_values() -> None:
    k = kf("""\
        manifestVersion: "1.0"
        model: {}
        code: []
        datasets:
          - path: d
            parameters: {}
        """)
    assert k.to_json() == b'{"manifestVersion":"1.0","package":{},"model":{},"datasets":[{"path":"d","parameters":{}}]}'
    assert k.to_yaml() == 'manifestVersion: "1.0"\nmodel: {}\ndatasets:\n  - path: d\n    parameters: {}\n'


def test_strings_are_kept_verbatim_and_null_is_empty() -> None:
    k = kf("""\
        manifestVersion: 1.0.0
        package:
          version: 1.10
          name: yes
          description: ~
          authors: [Jane <jane@example.com>, null, 007]
        model:
          path: ./models/v1/
        """)
    assert (k.package.version, k.package.name, k.package.description) == ("1.10", "yes", "")
    assert k.package.authors == ["Jane <jane@example.com>", "007"]  # yaml.v3 drops null list items
    assert k.model is not None and k.model.path == "./models/v1/"
    assert k.to_yaml() == (
        "manifestVersion: 1.0.0\npackage:\n  name: \"yes\"\n  version: \"1.10\"\n"
        "  authors: [Jane <jane@example.com>, \"007\"]\nmodel:\n  path: ./models/v1/\n"
    )


def test_parameter_scalars_follow_yaml_1_2_as_yaml_v3_reads_them() -> None:
    k = kf("""\
        manifestVersion: 1.0.0
        model:
          parameters:
            on-word: on
            octal-new: 0o17
            octal-old: 017
            hex: 0x1F
            under: 1_000
            sci: 1.2e+3
            big: 1e400
            inf-text: ".inf"
            date: 2024-03-01
            stamp: 2024-03-01 10:20:30.500
            empty:
        """)
    assert k.to_json() == (
        b'{"manifestVersion":"1.0.0","package":{},"model":{"parameters":{"big":"1e400","date":"2024-03-01T00:00:00Z",'
        b'"empty":null,"hex":31,"inf-text":".inf","octal-new":15,"octal-old":15,"on-word":"on",'
        b'"sci":1200,"stamp":"2024-03-01T10:20:30.5Z","under":1000}}}'
    )
    assert "  parameters:\n    big: 1e400\n    date: 2024-03-01T00:00:00Z\n    empty: null\n" in k.to_yaml()
    assert '    inf-text: ".inf"\n' in k.to_yaml() and '    on-word: "on"\n' in k.to_yaml()


def test_yaml_writer_quirks_match_yaml_v3() -> None:
    k = Kitfile(
        manifest_version="1.0.0",
        package=Package(authors=["a: b", "plain"], description="\ufeffbom, text"),
        model=Model(description="\nstarts with a break", parameters={"k": "x\ny", "z9": 1, "z10": 2, "A": True}),
    )
    assert k.to_yaml() == (
        "manifestVersion: 1.0.0\n"
        "package:\n"
        '  description: "\\uFEFF\\x62\\x6F\\x6D\\x2C\\x20\\x74\\x65\\x78\\x74"\n'
        "  authors: ['a: b', plain]\n"
        "model:\n"
        "  description: |2-\n"
        "    starts with a break\n"
        "  parameters:\n"
        "    A: true\n"
        "    k: |-\n"
        "      x\n"
        "      y\n"
        "    z9: 1\n"
        "    z10: 2\n"
    )


def test_unknown_field_is_an_error_naming_file_line_and_field() -> None:
    with pytest.raises(KitfileError) as e:
        Kitfile.from_yaml("manifestVersion: 1.0.0\nmodel:\n  name: m\n  modle: x\n", source="ctx/Kitfile")
    message = str(e.value)
    assert message.startswith('ctx/Kitfile line 4: unknown field "modle" in model (known fields: name, path,')
    assert "parameters" in message


def test_every_decoding_problem_is_reported() -> None:
    text = "manifestVersion: 1.0.0\nmodel: just-a-string\ncode:\n  - path: [a]\ndigest: sha256:x\n"
    with pytest.raises(KitfileError) as e:
        Kitfile.from_yaml(text)
    lines = str(e.value).splitlines()
    assert lines == [
        "Kitfile line 2: model must be a mapping, not 'just-a-string'",
        "Kitfile line 4: code[0].path must be a string, not a list",
        'Kitfile line 5: unknown field "digest" in the Kitfile (known fields: manifestVersion, package, model, '
        "code, datasets, docs, prompts, mcpServers)",
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("manifestVersion: 1.0.0\nmanifestVersion: 2\n", "line 2: mapping key 'manifestVersion' already defined at line 1"),
        ("manifestVersion: [1.0.0\n", "Kitfile line 2: invalid YAML"),
        ("# only a comment\n", "Kitfile is empty"),
        ("- a\n", "the Kitfile must be a mapping, not a list"),
        ("manifestVersion: 1.0.0\npackage:\n  version: !!int v1\n", "line 3: package.version: cannot decode !!str `v1` as a !!int"),
        ("manifestVersion: 1.0.0\nmodel:\n  parameters: {1: a}\n", "map key 1, which is not a string"),
    ],
)
def test_malformed_kitfiles(text: str, fragment: str) -> None:
    with pytest.raises(KitfileError, match=None) as e:
        Kitfile.from_yaml(text)
    assert fragment in str(e.value)


def test_merge_keys_and_anchors() -> None:
    k = kf("""\
        manifestVersion: 1.0.0
        model:
          parameters:
            base: &base {lr: 0.1, epochs: 3}
            tuned:
              <<: *base
              lr: 0.01
        """)
    assert k.model is not None
    assert k.model.parameters == {"base": {"lr": 0.1, "epochs": 3}, "tuned": {"lr": 0.01, "epochs": 3}}


def test_from_json_keeps_layer_info_and_behaves_like_go(caplog: pytest.LogCaptureFixture) -> None:
    blob = (b'{"manifestVersion":"1.0.0","package":{"name":"p","futureField":1},'
            b'"model":{"path":"m","parameters":{"count":1234567,"f":0.5},"digest":"sha256:d1","diffId":"sha256:i1"},'
            b'"docs":[{"path":"README.md","digest":"sha256:d2","diffId":"sha256:i2"}],"extra":true}')
    with caplog.at_level(logging.WARNING):
        k = Kitfile.from_json(blob, source="config of reg/repo:v1")
    assert k.model is not None and k.model.layer_info == LayerInfo("sha256:d1", "sha256:i1")
    assert k.docs[0].layer_info == LayerInfo("sha256:d2", "sha256:i2")
    assert "package.futureField" in caplog.text and "extra" in caplog.text and "reg/repo:v1" in caplog.text
    # Go's json.Unmarshal into `any` turns every number into a float64; kit then writes it back so:
    assert k.to_json() == blob.replace(b',"futureField":1', b"").replace(b',"extra":true', b"").replace(
        b'{"count":1234567,"f":0.5}', b'{"count":1234567,"f":0.5}')
    assert "    count: 1.234567e+06\n" in k.to_yaml()
    assert "digest" not in k.to_yaml()


def test_from_json_old_style_config_without_layer_info() -> None:
    k = Kitfile.from_json(b'{"manifestVersion":"1.0.0","package":{},"code":[{"path":"src"}],"model":null}')
    assert k.model is None and k.code[0].layer_info is None and k.code[0].path == "src"


def test_from_json_rejects_wrong_types() -> None:
    with pytest.raises(KitfileError, match="model.path must be a string"):
        Kitfile.from_json(b'{"manifestVersion":"1.0.0","model":{"path":5}}', source="cfg")
    with pytest.raises(KitfileError, match="not valid JSON"):
        Kitfile.from_json(b"{", source="cfg")


def test_layer_entries_in_kit_order() -> None:
    k = kf("""\
        manifestVersion: 1.0.0
        mcpServers: [{name: pg, path: pg.mcpb}]
        prompts: [{name: sys, path: prompts/system.md}]
        docs: [{path: README.md}]
        datasets:
          - {name: local, path: data/train}
          - {name: remote, path: data/s3, remotePath: s3://bucket/key, remoteHash: sha256:00}
        code: [{path: src}]
        model:
          name: m
          path: model.bin
          parts: [{name: tok, path: tok.json}]
        """)
    entries = k.layer_entries()
    assert [(e.kind, e.path, e.name, e.index) for e in entries] == [
        ("model", "model.bin", "m", 0),
        ("modelpart", "tok.json", "tok", 0),
        ("code", "src", "", 0),
        ("dataset", "data/train", "local", 0),
        ("docs", "README.md", "", 0),
        ("prompt", "prompts/system.md", "sys", 0),
        ("mcpb", "pg.mcpb", "pg", 0),
    ]
    entries[0].entry.layer_info = LayerInfo("sha256:1", "sha256:1")
    assert k.model is not None and k.model.layer_info is not None  # entries point at the Kitfile objects


def test_model_reference_and_empty_model_path_produce_no_model_layer() -> None:
    assert [e.kind for e in kf("manifestVersion: 1.0.0\nmodel:\n  path: myorg/base:v1\n  parts: [{path: a}]\n")
            .layer_entries()] == ["modelpart"]
    assert kf("manifestVersion: 1.0.0\nmodel:\n  name: only-name\n").layer_entries() == []


def test_is_modelkit_reference_and_path_types() -> None:
    assert is_modelkit_reference("myorg/base:v1")
    assert is_modelkit_reference("registry.example.com:5000/team/model@sha256:" + "a" * 64)
    assert not is_modelkit_reference("models/base")  # no ':' or '@'
    assert not is_modelkit_reference("Upper/Case:v1")  # does not parse
    assert path_type("s3://bucket/key") == ("s3", None)
    assert path_type("https://x/y") == ("unknown", "HTTP urls are not supported in paths (https://x/y)")
    assert path_type("ftp://x/y") == ("unknown", "unrecognized URL in path: ftp://x/y")
    assert path_type("//host/share") == ("unknown", "unrecognized URL in path: //host/share")
    assert path_type("data/train") == ("local", None)


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [("", "."), (".", "."), ("./model/", "model"), ("a//b/../c", "a/c"), ("../x", "../x"), ("a/../..", ".."),
     ("/abs/../y", "/y"), ("/..", "/")],
)
def test_clean_path_is_go_filepath_clean(path: str, cleaned: str) -> None:
    assert clean_path(path) == cleaned


def validation_errors(text: str) -> list[str]:
    with pytest.raises(KitfileError) as e:
        Kitfile.from_yaml("manifestVersion: 1.0.0\n" + textwrap.dedent(text)).validate(source="ctx/Kitfile")
    head, *items = str(e.value).split("\n")
    assert head == "ctx/Kitfile: errors while validating Kitfile: "
    assert all(i.startswith("  * ") for i in items)
    return [i[4:] for i in items]


@pytest.mark.parametrize(
    ("kitfile", "expected"),
    [
        ("model: {name: m, path: ./data}\ndatasets: [{path: data/}]\ncode: [{path: data}]\n",
         ["model m, code layer 0 and dataset layer 0 use the same path data"]),
        ("code: [{path: /etc}]\n", ["absolute paths are not supported in a Kitfile (path /etc in code layer 0)"]),
        ("datasets: [{path: data/../../outside}]\n",
         ["paths outside the context directory are not supported in a Kitfile (path ../outside in dataset layer 0)"]),
        ("docs: [{path: 'http://example.com/x'}]\n",
         ["invalid path for doc (http://example.com/x): HTTP urls are not supported in paths (http://example.com/x)",
          "invalid path for doc (http://example.com/x): only local paths are permitted"]),
        ("model: {path: 's3://b/m'}\n", ["invalid path for model: only local paths and ModelKit references are permitted"]),
        ("code: [{path: 'myorg/base:v1'}]\n", ["invalid path for code (myorg/base:v1): only local paths are permitted"]),
        ("model:\n  parts: [{name: p, path: p.bin, type: '-bad'}]\n",
         ["modelpart p has invalid type (must be alphanumeric with dots, dashes, and underscores)"]),
        ("model:\n  parts: [{name: p, path: p.bin, type: " + "t" * 65 + "}]\n",
         ["modelpart p type is too long (must be fewer than 64 characters)"]),
        ("datasets: [{path: d, remotePath: 's3://b/k'}]\n",
         ["remoteHash is required when remote dataset paths are used (s3://b/k)"]),
        ("datasets: [{path: d, remotePath: 'gs://b/k', remoteHash: x}]\n",
         ["invalid remote path for dataset (gs://b/k): unrecognized URL in path: gs://b/k",
          "only S3 URLs and ModelKit references are supported for remote dataset paths (gs://b/k)"]),
        ("datasets: [{path: d, remoteHash: x}]\n", ["remote hash is only applicable when remotePath is set"]),
        ("datasets: [{path: shared, remotePath: 'org/data:v1'}]\ncode: [{path: shared/sub}]\n",
         ["code layer 0 uses a path (shared/sub) that is within the path for a remote dataset"]),
        ("mcpServers: [{name: a, path: server.zip}, {path: b.mcpb}, {name: a, path: c.mcpb}]\n",
         ["duplicate mcpServer name a: names must be unique",
          "invalid path for mcpServer (server.zip): path must point to a single .mcpb file",
          "mcpServer with path b.mcpb must have a name"]),
        ("prompts: [{path: /p.md}]\nmodel:\n  parameters: {x: .inf}\n",
         ["absolute paths are not supported in a Kitfile (path /p.md in prompt layer 0)",
          "the Kitfile cannot be stored as a ModelKit config: json: unsupported value: +Inf "
          "(parameters must be JSON-compatible: no .inf/.nan, string map keys)"]),
    ],
)
def test_validation_rules(kitfile: str, expected: list[str]) -> None:
    assert validation_errors(kitfile) == sorted(expected)


def test_valid_kitfiles_and_warnings() -> None:
    nested = kf("""\
        manifestVersion: "1.0"
        model: {path: main-dir}
        datasets:
          - {path: main-dir/subdir}
          - {path: elsewhere, remotePath: 'org/data:v1', remoteHash: sha256:1}
          - {path: other, remotePath: 's3://b/k', remoteHash: sha256:2}
        code: [{path: .}]
        mcpServers: [{name: pg, path: tools/pg.mcpb}]
        """)
    assert nested.validate() == [
        "Unrecognized manifestVersion 1.0: treating Kitfile as 1.0.0",
        "remoteHash is ignored for ModelKit references in datasets (elsewhere)",
    ]
    assert kf("manifestVersion: 1.0.0\nmodel: {path: 'myorg/base:v1'}\n").validate() == []


def test_find_uses_kit_default_names_in_order(tmp_path: Path) -> None:
    with pytest.raises(KitfileError) as e:
        Kitfile.find(tmp_path)
    assert str(e.value) == f"No Kitfile found in {tmp_path}. Consider using the -f flag to specify its path"
    (tmp_path / ".kitfile").write_text("manifestVersion: 1.0.0\n")
    assert Kitfile.find(tmp_path).name == ".kitfile"
    (tmp_path / "Kitfile").write_text("manifestVersion: 1.0.0\n")
    assert Kitfile.find(tmp_path).name == "Kitfile"


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "Kitfile"
    path.write_text("manifestVersion: 1.0.0\nmodle: x\n")
    with pytest.raises(KitfileError, match=f"^{path} line 2: unknown field"):
        Kitfile.load(path)
    path.write_bytes(b"manifestVersion: \xff\n")
    with pytest.raises(KitfileError, match="not UTF-8"):
        Kitfile.load(path)
    with pytest.raises(KitfileError, match="does not exist"):
        Kitfile.load(tmp_path / "missing")


def test_yaml_output_parses_back_to_the_same_kitfile() -> None:
    original = Kitfile(
        manifest_version="1.0.0",
        package=Package(name="n", authors=["x, y", "[z]"], license="Apache-2.0"),
        model=Model(name="m", path="m.gguf", parameters={"text": "a: b # c", "list": [None, "", " pad "]}),
        mcp_servers=[McpServerEntry(name="s", path="s.mcpb", description="multi\nline\n")],
    )
    again = Kitfile.from_yaml(original.to_yaml())
    assert again == original
    assert again.to_yaml() == original.to_yaml()


# -- the YAML layer underneath (kitops_flows.yaml12); values checked against yaml.v3 3.0.1 ----------------

@pytest.mark.parametrize(
    ("plain", "value"),
    [
        ("true", True), ("True", True), ("TRUE", True), ("tRue", "tRue"), ("yes", "yes"), ("off", "off"),
        ("~", None), ("Null", None), ("", None),
        ("017", 15), ("0o17", 15), ("-0o17", -15), ("0x1F", 31), ("0b101", 5), ("09", 9.0), ("1_000", 1000),
        ("18446744073709551615", 2**64 - 1), ("+18446744073709551615", 1.8446744073709552e19),
        ("18446744073709551616", 1.8446744073709552e19), ("-9223372036854775809", -9.223372036854776e18),
        (".5", 0.5), ("1.", 1.0), ("1e3", 1000.0), ("1e400", "1e400"), ("-.Inf", float("-inf")),
        ("2001-12-14t21:59:43.10-05:00", "2001-12-14T21:59:43.1-05:00"), ("2002-2-30", "2002-2-30"),
        ("1:20", "1:20"), ("0x", "0x"),
    ],
)
def test_yaml12_plain_scalar_resolution(plain: str, value: object) -> None:
    from kitops_flows import yaml12

    loaded = yaml12.loads(f"k: {plain}\n")["k"]
    assert loaded == value and type(loaded) is type(value) or isinstance(loaded, yaml12.Timestamp)
    if isinstance(loaded, yaml12.Timestamp):
        assert loaded == value


def test_yaml12_dump_quoting_matches_yaml_v3() -> None:
    from kitops_flows import yaml12

    value = {"plain": "a b", "num": "12", "old-bool": "Y", "base60": "1:20", "colon": "a: b", "hash": "a #b",
             "lead": " x", "empty": "", "tab": "a\tb", "quote": "it's", "emoji": "😀", "dash": "- x"}
    assert yaml12.dump(value) == (
        'base60: "1:20"\ncolon: \'a: b\'\ndash: \'- x\'\nemoji: "\\U0001F600"\nempty: ""\nhash: \'a #b\'\n'
        "lead: ' x'\nnum: \"12\"\nold-bool: \"Y\"\nplain: a b\nquote: it's\ntab: \"a\\tb\"\n"
    )


def test_billion_laughs_is_refused_quickly() -> None:
    """Aliases expanding exponentially are refused (yaml.v3: "excessive aliasing"), not decoded."""
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        levels.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    text = "manifestVersion: 1.0.0\nmodel:\n  parameters:\n" + "".join(f"    {line}\n" for line in levels)
    with pytest.raises(KitfileError, match="excessive aliasing"):
        Kitfile.from_yaml(text)
