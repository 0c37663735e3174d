"""Faults end to end on the real registry: what is left behind, and whether the next run recovers.

- the registry is SIGKILLed while blobs upload: the push fails naming the registry, no tag exists,
  and the re-push sends only the blobs the registry does not have;
- ``kitops-flows pull`` / ``unpack`` are SIGKILLed mid-way: the store still verifies, ``dest`` never
  shows half a ModelKit, the re-run completes (a pull resumes its partial downloads) and leftovers
  are swept (stale staging dirs by the next unpack, stale ingest files by ``gc``);
- a full disk (a small tmpfs) as the store or as the unpack destination: one clear ENOSPC error naming
  the path, through the API and the CLI, and nothing half-written;
- intermittent 500/503/429 from a proxy in front of the registry: push and pull still complete;
  permanent 503: both fail within the time the retry policy allows, and no tag is created.

Sizes are a few MB (push, disk full) to 96 MB (kills, so that the kill lands mid-transfer).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from services import CountingProxy, RegistryServer

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import NotFoundError, RegistryError, StoreError, UnpackError
from kitops_flows.registry import RegistryClient, RegistryHTTPError, RetryPolicy
from kitops_flows.store import LocalStore

MiB = 1 << 20
#: Short backoffs so that retries cost milliseconds; enough attempts to ride out a 30 % failure rate.
FAST = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.05, max_elapsed=20.0, refused_attempts=2,
                   refused_delay=0.05)
#: For permanent failures: few attempts, so giving up is quick and its bound is easy to state.
GIVE_UP = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2, max_elapsed=5.0, refused_attempts=2,
                      refused_delay=0.05)
#: What one loopback request may cost on top of the policy's sleeps (a loaded 2-core CI machine included).
REQUEST_ALLOWANCE = 0.5


# -- helpers ------------------------------------------------------------------------------------------------


def _random_file(path: Path, size: int) -> None:
    """``size`` bytes of incompressible data, written in 4 MiB pieces."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n


def _context(root: Path, model: int, datasets: list[int]) -> Path:
    """A context dir: ``model.bin`` plus one dataset dir per size, each its own layer."""
    _random_file(root / "model.bin", model)
    lines = ["manifestVersion: 1.0.0", "package: {name: faults}", "model: {path: model.bin}"]
    if datasets:
        lines.append("datasets:")
    for i, size in enumerate(datasets):
        _random_file(root / f"data{i}" / "part.bin", size)
        lines.append(f"  - {{name: d{i}, path: data{i}}}")
    (root / "Kitfile").write_text("\n".join(lines) + "\n")
    return root


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            h.update(block)
    return h.hexdigest()


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root``."""
    return {str(p.relative_to(root)): _sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _payload(root: Path) -> dict[str, str]:
    """``_tree`` without the Kitfile (unpack writes kit's YAML rendering of it, not the original bytes)."""
    return {k: v for k, v in _tree(root).items() if k != "Kitfile"}


def _cli_env(home: Path) -> dict[str, str]:
    return {**os.environ, "KITOPS_HOME": str(home)}


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kitops_flows.cli", *args], capture_output=True, text=True,
                          env=_cli_env(home), timeout=120, check=False)


def _spawn(home: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "kitops_flows.cli", *args], env=_cli_env(home),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true (polled every millisecond); fail if it ended first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            pytest.fail(f"the command ended (code {proc.returncode}) before {what}; stderr: {err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no sign of {what} within {timeout}s")
        time.sleep(0.001)
    proc.kill()
    proc.wait(10)
    if proc.stderr:
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"expected a SIGKILL mid-way, the command exited {proc.returncode}"


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (skip when mounting is not permitted), always unmounted."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


# -- 1. registry killed mid-push ----------------------------------------------------------------------------


