"""When to try a request again, and how long to wait first.

Pure decisions only: no sleeping, no clock reads unless none is given. The HTTP clients ask
`RetryPolicy.decide` after each failed try and do the waiting themselves (through a sleep
function that tests replace with a fake clock).

SiliconFlow counts failed requests against the RPM limit, so the defaults are modest: three tries in
all, full-jitter exponential backoff from one second, and a one-minute budget.
"""

from __future__ import annotations

import math
import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from sfagent.exceptions import APIConnectionError, APIStatusError, ConfigurationError

__all__ = ["RETRYABLE_STATUSES", "RetryDecision", "RetryPolicy", "parse_retry_after"]

RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})
"""Statuses worth another try: rate limits and server failures; no other 4xx ever is."""


@dataclass(frozen=True)
class RetryDecision:
    """The answer to "try again?".

    Attributes:
        retry: Whether to send the request again.
        delay: Seconds to wait before the next try (0 when not retrying).
        reason: Why, in a few words, for the debug log.
    """

    retry: bool
    delay: float
    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    Attributes:
        max_attempts: Tries in all, the first included (1 means never retry).
        base_delay: Backoff before the second try, in seconds; doubled for each later one.
        max_delay: Ceiling on one backoff wait, in seconds.
        max_retry_after: Ceiling on a server's ``Retry-After``, in seconds.
        total_timeout: Budget in seconds from the first try: no retry whose wait would end past it.
        enabled: ``False`` switches retries off altogether.
        retry_statuses: HTTP statuses that are retried.
    """

    max_attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 20.0
    max_retry_after: float = 60.0
    total_timeout: float = 60.0
    enabled: bool = True
    retry_statuses: frozenset[int] = field(default=RETRYABLE_STATUSES)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("base_delay", "max_delay", "max_retry_after", "total_timeout"):
            value = getattr(self, name)
            if not value >= 0 or math.isinf(value):
                raise ConfigurationError(f"{name} must be a finite number >= 0, got {value!r}")
        never = {400, 401, 403, 404} & set(self.retry_statuses)
        if never:
            raise ConfigurationError(f"statuses {sorted(never)} are never retried")

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(max_attempts=1, enabled=False)

    def is_retryable(self, error: BaseException | int) -> bool:
        """Whether a failure of this kind is worth another try, ignoring attempts and time.

        Args:
            error: The error a try ended with, or an HTTP status code.
        """
        if isinstance(error, int):
            return error in self.retry_statuses
        if isinstance(error, APIStatusError):
            return error.status_code in self.retry_statuses
        # Timeouts are a subclass of connection errors.
        return isinstance(error, APIConnectionError)

    def backoff(self, attempt: int, *, rand: Callable[[], float] = _random.random) -> float:
        """Full-jitter backoff after the given try: uniform in ``[0, min(max, base * 2**(n-1))]``.

        Args:
            attempt: The number of the try that just failed (1 for the first).
            rand: Source of uniform numbers in ``[0, 1)``; tests pass a fixed one.
        """
        exponent = min(max(attempt - 1, 0), 62)
        ceiling = min(self.max_delay, self.base_delay * (2.0**exponent))
        return rand() * ceiling

    def decide(
        self,
        error: BaseException | int,
        *,
        attempt: int,
        elapsed: float,
        retry_after: str | None = None,
        rand: Callable[[], float] = _random.random,
        now: float | None = None,
    ) -> RetryDecision:
        """Decide whether to retry after a failed try, and how long to wait.

        Args:
            error: The error the try ended with, or its HTTP status code.
            attempt: The number of the try that just failed (1 for the first).
            elapsed: Seconds since the first try started.
            retry_after: The response's ``Retry-After`` header (seconds or an HTTP date), if any.
            rand: Source of uniform numbers in ``[0, 1)`` for the jitter.
            now: The current Unix time, for an HTTP-date ``Retry-After``; read from the clock if
                not given.

        Returns:
            The decision; ``delay`` is the wait before the next try.
        """
        if not self.enabled:
            return RetryDecision(False, 0.0, "retries disabled")
        if not self.is_retryable(error):
            return RetryDecision(False, 0.0, "not retryable")
        if attempt >= self.max_attempts:
            return RetryDecision(False, 0.0, f"gave up after {attempt} attempts")
        server_wait = parse_retry_after(retry_after, now=now)
        if server_wait is not None:
            delay = min(server_wait, self.max_retry_after)
            reason = "retry-after"
        else:
            delay = self.backoff(attempt, rand=rand)
            reason = "backoff"
        if elapsed + delay > self.total_timeout:
            return RetryDecision(False, 0.0, "time budget exhausted")
        return RetryDecision(True, delay, reason)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Read a ``Retry-After`` header as seconds to wait.

    Args:
        value: The header: delay seconds (``"2"``, ``"1.5"``) or an HTTP date.
        now: The current Unix time for the date form; read from the clock if not given.

    Returns:
        Seconds to wait (never negative), or ``None`` when absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_date(text, now=now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)


def _seconds_until_date(text: str, *, now: float | None) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)
