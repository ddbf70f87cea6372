"""ToolThreads: the agent's bounded worker threads for sync tools, for both drivers."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from concurrent.futures import CancelledError, wait

import pytest

from sfagent.run._pool import ToolThreads

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_submit_runs_on_a_worker_and_settles_the_future() -> None:
    threads = ToolThreads(4)
    try:
        assert threads.submit(lambda a, b: (a + b, threading.current_thread().name), 1, 2).result(
            5
        ) == (3, "sfagent-tool_0")
        with pytest.raises(ValueError, match="boom"):
            threads.submit(_raise, ValueError("boom")).result(5)
        with pytest.raises(KeyboardInterrupt):  # handed over, as an executor does
            threads.submit(_raise, KeyboardInterrupt()).result(5)
        assert threads.submit(lambda: "the worker lives on").result(5) == "the worker lives on"
    finally:
        threads.shutdown()


@pytest.mark.anyio
async def test_run_async_settles_on_the_loop_with_the_callers_context() -> None:
    threads = ToolThreads(4)
    try:
        WHO.set("the caller")
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        assert await threads.run_async(loop, context.run, WHO.get) == "the caller"
        assert await threads.run_async(loop, WHO.get) == "nobody"  # no context: a thread's own
        with pytest.raises(ValueError, match="boom"):
            await threads.run_async(loop, _raise, ValueError("boom"))
    finally:
        threads.shutdown()


@pytest.mark.anyio
async def test_a_call_cancelled_before_a_worker_takes_it_never_runs() -> None:
    threads = ToolThreads(1)
    release, ran = threading.Event(), []
    loop = asyncio.get_running_loop()
    try:
        busy = threads.run_async(loop, release.wait, 5)
        queued = threads.run_async(loop, ran.append, "queued")
        queued.cancel()
        release.set()
        assert await busy is True
        assert await threads.run_async(loop, lambda: "next") == "next"  # after the skipped one
        assert ran == []
    finally:
        threads.shutdown()


@pytest.mark.anyio
async def test_a_call_given_up_on_runs_on_and_its_result_is_dropped() -> None:
    threads = ToolThreads(1)
    started, release, done = threading.Event(), threading.Event(), threading.Event()
    loop = asyncio.get_running_loop()

    def slow() -> str:
        started.set()
        release.wait(5)
        done.set()
        return "late"

    try:
        task = asyncio.ensure_future(threads.run_async(loop, slow))
        await asyncio.to_thread(started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        assert await asyncio.to_thread(done.wait, 5)
        assert await threads.run_async(loop, lambda: "free again") == "free again"
    finally:
        threads.shutdown()


def test_no_more_threads_than_the_bound_and_idle_ones_are_reused() -> None:
    threads = ToolThreads(3)
    live = peak = 0
    lock = threading.Lock()

    def nap() -> str:
        nonlocal live, peak
        with lock:
            live += 1
            peak = max(peak, live)
        time.sleep(0.01)
        with lock:
            live -= 1
        return threading.current_thread().name

    before = threading.active_count()
    try:
        names = [f.result(5) for f in [threads.submit(nap) for _ in range(20)]]
        assert peak <= 3
        assert threading.active_count() - before <= 3
        assert set(names) <= {"sfagent-tool_0", "sfagent-tool_1", "sfagent-tool_2"}
        for _ in range(5):  # one at a time: the idle thread takes each
            threads.submit(nap).result(5)
        assert threading.active_count() - before <= 3
    finally:
        threads.shutdown()


@pytest.mark.anyio
async def test_shutdown_cancels_what_has_not_started_and_a_new_pool_follows() -> None:
    threads = ToolThreads(1)
    release = threading.Event()
    loop = asyncio.get_running_loop()
    running = threads.submit(release.wait, 5)
    blocked = threads.submit(lambda: "never")
    awaited = threads.run_async(loop, lambda: "never")
    threads.shutdown()
    release.set()
    assert await asyncio.wrap_future(running) is True  # a running call finishes
    with pytest.raises(CancelledError):
        blocked.result(5)
    with pytest.raises(asyncio.CancelledError):
        await awaited
    try:
        assert await threads.run_async(loop, lambda: "a new pool") == "a new pool"
    finally:
        threads.shutdown()


def test_a_result_for_a_closed_loop_is_dropped_quietly() -> None:
    threads = ToolThreads(1)
    release, finished = threading.Event(), threading.Event()
    errors: list[threading.ExceptHookArgs] = []
    hook, threading.excepthook = threading.excepthook, errors.append

    def slow() -> str:
        release.wait(5)
        return "for nobody"

    async def start() -> None:
        threads.run_async(asyncio.get_running_loop(), slow)

    try:
        asyncio.run(start())  # the loop closes with the call still running
        release.set()
        threads.submit(finished.set).result(5)  # the worker went on to the next call
        assert finished.is_set()
        assert errors == []
    finally:
        threading.excepthook = hook
        threads.shutdown()


def test_threads_are_started_lazily_and_released_by_shutdown() -> None:
    before = set(threading.enumerate())
    threads = ToolThreads(2)
    assert set(threading.enumerate()) == before  # nothing until the first call
    wait([threads.submit(time.sleep, 0.01) for _ in range(2)], timeout=5)
    ours = set(threading.enumerate()) - before
    assert 1 <= len(ours) <= 2
    assert all(t.daemon and t.name.startswith("sfagent-tool_") for t in ours)
    threads.shutdown()
    for thread in ours:
        thread.join(5)
        assert not thread.is_alive()


def _raise(exc: BaseException) -> None:
    raise exc
