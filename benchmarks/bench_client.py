"""Per-request overhead of SiliconFlow.complete / AsyncSiliconFlow.complete over bare httpx.

Sequential requests to the loopback server (in a child process, no added latency), so the time
per request is the client stack plus the (same) server. "bare httpx" posts the same JSON body
and decodes the answer with ``response.json()``; sfagent builds the body from a `ChatRequest`,
checks the status, parses into a `ChatCompletion` and runs the retry bookkeeping. Target: at
most 1.3x bare httpx.

Run:  .venv/bin/python benchmarks/bench_client.py [--requests 300] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx
from _server_process import server_process

from sfagent.client import AsyncSiliconFlow, SiliconFlow
from sfagent.settings import ChatRequest

KEY = "sk-bench"
REQUEST = ChatRequest([{"role": "user", "content": "Hello"}], model="deepseek-ai/DeepSeek-V3")
BODY = REQUEST.to_json()
STREAM_BODY = json.dumps(REQUEST.to_body() | {"stream": True}).encode()
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


Pair = tuple[str, str, float, float, float]  # bare name, ours name, bare us, ours us, ratio


def _summary(names: tuple[str, str], bare: list[float], ours: list[float], n: int) -> Pair:
    ratios = [o / b for b, o in zip(bare, ours, strict=True)]
    to_us = 1e6 / n
    return (
        *names,
        statistics.median(bare) * to_us,
        statistics.median(ours) * to_us,
        statistics.median(ratios),
    )


def compare(
    names: tuple[str, str],
    bare: Callable[[], object],
    ours: Callable[[], object],
    n: int,
    rounds: int,
) -> Pair:
    """Alternate rounds of ``n`` bare and ``n`` sfagent calls, so load drift hits both alike."""
    bare(), ours()  # warm-up: connections, imports, caches
    times: tuple[list[float], list[float]] = ([], [])
    for round_ in range(rounds):
        order = ((0, bare), (1, ours)) if round_ % 2 == 0 else ((1, ours), (0, bare))
        for slot, run in order:
            start = time.perf_counter()
            for _ in range(n):
                run()
            times[slot].append(time.perf_counter() - start)
    return _summary(names, *times, n)


async def acompare(
    names: tuple[str, str],
    bare: Callable[[], Awaitable[object]],
    ours: Callable[[], Awaitable[object]],
    n: int,
    rounds: int,
) -> Pair:
    """`compare` for coroutines."""
    await bare(), await ours()
    times: tuple[list[float], list[float]] = ([], [])
    for round_ in range(rounds):
        order = ((0, bare), (1, ours)) if round_ % 2 == 0 else ((1, ours), (0, bare))
        for slot, run in order:
            start = time.perf_counter()
            for _ in range(n):
                await run()
            times[slot].append(time.perf_counter() - start)
    return _summary(names, *times, n)


def sync_rows(url: str, n: int, rounds: int) -> list[Pair]:
    with httpx.Client() as http, SiliconFlow(api_key=KEY, base_url=url) as sf:

        def bare() -> None:
            response = http.post(f"{url}/chat/completions", content=BODY, headers=HEADERS)
            response.raise_for_status()
            response.json()

        def bare_stream() -> None:
            # The least a consumer can do: split lines, json.loads each data line.
            with http.stream(
                "POST", f"{url}/chat/completions", content=STREAM_BODY, headers=HEADERS
            ) as r:
                for line in r.iter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        json.loads(line[6:])

        return [
            compare(
                ("httpx.Client post + .json()", "SiliconFlow.complete"),
                bare,
                lambda: sf.complete(REQUEST),
                n,
                rounds,
            ),
            compare(
                ("httpx.Client stream + json.loads per event", "SiliconFlow.stream, final"),
                bare_stream,
                lambda: sf.stream(REQUEST).get_final_response(),
                n,
                rounds,
            ),
        ]


async def async_rows(url: str, n: int, rounds: int) -> list[Pair]:
    from sfagent.client._transport import KeepAliveTransport

    rows = []
    for label, transport in (("httpx", None), ("httpx + KeepAliveTransport", KeepAliveTransport())):
        async with httpx.AsyncClient(transport=transport) as http:
            # The default client (no http_client=) on the same transport: sfagent's own path.
            own = KeepAliveTransport()
            sf = AsyncSiliconFlow(api_key=KEY, base_url=url, http_client=http)
            if transport is not None:
                sf = AsyncSiliconFlow(api_key=KEY, base_url=url, transport=own)

            async def bare(http: httpx.AsyncClient = http) -> None:
                response = await http.post(f"{url}/chat/completions", content=BODY, headers=HEADERS)
                response.raise_for_status()
                response.json()

            async def ours(sf: AsyncSiliconFlow = sf) -> None:
                await sf.complete(REQUEST)

            mode = "on that client" if transport is None else "(default: straight on it)"
            names = (f"{label} AsyncClient post + .json()", f"AsyncSiliconFlow.complete {mode}")
            rows.append(await acompare(names, bare, ours, n, rounds))
            await sf.close()
            await own.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, httpx {httpx.__version__}; rounds of")
    print(f"{args.requests} requests, bare and sfagent alternating, medians of {args.rounds}\n")
    with server_process() as base_url:
        rows = sync_rows(base_url, args.requests, args.rounds)
        rows += asyncio.run(async_rows(base_url, args.requests, args.rounds))
    print("| bare | us/req | sfagent | us/req | ratio (median of rounds) |")
    print("|---|---|---|---|---|")
    for bare, ours, bare_us, ours_us, ratio in rows:
        print(f"| {bare} | {bare_us:.0f} | {ours} | {ours_us:.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
