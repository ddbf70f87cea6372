"""The rate limiter: its decisions on a fake clock, its windows held for random streams, its
rate under plenty of demand, and its async and threaded shells (on virtual time, so nothing
waits for real)."""

from __future__ import annotations

import asyncio
import math
import random
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sfagent.batch._limiter import (
    BASE_PAUSE,
    DAY,
    DECREASE_FACTOR,
    DEFAULT_MAX_TOKENS,
    DEFAULT_THINKING_BUDGET,
    KNEE,
    MAX_PAUSE,
    MAX_RETRY_AFTER,
    MEDIA_TOKENS,
    MESSAGE_OVERHEAD,
    MIN_FACTOR,
    PROBE_PER_SECOND,
    RECOVERY_PER_SECOND,
    TOOLS_OVERHEAD,
    EstimateTooLargeError,
    LimiterCore,
    RateLimiter,
    RateLimits,
    Reservation,
    check_completion_allowance,
    estimate_tokens,
    forget_shared_limiters,
    shared_limiter,
)
from sfagent.exceptions import ConfigurationError, UserError

T = TypeVar("T")


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def core(clock: FakeClock, **limits: Any) -> LimiterCore:
    """A core with the sliding window alone unless `burst` is given (the pacer has its own
    tests)."""
    limits.setdefault("margin", 0.0)
    limits.setdefault("burst", None)
    return LimiterCore(RateLimits(**limits), clock=clock)


def about(expected: Any, tolerance: float = 1e-5) -> Any:
    """Equal within the limiter's epsilon (a microsecond added to every wait)."""
    return pytest.approx(expected, abs=tolerance)


def admitted(got: Reservation | float) -> Reservation:
    assert isinstance(got, Reservation), f"expected admission, got a wait of {got}"
    return got


def waits(got: Reservation | float) -> float:
    assert not isinstance(got, Reservation), "expected a wait, got an admission"
    return got


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rpm": 0},
        {"tpm": -5},
        {"rpd": 1.5},
        {"tpd": True},
        {"max_concurrency": 0},
        {"margin": -1.0},
        {"margin": 61.0},
        {"margin": "1"},
        {"burst": -1.0},
        {"burst": 61},
        {"burst": "5"},
    ],
)
def test_bad_limits_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RateLimits(**kwargs)


def test_no_limits_admit_everything() -> None:
    clock = FakeClock()
    limiter = core(clock)
    for _ in range(1000):
        admitted(limiter.try_reserve(10**9))


# --- the minute window -----------------------------------------------------------------------


def test_rpm_admits_the_limit_then_waits_for_the_oldest_to_leave() -> None:
    clock = FakeClock()
    limiter = core(clock, rpm=3)
    for _ in range(3):
        admitted(limiter.try_reserve(1))
    assert waits(limiter.try_reserve(1)) == about(60.0)
    clock.advance(59.9)
    assert waits(limiter.try_reserve(1)) == about(0.1)
    clock.advance(0.1)
    admitted(limiter.try_reserve(1))


def test_the_window_slides_rather_than_resetting_on_the_minute() -> None:
    clock = FakeClock(0.0)
    limiter = core(clock, rpm=3)
    admitted(limiter.try_reserve(0))  # t=0
    clock.advance(30)
    admitted(limiter.try_reserve(0))  # t=30
    admitted(limiter.try_reserve(0))  # t=30
    clock.advance(29)
    assert waits(limiter.try_reserve(0)) == about(1.0)  # the t=0 one leaves at 60
    clock.advance(1)
    admitted(limiter.try_reserve(0))  # t=60
    assert waits(limiter.try_reserve(0)) == about(30.0)  # next leaves at 90, not 120


def test_tpm_waits_until_enough_tokens_have_left() -> None:
    clock = FakeClock(0.0)
    limiter = core(clock, tpm=1000)
    admitted(limiter.try_reserve(300))  # t=0
    clock.advance(10)
    admitted(limiter.try_reserve(300))  # t=10
    clock.advance(10)
    admitted(limiter.try_reserve(400))  # t=20: full
    # 500 more needs the t=0 and the t=10 reservations gone: at 70.
    assert waits(limiter.try_reserve(500)) == about(50.0)
    assert limiter.delay(0) == 0.0


def test_the_margin_lengthens_the_window() -> None:
    clock = FakeClock(0.0)
    limiter = core(clock, rpm=1, margin=0.5)
    admitted(limiter.try_reserve(0))
    assert waits(limiter.try_reserve(0)) == about(60.5)


def test_an_estimate_above_tpm_is_refused_at_once() -> None:
    clock = FakeClock()
    limiter = core(clock, tpm=1000, tpd=5000)
    with pytest.raises(EstimateTooLargeError) as caught:
        limiter.try_reserve(1001)
    assert isinstance(caught.value, ConfigurationError)
    assert (caught.value.estimate, caught.value.limit, caught.value.limit_name) == (
        1001,
        1000,
        "TPM",
    )
    assert str(caught.value) == (
        "a request needs ~1001 tokens (its prompt plus max_tokens) but TPM is 1000: it can "
        "never be sent; raise the TPM limit, lower max_tokens or shorten the prompt"
    )
    daily = core(clock, tpd=500)
    with pytest.raises(EstimateTooLargeError, match=r"needs ~501 tokens .* but TPD is 500"):
        daily.delay(501)


