"""When to try a registry request again, and how long to wait.

Registries fail transiently (429 rate limits, 502/503 behind load balancers, connection resets),
so requests are retried with exponential backoff and full jitter, honouring ``Retry-After``::

    policy = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=10, max_elapsed=120)
    policy.delay(attempt=2)              # uniform in [0, 1.0]: 0.5 * 2**(2-1), capped at max_delay

A refused connection (nothing listens on the port) is not a transient failure worth minutes of
backoff: it gets ``refused_attempts`` tries ``refused_delay`` apart, so a wrong address fails in
about a second. What counts as one "attempt" is decided by the caller: a whole blob upload
(new upload session, file re-opened) or a download that resumes where it broke off.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; all times in seconds."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 10.0
    max_elapsed: float = 120.0
    refused_attempts: int = 2
    refused_delay: float = 0.3
    fixed_delay: float | None = None  # a constant pause between attempts (skopeo's --retry-delay), no backoff

    @classmethod
    def from_cli(cls, retry_times: int | None, retry_delay: float | None) -> RetryPolicy:
        """skopeo's ``--retry-times N`` (retries after the first attempt) and ``--retry-delay SECONDS``; a flag
        not given keeps the default."""
        base = cls()
        attempts = base.max_attempts if retry_times is None else retry_times + 1
        return cls(max_attempts=attempts, fixed_delay=retry_delay,
                   max_delay=max(base.max_delay, retry_delay or 0.0),
                   max_elapsed=base.max_elapsed if retry_delay is None else max(base.max_elapsed, attempts * retry_delay))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        if self.fixed_delay is not None:
            return self.fixed_delay
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not crypto

    def allows(self, attempt: int, started: float, next_delay: float, *, refused: bool = False) -> bool:
        """May attempt ``attempt + 1`` start after sleeping ``next_delay``?"""
        limit = self.refused_attempts if refused else self.max_attempts
        if attempt >= limit:
            return False
        return time.monotonic() - started + next_delay <= self.max_elapsed


NO_RETRY = RetryPolicy(max_attempts=1, refused_attempts=1)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime  # HTTP dates are rare: keep `email` out of start-up

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class TransientError(Exception):
    """Raised inside one attempt to ask the retry loop for another; wraps the error to report if none is left."""

    def __init__(self, error: Exception, *, retry_after: float | None = None, refused: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.refused = refused
