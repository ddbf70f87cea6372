"""Requests and tokens per minute (and per day) under the account's limits, shared by every run
against the same endpoint and model.

SiliconFlow limits each account per model: requests per minute (RPM) and tokens per minute
(TPM), on some tiers per day too (RPD, TPD). The first to peak answers 429, failed requests
still count toward RPM, and no header tells a client how close it is. So the limiter keeps its
own books:

- `LimiterCore` decides, without I/O or waiting: may a request estimated at T tokens go now,
  or how many seconds until it may. It reads an injected clock.
- `RateLimiter` is the shared, thread-safe face of one core: ``await acquire(...)`` for event
  loops, ``acquire_sync(...)`` for threads, and ``request(...)`` as a context manager for
  either. Waiters of both kinds share one first-come, first-served queue.
- `estimate_tokens` reads a chat-completions body's worst case before it is sent.
- `shared_limiter` gives every run against the same base URL and model the same limiter.

The books are a sliding log: every admitted request stays in the last minute's log, with the
tokens it is charged, until a full window has passed. A request is admitted only if it fits
beside everything in the log, so **in every 60-second window, however placed, the requests and
the reserved tokens sent stay at or under the limits**: the last request admitted in a window
saw all the others in the log. A token bucket was not used: one holding a minute's budget can
be emptied at the start of a window and refilled and emptied again before its end, twice the
limit. The guarantee is on what is charged when each request is admitted: the estimate,
or the real usage for requests settled by then. A settlement below the estimate only frees
room; one above it is charged from then on, delaying later requests, but a window that already
holds it can exceed the limit by that overrun (which is why estimates count ``max_tokens``).

Within that hard bound requests are spread out: a GCRA pacer (the generic cell rate algorithm
of ATM networks) lets `RateLimits.burst` seconds' worth of the minute limits go at once and
spaces the rest at the limits' pace, so the log's bound is met by a steady flow rather than by
a minute's worth of requests at the start of each minute.

Usage::

    limiter = shared_limiter(base_url, model, rpm=1000, tpm=50_000)
    async with limiter.request(estimate_tokens(body)) as slot:
        response = await send(body)
        slot.settle(response.usage.total_tokens)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Generic, Literal, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from sfagent.exceptions import ConfigurationError, UserError

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_MARGIN",
    "Books",
    "EstimateTooLargeError",
    "Held",
    "LimiterCore",
    "LimiterStats",
    "RateLimiter",
    "RateLimits",
    "Reservation",
    "Slot",
    "SlotRequest",
    "check_completion_allowance",
    "check_settlement",
    "estimate_tokens",
    "forget_shared_limiters",
    "shared_limiter",
]

# --- constants -------------------------------------------------------------------------------

WINDOW = 60.0
"""The minute window's length in seconds (before the margin)."""

DAY = 86_400.0
"""The day window's length in seconds (before the margin)."""

DAY_BUCKET = 60.0
"""The day's log keeps one tally per minute, so it holds at most 1,442 entries. A bucket leaves
the log a day after its last possible request, so the day limits hold conservatively."""

DEFAULT_MARGIN = 0.5
"""Seconds added to each window. The limiter times a request when it admits it; the server
when it arrives, a little later and by varying amounts (event-loop lag, connection set-up).
Half a second of slack absorbs that jitter at a cost of under 1% of the rate."""

DEFAULT_BURST = 5.0
"""Seconds' worth of the minute limits that may go at once; past it, requests are spread evenly
at the limits' pace. Without spreading, a batch sends a minute's requests in its first seconds
and then waits out the rest of the minute: the server sees bursts (which it may meter over
shorter spans than a minute) and every window edge falls inside a burst, where arrival jitter
is largest. At RPM 6,000 this lets 500 requests go at once, then 99 a second."""

DECREASE_FACTOR = 0.7
"""A 429 multiplies the effective rate by this (the factor AWS's adaptive retry mode uses):
the server counts more than the books say, most likely another client on the account."""

MIN_FACTOR = 0.1
"""The effective rate never drops below this fraction of the configured limits."""

RECOVERY_PER_SECOND = 0.01
"""After the pause, the effective rate grows back by this fraction of the limits each second,
except near the rate the last 429 cut (see `KNEE`)."""

KNEE = 0.95
"""Recovery slows to `PROBE_PER_SECOND` between this fraction of the rate the last 429 cut and
that rate divided by it, then speeds up again. The server refused that rate, so the limiter
returns near it quickly and probes past it slowly (as TCP CUBIC does around its last window):
429s stay rare when the server's real limit is below the configured one, and a limit that was
only hit briefly is soon left behind."""

PROBE_PER_SECOND = 0.002
"""Growth near the refused rate, as a fraction of the limits each second: after one 429 at the
full rate, 25 s back to 95% and 25 s more to 100%."""

RECHECK_WHILE_RECOVERING = 1.0
"""While the rate is recovering a waiter looks again at least this often, in seconds, since
its wait was worked out at the lower rate."""

BASE_PAUSE = 1.0
"""Seconds every send pauses after a 429 without ``Retry-After``; doubled for each 429 in a
streak (SiliconFlow recommends exponential backoff from 1 s and sends no ``Retry-After``)."""

MAX_PAUSE = 30.0
"""Ceiling on the pause after a 429 without ``Retry-After``, in seconds."""