@pytest.mark.parametrize(
    ("settings", "allowance", "words"),
    [
        ({}, DEFAULT_MAX_TOKENS, "(max_tokens unset, so the server's default of 512)"),
        ({"max_tokens": 2000}, 2000, "(max_tokens 2000)"),
        ({"max_completion_tokens": 1500}, 1500, "(max_tokens 1500)"),
        ({"max_tokens": 400, "n": 3}, 1200, "(max_tokens 400 times n=3)"),
        (
            {"max_tokens": 100, "enable_thinking": True},
            100 + DEFAULT_THINKING_BUDGET,
            "(max_tokens 100 plus the default thinking budget of 4096)",
        ),
        (
            {"max_tokens": 100, "thinking_budget": 900},
            1000,
            "(max_tokens 100 plus thinking_budget 900)",
        ),
    ],
)
def test_limits_below_every_requests_completion_are_refused_up_front(
    settings: dict[str, Any], allowance: int, words: str
) -> None:
    check_completion_allowance(settings, RateLimits(tpm=allowance))  # just fits
    check_completion_allowance(settings, RateLimits(rpm=1))  # no token limits
    with pytest.raises(EstimateTooLargeError) as caught:
        check_completion_allowance(settings, RateLimits(tpm=allowance - 1))
    error = caught.value
    assert (error.estimate, error.limit, error.limit_name) == (allowance, allowance - 1, "TPM")
    assert str(error) == (
        f"every request is estimated at ~{allowance} tokens or more {words} but TPM is "
        f"{allowance - 1}: no request could ever be sent; raise the TPM limit or lower max_tokens"
    )
    with pytest.raises(EstimateTooLargeError, match=f"but TPD is {allowance - 1}:"):
        check_completion_allowance(settings, RateLimits(tpm=10**9, tpd=allowance - 1))


@pytest.mark.parametrize("estimate", [-1, 1.5, True, "3"])
def test_a_bad_estimate_is_a_user_error(estimate: Any) -> None:
    with pytest.raises(UserError):
        core(FakeClock()).try_reserve(estimate)


# --- settling, finishing, releasing ----------------------------------------------------------


def test_settling_below_the_estimate_frees_tokens_at_once() -> None:
    clock = FakeClock()
    limiter = core(clock, tpm=1000)
    first = admitted(limiter.try_reserve(1000))
    waits(limiter.try_reserve(600))
    limiter.settle(first, 300)
    assert (first.tokens, first.state, limiter.in_flight) == (300, "done", 0)
    admitted(limiter.try_reserve(600))
    waits(limiter.try_reserve(101))


def test_settling_above_the_estimate_delays_later_requests() -> None:
    clock = FakeClock(0.0)
    limiter = core(clock, tpm=1000)
    first = admitted(limiter.try_reserve(200))
    limiter.settle(first, 900)
    assert waits(limiter.try_reserve(200)) == about(60.0)
    admitted(limiter.try_reserve(100))


def test_settling_after_the_window_keeps_the_sums_sound() -> None:
    clock = FakeClock()
    limiter = core(clock, tpm=1000, tpd=10_000)
    first = admitted(limiter.try_reserve(500))
    clock.advance(61)
    limiter.settle(first, 50)  # gone from the minute; corrected in the day
    stats = limiter.stats()
    assert (stats.requests, stats.tokens) == (0, 0)
    assert limiter._day is not None
    assert limiter._day.tokens == 50
    admitted(limiter.try_reserve(1000))


def test_release_refunds_a_request_never_sent() -> None:
    clock = FakeClock()
    limiter = core(clock, rpm=1, tpm=100)
    first = admitted(limiter.try_reserve(100))
    limiter.release(first)
    limiter.release(first)  # twice is harmless
    assert (first.state, first.tokens, limiter.in_flight) == ("released", 0, 0)
    second = admitted(limiter.try_reserve(100))
    limiter.finish(second)
    with pytest.raises(UserError, match="cannot be released"):
        limiter.release(second)
    with pytest.raises(UserError, match="cannot be settled"):
        limiter.settle(first, 5)


def test_finish_keeps_the_estimate_and_frees_the_slot() -> None:
    clock = FakeClock()
    limiter = core(clock, tpm=100, max_concurrency=1)
    first = admitted(limiter.try_reserve(60))
    assert waits(limiter.try_reserve(10)) == math.inf
    limiter.finish(first)
    limiter.finish(first)
    assert (first.state, first.tokens, limiter.in_flight) == ("done", 60, 0)
    admitted(limiter.try_reserve(40))
    limiter.settle(first, 10)  # usage that arrives later still corrects the books
    assert limiter.stats().tokens == 50


@pytest.mark.parametrize("actual", [-1, 2.5, None, False])
def test_bad_actual_tokens_are_user_errors(actual: Any) -> None:
    limiter = core(FakeClock())
    with pytest.raises(UserError):
        limiter.settle(admitted(limiter.try_reserve(1)), actual)


def test_a_reservation_belongs_to_its_limiter() -> None:
    clock = FakeClock()
    one, other = core(clock), core(clock)
    reservation = admitted(one.try_reserve(1))
    for act in (other.finish, other.release):
        with pytest.raises(UserError, match="another limiter"):
            act(reservation)
    assert "open" in repr(reservation)


