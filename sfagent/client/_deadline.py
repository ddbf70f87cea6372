"""The total time one call may take, and the watchdog that holds blocked sync reads to it.

httpx's timeouts are per phase and per read: a server that sends one byte just before each read
timeout keeps a call alive forever. A `Deadline` bounds the whole call: every try, every backoff
wait, the wait for headers, and the whole body or stream. The clients give httpx per-phase
timeouts never longer than the time left (`Deadline.phases`), and then:

- the async client wraps every wait in a cancel scope that ends at the deadline;
- the sync client cannot interrupt a blocking read from its own thread, so one shared daemon
  thread (`Watchdog`) keeps a heap of deadlines and, when one passes, shuts down the socket the
  call is reading from (``shutdown`` wakes a blocked ``recv``); the read error that follows is
  reported as `APITimeoutError`. A `Guard` tracks which socket that is: the one a new connection
  opened (httpcore's ``connect_tcp`` trace event), then the one the response came on, and never
  one handed back to the pool (it is let go at httpcore's ``response_closed`` event, before the
  connection is released). HTTP/2 connections are shared by several requests, so they are
  never shut down; there the per-read timeouts are the bound.

Arming and disarming cost a lock and a heap push each (deadlines mostly arrive in order, so the
thread is rarely woken), about a microsecond per request.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from sfagent.exceptions import APITimeoutError, ConfigurationError

__all__ = ["Deadline", "Guard", "Watchdog", "socket_of", "total_seconds"]

Phases = dict[str, float | None]


def total_seconds(total_timeout: float | None, timeout: object, default: float) -> float:
    """A call's total bound: `total_timeout` if given, else `timeout` if it is a number of
    seconds (a plain number bounds the whole call too), else `default`.

    Raises:
        ConfigurationError: For a `total_timeout` that is not a number above zero.
    """
    if total_timeout is not None:
        number = isinstance(total_timeout, (int, float)) and not isinstance(total_timeout, bool)
        if not number or not total_timeout > 0:
            raise ConfigurationError(
                "total_timeout must be a number of seconds above 0 (math.inf for no bound), "
                f"got {total_timeout!r}"
            )
        return float(total_timeout)
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        return float(timeout)
    return default


class Deadline:
    """The bound on one call, started when the call starts.

    Args:
        total: Seconds the whole call may take; ``math.inf`` for no bound.
        what: How errors name the call, e.g. ``"POST https://.../chat/completions"``.
    """

    __slots__ = ("at", "guard", "total", "what")

    def __init__(self, total: float, what: str) -> None:
        self.total = total
        self.what = what
        self.at = time.monotonic() + total
        """The `time.monotonic` time the call must end by (``inf`` for none)."""
        self.guard: Guard | None = None
        """The sync client's watchdog entry, once armed."""

    @property
    def bounded(self) -> bool:
        """False when the call has no total bound."""
        return self.at != math.inf

    def left(self) -> float:
        """Seconds left (negative once past)."""
        return self.at - time.monotonic()

    def phases(self, base: Mapping[str, float | None]) -> Phases:
        """httpx's per-phase timeouts, each cut to the time left.

        Args:
            base: The timeouts asked for (``httpx.Timeout.as_dict()``; ``None`` is no limit).

        Raises:
            APITimeoutError: When no time is left.
        """
        if not self.bounded:
            return dict(base)
        left = self.left()
        if left <= 0:
            raise self.error()
        return {name: left if v is None or v > left else v for name, v in base.items()}

    def error(self, *, partial: Any = None) -> APITimeoutError:
        """The error for a call that ran out of time (not raised).

        Args:
            partial: For a stream, what was received so far.
        """
        return APITimeoutError(
            f"{self.what} did not finish within its total timeout of {self.total:g} s (every "
            "try, backoff wait and byte of the answer counts; set it with total_timeout=)",
            partial=partial,
        )

    # --- the sync client's watchdog -----------------------------------------------------------

    def arm(self, find: Callable[[], socket.socket | None] | None = None) -> Guard | None:
        """Have the watchdog shut the call's socket down at the deadline (sync client only).

        Args:
            find: Looks up the socket serving the call, for when no trace event told (a reused
                connection, before its headers arrive); called only at the deadline.

        Returns:
            The guard to pass httpcore's trace events and the response to, or ``None`` for a
            call without a bound.
        """
        if self.bounded and self.guard is None:
            self.guard = WATCHDOG.arm(self.at, find)
        return self.guard

    def watch(self, network_stream: object, http_version: str) -> None:
        """The response's headers arrived: its socket is the one to shut down (sync only)."""
        if self.guard is not None:
            self.guard.watch(network_stream, http_version)

    @property
    def fired(self) -> bool:
        """Whether the watchdog shut the call's socket down."""
        return self.guard is not None and self.guard.fired

    def hit(self) -> bool:
        """Whether the call ran out of time: the watchdog fired, or the deadline passed."""
        guard = self.guard
        return (guard is not None and guard.fired) or (self.bounded and self.left() <= 0)

    def shorten(self, seconds: float) -> None:
        """Bring the deadline forward to at most `seconds` from now (draining a finished body)."""
        at = time.monotonic() + seconds
        if at < self.at:
            self.at = at
            if self.guard is not None:
                WATCHDOG.rearm(self.guard, at)

    def close(self) -> None:
        """Disarm the watchdog: the call is over (idempotent)."""
        guard, self.guard = self.guard, None
        if guard is not None:
            WATCHDOG.disarm(guard)