def test_registry_killed_mid_push_leaves_no_tag_and_the_retry_sends_only_missing_blobs(
        registry_factory: Callable[..., RegistryServer], tmp_path: Path) -> None:
    reg = registry_factory()
    repo = "faults/killed-push"
    ref = f"{reg.host}/{repo}:v1"
    # concurrency 1: blobs go one after another, so "one layer finished, the next mid-upload" is exact
    kit = KitOpsClient(store=LocalStore(tmp_path / "home"), plain_http=True, concurrency=1, retry=FAST)
    packed = kit.pack(_context(tmp_path / "ctx", 3 * MiB, [3 * MiB, 3 * MiB, 3 * MiB]), reference=ref,
                      record_lineage=False)
    blobs = {packed.config_digest} | {layer.digest for layer in packed.layers}
    assert len(blobs) == 5

    finished: set[str] = set()
    killed: list[str] = []

    def kill_registry_mid_upload(label: str, done: int, total: int | None) -> None:
        if killed or not total or total < MiB:
            return
        if done >= total:
            finished.add(label)
        elif finished and label not in finished and done > 0:  # a layer is complete, this one is half sent
            killed.append(label)
            os.kill(reg.pid, signal.SIGKILL)  # type: ignore[arg-type]
            while reg.running:  # reaps it: the port is closed when this returns
                time.sleep(0.01)

    kit.progress = kill_registry_mid_upload
    with pytest.raises(RegistryError) as err:
        kit.push(ref)
    assert killed, "the registry was never killed: the push did not report upload progress"
    assert reg.host in str(err.value)
    assert "connection refused" in str(err.value) or "reset" in str(err.value)

    reg.start()  # same port, same data
    direct = RegistryClient(reg.host, plain_http=True, retry=FAST)
    assert direct.manifest_digest(repo, "v1") is None, "a tag exists for a push that failed"
    with pytest.raises(NotFoundError):
        direct.get_manifest(repo, packed.digest)
    present = {d for d in blobs if direct.blob_exists(repo, d)}
    layers = {layer.digest for layer in packed.layers}
    assert 0 < len(present & layers) < len(layers), "the kill should land between two layer uploads"

    offset = reg.log_offset()
    kit.progress = None
    kit.push(ref)
    log = reg.access_log(since=offset)
    uploaded = {m[1] for e in log if e.method == "PUT" and e.status == 201
                and (m := re.search(r"[?&]digest=sha256%3A([0-9a-f]{64})", e.path))}
    assert {f"sha256:{h}" for h in uploaded} == blobs - present
    assert sum(1 for e in log if e.method == "POST" and "/blobs/uploads/" in e.path) == len(blobs - present)
    assert direct.manifest_digest(repo, "v1") == packed.digest

    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, check=True).stdout
    assert raw == kit.store.read_blob(packed.digest)
    fresh = KitOpsClient(store=LocalStore(tmp_path / "fresh"), plain_http=True, retry=FAST)
    assert fresh.pull(ref).digest == packed.digest
    report = fresh.verify()
    assert report.ok and not report.notes, report
    assert report.blobs_checked == len(blobs) + 1  # every layer, the config and the manifest, re-hashed
    assert all(fresh.store.has_blob(d) for d in blobs)


# -- 2. SIGKILL mid-pull and mid-unpack ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_modelkit(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """96 MB in two layers, packed into a store and pushed: (reference, source home, context dir)."""
    return _pushed_modelkit(registry, tmp_path_factory.mktemp("big"), "big", 48 * MiB)


def _pushed_modelkit(registry: RegistryServer, root: Path, name: str, layer_size: int) -> tuple[str, Path, Path]:
    """A model and one part of ``layer_size`` each, packed under ``root`` and pushed to faults/<name>:v1."""
    ctx = _context(root / "ctx", layer_size, [layer_size])
    ref = f"{registry.host}/faults/{name}:v1"
    kit = KitOpsClient(store=LocalStore(root / "home"), plain_http=True, retry=FAST)
    kit.pack(ctx, reference=ref, record_lineage=False)
    kit.push(ref)
    return ref, root / "home", ctx


