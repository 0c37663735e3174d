"""Concurrency and load against a real registry: many processes pushing and pulling at the same moment.

The registry tests start a private docker-registry (``registry_factory``) so request counts are their own,
and run real OS processes (``python -c WORKER``) that meet at a file barrier before the operation under
test, so their requests really overlap. Each worker that needs per-process figures talks to the registry through
its own CountingProxy: the proxy's records are the measurement (which blob was uploaded or downloaded, by
whom, how often).

Scenarios (one line each in docs/reliability.md):
- eight pushes of ModelKits sharing a 12 MiB model layer to one repository: all tags complete, no process
  uploads a blob twice, blobs only one ModelKit has are uploaded once in total;
- eight concurrent pulls into eight homes, then eight into one shared home: every store verifies, and the
  shared home downloads each blob once in total;
- two pipelines racing to move one tag: the tag always ends on one complete manifest; with immutable
  tags the loser gets TagExistsError naming the tag and the fix;
- a failed download in a shared home hands the per-blob lock to exactly one next downloader;
- a pull while other clients re-upload its layer retries through the registry's momentary 500.

``KITOPS_TEST_RACE_ROUNDS=30`` runs more rounds of the tag races (default 5).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from services import CountingProxy, RegistryServer

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import KitopsError, RegistryError, TagExistsError
from kitops_flows.manifest import Manifest
from kitops_flows.reference import parse_reference
from kitops_flows.registry import RetryPolicy
from kitops_flows.store import Descriptor, LocalStore

WORKERS = 8
MODEL_BYTES = 12 << 20  # the layer all eight ModelKits share
RACE_ROUNDS = int(os.environ.get("KITOPS_TEST_RACE_ROUNDS", "5"))
REPO = "load/fleet"
CHUNK = 1 << 20
FAST_RETRY = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.05, max_elapsed=20.0)

# One worker process: meets the others at a file barrier (per round), then pushes or pulls, and prints one
# JSON list of outcomes on stdout. KitopsErrors are outcomes; anything else crashes the worker (exit != 0).
WORKER = textwrap.dedent("""
    import contextlib, io, json, os, sys, time
    from pathlib import Path
    from kitops_flows.api import KitOpsClient
    from kitops_flows.cli import main as cli_main
    from kitops_flows.errors import KitopsError

    job = json.loads(sys.argv[1])

    def barrier(gate, parties):
        gate.mkdir(parents=True, exist_ok=True)
        (gate / str(os.getpid())).touch()
        deadline = time.monotonic() + 60
        while len(os.listdir(gate)) < parties:
            if time.monotonic() > deadline:
                sys.exit(f"barrier {gate}: only {len(os.listdir(gate))} of {parties} workers arrived")
            time.sleep(0.0005)

    kit = KitOpsClient.from_home(job["home"], plain_http=True, immutable_tags=job["immutable"])
    outcomes = []
    for n, ref in enumerate(job["refs"]):
        barrier(Path(job["gate"]) / str(n), job["parties"])
        try:
            if job["mode"] == "push":
                out = {"ok": True, "digest": kit.push(ref).digest}
            elif job["mode"] == "pull":
                out = {"ok": True, "digest": kit.pull(ref).digest}
            else:  # the command line, run in this process so the barrier still holds
                err, std = io.StringIO(), io.StringIO()
                flags = ["--immutable"] if job["immutable"] else []
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
                    rc = cli_main(["--config", job["home"], "push", ref, "--plain-http", *flags])
                out = {"ok": rc == 0, "rc": rc, "stdout": std.getvalue(), "stderr": err.getvalue()}
        except KitopsError as e:
            out = {"ok": False, "error": type(e).__name__, "message": str(e)}
        outcomes.append(out)
    print(json.dumps(outcomes))
