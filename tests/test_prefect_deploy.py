"""The Prefect example deploys as its docs say: create the work pool, then ``prefect deploy --all`` with
``examples/prefect/prefect.yaml`` (CLI against the session's Prefect API)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.prefect, pytest.mark.integration]
ROOT = Path(__file__).resolve().parent.parent


def _prefect(*args: str) -> subprocess.CompletedProcess[str]:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_CLI_PROMPT": "false",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run([str(Path(sys.executable).with_name("prefect")), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def test_example_deploys_to_the_work_pool_its_docs_create(prefect_server: None) -> None:
    from prefect.client.orchestration import get_client

    _prefect("work-pool", "create", "kitops-examples", "--type", "process")
    _prefect("--no-prompt", "deploy", "--all", "--prefect-file", "examples/prefect/prefect.yaml")
    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("churn-retrain/nightly")
        serve = client.read_deployment_by_name("churn-serve/on-promotion")
    assert nightly.work_pool_name == serve.work_pool_name == "kitops-examples"
    assert nightly.parameters["registry"] == "kitops-registry"
    assert [s.schedule.cron for s in nightly.schedules] == ["0 3 * * *"]


def test_refused_credentials_name_the_block_not_the_cli(prefect_server: None, auth_registry, kitops_home: Path,  # noqa: ANN001
                                                        tmp_path: Path) -> None:
    from prefect import flow
    from pydantic import SecretStr

    from kitops_flows_prefect import KitOpsRegistry, pull_modelkit_layer

    KitOpsRegistry(registry=f"http://{auth_registry.host}", username=auth_registry.username,
                   password=SecretStr("not-the-password"), kitops_home=str(kitops_home)).save(
        "exec17-wrong-password", overwrite=True)

    @flow
    def pull() -> tuple[bool, str]:
        state = pull_modelkit_layer.with_options(retries=0)(f"{auth_registry.host}/team/churn:v1", str(tmp_path / "o"),
                                                            registry="exec17-wrong-password", return_state=True)
        return state.is_failed(), str(state.result(raise_on_failure=False))

    failed, message = pull()
    assert failed and "KitOpsRegistry block 'exec17-wrong-password'" in message, message
    assert "kitops-flows login" not in message and "not-the-password" not in message