def test_sigkill_mid_pull_keeps_the_store_valid_and_the_rerun_resumes(
        registry: RegistryServer, big_modelkit: tuple[str, Path, Path], tmp_path: Path) -> None:
    ref, _, _ = big_modelkit
    home = tmp_path / "home"
    store = LocalStore(home)
    layer_bytes = 96 * MiB
    proc = _spawn(home, "pull", ref, "--plain-http")

    def partial_download() -> bool:
        """Some bytes are safely down: a ranged download lists a finished part, a one-stream one has 8 MiB."""
        for p in _files(store.ingest_dir):
            with contextlib.suppress(OSError, ValueError):
                if p.suffix == ".parts" and json.loads(p.read_text())["done"]:
                    return True
                if p.suffix == "" and not p.with_suffix(".parts").exists() and p.stat().st_size >= 8 * MiB:
                    return True
        return False

    _kill_when(proc, partial_download, "a partial download in the store's ingest dir")
    leftovers = [p for p in _files(store.ingest_dir) if p.suffix != ".lock"]
    assert leftovers, "the kill should leave a resumable partial download"

    verify = _cli(home, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "unfinished download" in verify.stderr  # reported as a note, not a problem
    with pytest.raises(NotFoundError):
        KitOpsClient(store=store).describe(ref)  # no tag for a ModelKit whose blobs are not all there
    gc = _cli(home, "gc")  # a fresh partial download is resumable: gc leaves it alone
    assert gc.returncode == 0, gc.stderr
    assert all(p.exists() for p in leftovers)

    offset = registry.log_offset()
    again = _cli(home, "pull", ref, "--plain-http")
    assert again.returncode == 0, again.stderr
    sent = sum(e.size for e in registry.access_log(since=offset) if e.method == "GET" and "/blobs/" in e.path)
    assert sent < layer_bytes, f"the re-run downloaded {sent} bytes: it should resume the partial download"
    assert _cli(home, "verify").returncode == 0
    assert _files(store.ingest_dir) == [], "the re-run should consume its partial downloads"
    assert KitOpsClient(store=store).describe(ref).digest == again.stdout.strip().rsplit("@", 1)[1]


def test_sigkill_mid_unpack_leaves_dest_untouched_and_the_rerun_sweeps_its_staging_dir(
        big_modelkit: tuple[str, Path, Path], tmp_path: Path) -> None:
    ref, home, ctx = big_modelkit
    dest = tmp_path / "out"
    proc = _spawn(home, "unpack", ref, "-d", str(dest))

    def staging_half_written() -> bool:
        return any(p.is_file() and p.stat().st_size > 0
                   for d in tmp_path.glob(f".{dest.name}.unpack-*") for p in d.rglob("*"))

    _kill_when(proc, staging_half_written, "a half-extracted staging dir beside the destination")
    assert not dest.exists(), "a killed unpack must not leave a partial destination"
    litter = list(tmp_path.glob(f".{dest.name}.unpack-*"))
    assert litter, "expected the killed run's staging dir beside dest"
    assert _cli(home, "verify").returncode == 0  # reading the store for unpack never changes it

    again = _cli(home, "unpack", ref, "-d", str(dest))
    assert again.returncode == 0, again.stderr
    assert _payload(dest) == _payload(ctx) and (dest / "Kitfile").is_file()
    assert list(tmp_path.glob(f".{dest.name}.unpack-*")) == [], "the re-run should sweep the dead run's staging dir"


def test_unpack_leaves_the_staging_dir_of_a_live_unpack_alone(big_modelkit: tuple[str, Path, Path],
                                                              tmp_path: Path) -> None:
    ref, home, ctx = big_modelkit
    dest = tmp_path / "out"
    proc = _spawn(home, "unpack", ref, "-d", str(dest))
    try:
        while not any(p.is_file() for d in tmp_path.glob(f".{dest.name}.unpack-*") for p in d.rglob("*")):
            assert proc.poll() is None, "the unpack ended before it wrote into its staging dir"
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGSTOP)  # frozen mid-unpack, but alive
        live = list(tmp_path.glob(f".{dest.name}.unpack-*"))
        KitOpsClient(store=LocalStore(home)).unpack(ref, dest)  # a second unpack into the same dest meanwhile
        assert live and all(d.exists() for d in live), "a live unpack's staging dir was swept"
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        _, err = proc.communicate(timeout=60)
    # the first unpack now finds its files in dest and, as kit does by default, refuses to overwrite them
    assert proc.returncode == 1 and b"Traceback" not in err, err
    assert _payload(dest) == _payload(ctx)
    assert list(tmp_path.glob(f".{dest.name}.unpack-*")) == []


