"""kit init's heuristics, on small trees made in tmp_path (scenarios after kit's kitfile-generation cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitops_flows.errors import KitfileError
from kitops_flows.generate import FileType, detect_file_type, detect_license, generate_kitfile

MIT_TEXT = "MIT License\n\nCopyright (c) 2026 Example\n\nPermission is hereby granted, free of charge, to any person\n"
APACHE_TEXT = "                                 Apache License\n                           Version 2.0, January 2004\n"


def make_tree(root: Path, files: dict[str, int | str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, int):
            path.write_bytes(b"\0" * content)
        else:
            path.write_text(content)
    return root


def paths(entries: list) -> list[str]:  # type: ignore[type-arg]
    return [e.path for e in entries]


def test_type_detection_readme_license_and_catch_all(tmp_path: Path) -> None:
    make_tree(tmp_path, {
        "a-model.gguf": 10, "b-model.safetensors": 10, "c-model.pkl": 10, "d-model.pb": 10,
        "a-dataset.tar": 1, "b-dataset.csv": 1, "c-dataset.zip": 1,
        "a-docs.md": 1, "b-docs.adoc": 1, "c-docs.pdf": 1,
        "README.md": "# demo", "LICENSE": MIT_TEXT, "train.sh": "echo", "Kitfile": "old",
    })
    kf = generate_kitfile(tmp_path, name="detect", description="Detects types")
    assert (kf.manifest_version, kf.package.name, kf.package.description) == ("1.0.0", "detect", "Detects types")
    assert kf.model is not None
    assert kf.model.path == "a-model.gguf" and kf.model.name == ""  # equal sizes: no main model
    assert paths(kf.model.parts) == ["b-model.safetensors", "c-model.pkl", "d-model.pb"]
    assert kf.model.license == "MIT"
    assert paths(kf.datasets) == ["a-dataset.tar", "b-dataset.csv", "c-dataset.zip"]
    assert [(d.path, d.description) for d in kf.docs] == [
        ("LICENSE", "License file"), ("README.md", "Readme file"),
        ("a-docs.md", ""), ("b-docs.adoc", ""), ("c-docs.pdf", ""),
    ]
    assert paths(kf.code) == ["."]
    kf.validate()


def test_largest_weights_file_is_the_model_and_named_after_it(tmp_path: Path) -> None:
    make_tree(tmp_path, {"adapter-1.gguf": 10, "adapter-2.gguf": 10, "main-model.v2.gguf": 100})
    kf = generate_kitfile(tmp_path)
    assert kf.model is not None
    assert (kf.model.name, kf.model.path) == ("main-model.v2", "main-model.v2.gguf")
    assert paths(kf.model.parts) == ["adapter-1.gguf", "adapter-2.gguf"]


def test_similar_shards_keep_listing_order(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"model-000{i}.safetensors": 100 + i for i in (3, 1, 2)})
    kf = generate_kitfile(tmp_path)
    assert kf.model is not None and kf.model.path == "model-0001.safetensors" and kf.model.name == ""
    assert paths(kf.model.parts) == ["model-0002.safetensors", "model-0003.safetensors"]


def test_single_model_file_is_named_after_its_path(tmp_path: Path) -> None:
    make_tree(tmp_path, {"weights/net.onnx": 5})
    kf = generate_kitfile(tmp_path)
    assert kf.model is not None and (kf.model.name, kf.model.path) == ("weights/net", "weights/net.onnx")


def test_metadata_files_join_the_model_or_become_datasets(tmp_path: Path) -> None:
    with_model = make_tree(tmp_path / "m", {"m.gguf": 5, "x.json": 1, "y.yaml": 1, "z.txt": 1})
    kf = generate_kitfile(with_model)
    assert kf.model is not None and paths(kf.model.parts) == ["x.json", "y.yaml", "z.txt"]
    assert kf.datasets == []
    without = make_tree(tmp_path / "d", {"a.csv": 1, "x.json": 1, "y.xml": 1})
    kf = generate_kitfile(without)
    assert kf.model is None and paths(kf.datasets) == ["a.csv", "x.json", "y.xml"]


def test_directories(tmp_path: Path) -> None:
    make_tree(tmp_path, {
        "src/run.sh": 1, "pkg/x.sh": 1, "lib/y.sh": 1, "build/z.sh": 1, "docs/guide": 1,
        "weights/w1.gguf": 5, "weights/w2.gguf": 5, "weights/meta.json": 1,
        "data/p1.parquet": 1, "data/p2.parquet": 1, "data/schema.json": 1,
        "manuals/a.md": 1, "manuals/b.pdf": 1,
        "agent/SKILL.md": 1, "agent/review.prompt": 1,
        "mixed/notes.md": 1, "mixed/table.csv": 1,
        "nested/inner/file.csv": 1,
    })
    kf = generate_kitfile(tmp_path)
    assert kf.model is not None and kf.model.path == "weights/w1.gguf"
    assert paths(kf.model.parts) == ["weights/w2.gguf", "weights/meta.json"]
    assert paths(kf.datasets) == ["data"]
    assert paths(kf.docs) == ["docs", "manuals"]
    assert paths(kf.prompts) == ["agent"]
    assert paths(kf.code) == ["build", "lib", "pkg", "src", "mixed", "nested"]
    kf.validate()


def test_many_unclassified_directories_collapse_into_one_code_layer(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"tool{i}/x.sh": 1 for i in range(6)})
    kf = generate_kitfile(tmp_path)
    assert paths(kf.code) == ["."] and kf.code[0].license == ""


def test_prompts_and_mcp_bundles_at_top_level(tmp_path: Path) -> None:
    make_tree(tmp_path, {"AGENTS.md": 1, "system.prompt.md": 1, "postgres.mcpb": 1})
    kf = generate_kitfile(tmp_path)
    assert paths(kf.prompts) == ["AGENTS.md", "system.prompt.md"]
    assert [(m.name, m.path) for m in kf.mcp_servers] == [("postgres", "postgres.mcpb")]
    assert kf.docs == [] and kf.code == []
    kf.validate()


def test_license_goes_to_the_single_dataset_or_the_package(tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one", {"LICENSE.txt": APACHE_TEXT, "train.csv": 1})
    kf = generate_kitfile(one)
    assert kf.datasets[0].license == "Apache-2.0" and kf.package.license == ""
    two = make_tree(tmp_path / "two", {"LICENSE": "SPDX-License-Identifier: BSD-3-Clause\n", "a.csv": 1, "b.csv": 1})
    kf = generate_kitfile(two, author="Ada")
    assert kf.package.license == "BSD-3-Clause" and kf.package.authors == ["Ada"]


def test_empty_directory_and_existing_kitfiles(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Kitfile": "x", "kitfile": "y", ".kitfile": "z"})
    kf = generate_kitfile(tmp_path, name="empty")
    assert kf.to_yaml() == "manifestVersion: 1.0.0\npackage:\n  name: empty\n"
    assert kf.layer_entries() == []


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    make_tree(tmp_path, {"real.gguf": 3})
    (tmp_path / "link.gguf").symlink_to(tmp_path / "real.gguf")
    kf = generate_kitfile(tmp_path)
    assert kf.model is not None and kf.model.path == "real.gguf" and kf.model.parts == []


def test_errors_and_helpers(tmp_path: Path) -> None:
    with pytest.raises(KitfileError, match="is not a directory"):
        generate_kitfile(tmp_path / "missing")
    assert detect_file_type("CLAUDE.md") is FileType.PROMPT
    assert detect_file_type("model.BIN") is FileType.UNKNOWN  # suffixes are case-sensitive, as in kit
    unknown = tmp_path / "LICENSE"
    unknown.write_text("All rights reserved.")
    assert detect_license(unknown) == ""
