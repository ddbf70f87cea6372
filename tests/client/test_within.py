"""`within`: the async client's per-wait time limit."""

from __future__ import annotations

import asyncio
import math

import pytest

from sfagent.client._within import within

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