# --- concurrency -----------------------------------------------------------------------------


def test_the_concurrency_cap_waits_for_a_request_to_end() -> None:
    clock = FakeClock()
    limiter = core(clock, max_concurrency=2)
    first = admitted(limiter.try_reserve(1))
    admitted(limiter.try_reserve(1))
    assert waits(limiter.try_reserve(1)) == math.inf
    limiter.settle(first, 1)
    admitted(limiter.try_reserve(1))
    assert limiter.stats().in_flight == 2


# --- 429s ------------------------------------------------------------------------------------


def test_a_429_with_retry_after_pauses_then_cuts_and_recovers_the_rate() -> None:
    clock = FakeClock(0.0)
    limiter = core(clock, rpm=100)
    limiter.on_rate_limited(5.0)
    assert waits(limiter.try_reserve(0)) == about(5.0)
    assert limiter.stats().paused_for == about(5.0)
    clock.advance(5.0)
    assert limiter.factor() == about(DECREASE_FACTOR)
    for _ in range(70):
        admitted(limiter.try_reserve(0))
    waits(limiter.try_reserve(0))  # 70 of 100 while cut
    clock.advance(10)
    assert limiter.factor() == about(DECREASE_FACTOR + 10 * RECOVERY_PER_SECOND)
    # Quickly to the knee below the rate that was refused, then slowly past it.
    clock.advance((KNEE - DECREASE_FACTOR) / RECOVERY_PER_SECOND - 10)
    assert limiter.factor() == about(KNEE)
    clock.advance(10)
    assert limiter.factor() == about(KNEE + 10 * PROBE_PER_SECOND)
    clock.advance((1 - KNEE) / PROBE_PER_SECOND)
    assert limiter.factor() == 1.0


def test_recovery_returns_fast_to_below_the_refused_rate_and_probes_past_it() -> None:
    clock = FakeClock(0.0)
    limiter = core(clock, rpm=100)
    limiter.on_rate_limited(0.0)
    clock.advance(10)  # 0.8 now: a second 429 here marks 0.8 as too much
    limiter.on_rate_limited(0.0)
    assert limiter.factor() == about(0.8 * DECREASE_FACTOR)
    clock.advance((KNEE * 0.8 - 0.8 * DECREASE_FACTOR) / RECOVERY_PER_SECOND)
    assert limiter.factor() == about(KNEE * 0.8)
    clock.advance(1)
    assert limiter.factor() == about(KNEE * 0.8 + PROBE_PER_SECOND)


def test_429s_without_retry_after_back_off_exponentially_up_to_a_ceiling() -> None:
    clock = FakeClock(0.0)
    limiter = core(clock)
    pauses = []
    for _ in range(8):
        limiter.on_rate_limited(None)
        pauses.append(limiter.stats().paused_for)
        clock.advance(pauses[-1] + 2.0)
    assert pauses == [min(MAX_PAUSE, BASE_PAUSE * 2**k) for k in range(8)]
    assert limiter.factor() == about(MIN_FACTOR, tolerance=0.05)


def test_a_streak_ends_after_a_quiet_minute() -> None:
    clock = FakeClock(0.0)
    limiter = core(clock)
    limiter.on_rate_limited()
    clock.advance(3)
    limiter.on_rate_limited()
    assert limiter.stats().paused_for == about(2 * BASE_PAUSE)
    clock.advance(120)
    limiter.on_rate_limited()
    assert limiter.stats().paused_for == about(BASE_PAUSE)


def test_a_burst_of_429s_cuts_the_rate_once() -> None:
    clock = FakeClock(0.0)
    limiter = core(clock, rpm=100)
    sent = [admitted(limiter.try_reserve(0)) for _ in range(20)]
    clock.advance(0.1)
    for reservation in sent:
        limiter.on_rate_limited(None, sent_at=reservation.sent_at)
    assert limiter.factor() == about(DECREASE_FACTOR)
    for _ in range(20):  # unknown send times: one cut per cooldown
        limiter.on_rate_limited(None)
    assert limiter.factor() == about(DECREASE_FACTOR)
    clock.advance(BASE_PAUSE)
    later = admitted(limiter.try_reserve(0))
    clock.advance(0.1)
    limiter.on_rate_limited(None, sent_at=later.sent_at)
    recovered = DECREASE_FACTOR + 0.1 * RECOVERY_PER_SECOND  # for 0.1 s after the pause
    assert limiter.factor() == about(recovered * DECREASE_FACTOR)


def test_a_stale_429_still_honours_its_retry_after() -> None:
    clock = FakeClock(0.0)
    limiter = core(clock)
    old = admitted(limiter.try_reserve(0))
    clock.advance(1)
    limiter.on_rate_limited(None)
    limiter.on_rate_limited(30.0, sent_at=old.sent_at)
    assert limiter.stats().paused_for == about(30.0)
    assert limiter.factor() == about(DECREASE_FACTOR)


