"""Airflow: ``sign=`` on pack/push and ``verify_key=`` on pull, unpack, sensor and promote, under ``dag.test()``.

Keys come from the connection's extras (``signing_key``, ``signing_key_password``) and from an
Airflow Variable; an unsigned ModelKit fails every verify-before-use task before anything is
extracted, and neither the private key nor its password reaches XCom, the task logs or the terminal.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cosign_check import cosign_verify, cosign_verify_attestation

from kitops_flows.api import KitOpsClient, LocalStore
from kitops_flows.signing import generate_key_pair

pytest.importorskip("airflow.sdk")
pytestmark = [pytest.mark.airflow, pytest.mark.integration]

KITFILE = "manifestVersion: 1.0.0\npackage: {name: signed}\nmodel: {name: m, path: model.bin}\n"


def _ctx(root: Path, text: str) -> Path:
    root.mkdir(parents=True)
    (root / "Kitfile").write_text(KITFILE)
    (root / "model.bin").write_text(text)
    return root


def _register(dag: Any) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def _ti(dr: Any, task_id: str) -> Any:
    return next(ti for ti in dr.get_task_instances() if ti.task_id == task_id)


def test_sign_and_verify_before_use_in_airflow(airflow_db, registry, kitops_home, tmp_path: Path,  # noqa: ANN001
                                               monkeypatch: pytest.MonkeyPatch, capfd, caplog,  # noqa: ANN001
                                               restore_logging) -> None:  # noqa: ANN001
    from airflow.models.xcom import XComModel
    from airflow.sdk import DAG
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from kitops_flows_airflow import (
        KitPackOperator,
        KitPromoteOperator,
        KitPullOperator,
        KitPushOperator,
        KitUnpackOperator,
        ModelKitSensor,
    )

    caplog.set_level(logging.INFO)
    host = registry.host
    conn_key, var_key = generate_key_pair(), generate_key_pair()
    conn_password, var_password = "conn-key-pw-9f3e1a", "var-key-pw-27bd0c"
    conn_pem, var_pem = conn_key.to_cosign_pem(conn_password).decode(), var_key.to_cosign_pem(var_password).decode()
    pub = conn_key.public_key.to_pem().decode()
    monkeypatch.setenv("AIRFLOW_CONN_KITOPS_SIGN", json.dumps({
        "conn_type": "kitops", "host": f"http://{host}",
        "extra": {"kitops_home": str(kitops_home), "signing_key": conn_pem, "signing_key_password": conn_password}}))
    monkeypatch.setenv("AIRFLOW_VAR_RELEASE_KEY", var_pem)
    monkeypatch.setenv("AIRFLOW_VAR_RELEASE_KEY_PASSWORD", var_password)
    kit = KitOpsClient(store=LocalStore(kitops_home), plain_http=True)
    kit.pack(_ctx(tmp_path / "pushed", "to push"), reference=f"{host}/af/pushed:v1")
    signed_ref, unsigned_ref = f"{host}/af/signed:v1", f"{host}/af/unsigned:v1"
    conn = {"kitops_conn_id": "kitops_sign"}

    with DAG("kitops_signing", schedule=None) as dag:
        packed = KitPackOperator(task_id="pack_signed", context_dir=str(_ctx(tmp_path / "s", "signed")),
                                 reference=signed_ref, push=True, sign=True, **conn)
        unsigned = KitPackOperator(task_id="pack_unsigned", context_dir=str(_ctx(tmp_path / "u", "unsigned")),
                                   reference=unsigned_ref, push=True, **conn)
        KitPushOperator(task_id="push_var_key", source=f"{host}/af/pushed:v1", sign="release_key", **conn)
        checks = [
            KitPullOperator(task_id="pull_signed", reference=signed_ref, verify_key=pub,
                            kitops_home=str(tmp_path / "h1"), **conn),
            KitPullOperator(task_id="pull_unsigned", reference=unsigned_ref, verify_key=pub,
                            kitops_home=str(tmp_path / "h2"), **conn),
            KitUnpackOperator(task_id="unpack_signed", reference=signed_ref, dest=str(tmp_path / "out-signed"),
                              verify_key=pub, kitops_home=str(tmp_path / "h3"), **conn),
            KitUnpackOperator(task_id="unpack_unsigned", reference=unsigned_ref, dest=str(tmp_path / "out-unsigned"),
                              verify_key=pub, kitops_home=str(tmp_path / "h4"), **conn),
            ModelKitSensor(task_id="sense_signed", reference=signed_ref, verify_key=pub, poke_interval=0.1,
                           timeout=10, **conn),
            ModelKitSensor(task_id="sense_unsigned", reference=unsigned_ref, verify_key=pub, poke_interval=0.1,
                           timeout=10, **conn),
            KitPromoteOperator(task_id="promote_signed", reference=signed_ref, stage="production",
                               require_signature=pub, **conn),
            KitPromoteOperator(task_id="promote_unsigned", reference=unsigned_ref, stage="production",
                               require_signature=pub, **conn),
        ]
        [packed, unsigned] >> checks[0]
        for task in checks[1:]:
            checks[0] >> task
    _register(dag)
    dr = dag.test()
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert states == {
        "pack_signed": "success", "pack_unsigned": "success", "push_var_key": "success",
        "pull_signed": "success", "pull_unsigned": "failed", "unpack_signed": "success",
        "unpack_unsigned": "failed", "sense_signed": "success", "sense_unsigned": "failed",
        "promote_signed": "success", "promote_unsigned": "failed"}, states

    signed = _ti(dr, "pack_signed").xcom_pull(task_ids="pack_signed")
    assert cosign_verify(host, "af/signed", signed["digest"], pub.encode())
    assert cosign_verify_attestation(host, "af/signed", signed["digest"], pub.encode())
    pushed = _ti(dr, "push_var_key").xcom_pull(task_ids="push_var_key")
    assert cosign_verify(host, "af/pushed", pushed["digest"], var_key.public_key.to_pem())
    assert (tmp_path / "out-signed" / "model.bin").read_text() == "signed"
    assert not (tmp_path / "out-unsigned").exists()  # refused before a byte was extracted
    blobs = tmp_path / "h4" / "storage" / "blobs" / "sha256"
    assert not blobs.exists() or not list(blobs.iterdir())
    fingerprint = conn_key.public_key.fingerprint
    assert _ti(dr, "sense_signed").xcom_pull(task_ids="sense_signed")["signed_by"] == fingerprint
    assert _ti(dr, "promote_signed").xcom_pull(task_ids="promote_signed")["signed_by"] == fingerprint

    out = capfd.readouterr()
    text = caplog.text + out.out + out.err
    assert "unsigned: " in text  # the failed tasks say why
    secrets = [conn_password, var_password, *[line for pem in (conn_pem, var_pem) for line in pem.splitlines()[1:-1]]]
    assert not [s for s in secrets if s in text]
    with create_session() as session:
        values = json.dumps(session.scalars(select(XComModel.value)).all(), default=str)
    assert fingerprint in values and not [s for s in secrets if s in values]
