"""The shared rate limiter: RPM, TPM and RPD held across limiters, and across OS processes, that
share a bucket in one database (SQLite and PostgreSQL); settling, releasing and 429s seen by all;
buckets apart; bad input and unreachable databases refused with typed errors, no password shown.

Run as a script, this file is the child process of the cross-process test:

    python test_shared_limits.py DB_URL SEED

It prints ``ready`` once it has connected, reads the time to stop sending from its stdin, then
prints every admission as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sfagent.batch._limiter import EstimateTooLargeError, RateLimits
from sfagent.durable._approval import SystemDatabaseError
from sfagent.durable._shared_limits import SharedRateLimiter, SharedReservation
from sfagent.exceptions import UserError

Make = Callable[..., SharedRateLimiter]

PERIOD = 2.0
"""The window of the cross-process test, in seconds."""

RPM, TPM = 10, 1000
"""Per `PERIOD`: bucket ``r`` is held by its RPM, bucket ``t`` by its TPM."""

CHILDREN, RUN = 2, 3.5
"""Processes in the cross-process test, and seconds they send for."""

CHILD_LIMITS = {"r": RateLimits(rpm=RPM, margin=0), "t": RateLimits(tpm=TPM, margin=0)}


@pytest.fixture
async def make(db_url: str) -> AsyncIterator[Make]:
    """Limiters on the test's database (closed at the end): ``make(bucket="x", rpm=3, ...)``."""
    made: list[SharedRateLimiter] = []

    def new(*, bucket: str = "x", period: float = 30.0, **limits: Any) -> SharedRateLimiter:
        limits.setdefault("margin", 0)
        limits.setdefault("burst", None)
        limiter = SharedRateLimiter(db_url, RateLimits(**limits), bucket=bucket, period=period)
        made.append(limiter)
        return limiter

    try:
        yield new
    finally:
        for limiter in made:
            await limiter.aclose()


async def admitted(limiter: SharedRateLimiter, estimate: int = 1) -> SharedReservation:
    got = await limiter.try_reserve(estimate)
    assert isinstance(got, SharedReservation), f"waits {got} s"
    return got


async def waits(limiter: SharedRateLimiter, estimate: int = 1) -> float:
    got = await limiter.try_reserve(estimate)
    assert isinstance(got, float), f"admitted {got}"
    return got


# --- in one process: the books -----------------------------------------------------------------


@pytest.mark.anyio
async def test_requests_past_the_rpm_wait_for_the_window_whichever_limiter_admitted_them(
    make: Make,
) -> None:
    a, b = make(rpm=3), make(rpm=3)
    await admitted(a)
    await admitted(b)
    await admitted(a)
    wait = await waits(b)
    assert 20 < wait <= 30.01  # until the first leaves the 30-second window
    assert b.stats().requests == 3


@pytest.mark.anyio
async def test_tokens_past_the_tpm_wait_and_settling_below_the_estimate_frees_them(
    make: Make,
) -> None:
    a, b = make(tpm=1000), make(tpm=1000)
    first = await admitted(a, 400)
    await admitted(b, 400)
    await waits(b, 400)
    a.settle(first, 100)
    await a.drain()
    await admitted(b, 400)  # 100 + 400 + 400
    await waits(a, 200)
    assert b.stats().tokens == 900


@pytest.mark.anyio
async def test_a_released_request_is_refunded_and_an_answered_one_is_not(make: Make) -> None:
    a, b = make(rpm=1), make(rpm=1)
    a.release(await admitted(a))
    await a.drain()
    answered = await admitted(b)
    b.finish(answered)
    with pytest.raises(UserError, match="cannot be released"):
        b.release(answered)
    await waits(a)


@pytest.mark.anyio
async def test_a_429_pauses_every_limiter_on_the_bucket_and_cuts_the_rate(make: Make) -> None:
    a, b = make(rpm=100), make(rpm=100)
    async with a.request(1) as slot:
        slot.rate_limited(retry_after=20)
    await a.drain()
    assert 15 < await waits(b) <= 20.01
    stats = b.stats()
    assert stats.requests == 1  # the refused request keeps its charge
    assert 15 < stats.paused_for <= 20.01
    assert stats.factor == pytest.approx(0.7)


@pytest.mark.anyio
async def test_buckets_keep_their_own_books(make: Make) -> None:
    x, y = make(bucket="x", rpm=1), make(bucket="y", rpm=1)
    await admitted(x)
    await admitted(y)
    await waits(x)
    await waits(y)


@pytest.mark.anyio
async def test_a_burst_goes_at_once_and_the_rest_at_the_limits_pace(make: Make) -> None:
    limiter = make(rpm=60, period=60.0, burst=5.0)  # a request a second after a 5-second burst
    burst = 0
    while isinstance(await limiter.try_reserve(1), SharedReservation) and burst < 20:
        burst += 1
    assert 6 <= burst <= 8  # 6 at once, more only on a machine slow to ask
    assert 0 < await waits(limiter) <= 1.01


@pytest.mark.anyio
async def test_the_day_limits_hold_past_the_minute_window(make: Make) -> None:
    limiter = make(rpd=2, tpd=500, period=1.0)
    await admitted(limiter, 100)
    await admitted(limiter, 100)
    assert await waits(limiter) > 80_000
    with pytest.raises(EstimateTooLargeError):
        await limiter.try_reserve(501)


