"""Blob transfers stream: pushing and fetching a 300 MB blob keeps the process's peak RSS flat.

Runs in a fresh subprocess so ``ru_maxrss`` measures only this work. A correctness property (the
client must never hold a blob in memory), not a timing benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BLOB_MB = 300
RSS_LIMIT_MB = 120

SCRIPT = textwrap.dedent("""
    import hashlib, json, os, sys
    from pathlib import Path
    from kitops_flows.registry import RegistryClient, UploadPolicy

    def hwm_kb():
        # VmHWM belongs to this process's own address space; ru_maxrss would carry over the peak of
        # the (large) pytest process that forked us, since Linux keeps it across exec.
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    host, work = sys.argv[1], Path(sys.argv[2])
    size = int(sys.argv[3]) << 20
    blob = work / "blob"
    h = hashlib.sha256()
    with open(blob, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(size >> 20):
            chunk = bytes([i & 0xFF]) + block[1:]
            f.write(chunk)
            h.update(chunk)
    digest = "sha256:" + h.hexdigest()
    baseline = hwm_kb()

    phases = {}
    def mark(name):
        phases[name] = hwm_kb() // 1024
    mono = RegistryClient(host, plain_http=True, upload_policy=UploadPolicy(chunk_size=1 << 40))
    assert mono.push_blob("memory/mono", digest, size, lambda: open(blob, "rb"))
    mark("monolithic push")
    chunked = RegistryClient(host, plain_http=True, upload_policy=UploadPolicy(chunk_size=64 << 20))
    assert chunked.push_blob("memory/chunked", digest, size, lambda: open(blob, "rb"))
    mark("chunked push")
    dest = work / "fetched"
    mono.fetch_blob("memory/chunked", digest, size, dest)
    assert dest.stat().st_size == size
    mark("fetch")
    n = 0
    with mono.open_blob("memory/mono", digest, size) as stream:
        while data := stream.read(1 << 20):
            n += len(data)
    assert n == size
    mark("streamed read")
    peak = hwm_kb()
    print(json.dumps({"baseline_kb": baseline, "peak_kb": peak, "digest": digest, "peak_mb_after": phases}))
""")


@pytest.mark.integration
def test_memory_stays_flat_for_300mb_blob(registry, tmp_path: Path) -> None:  # noqa: ANN001
    done = subprocess.run([sys.executable, "-c", SCRIPT, registry.host, str(tmp_path), str(BLOB_MB)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    usage = json.loads(done.stdout.strip().splitlines()[-1])
    peak_mb = usage["peak_kb"] / 1024
    assert peak_mb < RSS_LIMIT_MB, (
        f"peak RSS {peak_mb:.0f} MB for a {BLOB_MB} MB blob: something buffered it "
        f"(peak MB after each phase: {usage['peak_mb_after']})"
    )
    # the registry holds the whole blob, byte for byte as written
    assert registry.blob_path(usage["digest"]).stat().st_size == BLOB_MB << 20
    assert (tmp_path / "fetched").stat().st_size == BLOB_MB << 20
