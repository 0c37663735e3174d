"""Prefect artifacts for ModelKits: a markdown summary per push and a live progress bar per transfer.

``artifact_key("127.0.0.1:5000/team/churn")`` -> ``"kitops-127-0-0-1-5000-team-churn"``: one stable key per
repository, so the Artifacts page shows the history of pushes to it. ``push_summary`` renders the
reference, digest, layers with their sizes and a Mermaid lineage graph. ``TransferProgress`` is a
``KitOpsClient`` progress callback that drives a progress artifact (throttled) for long transfers.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field

from kitops_flows.api import ModelKitDescriptor

LOG = logging.getLogger(__name__)

MAX_KEY_LENGTH = 100  # keys are shown in the UI's artifact list: keep them readable
#: ``progress_artifact=None`` creates a progress artifact once a single transfer is at least this big.
AUTO_PROGRESS_BYTES = 256 << 20


def artifact_key(repo_path: str, suffix: str = "") -> str:
    """A Prefect artifact key for a repository: lowercase letters, digits and dashes only.

    >>> artifact_key("127.0.0.1:5000/Team/churn_model")
    'kitops-127-0-0-1-5000-team-churn-model'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", f"kitops-{repo_path}-{suffix}".lower()).strip("-")
    if len(slug) > MAX_KEY_LENGTH:  # long paths: keep the readable tail, disambiguate with a hash
        digest = hashlib.sha256(slug.encode()).hexdigest()[:12]
        slug = f"kitops-{digest}-{slug[-(MAX_KEY_LENGTH - 20):].strip('-')}"
    return slug


def _cell(text: object) -> str:
    """A markdown table cell: pipes and newlines would break the row."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def push_summary(desc: ModelKitDescriptor, lineage_mermaid: str | None, lineage_note: str = "") -> str:
    """The markdown of a push artifact: identity, layers and (when available) the upstream lineage graph."""
    title = f"{desc.name} {desc.version or ''}".strip() if desc.name else desc.repository
    rows = [
        ("Reference", f"`{desc.reference}`"),
        ("Pinned", f"`{desc.pinned}`"),
        ("Digest", f"`{desc.digest}`"),
        ("Tags", ", ".join(f"`{t}`" for t in desc.tags) or "(none)"),
        ("Size", f"{desc.size:,} bytes"),
    ]
    if desc.created:
        rows.append(("Created", desc.created))
    out = [f"# ModelKit pushed: {_cell(title)}", "", "| | |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in rows]
    out += ["", "## Layers", "", "| Kind | Path | Name | Media type | Digest | Size (bytes) |",
            "|---|---|---|---|---|---:|"]
    for layer in desc.layers:
        out.append(
            f"| {layer.kind} | {_cell(layer.path)} | {_cell(layer.name)} | `{layer.media_type}` | "
            f"`{layer.digest}` | {layer.size:,} |"
        )
    out += ["", "## Lineage", ""]
    if lineage_mermaid:
        out += ["```mermaid", lineage_mermaid.rstrip("\n"), "```"]
    else:
        out.append(lineage_note or "No lineage records.")
    out += ["", f"Consume it pinned: `{desc.pinned}`", ""]
    return "\n".join(out)


def thread_key() -> tuple[int, str]:
    """The calling thread as (ident, name): idents are reused at once, names carry a process-wide counter."""
    return threading.get_ident(), threading.current_thread().name


@dataclass
class TransferProgress:
    """A ``KitOpsClient(progress=…)`` callback feeding a Prefect progress artifact, at most every ``interval`` s.

    ``enabled``: True always creates the artifact, False never, None once any single transfer is at
    least ``AUTO_PROGRESS_BYTES``. It is created lazily from the first update, inside the task's
    context (captured at construction), so it is linked to the task run even though the core calls
    back from its transfer threads. ``threads`` collects those threads (see ``logs.task_run_logs``).
    A failing artifact API never fails the transfer: the artifact is dropped with one warning.
    """

    key: str
    enabled: bool | None = None
    interval: float = 2.0
    threads: set[tuple[int, str]] = field(default_factory=set)
    artifact_id: object | None = None
    _transfers: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    _context: contextvars.Context = field(default_factory=contextvars.copy_context)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last: float = 0.0
    _broken: bool = False

    def __call__(self, label: str, done: int, total: int | None) -> None:
        self.threads.add(thread_key())
        if self.enabled is False or self._broken:
            return
        with self._lock:
            self._transfers[label] = (done, total)
            now = time.monotonic()
            if self.artifact_id is None:
                if not (self.enabled or (total or 0) >= AUTO_PROGRESS_BYTES):
                    return
                self._publish(create=True)
                self._last = now
            elif now - self._last >= self.interval:
                self._publish(create=False)
                self._last = now

    def percent(self) -> float:
        """Bytes done over bytes known, across every transfer seen so far (0-100)."""
        done = sum(d for d, _ in self._transfers.values())
        total = sum(t if t else d for d, t in self._transfers.values())
        return 100.0 * done / total if total else 0.0

    def _description(self) -> str:
        done = sum(d for d, _ in self._transfers.values())
        return f"{len(self._transfers)} blob(s), {done:,} bytes transferred"

    def _publish(self, *, create: bool) -> None:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        try:
            if create:
                self.artifact_id = self._context.run(
                    create_progress_artifact, self.percent(), key=self.key, description=self._description()
                )
            else:
                update_progress_artifact(self.artifact_id, self.percent(), description=self._description())  # type: ignore[arg-type]
        except Exception as e:  # noqa: BLE001 - a progress bar is never worth failing a push for
            self._broken = True
            LOG.warning("progress artifact %s disabled: %s", self.key, e)

    def finish(self) -> None:
        """Show the final state (100 % when every transfer completed)."""
        with self._lock:
            if self.artifact_id is not None and not self._broken:
                self._publish(create=False)


__all__ = ["AUTO_PROGRESS_BYTES", "TransferProgress", "artifact_key", "push_summary", "thread_key"]