@pytest.mark.parametrize(
    ("retry_after", "pause"),
    [(-3.0, 0.0), (1e9, MAX_RETRY_AFTER), (math.inf, MAX_RETRY_AFTER), (math.nan, BASE_PAUSE)],
)
def test_retry_after_is_clamped(retry_after: float, pause: float) -> None:
    clock = FakeClock(0.0)
    limiter = core(clock)
    limiter.on_rate_limited(retry_after)
    assert limiter.stats().paused_for == about(pause)  # NaN reads as no Retry-After


def test_an_estimate_above_the_cut_rate_waits_for_recovery_not_forever() -> None:
    clock = FakeClock(0.0)
    limiter = core(clock, tpm=1000)
    limiter.on_rate_limited(0.0)
    for _ in range(6):
        limiter.on_rate_limited(0.0)
        clock.advance(2.0)
    assert limiter.factor() < 0.5
    waited = 0.0
    while not isinstance(got := limiter.try_reserve(900), Reservation):
        assert got < math.inf
        clock.advance(got)
        waited += got
    assert limiter.factor() >= 0.9
    assert waited < 100


# --- the day window --------------------------------------------------------------------------


def test_rpd_holds_for_a_day_in_minute_buckets() -> None:
    clock = FakeClock(30.0)
    limiter = core(clock, rpd=5)
    for _ in range(5):  # at 30, 40, 50 (the first minute's bucket), 60, 70
        admitted(limiter.try_reserve(0))
        clock.advance(10)
    wait = waits(limiter.try_reserve(0))
    # The request at 30 leaves the true window at DAY + 30; its bucket ends at 60, so the
    # limiter waits until DAY + 60: conservative by at most one bucket.
    assert wait == about(DAY + 60 - 80)
    clock.advance(wait)
    admitted(limiter.try_reserve(0))


def test_the_day_log_stays_small() -> None:
    clock = FakeClock(0.0)
    limiter = core(clock, tpd=10**9)
    for _ in range(3 * 24 * 60 * 4):  # three days, a request every 15 s
        admitted(limiter.try_reserve(1))
        clock.advance(15)
    assert limiter._day is not None
    assert len(limiter._day.tallies) <= DAY / 60 + 2
    assert len(limiter._minute.tallies) <= 4


# --- the windows hold for any stream (properties) --------------------------------------------

RPM, TPM, CAP, RPD, TPD = 6, 1000, 3, 12, 3000

_send_op = st.tuples(
    st.just("send"),
    st.one_of(st.integers(0, 60), st.integers(0, TPM)),  # small ones let RPM bind too
    st.floats(0, 1),
)
_op = st.one_of(
    _send_op,
    _send_op,
    _send_op,
    st.tuples(st.just("advance"), st.one_of(st.floats(0, 3), st.floats(0, 70))),
    st.tuples(st.just("settle"), st.integers(0, 99)),
    st.tuples(st.just("finish"), st.integers(0, 99)),
    st.tuples(st.just("release"), st.integers(0, 99)),
    st.tuples(st.just("429"), st.one_of(st.none(), st.floats(0, 20))),
)


def _drive(limiter: LimiterCore, clock: FakeClock, ops: list[Any], overshoot: float) -> list[Any]:
    """Play `ops`; a send waits as a shell would. Returns (reservation, actual) pairs."""
    sent: list[tuple[Reservation, int]] = []
    open_: list[tuple[Reservation, int]] = []
    for op in ops:
        kind = op[0]
        if kind == "advance":
            clock.advance(op[1])
        elif kind == "send":
            pair = _send(limiter, clock, op[1], round(op[1] * op[2] * overshoot), open_)
            if pair is not None:
                sent.append(pair)
                open_.append(pair)
        elif kind == "429":
            limiter.on_rate_limited(op[1])
        elif open_:
            reservation, actual = open_.pop(op[1] % len(open_))
            if kind == "settle":
                limiter.settle(reservation, actual)
            else:
                getattr(limiter, kind)(reservation)
        assert limiter.in_flight == len(open_) <= CAP
    return sent


def _send(
    limiter: LimiterCore, clock: FakeClock, estimate: int, actual: int, open_: list[Any]
) -> tuple[Reservation, int] | None:
    for _ in range(300):
        got = limiter.try_reserve(estimate)
        if isinstance(got, Reservation):
            books = limiter.stats()  # what the books hold the moment it is admitted
            assert books.requests <= RPM
            assert books.tokens <= TPM
            return got, actual
        if math.isinf(got):
            reservation, done = open_.pop(0)
            limiter.settle(reservation, done)
        else:
            assert got > 0
            clock.advance(got)
    return None


def _check_windows(sent: list[tuple[Reservation, int]], length: float, rpm: int, tpm: int) -> None:
    """Every window [s, s + length) holds at most `rpm` requests and `tpm` tokens, plus the
    overrun of settlements above their estimates inside it."""
    live = [r for r, _ in sent if r.state != "released"]
    for start in {r.sent_at for r in live}:
        inside = [r for r in live if start <= r.sent_at < start + length]
        assert len(inside) <= rpm
        overrun = sum(max(0, r.tokens - r.estimate) for r in inside)
        assert sum(r.tokens for r in inside) <= tpm + overrun


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=20, max_size=150), margin=st.sampled_from([0.0, 0.5]))
def test_every_window_holds_when_usage_stays_within_estimates(
    ops: list[Any], margin: float
) -> None:
    clock = FakeClock(0.0)
    limits = RateLimits(rpm=RPM, tpm=TPM, rpd=RPD, tpd=TPD, max_concurrency=CAP, margin=margin)
    limiter = LimiterCore(limits, clock=clock)
    sent = _drive(limiter, clock, ops, overshoot=1.0)
    assert all(r.tokens <= r.estimate for r, _ in sent)
    _check_windows(sent, 60.0, RPM, TPM)
    _check_windows(sent, DAY, RPD, TPD)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=20, max_size=150))