@pytest.mark.anyio
async def test_an_estimate_above_the_tpm_is_refused_before_anything_waits(make: Make) -> None:
    limiter = make(tpm=1000)
    with pytest.raises(EstimateTooLargeError) as raised:
        limiter.check(1001)
    assert (raised.value.limit, raised.value.limit_name) == (1000, "TPM")
    with pytest.raises(EstimateTooLargeError):
        async with limiter.request(1001):
            pass
    with pytest.raises(UserError, match="async with"), limiter.request(1):
        pass


@pytest.mark.anyio
async def test_a_cancelled_wait_and_the_concurrency_cap_stay_in_the_process(make: Make) -> None:
    limiter = make(rpm=1, max_concurrency=1)
    first = await limiter.acquire(1)
    waiting = asyncio.ensure_future(limiter.acquire(1))
    await asyncio.sleep(0.05)
    assert limiter.stats().waiting == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert limiter.stats().waiting == 0
    other = make(bucket="y", rpm=10, max_concurrency=1)
    held = await other.acquire(1)
    capped = asyncio.ensure_future(other.acquire(1))
    await asyncio.sleep(0.05)
    assert not capped.done()
    other.settle(held, 1)
    other.settle(await asyncio.wait_for(capped, 10), 1)
    limiter.settle(first, 1)
    assert (other.stats().in_flight, limiter.stats().in_flight) == (0, 0)


# --- errors ----------------------------------------------------------------------------------


def test_a_bad_url_is_refused_without_its_password() -> None:
    with pytest.raises(UserError) as raised:
        SharedRateLimiter("mysql://me:hunter2secret@db/x", RateLimits(rpm=1), bucket="x")
    assert "hunter2secret" not in str(raised.value)
    with pytest.raises(UserError, match="bucket"):
        SharedRateLimiter("sqlite:///x.sqlite", RateLimits(rpm=1), bucket="")
    with pytest.raises(UserError, match="period"):
        SharedRateLimiter("sqlite:///x.sqlite", RateLimits(rpm=1), bucket="x", period=0)


@pytest.mark.anyio
async def test_an_unreachable_database_is_a_typed_error_without_its_password(
    tmp_path: Path,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    urls = [
        f"postgresql://me:hunter2secret@127.0.0.1:{port}/nowhere",
        f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}",
    ]
    for url in urls:
        limiter = SharedRateLimiter(url, RateLimits(rpm=1), bucket="x")
        try:
            assert "hunter2secret" not in repr(limiter)
            with pytest.raises(SystemDatabaseError) as raised:
                await limiter.try_reserve(1)
            assert "hunter2secret" not in str(raised.value)
            assert "***" in str(raised.value) or "sqlite" in str(raised.value)
        finally:
            await limiter.aclose()


# --- across processes ------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_processes_sharing_a_bucket_hold_its_limits_together(db_url: str) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, __file__, db_url, str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(CHILDREN)
    ]
    for child in children:  # every child has imported, made its tables and connected
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.communicate(timeout=30)[1]
    until = f"{time.time() + RUN}\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write(until)
        child.stdin.flush()
    rows: list[dict[str, Any]] = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        rows += json.loads(out.strip().splitlines()[-1])
    for bucket, limit, key in (("r", RPM, "requests"), ("t", TPM, "tokens")):
        mine = sorted((row for row in rows if row["bucket"] == bucket), key=lambda r: r["at"])
        shares = {row["child"] for row in mine}
        assert len(shares) == CHILDREN, f"{bucket}: admitted for children {shares} only"
        times = [row["at"] for row in mine]
        amounts = [1 if key == "requests" else row["tokens"] for row in mine]
        for i, begin in enumerate(times):  # every window that starts at an admission
            inside = [n for t, n in zip(times[i:], amounts[i:], strict=True) if t < begin + PERIOD]
            assert sum(inside) <= limit, f"{bucket}: {sum(inside)} {key} in {PERIOD} s"
        span = times[-1] - times[0]
        assert span > PERIOD
        assert sum(amounts) >= 0.5 * limit * span / PERIOD  # near the limit, not far under it


async def child(url: str, seed: int) -> list[dict[str, Any]]:
    """Send through both buckets until told to stop; every admission's time and tokens."""
    limiters = {
        name: SharedRateLimiter(url, limits, bucket=name, period=PERIOD)
        for name, limits in CHILD_LIMITS.items()
    }
    for limiter in limiters.values():
        await limiter.connect()
    print("ready", flush=True)
    until = float(await asyncio.to_thread(sys.stdin.readline))
    rows: list[dict[str, Any]] = []

    async def send(name: str, number: int) -> None:
        rng = random.Random(seed * 100 + number)
        while time.time() < until:
            estimate = rng.randint(50, 150)
            async with limiters[name].request(estimate) as slot:
                await asyncio.sleep(0.02)
                slot.settle(estimate * 3 // 4)
            at, used = slot.reservation.sent_at, slot.reservation.tokens
            rows.append({"bucket": name, "child": seed, "at": at, "tokens": used})

    await asyncio.gather(*(send(name, n) for name in limiters for n in range(4)))
    for limiter in limiters.values():
        await limiter.aclose()
    return rows


if __name__ == "__main__":
    print(json.dumps(asyncio.run(child(sys.argv[1], int(sys.argv[2])))))
