"""The worker threads sync tools run on: one bounded pool per agent, started on first use.

Both drivers send sync work here (the async driver instead of the event loop's default
executor, which has only a handful of threads). A call its driver stopped waiting for keeps
its thread until the function returns (a thread cannot be killed), so a tool that hangs
holds one worker; the bound keeps such tools from piling up threads without end.

Why not `concurrent.futures.ThreadPoolExecutor` behind `loop.run_in_executor`: each call of
the async driver then makes a `concurrent.futures.Future` (with its `Condition`), an asyncio
future chained to it by callbacks both ways, and checks an idle semaphore. Here a worker takes
the call and the loop's own future and settles it with one `call_soon_threadsafe`: about
50-80 µs less CPU per tool round of a sequential `await Agent.run`, and 3-8% of the CPU of 200
concurrent runs (``benchmarks/bench_agent.py``; docs/benchmarks.md). The workers are daemon
threads: an idle one never holds the interpreter's exit, and nor does a hung tool.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")

DEFAULT_TOOL_THREADS = 32
"""Worker threads per agent for sync tools when `max_concurrency` does not say."""


class ToolThreads:
    """A bounded pool of worker threads, started lazily.

    Args:
        size: The most threads it runs at once; further calls wait their turn.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._workers: _Workers | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Run ``fn(*args)`` on a worker thread; the future settles when it returns."""
        future: Future[T] = Future()
        self._start().put(_BlockingJob(fn, args, future))
        return future

    def run_async(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., T], /, *args: Any
    ) -> asyncio.Future[T]:
        """Run ``fn(*args)`` on a worker thread; await the returned future on `loop`.

        Cancelling the future before a worker takes the call skips it; after, the call runs on
        and its result is dropped.
        """
        future: asyncio.Future[T] = loop.create_future()
        self._start().put(_LoopJob(fn, args, future, loop))
        return future

    def shutdown(self) -> None:
        """Cancel the calls not started yet and let the threads go once their calls return;
        the next call starts a new pool."""
        with self._lock:
            workers, self._workers = self._workers, None
        if workers is not None:
            workers.stop()

    def _start(self) -> _Workers:
        workers = self._workers
        if workers is None:
            with self._lock:
                workers = self._workers
                if workers is None:
                    workers = self._workers = _Workers(self.size)
        return workers


class _Workers:
    """The threads of one pool's lifetime, and the queue they take calls from."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.started = 0
        self.idle = 0  # threads waiting for a call that no call has claimed yet
        self.stopped = False

    def put(self, job: _Job) -> None:
        with self.lock:
            if self.stopped:  # a shutdown raced this call: the caller starts a new pool
                raise RuntimeError("the tool threads were shut down")
            start = False
            if self.idle:
                self.idle -= 1
            elif self.started < self.size:
                self.started += 1
                start = True
            number = self.started
        self.jobs.put(job)
        if start:
            name = f"sfagent-tool_{number - 1}"
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        jobs = self.jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            job.run()
            del job  # drop the call's arguments and result while idle
            with self.lock:
                self.idle += 1

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            threads = self.started
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.cancel()
        for _ in range(threads):
            self.jobs.put(None)


class _Job:
    """One call waiting for a worker."""

    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args

    def run(self) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError


class _BlockingJob(_Job):
    """A call whose caller waits on a `concurrent.futures.Future` (the sync driver)."""

    __slots__ = ("future",)

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], future: Future[Any]):
        super().__init__(fn, args)
        self.future = future

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args)
        except BaseException as exc:  # handed to the waiting caller, as an executor does
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)

    def cancel(self) -> None:
        self.future.cancel()


class _LoopJob(_Job):
    """A call awaited on an event loop (the async driver)."""

    __slots__ = ("future", "loop")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(fn, args)
        self.future = future
        self.loop = loop

    def run(self) -> None:
        if self.future.cancelled():  # its awaiter gave up before the call started
            return
        result: Any = None
        error: BaseException | None = None
        try:
            result = self.fn(*self.args)
        except BaseException as exc:
            error = exc
        self._tell(_settle, self.future, result, error)

    def cancel(self) -> None:
        self._tell(_cancel, self.future)

    def _tell(self, callback: Callable[..., None], *args: Any) -> None:
        # A loop that has closed raises: nobody awaits the call any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(callback, *args)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _cancel(future: asyncio.Future[Any]) -> None:
    future.cancel()
