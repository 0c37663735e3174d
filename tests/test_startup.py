"""CLI start-up imports only what the command needs (the speed itself is measured in bench/cli_startup.py).

`--help` must not load the API; `list` and `inspect` of the local store must not load requests (registry
client), pyyaml (Kitfile YAML), boto3 (S3) or an orchestrator. Each case runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = r"""
import contextlib, io, json, sys
from kitops_flows.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as e:
        code = e.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

HEAVY = ("requests", "urllib3", "yaml", "boto3", "botocore", "airflow", "prefect", "dagster", "cryptography")


def _modules_after(argv: list[str], home: Path) -> tuple[int, set[str]]:
    out = subprocess.run([sys.executable, "-c", PROBE, "--config", str(home), *argv], capture_output=True,
                         text=True, check=True)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return doc["code"], set(doc["modules"])


def test_help_loads_no_api(tmp_path: Path) -> None:
    code, modules = _modules_after(["--help"], tmp_path)
    assert code == 0
    assert "kitops_flows.api" not in modules and "kitops_flows.store" not in modules
    assert not [m for m in HEAVY if m in modules]


@pytest.mark.parametrize("argv", [["list"], ["list", "--format", "json"]])
def test_local_list_loads_no_network_or_yaml_stack(tmp_path: Path, argv: list[str]) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "model.bin").write_bytes(b"weights")
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: fast}\nmodel: {name: m, path: model.bin}\n")
    from kitops_flows.api import KitOpsClient
    from kitops_flows.store import LocalStore

    KitOpsClient(store=LocalStore(tmp_path / "home")).pack(ctx, reference="team/fast:v1", record_lineage=False)
    code, modules = _modules_after(argv, tmp_path / "home")
    assert code == 0
    assert "kitops_flows.api" in modules  # the command really ran through the API ...
    assert [m for m in HEAVY if m in modules] == []  # ... without the registry, YAML, S3 or plugin stacks


def test_registry_package_exports_match_its_lazy_table() -> None:
    import kitops_flows.registry as registry

    assert sorted(registry.__all__) == sorted(registry._MODULE_OF)
    for name in registry.__all__:
        assert getattr(registry, name) is not None