def socket_of(stream: object) -> socket.socket | None:
    """The socket under an httpcore network stream, if it tells."""
    get = getattr(stream, "get_extra_info", None)
    if get is None:
        return None
    try:
        sock = get("socket")
    except Exception:  # a stream type that has no such info
        return None
    return sock if isinstance(sock, socket.socket) else None


class Guard:
    """One armed deadline: which socket to shut down when it passes.

    Its `trace` method is an httpcore trace callback (``request.extensions["trace"]``).
    """

    __slots__ = ("_find", "_lock", "at", "done", "fired", "shared", "sock")

    def __init__(self, at: float, find: Callable[[], socket.socket | None] | None) -> None:
        self.at = at
        self._find = find
        self._lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.shared = False  # an HTTP/2 connection: other requests use the same socket
        self.fired = False
        self.done = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace callback: learn and forget the call's socket as it moves."""
        if event.endswith("response_closed.started"):
            with self._lock:  # waits for a shutdown in progress: the socket is ours till now
                self.sock = None
        elif event.endswith("connect_tcp.complete"):
            self._set(socket_of(info.get("return_value")))
        elif event.startswith("http2."):
            self.shared = True

    def watch(self, network_stream: object, http_version: str) -> None:
        """The response has arrived: its stream is the one to shut down (HTTP/1.1 only)."""
        if http_version != "HTTP/1.1":
            self.shared = True
        else:
            self._set(socket_of(network_stream))

    def _set(self, sock: socket.socket | None) -> None:
        if sock is not None:
            with self._lock:
                if not self.done:
                    self.sock = sock

    def expire(self) -> None:
        """The deadline passed: wake the read blocked on the call's socket."""
        with self._lock:
            if self.done:
                return
            self.fired = True
            if self.shared:
                return
            sock = self.sock
            if sock is None and self._find is not None:
                with contextlib.suppress(Exception):
                    sock = self._find()
            if sock is not None:
                # The plain socket's shutdown, also under TLS (SSLSocket's would drop its state
                # under the reading thread); the blocked recv then sees the end of the stream.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        with self._lock:
            self.done = True
            self.sock = None
            self._find = None


class Watchdog:
    """One daemon thread that expires guards at their deadlines; shared by every sync client."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Guard]] = []
        self._seq = itertools.count()
        self._live = 0
        self._thread: threading.Thread | None = None

    def arm(self, at: float, find: Callable[[], socket.socket | None] | None) -> Guard:
        """A new guard that expires at `at` (a `time.monotonic` time)."""
        guard = Guard(at, find)
        with self._cond:
            self._live += 1
            self._push(guard, at)
        return guard

    def rearm(self, guard: Guard, at: float) -> None:
        """Move a guard's deadline earlier."""
        with self._cond:
            guard.at = at
            self._push(guard, at)

    def disarm(self, guard: Guard) -> None:
        """The call ended: the guard never fires (its heap entry is dropped lazily)."""
        guard.cancel()
        with self._cond:
            self._live -= 1
            self._compact()

    def _push(self, guard: Guard, at: float) -> None:
        heap = self._heap
        entry = (at, next(self._seq), guard)
        heapq.heappush(heap, entry)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sfagent-watchdog", daemon=True)
            self._thread.start()
        elif heap[0] is entry:  # earlier than what the thread sleeps towards
            self._cond.notify()
        self._compact()

    def _compact(self) -> None:
        heap = self._heap
        if len(heap) > 1024 and len(heap) > 2 * self._live:  # mostly finished calls
            heap[:] = [e for e in heap if not _stale(e)]
            heapq.heapify(heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                due = self._next_due()
            due.expire()

    def _next_due(self) -> Guard:
        heap = self._heap
        while True:
            while heap and _stale(heap[0]):
                heapq.heappop(heap)
            if not heap:
                self._cond.wait()
                continue
            delay = heap[0][0] - time.monotonic()
            if delay <= 0:
                return heapq.heappop(heap)[2]
            self._cond.wait(delay)


def _stale(entry: tuple[float, int, Guard]) -> bool:
    at, _, guard = entry
    return guard.done or at != guard.at


WATCHDOG = Watchdog()
"""The process's watchdog; its thread starts with the first bounded sync call."""

if hasattr(os, "register_at_fork"):  # a forked child has no watchdog thread: start afresh
    os.register_at_fork(after_in_child=WATCHDOG._reset)
