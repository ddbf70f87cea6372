"""`within`: the async client's per-wait time limit."""

from __future__ import annotations

import asyncio
import math

import pytest

from sfagent.client._within import ReadTimedOut, ReadTimer, within

pytestmark = pytest.mark.anyio


async def test_expiry_ends_the_block_and_is_reported() -> None:
    reached_end = False
    async with within(0.01) as scope:
        await asyncio.sleep(5)
        reached_end = True
    assert scope.expired
    assert not reached_end


async def test_a_block_that_finishes_in_time_is_not_expired() -> None:
    async with within(5) as scope:
        await asyncio.sleep(0)
    assert not scope.expired


async def test_infinity_means_no_limit() -> None:
    async with within(math.inf) as scope:
        await asyncio.sleep(0.01)
    assert not scope.expired


async def test_a_timeout_error_from_inside_is_not_taken_for_expiry() -> None:
    with pytest.raises(TimeoutError, match="from the tool"):
        async with within(5):
            raise TimeoutError("from the tool")


async def test_a_callers_cancellation_passes_through() -> None:
    started = asyncio.Event()

    async def waits() -> None:
        async with within(5):
            started.set()
            await asyncio.sleep(5)

    task = asyncio.ensure_future(waits())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- ReadTimer: one deadline for a whole stream ---------------------------------------------

needs_uncancel = pytest.mark.skipif(not ReadTimer.available, reason="Task.uncancel: 3.11+")


@needs_uncancel
async def test_the_read_in_progress_when_time_runs_out_ends() -> None:
    timer = ReadTimer(0.02)
    assert await timer.read(asyncio.sleep(0, result="first")) == "first"
    with pytest.raises(ReadTimedOut):
        await timer.read(asyncio.sleep(5))
    assert timer.expired
    timer.close()


@needs_uncancel
async def test_a_read_after_the_deadline_fails_at_once() -> None:
    timer = ReadTimer(0.0)
    await asyncio.sleep(0.01)  # the timer fires between reads
    pending = asyncio.sleep(0)
    with pytest.raises(ReadTimedOut):
        await timer.read(pending)
    await pending  # not left unawaited
    timer.close()


@needs_uncancel
async def test_a_callers_cancellation_is_not_taken_for_the_deadline() -> None:
    timer = ReadTimer(5)
    started = asyncio.Event()

    async def reads() -> None:
        started.set()
        await timer.read(asyncio.sleep(5))

    task = asyncio.ensure_future(reads())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not timer.expired
    timer.close()


@needs_uncancel
async def test_a_closed_timer_never_fires() -> None:
    timer = ReadTimer(0.01)
    timer.close()
    await asyncio.sleep(0.03)
    assert not timer.expired
