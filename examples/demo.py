"""The main job on the embedded default: no registry, no cloud, just the local ModelKit store.

Generates a dataset, trains the tiny churn model, packs model + dataset + code + docs into a
ModelKit in the local store (kit's layout, so `kit list` would show it), lists and inspects it,
then unpacks only the model layer elsewhere and evaluates what came out.

    python examples/demo.py            # uses $KITOPS_HOME (kit's default location if unset)
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from churn.model import evaluate, make_dataset, train  # noqa: E402

from kitops_flows.api import KitOpsClient  # noqa: E402


def build_context(job_dir: Path) -> Path:
    """Lay out a pack context: Kitfile, data, trained model, the training code and a README."""
    here = Path(__file__).resolve().parent / "churn"
    dataset = make_dataset(job_dir / "data" / "train.csv")
    train(dataset, job_dir / "model")
    shutil.copytree(here, job_dir / "src", ignore=shutil.ignore_patterns("__pycache__", "Kitfile.template"))
    (job_dir / "README.md").write_text("# churn\nLogistic regression on synthetic customer data.\n")
    shutil.copy(here / "Kitfile.template", job_dir / "Kitfile")
    return job_dir


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    kit = KitOpsClient()
    print(f"local store: {kit.store.storage}")
    with tempfile.TemporaryDirectory() as tmp:
        ctx = build_context(Path(tmp) / "job")
        mk = kit.pack(ctx, reference="demo/churn:latest")
        print(f"\npacked {mk.reference} = {mk.pinned} ({mk.size} bytes)")
        for layer in mk.layers:
            print(f"  {layer.kind:8} {layer.path:16} {layer.digest[:19]}  {layer.size} bytes")

        print("\nkitops-flows list:")
        for row in kit.list():
            print(f"  {row.repo} {','.join(row.tags)} {row.model_name} {row.size} {row.digest[:19]}")

        inspected = kit.inspect(mk.reference)
        print("\ninspect (manifest annotations):")
        print(json.dumps(inspected["manifest"].get("annotations", {}), indent=2))

        serve = Path(tmp) / "serve"
        result = kit.unpack(mk.pinned, serve, filters=["model"])
        files = sorted(str(p.relative_to(serve)) for p in serve.rglob("*") if p.is_file())
        print(f"\nunpacked only the model layer into {serve}: {files}")
        accuracy = evaluate(result.paths[0] / "model.json", ctx / "data" / "train.csv")
        print(f"accuracy of the unpacked model: {accuracy:.3f}")
        report = kit.verify()
        print(f"store verify: {'OK' if report.ok else report.problems}")
        return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
