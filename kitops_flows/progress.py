"""Progress lines for long transfers, suited to non-TTY workers (Airflow/Prefect/Dagster logs).

Bars are useless in a scheduler's log file, so we log a plain line at most every ``interval``
seconds (and a final summary), each with bytes done, rate and ETA::

    reporter = ProgressReporter("push model layer sha256:ab12…", total=size)
    for chunk in chunks:
        send(chunk)
        reporter.update(len(chunk))
    reporter.finish()

Callers that want the numbers themselves (a Prefect progress artifact, say) pass ``on_update``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .kitoutput import format_bytes  # kit's FormatBytes, as in every table

LOGGER = logging.getLogger("kitops_flows")

#: Called with (label, bytes_done, total_or_None) after every update.
ProgressCallback = Callable[[str, int, "int | None"], None]


@dataclass
class ProgressReporter:
    """Accumulates transferred bytes and logs a line every ``interval`` seconds."""

    label: str
    total: int | None = None
    interval: float = 10.0
    log: logging.Logger = LOGGER
    on_update: ProgressCallback | None = None
    min_bytes_to_log: int = 32 << 20  # small transfers finish before anyone reads a progress line
    done: int = 0
    _started: float = field(default_factory=time.monotonic)
    _last_log: float = field(default_factory=time.monotonic)

    def update(self, nbytes: int) -> None:
        self.done += nbytes
        if self.on_update is not None:
            self.on_update(self.label, self.done, self.total)
        now = time.monotonic()
        if now - self._last_log >= self.interval:
            self._last_log = now
            self.log.info("%s: %s", self.label, self._describe(now))

    def finish(self) -> None:
        """Log the summary line (only for transfers big or slow enough to have mattered)."""
        now = time.monotonic()
        if self.done >= self.min_bytes_to_log or now - self._started >= self.interval:
            self.log.info("%s: done, %s", self.label, self._describe(now))

    def _describe(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = self.done / elapsed
        text = format_bytes(self.done)
        if self.total:
            pct = 100.0 * self.done / self.total
            text += f" of {format_bytes(self.total)} ({pct:.0f}%)"
            if rate > 0 and self.done < self.total:
                text += f", ETA {(self.total - self.done) / rate:.0f}s"
        return f"{text} at {format_bytes(int(rate))}/s"
