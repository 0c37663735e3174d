"""Show the core's log lines (pack steps, transfer progress, registry retries) in the task run's logs.

The core logs to the ``kitops_flows`` logger, partly from its own transfer threads, where Prefect's
run context is not set. ``task_run_logs()`` installs, for the duration of one task, a handler that
stamps the task's flow-run and task-run ids on each record and hands it to Prefect's API log handler:

    with task_run_logs(owned_threads, secrets=("s3cret",)):
        kit.push(ref)          # "Pushed …" and progress lines appear under this task run in the UI

Which records belong to this task: those logged on the task's own thread, plus those from threads
the task's ``KitOpsClient`` reported progress from (``owned_threads``: (ident, name) pairs filled by
``TransferProgress``; idents alone are reused as soon as a thread ends), so concurrent tasks in one
process (``.map``) do not pick up each other's lines.
Any registered secret is replaced by ``***`` before a line leaves the process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator

from prefect.logging.handlers import APILogHandler

CORE_LOGGER = "kitops_flows"
REDACTED = "***"


class _TaskRunHandler(APILogHandler):
    """Forwards this task's ``kitops_flows`` records to the Prefect API, tagged with its run ids."""

    def __init__(self, flow_run_id: str, task_run_id: str, threads: set[tuple[int, str]], secrets: tuple[str, ...],
                 skip_own_thread: bool) -> None:
        super().__init__()
        self._flow_run_id = flow_run_id
        self._task_run_id = task_run_id
        self._threads = threads
        self._task_thread = threading.get_ident()
        self._secrets = secrets
        self._skip_own_thread = skip_own_thread

    def emit(self, record: logging.LogRecord) -> None:
        own = record.thread == self._task_thread
        if (own and self._skip_own_thread) or not (own or (record.thread, record.threadName) in self._threads):
            return
        tagged = logging.makeLogRecord(record.__dict__)
        tagged.flow_run_id = self._flow_run_id
        tagged.task_run_id = self._task_run_id
        if self._secrets:
            tagged.msg, tagged.args = redact(record.getMessage(), self._secrets), None
        super().emit(tagged)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


@contextlib.contextmanager
def task_run_logs(owned_threads: set[tuple[int, str]], secrets: tuple[str, ...] = ()) -> Iterator[None]:
    """Forward ``kitops_flows`` records to the current task run while the block runs (no-op outside a run)."""
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    if ctx is None or not ctx.task_run.flow_run_id:  # outside a run there is no run log to write to
        yield
        return
    logger = logging.getLogger(CORE_LOGGER)
    if logger.level == logging.NOTSET:
        # the core's info lines (steps, progress) are the point; Prefect leaves the root at WARNING
        logger.setLevel(logging.INFO)
    # PREFECT_LOGGING_EXTRA_LOGGERS=kitops_flows already sends task-thread records: do not send them twice
    api_already = any(isinstance(h, APILogHandler) and not isinstance(h, _TaskRunHandler) for h in logger.handlers)
    handler = _TaskRunHandler(str(ctx.task_run.flow_run_id), str(ctx.task_run.id), owned_threads, secrets,
                              skip_own_thread=api_already)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


__all__ = ["CORE_LOGGER", "redact", "task_run_logs"]
