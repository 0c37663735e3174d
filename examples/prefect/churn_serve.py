"""The consumer: pull only the model layer of the ModelKit in production and serve it.

It never downloads the dataset or code layers. Deployed with an event trigger, it runs whenever
``churn-retrain`` promotes a ModelKit to production, with the promoted digest as its parameter::

    python -m examples.prefect.churn_serve          # serve with the trigger below
    python -m examples.prefect.churn_serve --once   # pull what production points at now
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from prefect import flow
from prefect.events import DeploymentEventTrigger

from kitops_flows_prefect import PROMOTED, KitOpsRegistry, pull_modelkit_layer

SERVE_DIR = os.environ.get("CHURN_SERVE_DIR", str(Path(tempfile.gettempdir()) / "churn-serve"))
REGISTRY_BLOCK = os.environ.get("CHURN_REGISTRY_BLOCK", "kitops-registry")
MODELKIT_REPO = os.environ.get("CHURN_MODELKIT_REPO", "127.0.0.1:5000/team/churn")


@flow(name="churn-serve", log_prints=True)
def churn_serve(
    reference: str = ":production",
    registry: KitOpsRegistry | str = REGISTRY_BLOCK,
    serve_dir: str = SERVE_DIR,
) -> str:
    """Unpack the model layer of ``reference`` into ``serve_dir`` and return the model file's path."""
    pulled = pull_modelkit_layer(reference, serve_dir, layers=["model"], registry=registry)
    model_file = pulled.paths[0] / "model.json"
    weights = json.loads(model_file.read_text())["weights"]
    print(f"serving {reference} from {model_file} ({len(weights)} weights)")
    return str(model_file)


#: Run on every promotion to production in the churn repository, pinned to the promoted digest.
PROMOTED_TO_PRODUCTION = DeploymentEventTrigger(
    expect={PROMOTED},
    match={"prefect.resource.id": f"oci://{MODELKIT_REPO}", "kitops.stage": "production"},
    parameters={"reference": "{{ event.resource['kitops.pinned'] }}"},
)

if __name__ == "__main__":
    if "--once" in sys.argv:
        churn_serve()
    else:
        churn_serve.serve(name="on-promotion", triggers=[PROMOTED_TO_PRODUCTION])
