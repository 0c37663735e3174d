"""``dagster dev -m examples.dagster.definitions`` starts as the example says (dagster-webserver is in the
``dagster`` extra) and serves the example's asset graph over HTTP (GraphQL)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import requests
from services import ManagedProcess, free_port, http_status

pytestmark = [pytest.mark.dagster, pytest.mark.integration]
ROOT = Path(__file__).resolve().parent.parent
QUERY = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"


def test_dagster_dev_serves_the_example_asset_graph(registry, tmp_path: Path) -> None:  # noqa: ANN001
    port = free_port()
    (tmp_path / "dagster-home").mkdir()
    (tmp_path / "dagster-home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster-home"), "CHURN_REGISTRY": registry.host,
           "CHURN_PLAIN_HTTP": "1", "CHURN_BUCKET": "ml-data"}
    dev = ManagedProcess("dagster-dev", [str(Path(sys.executable).with_name("dagster")), "dev", "-m",
                                         "examples.dagster.definitions", "-h", "127.0.0.1", "-p", str(port)],
                         tmp_path / "dagster-dev.log", env)
    dev.start()
    pgid = dev.pid
    try:
        # the webserver answers before the code location has loaded: wait for the graph itself
        def graph_loaded() -> bool:
            if http_status(f"http://127.0.0.1:{port}/server_info") != 200:
                return False
            try:
                nodes = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=30).json()
            except (requests.RequestException, ValueError):  # still starting, or slow on a busy machine
                return False
            return bool((nodes.get("data") or {}).get("assetNodes"))

        dev.wait_ready(graph_loaded, "asset graph served", timeout=180)
        data = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=30).json()["data"]
    finally:
        dev.stop(timeout=20)
        try:
            os.killpg(pgid, signal.SIGKILL)  # the daemon and code server it started
        except (ProcessLookupError, TypeError):
            pass
    deps = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]}
            for n in data["assetNodes"]}
    assert deps["churn_model"] == {"churn_dataset"}
    assert deps["churn_modelkit"] >= {"churn_dataset", "churn_model"}
    assert {"churn_dataset", "churn_model", "churn_modelkit", "churn_promoted"} <= set(deps)