def test_overruns_are_charged_and_bound_what_a_window_can_exceed(ops: list[Any]) -> None:
    clock = FakeClock(0.0)
    limits = RateLimits(rpm=RPM, tpm=TPM, max_concurrency=CAP, margin=0.0)
    limiter = LimiterCore(limits, clock=clock)
    sent = _drive(limiter, clock, ops, overshoot=3.0)
    _check_windows(sent, 60.0, RPM, TPM)
    # And what the books hold now never passes the limit unless overruns put it there.
    stats = limiter.stats()
    assert stats.requests <= RPM


# --- spreading requests out (the pacer) -------------------------------------------------------


def admit_all_now(limiter: LimiterCore, estimate: int = 1) -> list[Reservation]:
    taken = []
    while isinstance(got := limiter.try_reserve(estimate), Reservation):
        taken.append(got)
    return taken


def test_the_burst_goes_at_once_then_requests_are_spread_at_the_limits_pace() -> None:
    clock = FakeClock()
    limiter = core(clock, rpm=600, burst=5.0)  # 10 a second
    assert len(admit_all_now(limiter)) == 51  # five seconds' worth, and the one that starts it
    gaps = []
    for _ in range(20):
        wait = waits(limiter.try_reserve(1))
        clock.advance(wait)
        admitted(limiter.try_reserve(1))
        gaps.append(wait)
    assert gaps == [about(0.1)] * 20
    # The minute window still bounds it: 51 + 10 a second would pass 600 before a minute.
    assert limiter.stats().requests == 71


def test_an_idle_limiter_earns_its_burst_back() -> None:
    clock = FakeClock()
    limiter = core(clock, rpm=600, burst=2.0)
    for reservation in admit_all_now(limiter):
        limiter.settle(reservation, 1)
    clock.advance(2.15)  # the burst's pace used up (2.1 s), and more
    assert len(admit_all_now(limiter)) == 21


def test_tokens_are_spread_by_estimate_and_settling_low_gives_pace_back() -> None:
    clock = FakeClock()
    limiter = core(clock, tpm=6000, burst=3.0)  # 100 tokens a second
    first = admit_all_now(limiter, estimate=100)
    assert len(first) == 4  # each takes a second of pace: 3 s of burst, and the first
    assert waits(limiter.try_reserve(100)) == about(1.0)
    for reservation in first:
        limiter.settle(reservation, 25)  # three quarters of each second given back
    assert len(admit_all_now(limiter, estimate=100)) == 3


def test_a_released_request_gives_its_pace_back() -> None:
    clock = FakeClock()
    limiter = core(clock, rpm=60, burst=0.0)
    reservation = admitted(limiter.try_reserve(1))
    assert waits(limiter.try_reserve(1)) == about(1.0)
    limiter.release(reservation)
    admitted(limiter.try_reserve(1))


def test_after_a_429_requests_are_spread_at_the_cut_rate() -> None:
    clock = FakeClock()
    limiter = core(clock, rpm=600, burst=0.0)
    admitted(limiter.try_reserve(1))
    limiter.on_rate_limited(retry_after=0.0)
    factor = limiter.factor()
    assert factor == about(DECREASE_FACTOR)
    clock.advance(waits(limiter.try_reserve(1)))
    admitted(limiter.try_reserve(1))
    # Charged at the cut rate: the next one waits longer than 60 / 600 seconds.
    assert waits(limiter.try_reserve(1)) > 0.1 / factor * 0.99


def test_without_a_burst_setting_a_minute_goes_at_once() -> None:
    clock = FakeClock()
    limiter = core(clock, rpm=600, burst=None)
    assert len(admit_all_now(limiter)) == 600


# --- the achieved rate under plenty of demand ------------------------------------------------


def simulate(
    limits: RateLimits, *, estimate: int, actual: int, latency: float, seconds: float
) -> list[Reservation]:
    """Requests as fast as the limiter admits them, each answered after `latency`."""
    clock = FakeClock(0.0)
    limiter = LimiterCore(limits, clock=clock)
    flying: deque[tuple[float, Reservation]] = deque()
    sent: list[Reservation] = []
    while clock.now < seconds:
        while flying and flying[0][0] <= clock.now:
            limiter.settle(flying.popleft()[1], actual)
        got = limiter.try_reserve(estimate)
        if isinstance(got, Reservation):
            sent.append(got)
            flying.append((clock.now + latency, got))
            continue
        clock.now = min(clock.now + got, flying[0][0] if flying else math.inf)
    return [r for r in sent if r.sent_at < seconds]


