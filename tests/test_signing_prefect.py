"""Prefect: ``sign=`` on ``pack_modelkit``/``push_modelkit`` (block ``SecretStr`` fields or a ``Secret`` block)
and ``verify_key=``/``require_signature=`` on ``pull_modelkit_layer``/``promote_modelkit``, under the test harness.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cosign_check import cosign_verify, cosign_verify_attestation

from kitops_flows.api import KitOpsClient, LocalStore
from kitops_flows.signing import generate_key_pair

pytest.importorskip("prefect")
from prefect import flow  # noqa: E402
from prefect.blocks.system import Secret  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from kitops_flows_prefect import (  # noqa: E402
    KitOpsRegistry,
    pack_modelkit,
    promote_modelkit,
    pull_modelkit_layer,
    push_modelkit,
)

pytestmark = [pytest.mark.prefect, pytest.mark.integration]
KITFILE = "manifestVersion: 1.0.0\npackage: {name: signed}\nmodel: {name: m, path: model.bin}\n"


def _ctx(root: Path, text: str) -> str:
    root.mkdir(parents=True)
    (root / "Kitfile").write_text(KITFILE)
    (root / "model.bin").write_text(text)
    return str(root)


def test_sign_and_verify_before_use_in_prefect(prefect_server: None, registry: Any, kitops_home: Path,
                                               tmp_path: Path) -> None:
    block_key, secret_key = generate_key_pair(), generate_key_pair()
    block = KitOpsRegistry(registry=registry.host, plain_http=True, repository="prefect-sign/model",
                           kitops_home=str(kitops_home),
                           signing_key=SecretStr(block_key.to_cosign_pem("block-key-pw-81d2").decode()),
                           signing_key_password=SecretStr("block-key-pw-81d2"))
    Secret(value=secret_key.to_cosign_pem("secret-key-pw-a4f0").decode()).save("sign-test-key", overwrite=True)
    Secret(value="secret-key-pw-a4f0").save("sign-test-key-password", overwrite=True)
    KitOpsClient(store=LocalStore(kitops_home), plain_http=True).pack(
        _ctx(tmp_path / "local", "pushed later"), reference=f"{registry.host}/prefect-sign/pushed:v1")
    pub = block_key.public_key.to_pem().decode()

    @flow
    def produce(signed_ctx: str, unsigned_ctx: str) -> tuple[Any, Any, Any]:
        signed = pack_modelkit(signed_ctx, ":signed", registry=block, push=True, sign=True)
        unsigned = pack_modelkit(unsigned_ctx, ":unsigned", registry=block, push=True)
        pushed = push_modelkit(f"{registry.host}/prefect-sign/pushed:v1", registry=block, sign="sign-test-key",
                               sign_password="sign-test-key-password")
        return signed, unsigned, pushed

    signed, unsigned, pushed = produce(_ctx(tmp_path / "s", "signed"), _ctx(tmp_path / "u", "unsigned"))
    assert cosign_verify(registry.host, "prefect-sign/model", signed.digest, pub.encode())
    assert cosign_verify_attestation(registry.host, "prefect-sign/model", signed.digest, pub.encode())
    assert not cosign_verify(registry.host, "prefect-sign/model", unsigned.digest, pub.encode())
    assert cosign_verify(registry.host, "prefect-sign/pushed", pushed.digest, secret_key.public_key.to_pem())

    consumer = block.model_copy(update={"kitops_home": str(tmp_path / "consumer"), "verify_key": pub,
                                        "signing_key": None, "signing_key_password": None})

    @flow
    def consume(ref: str, dest: str) -> tuple[str, str]:
        pulled = pull_modelkit_layer(ref, dest, layers=["model"], registry=consumer, return_state=True)
        promoted = promote_modelkit(ref, "production", registry=consumer, return_state=True)
        return pulled.name, promoted.name

    assert consume(signed.pinned, str(tmp_path / "ok")) == ("Completed", "Completed")
    assert (tmp_path / "ok" / "model.bin").read_text() == "signed"
    assert consume(unsigned.pinned, str(tmp_path / "refused")) == ("Failed", "Failed")
    assert not (tmp_path / "refused").exists()
    # an explicit key overrides the block's (the block has none here): the same refusal
    other = block.model_copy(update={"kitops_home": str(tmp_path / "c2")})

    @flow
    def explicit(ref: str, dest: str) -> str:
        return pull_modelkit_layer(ref, dest, layers=["model"], registry=other, verify_key=pub, return_state=True).name

    assert explicit(unsigned.pinned, str(tmp_path / "refused2")) == "Failed"
    assert not (tmp_path / "refused2").exists()