MAX_RETRY_AFTER = 600.0
"""Ceiling on a server's ``Retry-After``, in seconds, so a bogus value cannot stall a batch."""

DECREASE_COOLDOWN = 2.0
"""429s whose send time is unknown decrease the rate at most once in this many seconds: the
requests in flight when the limit was hit all fail together and must not compound the cut."""

STREAK_RESET = 60.0
"""A 429 more than this many seconds after the last cut starts a new streak of pauses."""

_EPSILON = 1e-6
"""Added to every wait, so a clock advanced by exactly the wait is past the boundary despite
floating-point rounding (a wait that rounds to zero would spin)."""

CHARS_PER_TOKEN = 3
"""Characters of ASCII text per token in estimates. English runs near 4 and code or JSON near
3, so 3 errs high; the response's usage corrects it."""

MESSAGE_OVERHEAD = 6
"""Tokens each message costs beyond its text: the chat template's role and turn markers."""

TOOLS_OVERHEAD = 200
"""Tokens the chat template adds around tool schemas (Qwen's tool prompt is about 150)."""

MEDIA_TOKENS = 2048
"""Tokens counted for each image, video or audio part: a ~1,600 by 1,200 image in Qwen2.5-VL's
28-pixel patches. Larger media cost more; the response's usage corrects it."""

DEFAULT_MAX_TOKENS = 512
"""The completion tokens assumed when a body sets no ``max_tokens``: SiliconFlow's default."""

DEFAULT_THINKING_BUDGET = 4096
"""Reasoning tokens assumed when a body sets ``enable_thinking`` without ``thinking_budget``:
SiliconFlow's default budget. ``max_tokens`` excludes the chain of thought, so it is added."""

_MEDIA_PARTS = frozenset({"image_url", "video_url", "audio_url", "input_audio"})

# --- errors and settings ---------------------------------------------------------------------


class EstimateTooLargeError(ConfigurationError):
    """A token estimate is above a token limit, so what it estimates could never be sent.

    Raised for one request when the limiter is asked to admit it (that request, and only it,
    fails), and by `check_completion_allowance` for limits that no request with the given
    settings could fit under (a batch is refused before it starts).

    Lower ``max_tokens`` or shorten the prompt, or raise the limit if the account allows it.

    Attributes:
        estimate: The estimated tokens.
        limit: The limit it exceeds.
        limit_name: ``"TPM"`` or ``"TPD"``.
    """

    def __init__(
        self, estimate: int, *, limit: int, limit_name: str, message: str | None = None
    ) -> None:
        super().__init__(
            message
            or f"a request needs ~{estimate} tokens (its prompt plus max_tokens) but "
            f"{limit_name} is {limit}: it can never be sent; raise the {limit_name} limit, "
            "lower max_tokens or shorten the prompt"
        )
        self.estimate = estimate
        self.limit = limit
        self.limit_name = limit_name


@dataclass(frozen=True)
class RateLimits:
    """The limits one limiter keeps; ``None`` leaves a limit off.

    Attributes:
        rpm: Requests per minute.
        tpm: Tokens per minute (prompt and completion).
        rpd: Requests per day.
        tpd: Tokens per day.
        max_concurrency: Requests in flight at once.
        margin: Seconds added to each window, for the jitter between admitting a request and
            its arrival at the server (see `DEFAULT_MARGIN`).
        burst: Seconds' worth of the minute limits that may go at once before requests are
            spread at the limits' pace (see `DEFAULT_BURST`); ``None`` sends as fast as the
            minute window allows.
    """

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    tpd: int | None = None
    max_concurrency: int | None = None
    margin: float = DEFAULT_MARGIN
    burst: float | None = DEFAULT_BURST

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "rpd", "tpd", "max_concurrency"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a whole number >= 1, got {value!r}")
        margin = self.margin
        if isinstance(margin, bool) or not isinstance(margin, (int, float)):
            raise ConfigurationError(f"margin must be a number of seconds, got {margin!r}")
        if not 0 <= margin <= WINDOW:
            raise ConfigurationError(f"margin must be between 0 and 60 seconds, got {margin!r}")
        burst = self.burst
        if burst is not None and (
            isinstance(burst, bool)
            or not isinstance(burst, (int, float))
            or not 0 <= burst <= WINDOW
        ):
            raise ConfigurationError(f"burst must be between 0 and 60 seconds, got {burst!r}")


@dataclass(frozen=True)
class LimiterStats:
    """A snapshot of a limiter, for progress displays.

    Attributes:
        requests: Requests in the current minute window.
        tokens: Tokens charged in the current minute window.
        in_flight: Requests admitted and not yet answered.
        factor: The effective rate as a fraction of the limits (1.0 unless a 429 cut it).
        paused_for: Seconds until sends resume after a 429 (0.0 when not paused).
        waiting: Callers queued for their turn.
    """

    requests: int
    tokens: int
    in_flight: int
    factor: float
    paused_for: float
    waiting: int = 0


# --- the books -------------------------------------------------------------------------------


class _Tally:
    """Requests and tokens charged at one time (one request, or one bucket of the day log)."""

    __slots__ = ("key", "live", "requests", "time", "tokens")

    def __init__(self, when: float, key: int = 0) -> None:
        self.time = when
        self.key = key
        self.live = True
        self.requests = 0
        self.tokens = 0