def test_gc_sweeps_stale_ingest_leftovers_but_keeps_fresh_and_locked_ones(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "home")
    store.put_bytes(b"make the layout")
    stale_pack = store.ingest_dir / "ingest-k1ll3d"          # a pack killed mid-layer
    stale_pull = store.ingest_dir / ("a" * 64)                # a pull killed mid-download ...
    stale_lock = store.ingest_dir / ("a" * 64 + ".lock")      # ... and its download lock
    stale_parts = store.ingest_dir / ("a" * 64 + ".parts")    # ... and its ranged download's part list
    fresh_pull = store.ingest_dir / ("b" * 64)                # a recent partial: resumable, kept
    busy_pull = store.ingest_dir / ("c" * 64)                 # an old partial another process is resuming
    busy_parts = store.ingest_dir / ("c" * 64 + ".parts")     # (its part list is guarded by the same lock)
    for path in (stale_pack, stale_pull, stale_lock, stale_parts, fresh_pull, busy_pull, busy_parts,
                 busy_pull.with_suffix(".lock")):
        path.write_bytes(b"x" * 100)
    long_ago = time.time() - 2 * 24 * 3600
    for path in (stale_pack, stale_pull, stale_lock, stale_parts, busy_pull, busy_parts, busy_pull.with_suffix(".lock")):
        os.utime(path, (long_ago, long_ago))
    with open(busy_pull.with_suffix(".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what LocalStore.download_lock holds during a download
        done = _cli(tmp_path / "home", "gc")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in _files(store.ingest_dir)) == sorted([fresh_pull.name, busy_pull.name,
                                                                      busy_parts.name, busy_pull.name + ".lock"])
    assert "and 4 leftover file(s)" in done.stdout  # (the layout blob put_bytes made is unreferenced)


# -- 3. disk full -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mid_modelkit(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """16 MB in two layers (twice the 8 MB tmpfs), pushed: (reference, source home, context dir)."""
    return _pushed_modelkit(registry, tmp_path_factory.mktemp("mid"), "mid", 8 * MiB)


def test_disk_full_while_pulling_is_one_clear_error_and_leaves_no_partial_blobs(
        mid_modelkit: tuple[str, Path, Path], tmp_path: Path) -> None:
    ref, _, _ = mid_modelkit
    with _tmpfs(tmp_path / "small", "8m") as small:
        home = small / "home"
        kit = KitOpsClient(store=LocalStore(home), plain_http=True, retry=FAST)
        with pytest.raises(StoreError) as err:
            kit.pull(ref)
        message = str(err.value)
        assert "No space left on device" in message and "ENOSPC" in message
        assert str(kit.store.storage) in message
        assert _files(kit.store.ingest_dir) == [], "partial downloads must be removed to give the space back"
        report = kit.verify()
        assert report.ok, report.problems
        assert all(p.stat().st_size < MiB for p in _files(kit.store.blobs)), "only small, complete blobs stay"
        with pytest.raises(NotFoundError):
            kit.describe(ref)

        line = _one_line_error(_cli(home, "pull", ref, "--plain-http"))
        assert line.startswith("Error: ") and "No space left on device" in line and str(home) in line
        assert _files(kit.store.ingest_dir) == []
        assert _cli(home, "verify").returncode == 0


def test_disk_full_while_packing_is_one_clear_error_and_leaves_no_partial_blobs(
        mid_modelkit: tuple[str, Path, Path], tmp_path: Path) -> None:
    _, _, ctx = mid_modelkit
    with _tmpfs(tmp_path / "small", "8m") as small:
        home = small / "home"
        kit = KitOpsClient(store=LocalStore(home))
        with pytest.raises(StoreError) as err:
            kit.pack(ctx, reference="faults/full:v1", record_lineage=False)
        message = str(err.value)
        assert "ENOSPC" in message and str(kit.store.storage) in message and "KITOPS_HOME" in message
        assert _files(kit.store.ingest_dir) == [], "the half-written layer must be removed"
        assert kit.verify().ok and not kit.list()

        line = _one_line_error(_cli(home, "pack", str(ctx), "-t", "faults/full:v1"))
        assert "No space left on device" in line and str(home) in line
        assert _files(kit.store.ingest_dir) == []


def test_disk_full_while_unpacking_is_one_clear_error_and_leaves_dest_unchanged(
        mid_modelkit: tuple[str, Path, Path], tmp_path: Path) -> None:
    ref, home, _ = mid_modelkit
    kit = KitOpsClient(store=LocalStore(home))
    with _tmpfs(tmp_path / "small", "8m") as small:
        existing = small / "existing"
        existing.mkdir()
        (existing / "keep.txt").write_text("mine")
        before, used = _tree(existing), _used_bytes(small)
        for dest in (small / "fresh", existing):
            with pytest.raises(UnpackError) as err:
                kit.unpack(ref, dest, existing="ignore")
            message = str(err.value)
            assert "No space left on device" in message and "ENOSPC" in message and str(dest) in message
            line = _one_line_error(_cli(home, "unpack", ref, "-d", str(dest), "-i"))
            assert "No space left on device" in line and str(dest) in line
        assert not (small / "fresh").exists()
        assert _tree(existing) == before
        assert sorted(p.name for p in small.iterdir()) == ["existing"], "no staging dirs left behind"
        assert _used_bytes(small) == used, "the failed unpacks must give every byte back"
    assert kit.verify().ok


# -- 4. intermittent and permanent registry errors ----------------------------------------------------------


def test_intermittent_500_503_429_push_and_pull_complete(
        registry: RegistryServer, proxy_factory: Callable[[str], CountingProxy], tmp_path: Path) -> None:
    proxy = proxy_factory(registry.host)
    for status in (500, 503, 429):  # each request: ~10 % chance of each, ~27 % of some failure
        proxy.fail_fraction(0.1, status=status, seed=20261126)
    ref = f"{proxy.host}/faults/flaky:v1"
    # concurrency 1 keeps the request order, and so the seeded failures, the same on every run
    kit = KitOpsClient(store=LocalStore(tmp_path / "a"), plain_http=True, concurrency=1, retry=FAST)
    packed = kit.pack(_context(tmp_path / "ctx", 2 * MiB, [MiB, MiB, 512 * 1024]), reference=ref,
                      record_lineage=False)
    assert kit.push(ref).digest == packed.digest

    fresh = KitOpsClient(store=LocalStore(tmp_path / "b"), plain_http=True, concurrency=1, retry=FAST)
    assert fresh.pull(ref).digest == packed.digest
    report = fresh.verify()
    assert report.ok and not report.notes
    assert all(fresh.store.has_blob(layer.digest, layer.size) for layer in packed.layers)
    injected = {r.status for r in proxy.requests if r.fault == "status"}
    assert injected == {500, 503, 429}, injected
    assert sum(1 for r in proxy.requests if r.fault) >= 5
    direct = RegistryClient(registry.host, plain_http=True)
    assert direct.manifest_digest("faults/flaky", "v1") == packed.digest


@pytest.mark.parametrize("operation", ["push", "pull"])
def test_permanent_503_fails_within_the_retry_budget_and_creates_no_tag(
        operation: str, registry: RegistryServer, proxy_factory: Callable[[str], CountingProxy],
        tmp_path: Path) -> None:
    proxy = proxy_factory(registry.host)
    repo = f"faults/down-{operation}"
    ref = f"{proxy.host}/{repo}:v1"
    kit = KitOpsClient(store=LocalStore(tmp_path / "a"), plain_http=True, concurrency=1, retry=GIVE_UP)
    packed = kit.pack(_context(tmp_path / "ctx", MiB, [MiB]), reference=ref, record_lineage=False)
    if operation == "pull":
        kit.push(ref)  # the ModelKit is there; the registry then goes permanently 503
        kit = KitOpsClient(store=LocalStore(tmp_path / "b"), plain_http=True, concurrency=1, retry=GIVE_UP)
    proxy.reset()
    proxy.fail_fraction(1.0, status=503)

    started = time.monotonic()
    with pytest.raises(RegistryHTTPError) as err:
        getattr(kit, operation)(ref)
    elapsed = time.monotonic() - started
    # one request (the first blob HEAD, or the manifest GET) is tried max_attempts times, then it gives up
    assert proxy.count() == GIVE_UP.max_attempts
    bound = min(GIVE_UP.max_elapsed, (GIVE_UP.max_attempts - 1) * GIVE_UP.max_delay) \
        + GIVE_UP.max_attempts * REQUEST_ALLOWANCE
    assert elapsed < bound, f"{operation} took {elapsed:.2f}s to give up; the retry policy allows {bound:.2f}s"
    assert err.value.status == 503
    message = str(err.value)
    assert proxy.host in message and "unavailable" in message.lower()  # the 503 by name
    assert f"gave up after {GIVE_UP.max_attempts} attempts" in message

    direct = RegistryClient(registry.host, plain_http=True)
    if operation == "push":
        assert direct.manifest_digest(repo, "v1") is None
    else:
        assert direct.manifest_digest(repo, "v1") == packed.digest  # untouched in the registry ...
        with pytest.raises(NotFoundError):
            kit.describe(ref)                                         # ... and not tagged locally
        assert kit.verify().ok
