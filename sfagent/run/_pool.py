"""The worker threads sync tools run on: one bounded pool per agent, made on first use.

Both drivers send sync work here (the async driver instead of the event loop's default
executor, which has only a handful of threads). A call its driver stopped waiting for keeps
its thread until the function returns (a thread cannot be killed), so a tool that hangs
holds one worker; the bound keeps such tools from piling up threads without end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TOOL_THREADS = 32
"""Worker threads per agent for sync tools when `max_concurrency` does not say."""


class ToolThreads:
    """A bounded thread pool, started lazily.

    Args:
        size: The most threads it runs at once; further calls wait their turn.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The pool (made on first use)."""
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self.size, thread_name_prefix="sfagent-tool"
                    )
        return self._executor

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Run ``fn(*args)`` on a worker thread."""
        return self.executor.submit(fn, *args)

    def shutdown(self) -> None:
        """Stop accepting work; threads still running finish on their own."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