""")


@dataclass(frozen=True)
class Job:
    """What one worker does: ``mode`` push / pull / cli-push, on ``home``, once per reference in ``refs``."""

    mode: str
    home: Path
    refs: tuple[str, ...]
    gate: Path
    parties: int
    immutable: bool = False

    def argv(self) -> list[str]:
        body = {"mode": self.mode, "home": str(self.home), "refs": list(self.refs), "gate": str(self.gate),
                "parties": self.parties, "immutable": self.immutable}
        return [sys.executable, "-c", WORKER, json.dumps(body)]


def run_workers(jobs: Sequence[Job], timeout: float = 120) -> list[list[dict[str, object]]]:
    """Start every job as its own process at once; return each one's outcomes (in job order)."""
    procs = [subprocess.Popen(j.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for j in jobs]
    results = []
    for job, proc in zip(jobs, procs, strict=True):
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"{job.mode} worker on {job.home} crashed (exit {proc.returncode}):\n{err}"
        results.append(json.loads(out))
    return results


# -- ModelKits --------------------------------------------------------------------------------------------------


def shared_model(path: Path) -> Path:
    """A random model file, written once; contexts hard-link it (same bytes, same tar layer digest)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            for _ in range(MODEL_BYTES // CHUNK):
                f.write(os.urandom(CHUNK))
    return path


def fleet_context(root: Path, model: Path, i: int) -> Path:
    """ModelKit ``i``: the shared model layer plus its own code and docs layers and its own Kitfile."""
    (root / "src").mkdir(parents=True)
    os.link(model, root / "model.bin")
    (root / "src" / "train.py").write_text(f"EPOCHS = {i}\n" + os.urandom(2048).hex())
    (root / "README.md").write_text(f"# pipeline {i}\n")
    (root / "Kitfile").write_text(
        f"manifestVersion: 1.0.0\npackage: {{name: fleet-{i}, version: 1.0.{i}}}\n"
        "model: {name: shared, path: model.bin}\ncode:\n  - {path: src}\ndocs:\n  - {path: README.md}\n"
    )
    return root


def manifest_of(store: LocalStore, digest: str) -> Manifest:
    return Manifest.from_bytes(store.read_blob(digest), f"manifest {digest}")


def registry_blob_ok(reg: RegistryServer, blob: Descriptor) -> bool:
    """The registry's stored bytes of ``blob`` have its size and hash to its digest (read from its disk)."""
    path = reg.blob_path(blob.digest)
    if not path.exists() or path.stat().st_size != blob.size:
        return False
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(CHUNK):
            h.update(data)
    return "sha256:" + h.hexdigest() == blob.digest


def skopeo_raw(ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                          check=True, capture_output=True, timeout=60).stdout


def uploads(proxy: CountingProxy, digest: str) -> int:
    """Completed blob uploads of ``digest`` through ``proxy``: the closing PUT of an upload session carries
    ``?digest=`` (monolithic or after PATCHes), so there is exactly one per upload."""
    return sum(1 for r in proxy.matching("/blobs/uploads/", "PUT") if digest.split(":")[1] in r.path)


def downloads(proxy: CountingProxy, digest: str) -> int:
    return proxy.count(f"/blobs/{digest}", "GET")


def cli_verify(homes: Sequence[Path]) -> None:
    """``kitops-flows verify`` (the installed command) on every home at once; each must exit 0."""
    kitops_flows = str(Path(sys.executable).with_name("kitops-flows"))
    procs = [subprocess.Popen([kitops_flows, "--config", str(h), "verify"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for h in homes]
    for home, proc in zip(homes, procs, strict=True):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"kitops-flows verify {home} exited {proc.returncode}: {out}"


# -- eight pipelines, one repository ---------------------------------------------------------------------------


def test_eight_concurrent_pushes_to_one_repository(registry_factory: Callable[..., RegistryServer],
                                                    proxy_factory: Callable[[str], CountingProxy],
                                                    kitops_home: Path, tmp_path: Path) -> None:
    reg = registry_factory()
    model = shared_model(tmp_path / "model.bin")
    proxies = [proxy_factory(reg.host) for _ in range(WORKERS)]  # one per process: per-process counts
    homes, refs, packed = [], [], []
    for i, proxy in enumerate(proxies):
        home = tmp_path / f"home{i}"
        ref = f"{proxy.host}/{REPO}:m{i}"
        kit = KitOpsClient.from_home(home, plain_http=True)
        packed.append(kit.pack(fleet_context(tmp_path / f"ctx{i}", model, i), reference=ref, record_lineage=False))
        homes.append(home)
        refs.append(ref)
    model_layers = {next(l.digest for l in p.layers if l.kind == "model") for p in packed}
    assert len(model_layers) == 1, "the eight ModelKits must share their model layer"
    shared = model_layers.pop()

    results = run_workers([Job("push", homes[i], (refs[i],), tmp_path / "gate", WORKERS) for i in range(WORKERS)])

    assert [r[0] for r in results] == [{"ok": True, "digest": p.digest} for p in packed]
    assert reg.running
    for i in range(WORKERS):
        store = LocalStore(homes[i])
        local = store.read_blob(packed[i].digest)
        assert skopeo_raw(f"{reg.host}/{REPO}:m{i}") == local, f"tag m{i} must serve pipeline {i}'s manifest"
        blobs = list(manifest_of(store, packed[i].digest).blobs())
        bad = [b.digest for b in blobs if not registry_blob_ok(reg, b)]
        assert not bad, f"m{i}: blobs missing or corrupt in the registry: {bad}"
        for b in blobs:
            assert uploads(proxies[i], b.digest) <= 1, f"process {i} uploaded {b.digest} more than once"
            if b.digest != shared:  # only pipeline i has it: exactly one upload in total
                assert sum(uploads(p, b.digest) for p in proxies) == 1, f"{b.digest} of m{i}"
        sessions = proxies[i].count("/blobs/uploads/", "POST")
        assert sessions == sum(uploads(proxies[i], b.digest) for b in blobs), "no abandoned upload sessions"
    tags = KitOpsClient.from_home(kitops_home, plain_http=True).list_tags(f"{reg.host}/{REPO}")
    assert tags == {f"m{i}": p.digest for i, p in enumerate(packed)}

    shared_uploads = sum(uploads(p, shared) for p in proxies)
    assert 1 <= shared_uploads <= WORKERS
    # docker-registry 2.8 may deny a blob while another push commits the same one; push() retries those
    denied = sum(1 for p in proxies for r in p.matching("/manifests/", "PUT") if r.status != 201)
    print(f"\nshared {MODEL_BYTES >> 20} MiB layer uploaded {shared_uploads}x by {WORKERS} racing pushes "
          f"(each process at most once); manifest PUTs denied 'blob unknown' and retried: {denied}")


def test_eight_concurrent_pulls_private_homes_then_one_shared_home(
        registry_factory: Callable[..., RegistryServer], proxy_factory: Callable[[str], CountingProxy],
        tmp_path: Path, kitops_home: Path) -> None:
    reg = registry_factory()
    model = shared_model(tmp_path / "model.bin")
    source = KitOpsClient.from_home(tmp_path / "source", plain_http=True)
    digests, shared = [], set()
    for i in range(WORKERS):
        ref = f"{reg.host}/{REPO}:m{i}"
        packed = source.pack(fleet_context(tmp_path / f"ctx{i}", model, i), reference=ref, record_lineage=False)
        shared |= {l.digest for l in packed.layers if l.kind == "model"}
        digests.append(source.push(ref).digest)
    assert len(shared) == 1, "the eight ModelKits must share their model layer"
    manifests = [manifest_of(source.store, d) for d in digests]
    all_blobs = {b.digest: b for m in manifests for b in m.blobs()}

    # phase 1: eight processes, eight fresh homes, each through its own proxy
    proxies = [proxy_factory(reg.host) for _ in range(WORKERS)]
    private = [tmp_path / f"pull{i}" for i in range(WORKERS)]
    jobs = [Job("pull", private[i], (f"{proxies[i].host}/{REPO}:m{i}",), tmp_path / "gate1", WORKERS)
            for i in range(WORKERS)]
    assert [r[0] for r in run_workers(jobs)] == [{"ok": True, "digest": d} for d in digests]
    for i, proxy in enumerate(proxies):
        for b in manifests[i].blobs():
            assert downloads(proxy, b.digest) == 1, f"process {i} fetched {b.digest} {downloads(proxy, b.digest)}x"
        proxy.reset()

    # phase 2: the same eight, all into one home at once
    common = tmp_path / "shared-home"
    jobs = [Job("pull", common, (f"{proxies[i].host}/{REPO}:m{i}",), tmp_path / "gate2", WORKERS)
            for i in range(WORKERS)]
    assert [r[0] for r in run_workers(jobs)] == [{"ok": True, "digest": d} for d in digests]
    fetched = {d: sum(downloads(p, d) for p in proxies) for d in all_blobs}
    assert fetched == dict.fromkeys(all_blobs, 1), "one shared home downloads each blob once in total"

    store = LocalStore(common)
    for i in range(WORKERS):
        assert store.resolve(parse_reference(f"{proxies[i].host}/{REPO}:m{i}")).digest == digests[i]
    cli_verify([*private, common])
    for home in [*private, common]:
        s = LocalStore(home)
        assert not [b for b in os.listdir(s.blobs) if not registry_blob_ok(reg, Descriptor(
            "", "sha256:" + b, (s.blobs / b).stat().st_size))], "every pulled blob is the registry's exact bytes"
    print(f"\nshared home: {len(all_blobs)} blobs for {WORKERS} concurrent pulls, each downloaded once")


# -- two pipelines, one tag --------------------------------------------------------------------------------------


def race_pair(tmp_path: Path, reg: RegistryServer, repo: str) -> tuple[list[Path], list[str], list[str]]:
    """Two homes with different ModelKits, each tagged r0..r{RACE_ROUNDS-1} (one fresh tag per round)."""
    homes, digests = [], []
    refs = [f"{reg.host}/{repo}:r{n}" for n in range(RACE_ROUNDS)]
    for who in ("a", "b"):
        ctx = tmp_path / f"ctx-{who}"
        ctx.mkdir()
        (ctx / "model.bin").write_bytes(os.urandom(256 << 10))
        (ctx / "Kitfile").write_text(f"manifestVersion: 1.0.0\npackage: {{name: race-{who}}}\nmodel: {{path: model.bin}}\n")
        kit = KitOpsClient.from_home(tmp_path / f"home-{who}", plain_http=True)
        digests.append(kit.pack(ctx, reference=refs[0], record_lineage=False).digest)
        for ref in refs[1:]:
            kit.tag(refs[0], ref)
        homes.append(kit.store.home)
    return homes, refs, digests


def assert_complete(reg: RegistryServer, ref: str, digest: str, home: Path) -> None:
    """``ref`` serves ``digest``, and a fresh pull of it verifies."""
    kit = KitOpsClient.from_home(home, plain_http=True)
    assert kit.pull(ref).digest == digest
    report = kit.verify()
    assert report.ok, report.problems
    for b in manifest_of(kit.store, digest).blobs():
        assert registry_blob_ok(reg, b)


def test_racing_pushes_move_a_tag_to_one_complete_manifest(registry_factory: Callable[..., RegistryServer],
                                                           kitops_home: Path, tmp_path: Path) -> None:
    reg = registry_factory()
    homes, refs, digests = race_pair(tmp_path, reg, "load/race")
    results = run_workers([Job("push", h, tuple(refs), tmp_path / "gate", 2) for h in homes])
    winners = []
    for n, ref in enumerate(refs):
        assert [r[n] for r in results] == [{"ok": True, "digest": d} for d in digests], f"round {n}"
        final = KitOpsClient.from_home(kitops_home, plain_http=True).remote_digest(ref)
        assert final in digests, f"round {n}: {ref} points at {final}, neither pipeline's ModelKit"
        assert_complete(reg, ref, final, tmp_path / f"check{n}")
        winners.append("ab"[digests.index(final)])
    print(f"\nmutable tag race, last writer per round: {''.join(winners)}")


def test_racing_immutable_pushes_one_wins_the_loser_is_told(registry_factory: Callable[..., RegistryServer],
                                                            kitops_home: Path, tmp_path: Path) -> None:
    reg = registry_factory()
    homes, refs, digests = race_pair(tmp_path, reg, "load/immutable")
    results = run_workers([Job("cli-push", h, tuple(refs), tmp_path / "gate", 2, immutable=True) for h in homes])
    both_won = 0
    for n, ref in enumerate(refs):
        outcome = [r[n] for r in results]
        assert any(o["ok"] for o in outcome), f"round {n}: nobody won {ref}: {outcome}"
        final = KitOpsClient.from_home(kitops_home, plain_http=True).remote_digest(ref)
        assert final in digests
        assert_complete(reg, ref, final, tmp_path / f"check{n}")
        for o, digest in zip(outcome, digests, strict=True):
            if o["ok"]:
                continue
            assert digest != final, f"round {n}: a push that failed owns the tag: {o}"
            *notes, error = str(o["stderr"]).strip().splitlines()
            assert o["rc"] == 1 and error.startswith("Error: tag "), o
            assert f"{reg.host}/load/immutable:r{n}" in error and "push a new tag" in error, error
            # docker-registry 2.8 may answer 500 to a HEAD while the tag is rewritten: retried, and a request that
            # recovers says so in one line (its attempts are debug output)
            assert all("succeeded on attempt" in line for line in notes), notes
        if all(o["ok"] for o in outcome):
            both_won += 1  # the documented window: see push() and docs/reliability.md
    assert both_won == 0, f"{both_won} of {RACE_ROUNDS} rounds had two winners"
    print(f"\nimmutable tag race: {RACE_ROUNDS - both_won}/{RACE_ROUNDS} rounds with exactly one winner")


def test_immutable_push_rechecks_the_tag_around_its_write(registry_factory: Callable[..., RegistryServer],
                                                          kitops_home: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The two interleavings the process race above hits by chance, forced: another pipeline (one that may
    move tags) writes the tag while we upload, or right after our own tag write."""
    reg = registry_factory()
    homes, refs, digests = race_pair(tmp_path, reg, "load/recheck")
    ours = KitOpsClient.from_home(homes[0], plain_http=True, immutable_tags=True)
    theirs = KitOpsClient.from_home(homes[1], plain_http=True)
    client = ours.registry_client(reg.host)
    real_push_blob, real_put = client.push_blob, client.put_manifest
    lock = threading.Lock()  # blobs go up in parallel: the other pipeline pushes once

    def push_blob_while_they_tag(*args: object, **kwargs: object) -> bool:
        with lock:
            if theirs.remote_digest(refs[0]) is None:
                theirs.push(refs[0])
        return real_push_blob(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "push_blob", push_blob_while_they_tag)
    with pytest.raises(TagExistsError, match=f"tag {reg.host}/load/recheck:r0 already points at {digests[1]}"):
        ours.push(refs[0])  # the check before the tag write: we never write it
    assert ours.remote_digest(refs[0]) == digests[1]
    monkeypatch.setattr(client, "push_blob", real_push_blob)

    def put_then_they_tag(repo: str, reference: str, data: bytes, media_type: str) -> str:
        written = real_put(repo, reference, data, media_type)
        if reference == "r1":
            theirs.push(refs[1])
        return written

    monkeypatch.setattr(client, "put_manifest", put_then_they_tag)
    with pytest.raises(TagExistsError, match=f"tag {reg.host}/load/recheck:r1 was taken by another push") as e:
        ours.push(refs[1])  # the read-back after our tag write
    assert f"{reg.host}/load/recheck@{digests[0]}" in str(e.value) and "push a new tag" in str(e.value)
    assert ours.remote_digest(refs[1]) == digests[1]
    monkeypatch.setattr(client, "put_manifest", real_put)
    assert ours.push(refs[2]).digest == digests[0]  # uncontested: the checks cost no false alarm
    assert ours.remote_digest(refs[2]) == digests[0]


# -- one shared home: the per-blob download lock ------------------------------------------------------------------


@dataclass
class SlowRegistry:
    """Stands in for RegistryClient.fetch_blob: the first download fails once ``release`` is set, later ones
    write ``data`` slowly; ``most_at_once`` is the largest number of downloads that ran at the same time."""

    data: bytes
    release: threading.Event
    calls: int = 0
    running: int = 0
    most_at_once: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def fetch_blob(self, repo: str, digest: str, size: int, dest: Path, *, progress: object = None) -> None:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if first:
                self.release.wait(10)
                raise RegistryError(f"registry refused download of blob {digest}")
            with open(dest, "wb") as out:
                for i in range(0, len(self.data), 4096):
                    out.write(self.data[i:i + 4096])
                    time.sleep(0.01)
        finally:
            with self._lock:
                self.running -= 1


def test_a_failed_download_hands_the_blob_lock_to_exactly_one_waiter(tmp_path: Path) -> None:
    """Pullers sharing a home wait on a per-blob lock file. When the downloader fails, the next one must be
    the only downloader, also for a puller that arrives after the failure (two writers of one ingest file
    would make a corrupt blob that passes the in-memory hash check)."""
    data = os.urandom(64 << 10)
    blob = Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
    kit = KitOpsClient.from_home(tmp_path / "home")
    fake = SlowRegistry(data, threading.Event())
    errors: list[BaseException] = []

    def pull() -> None:
        try:
            kit.source.fetch_blob(fake, "repo", blob)  # type: ignore[arg-type]
        except KitopsError as e:
            errors.append(e)

    first, waiting, late = (threading.Thread(target=pull) for _ in range(3))
    first.start()
    time.sleep(0.2)   # first holds the lock, stuck in its download
    waiting.start()
    time.sleep(0.2)   # waiting blocks on the lock file
    fake.release.set()
    first.join(10)    # first failed and let go
    late.start()
    waiting.join(10)
    late.join(10)
    assert len(errors) == 1 and fake.calls == 2, (errors, fake.calls)
    assert fake.most_at_once == 1, "two processes downloaded the same blob into one ingest file"
    assert kit.store.has_blob(blob.digest, blob.size)
    assert kit.verify().ok


def test_pull_completes_while_other_clients_re_upload_its_blobs(registry_factory: Callable[..., RegistryServer],
                                                                 proxy_factory: Callable[[str], CountingProxy],
                                                                 tmp_path: Path) -> None:
    """docker-registry 2.8 rewrites a repository's blob link in place when a blob is uploaded again, so a GET
    in that moment fails (distribution#4478; we see 500 "unknown error"). Racing pipelines that share a layer
    re-upload it all the time: a pull meanwhile must retry through it and still verify."""
    import requests

    reg = registry_factory()
    proxy = proxy_factory(reg.host)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    layer = os.urandom(256 << 10)
    (ctx / "m.bin").write_bytes(layer)
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\nmodel: {path: m.bin}\n")
    ref = f"{reg.host}/{REPO}:shared"
    kit = KitOpsClient.from_home(tmp_path / "src", plain_http=True)
    layer_digest = kit.pack(ctx, reference=ref, record_lineage=False).layers[0].digest
    kit.push(ref)
    layer_bytes = kit.store.blob_path(layer_digest).read_bytes()

    stop = threading.Event()

    def re_upload() -> None:  # what a racing pusher does when its HEAD saw the blob missing
        base = f"{reg.url}/v2/{REPO}/blobs/uploads/"
        while not stop.is_set():
            location = requests.post(base, timeout=10).headers["Location"]
            url = location if location.startswith("http") else reg.url + location
            sep = "&" if "?" in url else "?"
            assert requests.put(f"{url}{sep}digest={layer_digest}", data=layer_bytes, timeout=10).status_code == 201

    uploaders = [threading.Thread(target=re_upload, daemon=True) for _ in range(3)]
    for t in uploaders:
        t.start()
    pulled, failed = 0, 0
    try:
        deadline = time.monotonic() + 15
        while (pulled < 5 or not failed) and time.monotonic() < deadline:
            puller = KitOpsClient.from_home(tmp_path / f"pull{pulled}", plain_http=True, retry=FAST_RETRY)
            assert puller.pull(f"{proxy.host}/{REPO}:shared").digest
            assert puller.verify().ok
            pulled += 1
            failed = sum(r.status >= 500 for r in proxy.matching(layer_digest, method="GET"))
    finally:
        stop.set()
        for t in uploaders:
            t.join(10)
    print(f"{pulled} pulls, {failed} layer GETs answered 5xx and retried")
    if not failed:  # the registry's window is a few ms wide: without a hit this run proved nothing new
        pytest.skip(f"no layer GET hit the registry's re-upload window in {pulled} pulls")
    assert pulled >= 5