class _Pacer:
    """Spreads the minute limits evenly (GCRA): each request and token moves a theoretical
    arrival time forward by its share of the window; a request may go while that time is no
    more than `RateLimits.burst` seconds ahead of now."""

    def __init__(self, limits: RateLimits) -> None:
        self.window = WINDOW + limits.margin
        self.burst = float(limits.burst or 0.0)
        self.rpm = limits.rpm
        self.tpm = limits.tpm
        self.requests_at = -math.inf
        self.tokens_at = -math.inf

    def wait(self, now: float) -> float:
        wait = max(self.requests_at, self.tokens_at) - self.burst - now
        # Sums of many small paces drift by rounding: a wait of a nanosecond is none.
        return wait if wait > 1e-9 else 0.0

    def charge(self, now: float, requests: int, tokens: int, factor: float) -> None:
        if self.rpm is not None:
            self.requests_at = max(self.requests_at, now)
        if self.tpm is not None:
            self.tokens_at = max(self.tokens_at, now)
        self.adjust(requests, tokens, factor)

    def adjust(self, requests: int, tokens: int, factor: float) -> None:
        """Move the arrival times by a change of charge (negative for a refund)."""
        if self.rpm is not None:
            self.requests_at += requests * self.window / (self.rpm * factor)
        if self.tpm is not None:
            self.tokens_at += tokens * self.window / (self.tpm * factor)


class _Window:
    """What was charged in the last `length` seconds: tallies oldest first, and their sums."""

    def __init__(self, length: float, bucket: float | None) -> None:
        self.length = length
        self.bucket = bucket
        self.tallies: deque[_Tally] = deque()
        self.requests = 0
        self.tokens = 0

    def purge(self, now: float) -> None:
        tallies = self.tallies
        while tallies and tallies[0].time + self.length <= now:
            gone = tallies.popleft()
            gone.live = False
            self.requests -= gone.requests
            self.tokens -= gone.tokens

    def charge(self, now: float, tokens: int) -> _Tally:
        if self.bucket is None:
            tally = _Tally(now)
            self.tallies.append(tally)
        else:
            key = math.floor(now / self.bucket)
            if self.tallies and self.tallies[-1].key >= key:
                tally = self.tallies[-1]
            else:
                # Timed at the bucket's end: the latest any of its requests can have gone.
                tally = _Tally((key + 1) * self.bucket, key)
                self.tallies.append(tally)
        self.adjust(tally, 1, tokens)
        return tally

    def adjust(self, tally: _Tally, requests: int, tokens: int) -> None:
        # A tally that left the window no longer counts toward any check.
        if tally.live:
            tally.requests += requests
            tally.tokens += tokens
            self.requests += requests
            self.tokens += tokens

    def wait(self, excess: float, kind: Literal["requests", "tokens"], now: float) -> float:
        """Seconds until at least `excess` requests or tokens have left the window."""
        freed = 0
        for tally in self.tallies:
            freed += tally.requests if kind == "requests" else tally.tokens
            if freed >= excess:
                return tally.time + self.length - now
        return math.inf


class Reservation:
    """One request's entry in a limiter's books, from its admission until it is answered.

    Read its attributes; change it only through the limiter that made it.

    Attributes:
        estimate: Tokens reserved when it was admitted.
        tokens: Tokens it is charged now: the estimate until settled, then the real usage.
        sent_at: When it was admitted, on the limiter's clock.
        state: ``"open"`` (in flight), ``"done"`` (answered or failed: it still counts) or
            ``"released"`` (never sent: refunded).
    """

    __slots__ = ("_day", "_minute", "_owner", "estimate", "sent_at", "state", "tokens")

    def __init__(self, owner: LimiterCore, estimate: int, sent_at: float) -> None:
        self._owner = owner
        self._minute: _Tally | None = None
        self._day: _Tally | None = None
        self.estimate = estimate
        self.tokens = estimate
        self.sent_at = sent_at
        self.state: Literal["open", "done", "released"] = "open"

    def __repr__(self) -> str:
        return (
            f"Reservation(estimate={self.estimate}, tokens={self.tokens}, "
            f"sent_at={self.sent_at:.3f}, state={self.state!r})"
        )


# --- the pure core ---------------------------------------------------------------------------