def _window_max(sent: list[Reservation], tokens: bool) -> int:
    times = [r.sent_at for r in sent]
    amounts = [r.tokens if tokens else 1 for r in sent]
    best, total, low = 0, 0, 0
    for high, amount in enumerate(amounts):
        total += amount
        while times[high] - times[low] >= 60.0:
            total -= amounts[low]
            low += 1
        best = max(best, total)
    return best


def test_rpm_binding_reaches_the_limit_within_five_percent() -> None:
    limits = RateLimits(rpm=600, tpm=10**7, max_concurrency=50)
    sent = simulate(limits, estimate=1500, actual=900, latency=2.0, seconds=600)
    per_minute = len(sent) / 10
    assert 0.95 * 600 <= per_minute <= 600
    assert _window_max(sent, tokens=False) <= 600


def test_tpm_binding_reaches_the_limit_within_five_percent() -> None:
    limits = RateLimits(rpm=10_000, tpm=60_000)
    sent = simulate(limits, estimate=1200, actual=500, latency=0.5, seconds=600)
    per_minute = sum(r.tokens for r in sent) / 10
    assert 0.95 * 60_000 <= per_minute <= 60_000
    assert _window_max(sent, tokens=True) <= 60_000


# --- estimates -------------------------------------------------------------------------------


def test_estimate_counts_text_messages_and_max_tokens() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "x" * 30},
            {"role": "user", "content": "你好世界"},
        ],
        "max_tokens": 100,
    }
    role_tokens = 2 + 2  # "system", "user" at 3 characters a token, rounded up
    expected = 2 * MESSAGE_OVERHEAD + role_tokens + 10 + 4 + 100
    assert estimate_tokens(body) == expected


def test_estimate_defaults_and_completion_settings() -> None:
    assert estimate_tokens({}) == DEFAULT_MAX_TOKENS
    assert estimate_tokens({"max_tokens": 10, "n": 3}) == 30
    assert estimate_tokens({"max_completion_tokens": 7}) == 7
    assert estimate_tokens({"max_tokens": 10, "thinking_budget": 256}) == 266
    thinking = estimate_tokens({"max_tokens": 10, "enable_thinking": True})
    assert thinking == 10 + DEFAULT_THINKING_BUDGET
    assert estimate_tokens({"max_tokens": True, "messages": "nope"}) == DEFAULT_MAX_TOKENS


def test_estimate_counts_media_parts_tool_calls_and_tools() -> None:
    data_url = "data:image/png;base64," + "A" * 100_000
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "abc"},
            {"type": "image_url", "image_url": {"url": data_url}},
        ],
    }
    body = {"messages": [message], "max_tokens": 0}
    assert estimate_tokens(body) == MESSAGE_OVERHEAD + 2 + (2 + 1) + MEDIA_TOKENS
    call = {
        "role": "assistant",
        "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"a":1}'}}],
    }
    assert estimate_tokens({"messages": [call], "max_tokens": 0}) > MESSAGE_OVERHEAD + 5
    tool = {"type": "function", "function": {"name": "get", "parameters": {"type": "object"}}}
    with_tools = estimate_tokens({"tools": [tool], "max_tokens": 0})
    assert with_tools > TOOLS_OVERHEAD + 5


def test_estimate_is_fast_enough_for_every_request() -> None:
    body = {
        "messages": [{"role": "user", "content": "word " * 2000}] * 50,
        "max_tokens": 512,
    }
    started = time.perf_counter()
    for _ in range(20):
        estimate_tokens(body)
    assert (time.perf_counter() - started) / 20 < 0.01


# --- the shared registry ---------------------------------------------------------------------


def test_shared_limiter_is_one_per_endpoint_and_model() -> None:
    forget_shared_limiters()
    try:
        one = shared_limiter("https://API.siliconflow.cn/v1/", "m", rpm=10, tpm=100)
        assert shared_limiter("https://api.siliconflow.cn/v1", "m", rpm=10, tpm=100) is one
        assert shared_limiter("https://api.siliconflow.cn/v1", "other", rpm=10, tpm=100) is not one
        assert shared_limiter("https://api.siliconflow.com/v1", "m", rpm=10, tpm=100) is not one
        with pytest.raises(ConfigurationError, match="already keeps other limits"):
            shared_limiter("https://api.siliconflow.cn/v1", "m", rpm=20, tpm=100)
        forget_shared_limiters()
        fresh = shared_limiter("https://api.siliconflow.cn/v1", "m", rpm=20, tpm=100)
        assert fresh is not one
        assert fresh.limits.rpm == 20
    finally:
        forget_shared_limiters()


# --- the async shell on virtual time ---------------------------------------------------------


class _VirtualSelector(selectors.DefaultSelector):
    """Where the loop would block for a timer, move virtual time to it instead."""

    def __init__(self, loop: VirtualLoop) -> None:
        super().__init__()
        self._virtual = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:  # nothing scheduled: only another thread can wake the loop
            return list(super().select(None))
        self._virtual.now += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time: sleeps take no real time, timers fire in order."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self.now


