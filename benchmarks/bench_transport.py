"""Which HTTP transport should AsyncSiliconFlow use by default? Measure it.

N concurrent "runs", each three sequential chat-completion requests (an agent's three turns),
against the loopback server (in a child process) answering after a fixed latency. The ideal
wall time is 3 x latency; what is above it is the transport's cost under concurrency. httpx
0.28's default pool (httpcore 1.0) is known to degrade here (encode/httpx#3215).

Run:  .venv/bin/python benchmarks/bench_transport.py [--runs 200 1000] [--latency 0.05] [--repeat 3]

Prints a markdown table (median of the repeats, seconds; lower is better).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from _server_process import server_process

TURNS = 3
BODY = {"model": "deepseek-ai/DeepSeek-V3", "messages": [{"role": "user", "content": "Hello"}]}

Runner = Callable[[str, int, int], Awaitable[None]]
LONG = httpx.Timeout(120.0)  # tuned variants must finish, however slowly


async def _drive_httpx(client: Any, base_url: str, runs: int, turns: int) -> None:
    async def one_run() -> None:
        for _ in range(turns):
            response = await client.post(f"{base_url}/chat/completions", json=BODY)
            response.raise_for_status()
            response.json()

    await asyncio.gather(*(one_run() for _ in range(runs)))


async def httpx_default(base_url: str, runs: int, turns: int) -> None:
    async with httpx.AsyncClient() as client:
        await _drive_httpx(client, base_url, runs, turns)


async def httpx_tuned(base_url: str, runs: int, turns: int) -> None:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits, timeout=LONG) as client:
        await _drive_httpx(client, base_url, runs, turns)


async def httpx_tuned_100(base_url: str, runs: int, turns: int) -> None:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=LONG) as client:
        await _drive_httpx(client, base_url, runs, turns)


async def httpx_aiohttp(base_url: str, runs: int, turns: int) -> None:
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=LONG) as client:
        await _drive_httpx(client, base_url, runs, turns)


async def httpx2_default(base_url: str, runs: int, turns: int) -> None:
    import httpx2

    async with httpx2.AsyncClient(timeout=120.0) as client:
        await _drive_httpx(client, base_url, runs, turns)


async def sfagent_default(base_url: str, runs: int, turns: int) -> None:
    from sfagent.client import AsyncSiliconFlow
    from sfagent.settings import ChatRequest

    request = ChatRequest(BODY["messages"], model=str(BODY["model"]))  # type: ignore[arg-type]
    async with AsyncSiliconFlow(api_key="sk-bench", base_url=base_url, timeout=120.0) as client:

        async def one_run() -> None:
            for _ in range(turns):
                await client.complete(request)

        await asyncio.gather(*(one_run() for _ in range(runs)))


async def bare_asyncio(base_url: str, runs: int, turns: int) -> None:
    """The floor: one keep-alive connection per run, hand-written HTTP/1.1, no pool."""
    url = urlsplit(base_url)
    payload = json.dumps(BODY).encode()
    head = (
        f"POST {url.path}/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode()

    async def one_run() -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            for _ in range(turns):
                writer.write(head + payload)
                raw = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in raw.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                json.loads(await reader.readexactly(length))
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(one_run() for _ in range(runs)))


async def httpx_keepalive(base_url: str, runs: int, turns: int) -> None:
    from sfagent.client._transport import KeepAliveTransport

    transport = KeepAliveTransport()
    async with httpx.AsyncClient(transport=transport, timeout=LONG) as client:
        await _drive_httpx(client, base_url, runs, turns)
    OPENED["g"] = transport.opened


OPENED: dict[str, int] = {}


VARIANTS: dict[str, Runner] = {
    "(a) httpx 0.28 AsyncClient, all defaults": httpx_default,
    "(b) httpx 0.28, Limits(max_connections=100, keepalive=100)": httpx_tuned_100,
    "(b') httpx 0.28, Limits(None, None) (unbounded)": httpx_tuned,
    "(c) httpx 0.28 + httpx_aiohttp.AiohttpTransport": httpx_aiohttp,
    "(d) httpx2 AsyncClient, default limits": httpx2_default,
    "(g) httpx 0.28 + sfagent's KeepAliveTransport": httpx_keepalive,
    "(e) bare asyncio streams (floor)": bare_asyncio,
    "(f) AsyncSiliconFlow.complete, default transport": sfagent_default,
}


def measure(runner: Runner, base_url: str, runs: int, repeat: int) -> str:
    """Median wall time of ``repeat`` rounds, or how the first failing round failed."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        try:
            asyncio.run(runner(base_url, runs, TURNS))
        except Exception as exc:  # a failure is a result too (httpx's PoolTimeout)
            return f"fails: {type(exc).__name__} after {time.perf_counter() - start:.1f} s"
        times.append(time.perf_counter() - start)
        if times[-1] > 10:
            break  # slow enough that repeating only costs minutes: the order is clear
    return f"{statistics.median(times):.2f}" + ("" if len(times) == repeat else " (1 round)")


def measure_sequential(runner: Runner, base_url: str, requests: int) -> float:
    """Microseconds per request for one run of ``requests`` sequential turns, no added latency."""
    start = time.perf_counter()
    asyncio.run(runner(base_url, 1, requests))
    return (time.perf_counter() - start) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="variant letters, e.g. a c d")
    args = parser.parse_args()
    variants = {
        name: run
        for name, run in VARIANTS.items()
        if args.only is None or name[1] in "".join(args.only)
    }
    print(f"Python {platform.python_version()}, {platform.machine()}, httpx {httpx.__version__}")
    print(f"{TURNS} sequential requests per run, server latency {args.latency * 1000:.0f} ms,")
    print(f"ideal {TURNS * args.latency:.2f} s; median of {args.repeat}\n")
    header = "| transport | " + " | ".join(f"{n} runs (s)" for n in args.runs) + " |"
    print(header)
    print("|" + "---|" * (len(args.runs) + 1))
    with server_process(args.latency) as base_url:
        for name, runner in variants.items():
            cells = [measure(runner, base_url, n, args.repeat) for n in args.runs]
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print("\nOne run of 500 sequential requests, no added latency (microseconds per request):\n")
    print("| transport | us/request |\n|---|---|")
    with server_process() as base_url:
        for name, runner in variants.items():
            measure_sequential(runner, base_url, 50)  # warm-up
            cost = measure_sequential(runner, base_url, 500)
            print(f"| {name} | {cost:.0f} |", flush=True)


if __name__ == "__main__":
    main()