class LimiterCore:
    """The limiter's decisions: no waiting, no locks, time from the injected clock.

    Not thread-safe on its own; `RateLimiter` holds a lock around it.

    Args:
        limits: The limits to keep.
        clock: Monotonic seconds; tests pass a fake one.
    """

    def __init__(self, limits: RateLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._minute = _Window(WINDOW + limits.margin, None)
        daily = limits.rpd is not None or limits.tpd is not None
        self._day = _Window(DAY + limits.margin, DAY_BUCKET) if daily else None
        self._in_flight = 0
        self._pacer = _Pacer(limits) if limits.burst is not None else None
        # The effective rate: `_floor` at `_recover_from`, rising after it to the knee below
        # `_ceiling` (the rate the last 429 cut), then slower.
        self._floor = 1.0
        self._ceiling = 1.0
        self._full_at = -math.inf  # when the rate is whole again: the common case, made quick
        self._recover_from = -math.inf
        self._paused_until = -math.inf
        self._last_decrease = -math.inf
        self._streak = 0

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet answered or released."""
        return self._in_flight

    def factor(self, now: float | None = None) -> float:
        """The effective rate as a fraction of the minute limits (1.0 unless a 429 cut it)."""
        at = self._clock() if now is None else now
        if at >= self._full_at:
            return 1.0
        elapsed = max(0.0, at - self._recover_from)
        for start, level, speed, end in self._recovery():
            if elapsed <= start + (end - level) / speed:
                return level + speed * max(0.0, elapsed - start)
        return 1.0

    def check(self, estimate: int) -> None:
        """Raise unless a request of this estimate could ever go.

        Raises:
            EstimateTooLargeError: The estimate is above TPM or TPD.
            UserError: The estimate is not a whole number >= 0.
        """
        if isinstance(estimate, bool) or not isinstance(estimate, int) or estimate < 0:
            raise UserError(f"a token estimate must be a whole number >= 0, got {estimate!r}")
        for name, limit in (("TPM", self.limits.tpm), ("TPD", self.limits.tpd)):
            if limit is not None and estimate > limit:
                raise EstimateTooLargeError(estimate, limit=limit, limit_name=name)

    def delay(self, estimate: int) -> float:
        """Seconds until a request of this estimate may go: 0.0 for now, `math.inf` until a
        request in flight ends (the concurrency cap). May be short: ask again after it.

        Raises:
            EstimateTooLargeError: The estimate is above TPM or TPD.
        """
        self.check(estimate)
        return self._delay(estimate, self._clock())

    def try_reserve(self, estimate: int) -> Reservation | float:
        """Admit a request now if it fits, else say how long to wait (as `delay` does).

        Args:
            estimate: The request's worst-case tokens (see `estimate_tokens`).

        Returns:
            The reservation, charged and counted in flight; or the seconds to wait.

        Raises:
            EstimateTooLargeError: The estimate is above TPM or TPD.
        """
        self.check(estimate)
        now = self._clock()
        wait = self._delay(estimate, now)
        if wait > 0:
            return wait
        reservation = Reservation(self, estimate, now)
        reservation._minute = self._minute.charge(now, estimate)
        if self._pacer is not None:
            self._pacer.charge(now, 1, estimate, self.factor(now))
        if self._day is not None:
            reservation._day = self._day.charge(now, estimate)
        self._in_flight += 1
        return reservation

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Charge a request its real usage instead of its estimate, and end its flight.

        May be called again to correct the figure. A request that left the minute window is
        corrected in the day's books only.

        Raises:
            UserError: The reservation was released or belongs to another limiter, or
                `actual_tokens` is not a whole number >= 0.
        """
        self._own(reservation)
        check_settlement(reservation, actual_tokens)
        self._recharge(reservation, 0, actual_tokens - reservation.tokens)
        reservation.tokens = actual_tokens
        self.finish(reservation)

    def finish(self, reservation: Reservation) -> None:
        """End a request's flight without its usage (it failed): it keeps its estimate."""
        self._own(reservation)
        if reservation.state == "open":
            reservation.state = "done"
            self._in_flight -= 1

    def release(self, reservation: Reservation) -> None:
        """Refund a request that was never sent: its request and tokens leave the books.

        Releasing twice does nothing.

        Raises:
            UserError: The request was already answered (settle or finish it instead).
        """
        self._own(reservation)
        if reservation.state == "released":
            return
        if reservation.state == "done":
            raise UserError(
                "a request that was sent counts toward the limits; it cannot be released"
            )
        self._recharge(reservation, -1, -reservation.tokens)
        reservation.tokens = 0
        reservation.state = "released"
        self._in_flight -= 1

    def on_rate_limited(
        self, retry_after: float | None = None, *, sent_at: float | None = None
    ) -> None:
        """Slow down after a 429: pause every send, cut the rate, then recover gradually.

        A 429 from a request sent before the last cut (or, when `sent_at` is unknown, within
        `DECREASE_COOLDOWN` of it) answers the old rate, so it cuts nothing more; its
        ``Retry-After`` still pauses.

        Args:
            retry_after: The server's ``Retry-After`` in seconds (`parse_retry_after` reads the
                header); without one the pause is `BASE_PAUSE`, doubled for each 429 in a row.
            sent_at: When the refused request was admitted (`Reservation.sent_at`).
        """
        now = self._clock()
        if sent_at is not None:
            fresh = sent_at > self._last_decrease
        else:
            fresh = now - self._last_decrease >= DECREASE_COOLDOWN
        factor = self.factor(now)
        if fresh:
            recent = now - self._last_decrease < STREAK_RESET
            self._streak = self._streak + 1 if recent else 1
            self._last_decrease = now
            self._ceiling = factor
            factor = max(MIN_FACTOR, factor * DECREASE_FACTOR)
        pause = pause_for(retry_after, self._streak if fresh else 0)
        self._paused_until = max(self._paused_until, now + pause)
        # Recovery starts when the pause ends, from the rate there is now.
        self._floor = factor
        self._recover_from = max(now, self._paused_until)
        self._full_at = self._reaches(1.0)

    def stats(self) -> LimiterStats:
        """A snapshot of the books, for progress displays."""
        now = self._clock()
        self._purge(now)
        return LimiterStats(
            requests=self._minute.requests,
            tokens=self._minute.tokens,
            in_flight=self._in_flight,
            factor=self.factor(now),
            paused_for=max(0.0, self._paused_until - now),
        )

    # -- inside --

    def _reaches(self, target: float) -> float:
        """When the effective rate reaches `target`, absent further 429s (`factor` inverted)."""
        for start, level, speed, end in self._recovery():
            if target <= end:
                return self._recover_from + start + max(0.0, target - level) / speed
        return self._recover_from

    def _recovery(self) -> list[tuple[float, float, float, float]]:
        """The recovery's pieces: (seconds after it starts, rate then, growth a second, end)."""
        pieces = []
        start, level = 0.0, self._floor
        bends = (KNEE * self._ceiling, min(1.0, self._ceiling / KNEE), 1.0)
        speeds = (RECOVERY_PER_SECOND, PROBE_PER_SECOND, RECOVERY_PER_SECOND)
        for end, speed in zip(bends, speeds, strict=True):
            if end > level:
                pieces.append((start, level, speed, end))
                start += (end - level) / speed
                level = end
        return pieces

    def _own(self, reservation: Reservation) -> None:
        if reservation._owner is not self:
            raise UserError("this reservation belongs to another limiter")

    def _recharge(self, reservation: Reservation, requests: int, tokens: int) -> None:
        if reservation._minute is not None:
            self._minute.adjust(reservation._minute, requests, tokens)
            if self._pacer is not None:
                self._pacer.adjust(requests, tokens, self.factor())
        if self._day is not None and reservation._day is not None:
            self._day.adjust(reservation._day, requests, tokens)

    def _purge(self, now: float) -> None:
        self._minute.purge(now)
        if self._day is not None:
            self._day.purge(now)

    def _delay(self, estimate: int, now: float) -> float:
        self._purge(now)
        cap = self.limits.max_concurrency
        if cap is not None and self._in_flight >= cap:
            return math.inf
        limits = self.limits
        factor = self.factor(now)
        wait = max(
            self._paused_until - now,
            self._fit(self._minute, "requests", 1, limits.rpm, factor, now),
            self._fit(self._minute, "tokens", estimate, limits.tpm, factor, now),
            self._pacer.wait(now) if self._pacer is not None else 0.0,
        )
        if self._day is not None:
            day = self._day
            wait = max(
                wait,
                self._fit(day, "requests", 1, limits.rpd, 1.0, now),
                self._fit(day, "tokens", estimate, limits.tpd, 1.0, now),
            )
        if wait <= 0:
            return 0.0
        if factor < 1.0:
            wait = min(wait, max(RECHECK_WHILE_RECOVERING, self._paused_until - now))
        return wait + _EPSILON

    def _fit(
        self,
        window: _Window,
        kind: Literal["requests", "tokens"],
        need: int,
        limit: int | None,
        factor: float,
        now: float,
    ) -> float:
        """Seconds until `need` more fits under `limit` times `factor` in `window`."""
        if limit is None:
            return 0.0
        allowed = limit * factor
        used = window.requests if kind == "requests" else window.tokens
        if used + need <= allowed:
            return 0.0
        if need > allowed:
            # Even an empty window is too small until the rate recovers (need <= limit).
            return self._reaches(need / limit) - now
        return window.wait(used + need - allowed, kind, now)


def pause_for(retry_after: float | None, streak: int) -> float:
    if retry_after is not None and not math.isnan(retry_after):
        return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
    if streak == 0:
        return 0.0
    return min(MAX_PAUSE, BASE_PAUSE * 2.0 ** min(streak - 1, 30))


# --- the shells ------------------------------------------------------------------------------


class _ThreadWaiter:
    __slots__ = ("cond",)

    def __init__(self, lock: threading.Lock) -> None:
        self.cond = threading.Condition(lock)

    def poke(self) -> None:
        self.cond.notify()  # the caller holds the lock the condition shares

    def clear(self) -> None:
        pass

    def alive(self) -> bool:
        return True


class _TaskWaiter:
    __slots__ = ("event", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def poke(self) -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.event.set()
            return
        # A sync caller on a thread, or a run on another event loop, wakes this one; a closed
        # loop raises, and its waiter went with it.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.event.set)

    def clear(self) -> None:
        self.event.clear()

    def alive(self) -> bool:
        return not self.loop.is_closed()


_Waiter = _ThreadWaiter | _TaskWaiter


class RateLimiter:
    """The limiter runs share: `LimiterCore` behind a lock, with ways to wait for a turn.

    Callers wait in one queue, first come first served, whether they are tasks on any event
    loop or threads: only the head of the queue may be admitted, so a large request is never
    starved by small ones. The head sleeps until the books say it may go, and is woken early
    when a request ends or settles below its estimate.

    Args:
        limits: The limits to keep.
        clock: Monotonic seconds.
        sleep: How a task sleeps (``asyncio.sleep``); tests pass one on a fake clock.
        wait: How a thread waits on a condition with a timeout in clock seconds
            (``threading.Condition.wait``); tests pass one on a fake clock.
    """

    def __init__(
        self,
        limits: RateLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wait: Callable[[threading.Condition, float | None], object] = threading.Condition.wait,
    ) -> None:
        self._core = LimiterCore(limits, clock=clock)
        self._lock = threading.Lock()
        self._waiters: deque[_Waiter] = deque()
        self._sleep = sleep
        self._wait = wait

    @property
    def limits(self) -> RateLimits:
        """The limits this limiter keeps."""
        return self._core.limits

    def try_acquire(self, estimate: int) -> Reservation | None:
        """Admit a request now if it fits and nobody is waiting, else ``None`` (no waiting).

        Raises:
            EstimateTooLargeError: The estimate is above TPM or TPD.
        """
        with self._lock:
            return self._fast(estimate)

    async def acquire(self, estimate: int) -> Reservation:
        """Wait for a request's turn on an event loop, then admit it.

        Cancelling the wait leaves nothing behind: no reservation, no place in the queue.

        Args:
            estimate: The request's worst-case tokens (see `estimate_tokens`).

        Raises:
            EstimateTooLargeError: The estimate is above TPM or TPD (raised at once).
        """
        with self._lock:
            admitted = self._fast(estimate)
            if admitted is not None:
                return admitted
            waiter = _TaskWaiter()
            self._waiters.append(waiter)
        try:
            while True:
                with self._lock:
                    waiter.clear()
                    got = self._turn(waiter, estimate)
                if isinstance(got, Reservation):
                    return got
                await self._pause(waiter, got)
        except BaseException:
            with self._lock:
                self._leave(waiter)
            raise

    def acquire_sync(self, estimate: int) -> Reservation:
        """Wait for a request's turn on this thread, then admit it.

        Args:
            estimate: The request's worst-case tokens (see `estimate_tokens`).

        Raises:
            EstimateTooLargeError: The estimate is above TPM or TPD (raised at once).
        """
        with self._lock:
            admitted = self._fast(estimate)
            if admitted is not None:
                return admitted
            waiter = _ThreadWaiter(self._lock)
            self._waiters.append(waiter)
            try:
                while True:
                    got = self._turn(waiter, estimate)
                    if isinstance(got, Reservation):
                        return got
                    self._wait(waiter.cond, None if math.isinf(got) else got)
            except BaseException:
                self._leave(waiter)
                raise

    def request(self, estimate: int) -> SlotRequest[Reservation]:
        """A request's turn as a context manager, ``async with`` or ``with``.

        ``async with limiter.request(n) as slot: ...; slot.settle(usage)``. Leaving the block
        without settling keeps the estimate charged (a request that failed still counts);
        call ``slot.release()`` for one that was never sent.
        """
        return SlotRequest(self, estimate)

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Charge a request its real usage and end its flight (see `LimiterCore.settle`)."""
        with self._lock:
            self._core.settle(reservation, actual_tokens)
            self._poke_head()

    def finish(self, reservation: Reservation) -> None:
        """End a request's flight without its usage: it keeps its estimate."""
        with self._lock:
            self._core.finish(reservation)
            self._poke_head()

    def release(self, reservation: Reservation) -> None:
        """Refund a request that was never sent (see `LimiterCore.release`)."""
        with self._lock:
            self._core.release(reservation)
            self._poke_head()

    def on_rate_limited(
        self, retry_after: float | None = None, *, sent_at: float | None = None
    ) -> None:
        """Slow every run down after a 429 (see `LimiterCore.on_rate_limited`)."""
        with self._lock:
            self._core.on_rate_limited(retry_after, sent_at=sent_at)

    def stats(self) -> LimiterStats:
        """A snapshot of the books and the queue, for progress displays."""
        with self._lock:
            return replace(self._core.stats(), waiting=len(self._waiters))

    # -- inside (the lock held) --

    def _fast(self, estimate: int) -> Reservation | None:
        """Admit at once when nobody is queued (no barging past waiters)."""
        self._core.check(estimate)
        self._prune()
        if self._waiters:
            return None
        got = self._core.try_reserve(estimate)
        return got if isinstance(got, Reservation) else None

    def _turn(self, waiter: _Waiter, estimate: int) -> Reservation | float:
        """Admit the waiter if it heads the queue and fits, else how long it should wait."""
        self._prune()
        if self._waiters[0] is not waiter:
            return math.inf
        got = self._core.try_reserve(estimate)
        if isinstance(got, Reservation):
            self._waiters.popleft()
            self._poke_head()
        return got

    def _prune(self) -> None:
        # A task whose event loop closed while it waited can never take its turn.
        waiters = self._waiters
        while waiters and not waiters[0].alive():
            waiters.popleft()

    def _poke_head(self) -> None:
        self._prune()
        if self._waiters:
            self._waiters[0].poke()

    def _leave(self, waiter: _Waiter) -> None:
        if not self._waiters:
            return
        was_head = self._waiters[0] is waiter
        try:
            self._waiters.remove(waiter)
        except ValueError:
            return
        if was_head:
            self._poke_head()

    async def _pause(self, waiter: _TaskWaiter, wait: float) -> None:
        """Until `wait` seconds pass or the waiter is poked, whichever comes first."""
        if math.isinf(wait):
            await waiter.event.wait()
            return
        sleeping = asyncio.ensure_future(self._sleep(wait))
        poked = asyncio.ensure_future(waiter.event.wait())
        try:
            await asyncio.wait((sleeping, poked), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            poked.cancel()
        if sleeping.done() and not sleeping.cancelled():
            sleeping.result()  # a sleep function that failed fails the wait


class Held(Protocol):
    """A request's entry in some limiter's books (`Reservation`, or a shared one)."""

    @property
    def sent_at(self) -> float:
        """When it was admitted, on the books' clock."""

    @property
    def state(self) -> str:
        """``"open"``, ``"done"`` or ``"released"``."""


HeldT = TypeVar("HeldT", bound=Held)


class Books(Protocol[HeldT]):
    """What a `Slot` works on: a limiter's admissions and the charges they hold.

    `RateLimiter` keeps its books in memory; ``sfagent.durable``'s `SharedRateLimiter` in a
    database shared by many processes.
    """

    async def acquire(self, estimate: int) -> HeldT:
        """Wait for room for a request of `estimate` tokens and charge it."""

    def acquire_sync(self, estimate: int) -> HeldT:
        """`acquire`, blocking."""

    def settle(self, reservation: HeldT, actual_tokens: int) -> None:
        """Charge the request's real usage."""

    def finish(self, reservation: HeldT) -> None:
        """The request ended; its charge stays."""

    def release(self, reservation: HeldT) -> None:
        """Refund a request that was never sent."""

    def on_rate_limited(self, retry_after: float | None = None, *, sent_at: float) -> None:
        """A request sent at `sent_at` was refused with a 429."""


class Slot(Generic[HeldT]):
    """A request's turn, from `RateLimiter.request`: settle it with the response's usage.

    Attributes:
        reservation: The request's entry in the books.
    """

    __slots__ = ("_limiter", "reservation")

    def __init__(self, limiter: Books[HeldT], reservation: HeldT) -> None:
        self._limiter = limiter
        self.reservation = reservation

    def settle(self, actual_tokens: int) -> None:
        """Charge the request's real usage (the response's ``total_tokens``)."""
        self._limiter.settle(self.reservation, actual_tokens)

    def release(self) -> None:
        """Refund the request: it was never sent."""
        self._limiter.release(self.reservation)

    def rate_limited(self, retry_after: float | None = None) -> None:
        """Report that the server refused this request with a 429, slowing every run.

        The request keeps its charge (SiliconFlow counts refused requests toward RPM). Send
        it again through a new slot, not this one.

        Args:
            retry_after: The response's ``Retry-After`` in seconds, when it has one.
        """
        self._limiter.on_rate_limited(retry_after, sent_at=self.reservation.sent_at)


class SlotRequest(Generic[HeldT]):
    """What `RateLimiter.request` returns: enter it, with ``async with`` or ``with``.

    Attributes:
        limiter: The limiter the turn comes from.
        estimate: The request's worst-case tokens.
    """

    __slots__ = ("_slot", "estimate", "limiter")

    def __init__(self, limiter: Books[HeldT], estimate: int) -> None:
        self.limiter = limiter
        self.estimate = estimate
        self._slot: Slot[HeldT] | None = None

    async def __aenter__(self) -> Slot[HeldT]:
        self._slot = Slot(self.limiter, await self.limiter.acquire(self.estimate))
        return self._slot

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    def __enter__(self) -> Slot[HeldT]:
        self._slot = Slot(self.limiter, self.limiter.acquire_sync(self.estimate))
        return self._slot

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    def _close(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None and slot.reservation.state == "open":
            self.limiter.finish(slot.reservation)


def check_settlement(reservation: Held, actual_tokens: object) -> None:
    """Refuse to settle a reservation that was released, or with a usage that is not one.

    Raises:
        UserError: The reservation was released, or `actual_tokens` is not a whole number
            >= 0.
    """
    if reservation.state == "released":
        raise UserError("a released reservation was never sent; it cannot be settled")
    if isinstance(actual_tokens, bool) or not isinstance(actual_tokens, int):
        raise UserError(f"actual tokens must be a whole number, got {actual_tokens!r}")
    if actual_tokens < 0:
        raise UserError(f"actual tokens must be >= 0, got {actual_tokens}")


# --- estimates -------------------------------------------------------------------------------


def estimate_tokens(body: Mapping[str, object]) -> int:
    """A chat-completions request's worst-case tokens, before it is sent.

    The prompt: each message's text at `CHARS_PER_TOKEN` characters a token (other characters,
    Chinese among them, a token each), `MESSAGE_OVERHEAD` per message, `MEDIA_TOKENS` per image,
    video or audio part, and the tool schemas' JSON plus `TOOLS_OVERHEAD`. The completion:
    ``max_tokens`` (`DEFAULT_MAX_TOKENS` when absent) times ``n``, plus ``thinking_budget`` (or
    `DEFAULT_THINKING_BUDGET` when thinking is on without one).

    Args:
        body: The request body as sent (a JSON object).
    """
    prompt = 0
    messages = body.get("messages")
    if isinstance(messages, (list, tuple)):
        for message in messages:
            prompt += MESSAGE_OVERHEAD + _tokens_in(message)
    tools = body.get("tools")
    if isinstance(tools, (list, tuple)) and tools:
        prompt += TOOLS_OVERHEAD + _tokens_in(tools, keys=True)
    return prompt + _completion_tokens(body)


def check_completion_allowance(settings: Mapping[str, object], limits: RateLimits) -> None:
    """Refuse token limits that no request with these settings could ever fit under.

    `estimate_tokens` counts every request's completion at ``max_tokens`` (the server's
    default when unset) times ``n``, plus the thinking budget, whatever its prompt. When that
    alone is above TPM (or TPD), each request would be refused in turn: better to say so once,
    before anything runs.

    Args:
        settings: The settings every request carries (``ModelSettings.to_body()``).
        limits: The limits the requests will be admitted under.

    Raises:
        EstimateTooLargeError: The allowance is above TPM or TPD.
    """
    allowance = _completion_tokens(settings)
    for name, limit in (("TPM", limits.tpm), ("TPD", limits.tpd)):
        if limit is not None and allowance > limit:
            raise EstimateTooLargeError(
                allowance,
                limit=limit,
                limit_name=name,
                message=f"every request is estimated at ~{allowance} tokens or more "
                f"({_allowance_parts(settings)}) but {name} is {limit}: no request could ever "
                f"be sent; raise the {name} limit or lower max_tokens",
            )


def _allowance_parts(body: Mapping[str, object]) -> str:
    """What `_completion_tokens` added up, in words, for an error message."""
    cap = _whole(body.get("max_tokens"))
    if cap is None:
        cap = _whole(body.get("max_completion_tokens"))
    parts = [
        f"max_tokens {cap}"
        if cap is not None
        else f"max_tokens unset, so the server's default of {DEFAULT_MAX_TOKENS}"
    ]
    choices = _whole(body.get("n"))
    if choices is not None and choices > 1:
        parts.append(f"times n={choices}")
    budget = _whole(body.get("thinking_budget"))
    if budget is None and body.get("enable_thinking") is True:
        parts.append(f"plus the default thinking budget of {DEFAULT_THINKING_BUDGET}")
    elif budget:
        parts.append(f"plus thinking_budget {budget}")
    return " ".join(parts)


def _completion_tokens(body: Mapping[str, object]) -> int:
    cap = _whole(body.get("max_tokens"))
    if cap is None:
        cap = _whole(body.get("max_completion_tokens"))
    completion = DEFAULT_MAX_TOKENS if cap is None else cap
    choices = _whole(body.get("n"))
    if choices is not None and choices > 1:
        completion *= choices
    budget = _whole(body.get("thinking_budget"))
    if budget is None and body.get("enable_thinking") is True:
        budget = DEFAULT_THINKING_BUDGET
    return completion + (budget or 0)


def _whole(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _tokens_in(value: object, *, keys: bool = False) -> int:
    """Tokens of the strings in a JSON value; schema keys count too when `keys` is set."""
    if isinstance(value, str):
        return _text_tokens(value)
    if isinstance(value, Mapping):
        if value.get("type") in _MEDIA_PARTS:
            return MEDIA_TOKENS
        total = sum(_tokens_in(item, keys=keys) for item in value.values())
        if keys:
            total += sum(_text_tokens(key) + 1 for key in value if isinstance(key, str))
        return total
    if isinstance(value, (list, tuple)):
        return sum(_tokens_in(item, keys=keys) for item in value)
    return 1 if value is not None else 0  # a number or a boolean


def _text_tokens(text: str) -> int:
    if text.isascii():
        return -(-len(text) // CHARS_PER_TOKEN)
    ascii_chars = len(text.encode("ascii", "ignore"))
    return -(-ascii_chars // CHARS_PER_TOKEN) + len(text) - ascii_chars


# --- one limiter per endpoint and model ------------------------------------------------------

_SHARED: dict[tuple[str, str], RateLimiter] = {}
_SHARED_LOCK = threading.Lock()


def shared_limiter(
    base_url: str,
    model: str,
    *,
    rpm: int | None = None,
    tpm: int | None = None,
    rpd: int | None = None,
    tpd: int | None = None,
    max_concurrency: int | None = None,
    margin: float = DEFAULT_MARGIN,
) -> RateLimiter:
    """The process's one limiter for a base URL and model, made on first use.

    SiliconFlow's limits are per account and model, so every run against the same endpoint
    and model must draw from the same books. The base URL is compared without a trailing
    slash and with its scheme and host lower-cased.

    Args:
        base_url: The API's base URL, e.g. ``https://api.siliconflow.cn/v1``.
        model: The model name as sent.
        rpm: Requests per minute.
        tpm: Tokens per minute.
        rpd: Requests per day.
        tpd: Tokens per day.
        max_concurrency: Requests in flight at once.
        margin: Seconds added to each window (see `DEFAULT_MARGIN`).

    Raises:
        ConfigurationError: A limiter for this endpoint and model exists with other limits
            (call `forget_shared_limiters` first to start over).
    """
    limits = RateLimits(
        rpm=rpm, tpm=tpm, rpd=rpd, tpd=tpd, max_concurrency=max_concurrency, margin=margin
    )
    key = (_endpoint(base_url), model)
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = RateLimiter(limits)
        elif found.limits != limits:
            raise ConfigurationError(
                f"a limiter for {model!r} at {key[0]} already keeps other limits "
                f"({found.limits}); runs against one endpoint and model share one limiter"
            )
        return found


def forget_shared_limiters() -> None:
    """Drop every shared limiter; the next `shared_limiter` call starts fresh books."""
    with _SHARED_LOCK:
        _SHARED.clear()


def _endpoint(base_url: str) -> str:
    parts = urlsplit(base_url.strip())
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))
