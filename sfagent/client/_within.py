"""`within(seconds)`: end the awaits inside a block when time runs out, as anyio's `move_on_after`.

The async client waits under such a block once per try and once per stream read, so its cost
is paid per chunk: asyncio's own `asyncio.timeout` (Python 3.11+) costs about a third of an
anyio cancel scope there (measured: ~6 us against ~18 us per use). Python 3.10 has no
`asyncio.timeout`, and a hand-made one cannot tell its own cancellation from a caller's
without `Task.uncancel` (3.11), so 3.10 keeps anyio's scope.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["ReadTimedOut", "ReadTimer", "Within", "within"]

T = TypeVar("T")


class Within:
    """An async context manager that swallows the expiry it caused and says so in `expired`."""

    __slots__ = ("_scope", "expired")

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._scope: Any
        if sys.version_info >= (3, 11):
            self._scope = asyncio.timeout(seconds if math.isfinite(seconds) else None)
        else:  # pragma: no cover - exercised on 3.10 only
            import anyio

            self._scope = anyio.move_on_after(seconds)

    async def __aenter__(self) -> Within:
        if sys.version_info >= (3, 11):
            await self._scope.__aenter__()
        else:  # pragma: no cover
            self._scope.__enter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if sys.version_info >= (3, 11):
            try:
                await self._scope.__aexit__(exc_type, exc, tb)
            except TimeoutError as raised:
                if raised is exc:  # a TimeoutError from inside the block, not the expiry
                    raise
                self.expired = True
                return True
            return False
        swallowed = bool(self._scope.__exit__(exc_type, exc, tb))  # pragma: no cover
        self.expired = self._scope.cancelled_caught  # pragma: no cover
        return swallowed  # pragma: no cover


def within(seconds: float) -> Within:
    """End the block's awaits after `seconds` (``inf``: never); check ``.expired`` after."""
    return Within(seconds)


class ReadTimer:
    """One timer for a stream's whole deadline, instead of a `within` around every read.

    A stream is read chunk by chunk; wrapping each read in its own timeout costs a timer and a
    context per chunk. This arms one timer for the stream: when it fires, it cancels the task
    that is reading (if one is), and `read` turns that cancellation into `ReadTimedOut`, while a
    caller's own cancellation passes through (told apart with `Task.uncancel`, Python 3.11+;
    `available` is false on 3.10, where streams keep `within`).
    """

    available = sys.version_info >= (3, 11)

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._reader: asyncio.Task[Any] | None = None
        self._cancelled: asyncio.Task[Any] | None = None
        self._handle = None
        if math.isfinite(seconds):
            self._handle = asyncio.get_running_loop().call_later(max(seconds, 0.0), self._fire)

    def _fire(self) -> None:
        self.expired = True
        if self._reader is not None:
            self._cancelled = self._reader
            self._reader.cancel()

    async def read(self, pending: Awaitable[T]) -> T:
        """Await `pending`; raise `ReadTimedOut` if the timer ends it (or has already fired)."""
        if self.expired:
            raise ReadTimedOut
        task = asyncio.current_task()
        self._reader = task
        try:
            return await pending
        except asyncio.CancelledError:
            if sys.version_info >= (3, 11):
                if task is not None and self._cancelled is task and task.uncancel() == 0:
                    raise ReadTimedOut from None  # ours alone: the deadline, not the caller
            raise
        finally:
            self._reader = None

    def close(self) -> None:
        """Disarm the timer."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class ReadTimedOut(Exception):
    """The stream's deadline passed during (or before) a read."""