def run_virtual(main: Callable[[VirtualLoop], Coroutine[Any, Any, T]]) -> T:
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def test_hundreds_of_waiters_go_in_arrival_order_within_the_limit() -> None:
    async def main(loop: VirtualLoop) -> list[tuple[int, float]]:
        limiter = RateLimiter(RateLimits(rpm=50, margin=0.0, burst=None), clock=loop.time)
        order: list[tuple[int, float]] = []

        async def one(index: int) -> None:
            async with limiter.request(1) as slot:
                order.append((index, loop.time()))
                slot.settle(1)

        await asyncio.gather(*(one(i) for i in range(300)))
        assert limiter.stats().waiting == 0
        return order

    order = run_virtual(main)
    assert [index for index, _ in order] == list(range(300))
    times = [when for _, when in order]
    assert times[49] == 0.0
    assert times[50] == about(60.0, tolerance=1e-3)
    assert times[-1] == about(300.0, tolerance=1e-2)
    for k, start in enumerate(times):
        assert sum(1 for t in times[k:] if t < start + 60.0) <= 50


def test_a_large_request_at_the_head_is_not_starved_by_small_ones() -> None:
    async def main(loop: VirtualLoop) -> list[str]:
        limiter = RateLimiter(RateLimits(tpm=1000, margin=0.0), clock=loop.time)
        order: list[str] = []

        async def one(name: str, tokens: int) -> None:
            async with limiter.request(tokens):
                order.append(name)

        first = await limiter.acquire(600)
        tasks = [asyncio.ensure_future(one("big", 1000))]
        await asyncio.sleep(0)
        tasks += [asyncio.ensure_future(one(f"small{i}", 100)) for i in range(3)]
        await asyncio.gather(*tasks)
        limiter.finish(first)
        return order

    assert run_virtual(main) == ["big", "small0", "small1", "small2"]


def test_a_settlement_below_the_estimate_wakes_the_head_early() -> None:
    async def main(loop: VirtualLoop) -> float:
        limiter = RateLimiter(RateLimits(tpm=1000, margin=0.0), clock=loop.time)
        holder = await limiter.acquire(1000)

        async def settle_soon() -> None:
            await asyncio.sleep(1.0)
            limiter.settle(holder, 100)

        settling = asyncio.ensure_future(settle_soon())
        second = await limiter.acquire(800)
        await settling
        return second.sent_at

    assert run_virtual(main) == about(1.0)


def test_cancelling_a_waiter_leaks_no_reservation_or_slot() -> None:
    async def main(loop: VirtualLoop) -> None:
        limiter = RateLimiter(RateLimits(rpm=1, max_concurrency=2, margin=0.0), clock=loop.time)
        first = await limiter.acquire(5)
        head = asyncio.ensure_future(limiter.acquire(5))
        behind = asyncio.ensure_future(limiter.acquire(5))
        await asyncio.sleep(10)
        assert limiter.stats().waiting == 2
        head.cancel()
        with pytest.raises(asyncio.CancelledError):
            await head
        third = await behind
        assert third.sent_at == about(60.0, tolerance=1e-3)
        stats = limiter.stats()
        assert (stats.in_flight, stats.waiting, stats.requests, stats.tokens) == (2, 0, 1, 5)
        limiter.finish(first)
        limiter.finish(third)

    run_virtual(main)


def test_cancelling_a_waiter_on_the_concurrency_cap_leaks_nothing() -> None:
    async def main(loop: VirtualLoop) -> None:
        limiter = RateLimiter(RateLimits(max_concurrency=1), clock=loop.time)
        holder = await limiter.acquire(1)
        waiter = asyncio.ensure_future(limiter.acquire(1))
        await asyncio.sleep(5)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        limiter.finish(holder)
        assert limiter.stats().in_flight == 0
        assert limiter.try_acquire(1) is not None

    run_virtual(main)


def test_cancelling_inside_the_block_frees_the_slot_and_keeps_the_charge() -> None:
    async def main(loop: VirtualLoop) -> None:
        limiter = RateLimiter(RateLimits(tpm=100, max_concurrency=1), clock=loop.time)
        entered = asyncio.Event()

        async def body() -> None:
            async with limiter.request(40):
                entered.set()
                await asyncio.sleep(100)

        task = asyncio.ensure_future(body())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        stats = limiter.stats()
        assert (stats.in_flight, stats.tokens) == (0, 40)

    run_virtual(main)


def test_a_slot_reports_429s_and_release_refunds() -> None:
    async def main(loop: VirtualLoop) -> None:
        limiter = RateLimiter(RateLimits(rpm=10, margin=0.0), clock=loop.time)
        async with limiter.request(1) as slot:
            slot.rate_limited(7.0)
        async with limiter.request(1) as slot:
            assert slot.reservation.sent_at == about(7.0, tolerance=1e-3)
            slot.release()
        stats = limiter.stats()
        assert (stats.requests, stats.factor) == (1, about(DECREASE_FACTOR))

    run_virtual(main)


def test_the_sleep_function_is_injectable() -> None:
    clock = FakeClock(0.0)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)
        await asyncio.sleep(0)

    limiter = RateLimiter(RateLimits(rpm=2, margin=0.0, burst=None), clock=clock, sleep=sleep)

    async def main() -> list[float]:
        return [(await limiter.acquire(0)).sent_at for _ in range(5)]

    assert asyncio.run(main()) == about([0, 0, 60, 60, 120], tolerance=1e-3)
    assert slept == about([60, 60], tolerance=1e-3)


