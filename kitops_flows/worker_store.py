"""Per-task local stores, for tasks that run on separate workers (Celery, Kubernetes, Dask, processes).

On a distributed executor every task may run on another machine with an empty disk: only the
registry and S3 are shared. Each plugin's ``kitops_home`` setting is therefore a template that
``render_kitops_home`` fills in per task::

    /scratch/kitops/{task_id}      one store per task (stable across runs, so its blob cache is reused)
    /scratch/kitops/{host}-{pid}   one store per worker process
    {tmp}/kitops/{run_id}/{task_id}
    ephemeral                      a fresh temporary store per task, removed when the task ends

>>> render_kitops_home("/scratch/kitops/{task_id}", task_id="train/fit")
PosixPath('/scratch/kitops/train_fit')
>>> render_kitops_home(None) is None          # no setting: $KITOPS_HOME or kit's default
True

``{pid}``, ``{host}`` and ``{tmp}`` are always known; the plugins add their own task identity
(Airflow ``{dag_id}``, ``{task_id}``, ``{run_id}``, ``{map_index}``, ``{try_number}``; Prefect
``{task_id}``, ``{task_name}``, ``{flow_run_id}``; Dagster ``{step_key}``, ``{run_id}``). Values are made
path-safe (``/`` and other separators become ``_``), so a task id can never climb out of the base.

A task that needs a ModelKit only another worker's store holds fails with ``NotInLocalStoreError``
(``not_in_store``), which says so and how to fix it, rather than a bare "not found".
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import string
import tempfile
from contextlib import ExitStack
from pathlib import Path

from .errors import KitopsError, NotInLocalStoreError

#: The ``kitops_home`` value asking for a throwaway store per task.
EPHEMERAL = "ephemeral"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def builtin_fields() -> dict[str, str]:
    """Fields every template may use, whatever the orchestrator."""
    return {"pid": str(os.getpid()), "host": socket.gethostname(), "tmp": tempfile.gettempdir()}


def _safe(value: object) -> str:
    """One path component: separators and odd characters become ``_``; ``.``/``..`` cannot appear alone."""
    text = _UNSAFE.sub("_", str(value)).strip("_") or "_"
    return "_" if set(text) == {"."} else text


def render_kitops_home(template: str | os.PathLike[str] | None, *, cleanup: ExitStack | None = None,
                       **fields: object) -> Path | None:
    """The store directory for this task, or None when ``template`` is empty (the default store).

    ``ephemeral`` creates a new temporary directory; it is removed when ``cleanup`` closes (the
    plugin scopes it to the task), or at process exit without one. A field the template names
    but the caller cannot fill (``None`` or missing) is an error that lists the known fields.
    """
    if template is None or str(template).strip() == "":
        return None
    text = str(template).strip()
    if text == EPHEMERAL:
        path = Path(tempfile.mkdtemp(prefix="kitops-task-"))
        if cleanup is not None:
            cleanup.callback(shutil.rmtree, path, True)
        else:
            atexit.register(shutil.rmtree, path, True)
        return path
    known = builtin_fields()
    known.update({k: _safe(v) for k, v in fields.items() if v is not None and v != ""})
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as e:
        raise KitopsError(f"kitops_home template {text!r} is malformed ({e}); write fields as {{task_id}}") from None
    unknown = sorted(n for n in names if n not in known)
    if unknown:
        raise KitopsError(
            f"kitops_home template {text!r} uses {', '.join('{' + n + '}' for n in unknown)}, which "
            f"{'is' if len(unknown) == 1 else 'are'} not known here; known fields: "
            f"{', '.join('{' + n + '}' for n in sorted(known))} (or use 'ephemeral' for a throwaway store)"
        )
    return Path(text.format(**known)).expanduser()


def not_in_store(what: str, home: Path, action: str, *, local_only: bool) -> NotInLocalStoreError:
    """The error for a ModelKit this task's store lacks, explaining the separate-workers cause and fix.

    ``local_only``: the reference names no registry, so no other place can have it.
    """
    if local_only:
        cause = (f"{what} names no registry, so only the store that packed it has it, and this task's store "
                 f"({home}) does not. When tasks run on separate workers each has its own store: pack with a "
                 "registry reference and push in the packing task (push=True, or a registry on the plugin's "
                 "resource/block/connection), then use the pushed (pinned) reference here")
    else:
        cause = (f"{what} is not in this task's local store ({home}). If another task packed it without pushing, "
                 "it exists only in that worker's store: push in the task that packs it (KitPackOperator("
                 "push=True), pack_modelkit(push=True), a registry on KitRegistryResource), or give both tasks "
                 "one shared kitops_home")
    return NotInLocalStoreError(f"cannot {action}: {cause}")


__all__ = ["EPHEMERAL", "builtin_fields", "not_in_store", "render_kitops_home"]
