"""Per-task stores (``kitops_flows.worker_store``): templates, throwaway stores, and the error a task gets
when the ModelKit it needs is only in another worker's store."""

from __future__ import annotations

import os
import socket
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from kitops_flows.api import KitOpsClient
from kitops_flows.errors import KitopsError, NotFoundError, NotInLocalStoreError
from kitops_flows.store import LocalStore
from kitops_flows.worker_store import EPHEMERAL, render_kitops_home


def test_template_fields_are_filled_and_made_path_safe() -> None:
    home = render_kitops_home("/scratch/{dag_id}/{task_id}-{pid}", dag_id="churn", task_id="../../etc/passwd")
    assert home == Path(f"/scratch/churn/.._.._etc_passwd-{os.getpid()}")  # one component: cannot climb out
    assert render_kitops_home("{tmp}/k/{host}", task_id="x") == Path(tempfile.gettempdir()) / "k" / socket.gethostname()
    assert render_kitops_home("/s/{task_id}", task_id="..") == Path("/s/_")
    assert render_kitops_home("~/k/{task_id}", task_id="a b") == Path.home() / "k" / "a_b"
    assert render_kitops_home(None) is None and render_kitops_home("  ") is None


def test_a_field_not_known_here_is_an_error_naming_it_and_the_known_ones() -> None:
    with pytest.raises(KitopsError) as e:
        render_kitops_home("/scratch/{step_key}", run_id="r1", task_id=None)
    assert "{step_key}" in str(e.value) and "{run_id}" in str(e.value) and "{pid}" in str(e.value)
    assert "{task_id}" not in str(e.value).split("known fields:")[1]  # None means "not known"
    with pytest.raises(KitopsError, match="malformed"):
        render_kitops_home("/scratch/{task_id")


def test_ephemeral_store_is_fresh_per_call_and_removed_with_its_scope() -> None:
    with ExitStack() as cleanup:
        a = render_kitops_home(EPHEMERAL, cleanup=cleanup)
        b = render_kitops_home(EPHEMERAL, cleanup=cleanup)
        assert a != b and a.is_dir() and not any(a.iterdir())
        (a / "storage").mkdir()
    assert not a.exists() and not b.exists()


def test_only_an_ephemeral_store_is_marked_a_staging_area(tmp_path: Path) -> None:
    from kitops_flows.settings import RegistrySettings

    with ExitStack() as cleanup:
        assert RegistrySettings(kitops_home=EPHEMERAL).client(cleanup=cleanup).ephemeral_store
        assert RegistrySettings(kitops_home=str(tmp_path)).client(kitops_home=f" {EPHEMERAL} ").ephemeral_store
        assert not RegistrySettings(kitops_home=EPHEMERAL).client(kitops_home=str(tmp_path / "{pid}")).ephemeral_store
        assert not RegistrySettings(kitops_home=str(tmp_path / "{task_id}")).client(task_id="t").ephemeral_store
        # a plugin that rendered the throwaway store itself (Dagster: one per step) says so
        assert RegistrySettings().client(kitops_home=tmp_path / "done", ephemeral=True).ephemeral_store


def _pack(home: Path, tmp: Path, reference: str) -> None:
    ctx = tmp / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "model.bin").write_bytes(b"weights")
    (ctx / "Kitfile").write_text("manifestVersion: 1.0.0\npackage: {name: m}\nmodel: {name: m, path: model.bin}\n")
    KitOpsClient(store=LocalStore(home)).pack(ctx, reference=reference)


def test_push_from_a_store_without_the_modelkit_says_it_was_packed_elsewhere(tmp_path: Path) -> None:
    """KitPushOperator/push_modelkit after a pack that did not push, on another worker: the core's error."""
    _pack(tmp_path / "packer", tmp_path, "127.0.0.1:9/team/churn:split")
    pusher = KitOpsClient(store=LocalStore(tmp_path / "pusher"))
    with pytest.raises(NotInLocalStoreError) as e:
        pusher.push("127.0.0.1:9/team/churn:split")
    text = str(e.value)
    assert "127.0.0.1:9/team/churn:split" in text and str(tmp_path / "pusher") in text
    assert "push in the task that packs it" in text and "push=True" in text
    assert isinstance(e.value, NotFoundError)  # existing `except NotFoundError` handlers still catch it


def test_a_local_only_reference_in_another_store_cannot_be_unpacked_and_says_why(tmp_path: Path) -> None:
    _pack(tmp_path / "packer", tmp_path, "team/churn:v1")
    other = KitOpsClient(store=LocalStore(tmp_path / "other"))
    for call in (lambda: other.unpack("team/churn:v1", tmp_path / "out"), lambda: other.resolve("team/churn:v1")):
        with pytest.raises(NotInLocalStoreError, match="names no registry") as e:
            call()
        assert "push in the packing task" in str(e.value)
    assert not (tmp_path / "out").exists()
