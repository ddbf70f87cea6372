"""The retry policy: pure decisions checked with fixed randomness and a fake clock."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from sfagent.client.error_bodies import error_from_response
from sfagent.client.retry import RETRYABLE_STATUSES, RetryDecision, RetryPolicy, parse_retry_after
from sfagent.exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    ConfigurationError,
)

NOW = 1_800_000_000.0


def half() -> float:
    return 0.5


def one() -> float:
    return 0.999999


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    policy = RetryPolicy()
    assert policy.decide(status, attempt=1, elapsed=0.0, rand=half).retry
    err = error_from_response(status, b"{}", trace_id=None)
    assert policy.decide(err, attempt=1, elapsed=0.0, rand=half).retry


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_never_retried(status: int) -> None:
    policy = RetryPolicy(max_attempts=10)
    decision = policy.decide(status, attempt=1, elapsed=0.0, retry_after="1")
    assert decision == RetryDecision(False, 0.0, "not retryable")
    err = error_from_response(status, b"{}", trace_id=None)
    assert not policy.decide(err, attempt=1, elapsed=0.0).retry


def test_connection_errors_and_timeouts_are_retried_other_errors_not() -> None:
    policy = RetryPolicy()
    assert policy.decide(APIConnectionError("reset"), attempt=1, elapsed=0, rand=half).retry
    assert policy.decide(APITimeoutError("read"), attempt=1, elapsed=0, rand=half).retry
    assert not policy.decide(APIResponseValidationError("bad"), attempt=1, elapsed=0).retry
    assert not policy.decide(ValueError("bug"), attempt=1, elapsed=0).retry


def test_full_jitter_exponential_backoff() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=8.0, total_timeout=1e9)
    delays = [policy.decide(503, attempt=n, elapsed=0, rand=one).delay for n in range(1, 7)]
    assert delays == pytest.approx([1.0, 2.0, 4.0, 8.0, 8.0, 8.0], rel=1e-5)
    assert policy.decide(503, attempt=3, elapsed=0, rand=half).delay == pytest.approx(2.0)
    assert policy.decide(503, attempt=3, elapsed=0, rand=lambda: 0.0).delay == 0.0


def test_huge_attempt_numbers_do_not_overflow() -> None:
    policy = RetryPolicy(max_attempts=10_000, total_timeout=1e9)
    assert policy.backoff(5000, rand=one) == pytest.approx(policy.max_delay, rel=1e-5)


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.decide(503, attempt=2, elapsed=0, rand=half).retry
    decision = policy.decide(503, attempt=3, elapsed=0, rand=half)
    assert not decision.retry
    assert "3 attempts" in decision.reason


def test_time_budget_bounds_retries() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=4.0, total_timeout=10.0)
    assert policy.decide(503, attempt=1, elapsed=5.0, rand=half).retry  # waits 2 s, ends at 7
    decision = policy.decide(503, attempt=1, elapsed=9.0, rand=half)  # would end at 11
    assert decision == RetryDecision(False, 0.0, "time budget exhausted")


def test_retry_after_seconds_is_honoured_and_capped() -> None:
    policy = RetryPolicy(max_retry_after=30.0, total_timeout=100.0)
    decision = policy.decide(429, attempt=1, elapsed=0, retry_after="7", rand=half)
    assert decision == RetryDecision(True, 7.0, "retry-after")
    capped = policy.decide(429, attempt=1, elapsed=0, retry_after="3600", rand=half)
    assert capped.delay == 30.0


def test_retry_after_beyond_budget_gives_up() -> None:
    policy = RetryPolicy(total_timeout=10.0)
    assert not policy.decide(429, attempt=1, elapsed=0, retry_after="20").retry


def test_retry_after_http_date() -> None:
    when = datetime.fromtimestamp(NOW + 12, tz=timezone.utc)
    header = format_datetime(when, usegmt=True)
    decision = RetryPolicy().decide(503, attempt=1, elapsed=0, retry_after=header, now=NOW)
    assert decision.delay == pytest.approx(12.0)


def test_unreadable_retry_after_falls_back_to_backoff() -> None:
    decision = RetryPolicy().decide(429, attempt=1, elapsed=0, retry_after="soon", rand=half)
    assert decision == RetryDecision(True, 0.5, "backoff")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("2", 2.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("nan", None),
        ("inf", None),
        ("tomorrow", None),
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: unreadable
        (format_datetime(datetime.fromtimestamp(NOW - 60, tz=timezone.utc), usegmt=True), 0.0),
        (format_datetime(datetime.fromtimestamp(NOW + 90, tz=timezone.utc), usegmt=True), 90.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


def test_parse_retry_after_reads_the_clock_when_not_given() -> None:
    far = format_datetime(datetime(2999, 1, 1, tzinfo=timezone.utc), usegmt=True)
    seconds = parse_retry_after(far)
    assert seconds is not None
    assert seconds > 0


def test_disabled_policy_never_retries() -> None:
    policy = RetryPolicy.disabled()
    assert policy.decide(503, attempt=1, elapsed=0) == RetryDecision(False, 0.0, "retries disabled")
    off = RetryPolicy(enabled=False, max_attempts=5)
    assert not off.decide(APIConnectionError("x"), attempt=1, elapsed=0).retry


def test_defaults_are_modest() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 3
    assert policy.retry_statuses == RETRYABLE_STATUSES


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"base_delay": -1.0},
        {"max_delay": float("nan")},
        {"total_timeout": float("inf")},
        {"retry_statuses": frozenset({400, 503})},
    ],
)
def test_invalid_policies_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_is_frozen() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_attempts = 5  # type: ignore[misc]
