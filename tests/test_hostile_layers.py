"""Hostile layers at the API level: a ModelKit whose layer tar is malicious, unpacked with
``KitOpsClient.unpack`` from the local store and from a real registry.

``tests/test_extract.py`` checks ``extract_tar`` itself; here the whole path is exercised (store ->
verify -> extract -> merge), and we assert that the error is clear, that ``dest`` is not created (or,
if it existed, is unchanged) and that nothing appears outside it. Also: a corrupted blob is caught
by digest and never extracted, and the CLI reports all of this on one line without a traceback.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import DigestMismatchError, UnpackError
from kitops_flows.kitfile import DatasetEntry, Kitfile, LayerInfo, Package
from kitops_flows.manifest import ANNOTATION_FILEPATH, Manifest
from kitops_flows.mediatypes import KIT_CONFIG
from kitops_flows.store import Descriptor, LocalStore

DATASET_TAR = "application/vnd.kitops.modelkit.dataset.v1.tar"


# -- building hostile tars (our own cases, from the tar format's facts) ----------------------------------------

def _tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _entry(name: str, typ: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = typ
    info.mode = 0o644
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def _huge_declared() -> bytes:
    return _entry("data/huge.bin", size=1 << 40).tobuf(tarfile.PAX_FORMAT) + b"\0" * 2048


def _non_utf8() -> bytes:
    raw = _entry("data/caf\udce9.txt", size=1).tobuf(tarfile.USTAR_FORMAT, encoding="utf-8",
                                                    errors="surrogateescape")
    return raw + b"x".ljust(512, b"\0") + b"\0" * 1024


HOSTILE: dict[str, tuple[Callable[[], bytes], str]] = {
    "absolute path": (lambda: _tar((_entry("/tmp/kitops-hostile-abs"), b"x")), "absolute"),
    "dotdot": (lambda: _tar((_entry("data/../../kitops-hostile-dotdot"), b"x")), r"\.\."),
    "symlink escape": (lambda: _tar((_entry("data/link", tarfile.SYMTYPE, linkname="../../.."), None)), "link"),
    "symlink then file": (lambda: _tar((_entry("data/etc", tarfile.SYMTYPE, linkname="/tmp"), None),
                                       (_entry("data/etc/kitops-hostile-through"), b"x")), "symlink"),
    "hardlink escape": (lambda: _tar((_entry("data/passwd", tarfile.LNKTYPE, linkname="/etc/passwd"), None)),
                        "hard link"),
    "fifo": (lambda: _tar((_entry("data/pipe", tarfile.FIFOTYPE), None)), "fifo"),
    "char device": (lambda: _tar((_entry("data/null", tarfile.CHRTYPE, devmajor=1, devminor=3), None)),
                    "character device"),
    "duplicate entries": (lambda: _tar((_entry("data/a.txt"), b"1"), (_entry("data/a.txt"), b"2")), "duplicate"),
    "huge declared size": (_huge_declared, "huge.bin"),
    "non-utf8 name": (_non_utf8, "UTF-8"),
}


def put_modelkit(store: LocalStore, repo_path: str, tag: str, layer: bytes, path: str = "data") -> str:
    """Store a one-dataset ModelKit whose layer is ``layer`` (a correct manifest and config around it)."""
    digest, size = store.put_bytes(layer)
    kf = Kitfile(manifest_version="1.0.0", package=Package(name="hostile"),
                 datasets=[DatasetEntry(name="d", path=path, layer_info=LayerInfo(digest, digest))])
    config_digest, config_size = store.put_bytes(kf.to_json())
    manifest = Manifest(config=Descriptor(KIT_CONFIG, config_digest, config_size),
                        layers=[Descriptor(DATASET_TAR, digest, size, annotations={ANNOTATION_FILEPATH: path})])
    return store.put_manifest(repo_path, manifest.to_bytes(), [tag]).digest


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


SENTINELS = ("/tmp/kitops-hostile-abs", "/tmp/kitops-hostile-through")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_from_the_store_is_refused(case: str, tmp_path: Path) -> None:
    build, message = HOSTILE[case]
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    put_modelkit(kit.store, "localhost/hostile/kit", "v1", build())
    work = tmp_path / "work"
    work.mkdir()
    dest = work / "out"
    with pytest.raises(UnpackError, match=message) as info:
        kit.unpack("hostile/kit:v1", dest)
    assert "hostile/kit:v1" in str(info.value)  # names the ModelKit
    assert not dest.exists(), "a refused layer must not leave a destination behind"
    assert _tree(work) == [], "no staging directory or escaped file may be left beside dest"
    assert _tree(tmp_path / "home" / "storage" / "ingest") == []
    for sentinel in SENTINELS:
        assert not os.path.lexists(sentinel)


def test_hostile_layer_into_an_existing_dest_changes_nothing(tmp_path: Path) -> None:
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    good = _tar((_entry("data/fine.txt"), b"fine"))
    bad = _tar((_entry("data/fine2.txt"), b"fine"), (_entry("data/x", tarfile.SYMTYPE, linkname="/etc"), None),
               (_entry("data/x/kitops-hostile"), b"x"))
    put_modelkit(kit.store, "localhost/hostile/kit", "good", good)
    put_modelkit(kit.store, "localhost/hostile/kit", "bad", bad)
    dest = tmp_path / "dest"
    kit.unpack("hostile/kit:good", dest)
    before = {p: (dest / p).read_bytes() for p in _tree(dest) if (dest / p).is_file()}
    with pytest.raises(UnpackError, match="'data/x' is a symlink"):
        kit.unpack("hostile/kit:bad", dest, existing="overwrite")
    assert {p: (dest / p).read_bytes() for p in _tree(dest) if (dest / p).is_file()} == before
    assert not (dest / "data" / "fine2.txt").exists(), "even the harmless entries before the bad one stay out"


def test_corrupted_layer_blob_is_never_extracted(tmp_path: Path) -> None:
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"))
    layer = _tar((_entry("data/model.bin"), os.urandom(4096)))
    put_modelkit(kit.store, "localhost/c/kit", "v1", layer)
    blob = kit.store.blob_path("sha256:" + __import__("hashlib").sha256(layer).hexdigest())
    data = bytearray(blob.read_bytes())
    data[1024] ^= 0xFF  # flip one byte inside the file's content: still a valid tar
    os.chmod(blob, 0o644)
    blob.write_bytes(bytes(data))
    assert not kit.verify().ok
    dest = tmp_path / "out"
    with pytest.raises(DigestMismatchError, match="hashes to"):
        kit.unpack("c/kit:v1", dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    cli = _cli(["--config", str(tmp_path / "home"), "verify"])
    assert cli.returncode == 1 and "corrupted" in cli.stdout
    assert "Traceback" not in cli.stderr


def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kitops_flows.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("case", ["symlink then file", "hardlink escape", "non-utf8 name"])
def test_cli_reports_a_hostile_layer_on_one_line(case: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    put_modelkit(LocalStore(home), "localhost/hostile/kit", "v1", HOSTILE[case][0]())
    dest = tmp_path / "out"
    result = _cli(["--config", str(home), "unpack", "hostile/kit:v1", "-d", str(dest)])
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert not dest.exists()


@pytest.mark.integration
@pytest.mark.parametrize("case", ["absolute path", "symlink then file", "duplicate entries", "huge declared size"])
def test_hostile_layer_from_a_registry_is_refused(case: str, registry, kitops_home: Path,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path) -> None:
    """Push a crafted ModelKit (push never looks inside layers), then unpack it into a fresh store."""
    packer = KitOpsClient(store=LocalStore(tmp_path / "packer"), plain_http=True)
    ref = f"{registry.host}/hostile/{case.replace(' ', '-')}:v1"
    put_modelkit(packer.store, ref.rsplit(":", 1)[0], "v1", HOSTILE[case][0]())
    packer.push(ref)
    consumer = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    dest = tmp_path / "out"
    with pytest.raises(UnpackError, match=HOSTILE[case][1]):
        consumer.unpack(ref, dest)
    assert not dest.exists()
    for sentinel in SENTINELS:
        assert not os.path.lexists(sentinel)
    # the (verified) layer is cached; nothing half-downloaded is left
    assert _tree(kitops_home / "storage" / "ingest") == []
    assert consumer.verify().ok