def test_an_impossible_estimate_fails_at_once_without_queueing() -> None:
    async def main(loop: VirtualLoop) -> None:
        limiter = RateLimiter(RateLimits(tpm=10), clock=loop.time)
        with pytest.raises(EstimateTooLargeError):
            await limiter.acquire(11)
        with pytest.raises(EstimateTooLargeError):
            limiter.try_acquire(11)
        assert limiter.stats().waiting == 0

    run_virtual(main)


def test_a_thread_finishing_wakes_a_task() -> None:
    async def main(loop: VirtualLoop) -> float:
        limiter = RateLimiter(RateLimits(max_concurrency=1), clock=loop.time)
        holder = limiter.acquire_sync(1)

        def finish_soon() -> None:
            time.sleep(0.005)
            limiter.finish(holder)

        worker = threading.Thread(target=finish_soon)
        worker.start()
        try:
            got = await limiter.acquire(1)
        finally:
            worker.join()
        limiter.finish(got)
        return got.sent_at

    assert run_virtual(main) == 0.0


def test_a_task_whose_loop_closed_does_not_hold_up_the_queue() -> None:
    limiter = RateLimiter(RateLimits(max_concurrency=1))
    holder = limiter.acquire_sync(1)
    loop = asyncio.new_event_loop()
    waiting = limiter.acquire(1)
    task = loop.create_task(waiting)
    loop.run_until_complete(asyncio.sleep(0))
    assert limiter.stats().waiting == 1
    loop.set_exception_handler(lambda loop, context: None)  # "destroyed but pending": meant
    loop.close()  # without cancelling the task: it can never run again
    limiter.finish(holder)
    assert limiter.stats().waiting == 0
    assert limiter.try_acquire(1) is not None
    waiting.close()  # what garbage collection would do; it leaves nothing behind either
    assert not task.done()


@pytest.mark.parametrize("seed", range(5))
def test_random_cancellations_leave_the_books_straight(seed: int) -> None:
    rng = random.Random(seed)

    async def main(loop: VirtualLoop) -> list[Reservation]:
        limits = RateLimits(rpm=30, tpm=3000, max_concurrency=4, margin=0.0)
        limiter = RateLimiter(limits, clock=loop.time)
        sent: list[Reservation] = []

        async def one() -> None:
            await asyncio.sleep(rng.uniform(0, 200))
            async with limiter.request(rng.randint(1, 300)) as slot:
                sent.append(slot.reservation)
                await asyncio.sleep(rng.uniform(0, 5))
                if rng.random() < 0.2:
                    slot.release()
                elif rng.random() < 0.8:
                    slot.settle(rng.randint(0, slot.reservation.estimate))

        tasks = [asyncio.ensure_future(one()) for _ in range(200)]
        for _ in range(60):
            await asyncio.sleep(rng.uniform(0, 10))
            rng.choice(tasks).cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stats = limiter.stats()
        assert (stats.in_flight, stats.waiting) == (0, 0)
        assert limiter._core._minute.tokens >= 0
        return sent

    sent = run_virtual(main)
    assert len(sent) > 60
    _check_windows([(r, 0) for r in sent], 60.0, 30, 3000)


def test_runs_on_two_event_loops_in_two_threads_share_the_cap() -> None:
    limiter = RateLimiter(RateLimits(max_concurrency=3))
    guard = threading.Lock()
    active = peak = done = 0

    async def one() -> None:
        nonlocal active, peak, done
        async with limiter.request(1) as slot:
            with guard:
                active += 1
                peak = max(peak, active)
            await asyncio.sleep(0.001)
            with guard:
                active -= 1
                done += 1
            slot.settle(1)

    async def many() -> None:
        await asyncio.gather(*(one() for _ in range(15)))

    threads = [threading.Thread(target=asyncio.run, args=(many(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (peak <= 3, done) == (True, 30)
    assert limiter.stats().in_flight == 0


# --- the sync shell --------------------------------------------------------------------------


def test_threads_stay_under_the_concurrency_cap() -> None:
    limiter = RateLimiter(RateLimits(tpm=10**6, max_concurrency=3))
    guard = threading.Lock()
    active = peak = 0

    def work() -> None:
        nonlocal active, peak
        with limiter.request(10) as slot:
            with guard:
                active += 1
                peak = max(peak, active)
            time.sleep(0.002)
            with guard:
                active -= 1
            slot.settle(5)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = limiter.stats()
    assert peak <= 3
    assert (stats.in_flight, stats.waiting, stats.requests, stats.tokens) == (0, 0, 12, 60)


def test_a_thread_waits_on_the_clock_it_is_given() -> None:
    clock = FakeClock(0.0)
    waited: list[float | None] = []

    def wait(cond: threading.Condition, timeout: float | None) -> bool:
        waited.append(timeout)
        assert timeout is not None
        clock.advance(timeout)
        return False

    limiter = RateLimiter(RateLimits(rpm=2, margin=0.0, burst=None), clock=clock, wait=wait)
    times = [limiter.acquire_sync(0).sent_at for _ in range(3)]
    assert times == about([0, 0, 60], tolerance=1e-3)
    assert waited == about([60], tolerance=1e-3)
    with limiter.request(0) as slot:
        assert slot.reservation.sent_at == about(60, tolerance=1e-3)
    assert limiter.stats().in_flight == 3
