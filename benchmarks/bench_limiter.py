"""The rate limiter under plenty of demand: are the windows held, and how close to the limits?

Run:  ``python benchmarks/bench_limiter.py [--requests N]``

Prints a markdown table. Each scenario sends 10,000 requests (by default) through the async
`RateLimiter` (``async with limiter.request(estimate) as slot``), as fast as it admits them,
with up to 64 in flight, on an event loop whose clock is virtual: sleeps and timers take no
real time, so hours of traffic take seconds. A request's answer comes after its latency and is
settled with its usage. The scenarios:

- *RPM binds*: 1,000 requests a minute, tokens plentiful.
- *TPM binds*: 200,000 tokens a minute, each request estimated at 3,000 and using 1,800.
- *the issue's shape*: RPM 6,000 at 50 ms latency, three requests per task (a task of three
  tool turns), so 30,000 requests by default.
- *429s*: the limiter is told RPM 1,000, the server allows 800 (counting refused requests
  too, as SiliconFlow counts failed ones); refused requests are reported and sent again.

The columns: the most requests and tokens any 60-second window saw (at the server, refused
requests included), the achieved rate (what the 60-second windows held on average, for
successful requests or their tokens: windows starting every second from the first send to a
minute before the last, the first window alone in a shorter run), and that rate as a share of
the binding limit.
"""

from __future__ import annotations

import argparse
import asyncio
import selectors
import sys
import time
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sfagent.batch._limiter import RateLimiter, RateLimits

CONCURRENCY = 64


class _VirtualSelector(selectors.DefaultSelector):
    """Where the loop would block for a timer, move virtual time to it instead."""

    def __init__(self, loop: VirtualLoop) -> None:
        super().__init__()
        self._virtual = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:
            return list(super().select(None))
        self._virtual.now += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self.now


@dataclass
class Scenario:
    name: str
    limits: RateLimits
    estimate: int
    actual: int
    latency: float
    server_rpm: int | None = None  # the server's real limit, when below the limiter's
    per_task: int = 1


@dataclass
class Server:
    """Arrivals as the server sees them; refuses past its own RPM, refused ones counting."""

    rpm: int | None
    arrivals: list[tuple[float, int]] = field(default_factory=list)
    recent: deque[float] = field(default_factory=deque)
    refused: int = 0

    def arrive(self, now: float, tokens: int) -> bool:
        self.arrivals.append((now, tokens))
        self.recent.append(now)
        while self.recent and self.recent[0] <= now - 60.0:
            self.recent.popleft()
        if self.rpm is not None and len(self.recent) > self.rpm:
            self.refused += 1
            return False
        return True


async def _run(scenario: Scenario, requests: int, loop: VirtualLoop) -> tuple[Server, list[Any]]:
    limiter = RateLimiter(scenario.limits, clock=loop.time)
    server = Server(scenario.server_rpm)
    done: list[tuple[float, int]] = []
    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            while True:
                async with limiter.request(scenario.estimate) as slot:
                    ok = server.arrive(loop.time(), scenario.actual)
                    await asyncio.sleep(scenario.latency if ok else 0.01)
                    if ok:
                        slot.settle(scenario.actual)
                        done.append((slot.reservation.sent_at, scenario.actual))
                        break
                    slot.settle(0)
                    slot.rate_limited(None)

    # More workers than the cap, so the limiter (not the workers) decides when requests go.
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY * 2)))
    return server, done


def _window_max(events: list[tuple[float, int]], tokens: bool) -> int:
    events = sorted(events)
    best = total = low = 0
    for when, amount in events:
        total += amount if tokens else 1
        while when - events[low][0] >= 60.0:
            total -= events[low][1] if tokens else 1
            low += 1
        best = max(best, total)
    return best


def _window_mean(events: list[tuple[float, int]], tokens: bool) -> float:
    events = sorted(events)
    times = [when for when, _ in events]
    sums = [0, *accumulate(amount if tokens else 1 for _, amount in events)]
    starts, start = [], times[0]
    while start <= max(times[0], times[-1] - 60.0):
        starts.append(start)
        start += 1.0
    held = [sums[bisect_left(times, s + 60.0)] - sums[bisect_left(times, s)] for s in starts]
    return sum(held) / len(held)


def measure(scenario: Scenario, requests: int) -> dict[str, Any]:
    loop = VirtualLoop()
    started = time.perf_counter()
    try:
        server, done = loop.run_until_complete(_run(scenario, requests * scenario.per_task, loop))
    finally:
        loop.close()
    wall = time.perf_counter() - started
    return {
        "max_requests": _window_max(server.arrivals, tokens=False),
        "max_tokens": _window_max(server.arrivals, tokens=True),
        "rpm": _window_mean(done, tokens=False),
        "tpm": _window_mean(done, tokens=True),
        "refused": server.refused,
        "simulated": max(when for when, _ in done),
        "wall": wall,
    }


def scenarios() -> list[Scenario]:
    plenty = 10**9
    return [
        Scenario(
            "RPM binds",
            RateLimits(rpm=1000, tpm=plenty, max_concurrency=CONCURRENCY),
            1500,
            900,
            2.0,
        ),
        Scenario(
            "TPM binds",
            RateLimits(rpm=6000, tpm=200_000, max_concurrency=CONCURRENCY),
            3000,
            1800,
            2.0,
        ),
        Scenario(
            "the issue's shape (RPM 6,000, 50 ms, 3 turns a task)",
            RateLimits(rpm=6000, tpm=plenty, max_concurrency=CONCURRENCY),
            1500,
            900,
            0.05,
            per_task=3,
        ),
        Scenario(
            "429s: told 1,000 RPM, the server allows 800",
            RateLimits(rpm=1000, tpm=plenty, max_concurrency=CONCURRENCY),
            1500,
            900,
            2.0,
            server_rpm=800,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="tasks per scenario")
    options = parser.parse_args()
    print(f"### The rate limiter: {options.requests:,} tasks each, on virtual time\n")
    print(
        "| scenario | binding limit | max requests / 60 s | max tokens / 60 s "
        "| achieved / min | of the limit | 429s | simulated | wall |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for scenario in scenarios():
        got = measure(scenario, options.requests)
        limits = scenario.limits
        if scenario.server_rpm is not None:
            binding, limit, rate = "server RPM", scenario.server_rpm, got["rpm"]
        elif limits.tpm is not None and limits.tpm < 10**9:
            binding, limit, rate = "TPM", limits.tpm, got["tpm"]
        else:
            binding, limit, rate = "RPM", limits.rpm or 0, got["rpm"]
        print(
            f"| {scenario.name} | {binding} {limit:,} | {got['max_requests']:,} "
            f"| {got['max_tokens']:,} | {rate:,.0f} | {rate / limit:.1%} | {got['refused']} "
            f"| {got['simulated'] / 60:.1f} min | {got['wall']:.1f} s |"
        )


if __name__ == "__main__":
    main()
