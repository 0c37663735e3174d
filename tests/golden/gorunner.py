"""Build and run tests/golden/gotar (Go's archive/tar as kit uses it) for byte-for-byte comparisons.

The binary is built once per pytest session into the session's base temp dir, offline
(GOPROXY=off, GOFLAGS=-mod=mod, private GOPATH/GOCACHE). Tests skip when ``go`` is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GOTAR_SRC = Path(__file__).parent / "gotar"


def gotar_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the built gotar binary (built on first use in this session), or skip the test."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go toolchain not on PATH: golden comparisons with archive/tar need `go`")
    base = tmp_path_factory.getbasetemp() / "gotar-build"
    binary = base / "gotar"
    if binary.exists():
        return binary
    base.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "GOPATH": str(base / "gopath"),
        "GOCACHE": str(base / "gocache"),
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
    }
    result = subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=GOTAR_SRC, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"building {GOTAR_SRC} failed:\n{result.stderr}")
    return binary


def go_tree_tar(binary: Path, directory: Path, out: Path) -> bytes:
    """Go's tar of every regular file and directory under ``directory`` (kit's headers, walk order)."""
    subprocess.run([str(binary), "tree", str(directory), str(out)], check=True, capture_output=True)
    return out.read_bytes()


def go_header(binary: Path, name: str, size: int, mode: int, is_dir: bool, out: Path) -> bytes:
    """Only the header block(s) Go writes for one entry."""
    args = [str(binary), "header", os.fsencode(name), str(size), f"{mode:o}", "dir" if is_dir else "file", str(out)]
    subprocess.run(args, check=True, capture_output=True)
    return out.read_bytes()
