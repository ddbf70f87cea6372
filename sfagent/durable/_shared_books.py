"""The shared rate limiter's decisions, without I/O: what one admission reads from the
database (`Books`), whether a request fits and how long it must wait (`plan`), how the pacer's
arrival times move (`paced`) and what a 429 does to a bucket (`after_429`).

`sfagent.durable._shared_limits` runs them inside its transactions; they mirror the in-memory
`sfagent.batch.LimiterCore`, which keeps the same books for one process.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from sfagent.batch._limiter import (
    DAY,
    DECREASE_FACTOR,
    MIN_FACTOR,
    RECOVERY_PER_SECOND,
    STREAK_RESET,
    WINDOW,
    RateLimits,
    pause_for,
)

__all__ = ["Books", "Bucket", "Excess", "Kind", "Rules", "WindowName", "after_429", "paced", "plan"]


@dataclass(frozen=True)
class Rules:
    """The limits in the terms an admission works in (seconds on the database's clock)."""

    limits: RateLimits
    length: float  # the minute window: the period plus the margin
    burst: float | None  # seconds of pace that may go at once, scaled to the period
    day: float

    @classmethod
    def of(cls, limits: RateLimits, period: float) -> Rules:
        """The rules of `limits` over windows of `period` seconds."""
        burst = None if limits.burst is None else limits.burst * period / WINDOW
        return cls(limits, period + limits.margin, burst, DAY + limits.margin)


@dataclass(frozen=True)
class Bucket:
    """A bucket's row: the pacer's arrival times and the state a 429 leaves."""

    requests_at: float = 0.0
    tokens_at: float = 0.0
    paused_until: float = 0.0
    rate_floor: float = 1.0  # the effective rate at `recover_from`, growing after it
    recover_from: float = 0.0
    last_cut: float = 0.0
    streak: int = 0

    def factor(self, now: float) -> float:
        """The effective rate as a fraction of the minute limits (1.0 unless a 429 cut it)."""
        if self.rate_floor >= 1.0:
            return 1.0
        grown = RECOVERY_PER_SECOND * max(0.0, now - self.recover_from)
        return min(1.0, self.rate_floor + grown)

    def reaches(self, factor: float) -> float:
        """When the effective rate is back at `factor`, absent further 429s."""
        return self.recover_from + max(0.0, factor - self.rate_floor) / RECOVERY_PER_SECOND


@dataclass(frozen=True)
class Books:
    """What one admission reads: the time, the bucket, and the sums of the live windows."""

    now: float
    bucket: Bucket
    requests: int
    tokens: int
    day_requests: int = 0
    day_tokens: int = 0


WindowName = Literal["minute", "day"]
Kind = Literal["requests", "tokens"]
Excess = tuple[WindowName, Kind, float]
"""An amount that must leave a window before a request fits: found in the database."""


def plan(rules: Rules, books: Books, estimate: int) -> tuple[float, list[Excess]]:
    """Seconds to wait that the books show, and the excesses whose leaving times bound it too."""
    limits, now, bucket = rules.limits, books.now, books.bucket
    factor = bucket.factor(now)
    waits = [bucket.paused_until - now]
    if rules.burst is not None:
        waits.append(max(bucket.requests_at, bucket.tokens_at) - rules.burst - now)
    checks: list[tuple[WindowName, Kind, int, int, int | None, float]] = [
        ("minute", "requests", books.requests, 1, limits.rpm, factor),
        ("minute", "tokens", books.tokens, estimate, limits.tpm, factor),
        ("day", "requests", books.day_requests, 1, limits.rpd, 1.0),
        ("day", "tokens", books.day_tokens, estimate, limits.tpd, 1.0),
    ]
    excesses: list[Excess] = []
    for window, kind, used, need, limit, share in checks:
        if limit is None or used + need <= limit * share:
            continue
        if need > limit * share:  # even an empty window is too small until the rate recovers
            waits.append(bucket.reaches(need / limit) - now)
        else:
            excesses.append((window, kind, used + need - limit * share))
    return max(waits), excesses


def paced(
    rules: Rules, bucket: Bucket, now: float, requests: int, tokens: int, *, start: bool
) -> Bucket:
    """The bucket with its arrival times moved by a charge (or a change of charge)."""
    if rules.burst is None:
        return bucket
    limits, factor = rules.limits, bucket.factor(now)
    requests_at, tokens_at = bucket.requests_at, bucket.tokens_at
    if limits.rpm is not None:
        requests_at = max(requests_at, now) if start else requests_at
        requests_at += requests * rules.length / (limits.rpm * factor)
    if limits.tpm is not None:
        tokens_at = max(tokens_at, now) if start else tokens_at
        tokens_at += tokens * rules.length / (limits.tpm * factor)
    return replace(bucket, requests_at=requests_at, tokens_at=tokens_at)


def after_429(bucket: Bucket, now: float, retry_after: float | None, sent_at: float) -> Bucket:
    """The bucket after a 429: every process pauses, and a fresh 429 cuts the rate (as
    `sfagent.batch.LimiterCore.on_rate_limited` does, with a plain linear recovery)."""
    factor = bucket.factor(now)
    fresh = sent_at > bucket.last_cut
    streak, last_cut = bucket.streak, bucket.last_cut
    if fresh:
        streak = streak + 1 if now - bucket.last_cut < STREAK_RESET else 1
        last_cut = now
        factor = max(MIN_FACTOR, factor * DECREASE_FACTOR)
    paused_until = max(bucket.paused_until, now + pause_for(retry_after, streak if fresh else 0))
    return replace(
        bucket,
        paused_until=paused_until,
        rate_floor=factor,
        recover_from=max(now, paused_until),
        last_cut=last_cut,
        streak=streak,
    )
