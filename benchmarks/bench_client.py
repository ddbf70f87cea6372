"""Per-request overhead of SiliconFlow.complete / AsyncSiliconFlow.complete over bare httpx.

Sequential requests to the loopback server (in a child process, no added latency), so the time
per request is the client stack plus the (same) server. "bare httpx" posts the same JSON body
and decodes the answer with ``response.json()``; sfagent builds the body from a `ChatRequest`,
checks the status, parses into a `ChatCompletion` and runs the retry bookkeeping. Target: at
most 1.3x bare httpx.

Run:  .venv/bin/python benchmarks/bench_client.py [--requests 2000] [--repeat 5]
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


def per_request(run: Callable[[], None], requests: int, repeat: int) -> float:
    """Median microseconds per request over ``repeat`` rounds of ``requests`` calls."""
    run()  # warm-up: connections, imports, caches
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(requests):
            run()
        rounds.append((time.perf_counter() - start) / requests * 1e6)
    return statistics.median(rounds)


def sync_rows(url: str, requests: int, repeat: int) -> list[tuple[str, float]]:
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

        def ours_stream() -> None:
            sf.stream(REQUEST).get_final_response()

        return [
            ("bare httpx.Client, post + .json()", per_request(bare, requests, repeat)),
            ("SiliconFlow.complete", per_request(lambda: sf.complete(REQUEST), requests, repeat)),
            (
                "bare httpx.Client, stream + json.loads",
                per_request(bare_stream, requests, repeat),
            ),
            ("SiliconFlow.stream -> final response", per_request(ours_stream, requests, repeat)),
        ]


async def async_per_request(
    run: Callable[[], Awaitable[object]], requests: int, repeat: int
) -> float:
    await run()
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(requests):
            await run()
        rounds.append((time.perf_counter() - start) / requests * 1e6)
    return statistics.median(rounds)


async def async_rows(url: str, requests: int, repeat: int) -> list[tuple[str, float]]:
    from httpx_aiohttp import AiohttpTransport

    rows = []
    for label, transport in (("httpx", None), ("httpx + aiohttp", AiohttpTransport())):
        async with httpx.AsyncClient(transport=transport) as http:
            sf = AsyncSiliconFlow(api_key=KEY, base_url=url, http_client=http)

            async def bare(http: httpx.AsyncClient = http) -> None:
                response = await http.post(f"{url}/chat/completions", content=BODY, headers=HEADERS)
                response.raise_for_status()
                response.json()

            async def ours(sf: AsyncSiliconFlow = sf) -> None:
                await sf.complete(REQUEST)

            rows.append(
                (f"bare {label} AsyncClient", await async_per_request(bare, requests, repeat))
            )
            rows.append(
                (f"AsyncSiliconFlow on {label}", await async_per_request(ours, requests, repeat))
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, httpx {httpx.__version__}; ")
    print(f"{args.requests} sequential requests per round, median of {args.repeat} rounds\n")
    with server_process() as base_url:
        rows = sync_rows(base_url, args.requests, args.repeat)
        rows += asyncio.run(async_rows(base_url, args.requests, args.repeat))
    print("| client | us/request | vs bare |\n|---|---|---|")
    base = 0.0
    for name, cost in rows:
        if name.startswith("bare"):
            base = cost
        print(f"| {name} | {cost:.0f} | {cost / base:.2f}x |")


if __name__ == "__main__":
    main()
