"""How much does the agent loop cost? Measure it against a hand-written raw httpx loop.

Every run is the same conversation: the model asks for one call of ``lookup(city, day)``, the
tool runs, its result goes back, N times over, then the model answers in text. The loopback
server (`sfagent.testing.LoopbackServer`) plays the model; it runs in a *separate process*, so
its CPU time is not the client's and the two do not share a GIL.

The floor does the same exchanges by hand: JSON messages built as dicts, POSTed with httpx,
``json.loads``-ed, the same Python function called, the tool message appended.

1. Per-turn overhead, no server latency: ms per tool round of `Agent.run_sync`, `Agent.run`,
   `Agent.stream_sync` and `Agent.stream` against the matching floor (sync/async, plain or
   streamed), median over many runs. Target: at most 1.3x the floor.
2. Concurrency, 50 ms server latency: N concurrent runs of 3 tool turns (4 model requests) with
   ``await agent.run()`` (one default `Agent` shared by all runs) against the floor (one shared
   `httpx.AsyncClient`). Each measurement runs in a fresh subprocess, so its peak RSS is its own.
   Target: wall time at most 1.5x the floor's.
3. Import time of ``sfagent`` in a fresh interpreter.

Run:  .venv/bin/python benchmarks/bench_agent.py [--quick]

Prints markdown tables (about two minutes; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import httpx

MODEL = "deepseek-ai/DeepSeek-V3"
API_KEY = "sk-bench"
LONG = httpx.Timeout(120.0)
FLOOR_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
"""The floor's pool (httpx's default), the fastest tried: httpx 0.28's pool slows as it grows."""
_ROUNDS = re.compile(r"rounds=(\d+)")


# --- the workload -----------------------------------------------------------------------------


def lookup(city: str, day: int) -> str:
    """Look up the weather.

    Args:
        city: The city.
        day: Days from today.
    """
    return f"{city}: sunny, 21 C on day {day}"


async def lookup_async(city: str, day: int) -> str:
    """Look up the weather.

    Args:
        city: The city.
        day: Days from today.
    """
    return f"{city}: sunny, 21 C on day {day}"


FUNCTIONS: dict[str, Callable[..., Any]] = {"lookup": lookup}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look up the weather.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "The city."},
                    "day": {"type": "integer", "description": "Days from today."},
                },
                "required": ["city", "day"],
                "additionalProperties": False,
            },
        },
    }
]


def prompt(rounds: int) -> str:
    return f"What is the weather in Paris? Check it rounds={rounds} times."


def responder(request: Any) -> Any:
    """The scripted model: one tool call per request until the prompt's rounds are done."""
    from sfagent.testing import Reply, ScriptedToolCall

    messages = request.json.get("messages", [])
    wanted = next(
        int(m.group(1))
        for message in messages
        if message.get("role") == "user" and (m := _ROUNDS.search(str(message.get("content"))))
    )
    done = sum(1 for message in messages if message.get("role") == "tool")
    if done < wanted:
        call = ScriptedToolCall("lookup", {"city": "Paris", "day": done}, id=f"call_{done}")
        return Reply(tool_calls=[call])
    return Reply(text=f"Sunny in Paris all {wanted} days.")


def serve(latency: float) -> None:
    """Child process: serve until stdin closes; the first stdout line is the base URL."""
    from sfagent.testing import LoopbackServer, Reply

    def answer(request: Any) -> Any:
        if request.json.get("model") == STATS_MODEL:  # the parent asks what the server saw
            seen = {"connections": server.connections, "requests": len(server.requests)}
            return Reply(text=json.dumps(seen))
        return responder(request)

    with LoopbackServer(answer, latency=latency) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()


STATS_MODEL = "bench/stats"


class Server:
    """The loopback server in a subprocess."""

    def __init__(self, latency: float) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.base_url = self._proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            raise RuntimeError(f"the server did not start: {self.base_url!r}")

    def stats(self) -> dict[str, int]:
        """TCP connections accepted and requests answered so far (this question included)."""
        body = {"model": STATS_MODEL, "messages": [{"role": "user", "content": "stats"}]}
        reply = httpx.post(f"{self.base_url}/chat/completions", json=body, timeout=30)
        seen: dict[str, int] = json.loads(reply.json()["choices"][0]["message"]["content"])
        return seen

    def cpu(self) -> float:
        """CPU seconds the server process has used so far (Linux; NaN elsewhere)."""
        try:
            with open(f"/proc/{self._proc.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)


# --- the raw httpx floor ----------------------------------------------------------------------


class Conversation:
    """The floor's bookkeeping: the messages, the request body, running the tool calls."""

    def __init__(self, rounds: int) -> None:
        self.messages: list[dict[str, Any]] = [{"role": "user", "content": prompt(rounds)}]

    def body(self, stream: bool = False) -> dict[str, Any]:
        body = {"model": MODEL, "messages": self.messages, "tools": TOOLS}
        if stream:
            body["stream"] = True
        return body

    def absorb(self, message: dict[str, Any]) -> str | None:
        """Append the answer and the tool results; returns the final text, if it is final."""
        calls = self._answer(message)
        if calls is None:
            return str(message.get("content"))
        for call in calls:
            function = call["function"]
            result = FUNCTIONS[function["name"]](**json.loads(function["arguments"]))
            self.messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        return None

    async def absorb_on(self, threads: Executor, message: dict[str, Any]) -> str | None:
        """`absorb`, running each sync tool on a worker thread as an async loop must (a sync
        function called inline would block every other run on the loop)."""
        calls = self._answer(message)
        if calls is None:
            return str(message.get("content"))
        loop = asyncio.get_running_loop()
        for call in calls:
            function = call["function"]
            arguments = json.loads(function["arguments"])
            work = functools.partial(FUNCTIONS[function["name"]], **arguments)
            result = await loop.run_in_executor(threads, work)
            self.messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        return None

    def _answer(self, message: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Append the assistant message; its tool calls, or ``None`` when it is the answer."""
        calls = message.get("tool_calls")
        assistant = {"role": "assistant", "content": message.get("content") or ""}
        if calls:
            assistant["tool_calls"] = calls
        self.messages.append(assistant)
        return calls or None


class Fold:
    """The floor's stream accumulator: SSE lines to the assistant message."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}

    def feed(self, line: str) -> None:
        if not line.startswith("data: ") or line == "data: [DONE]":
            return
        for choice in json.loads(line[6:])["choices"]:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.content.append(delta["content"])
            for part in delta.get("tool_calls") or ():
                slot = self.calls.setdefault(
                    part["index"],
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = part.get("id") or slot["id"]
                function = part.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.calls:
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        return message


HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def floor_sync(client: httpx.Client, url: str, rounds: int) -> str:
    chat = Conversation(rounds)
    while True:
        response = client.post(url, json=chat.body(), headers=HEADERS)
        response.raise_for_status()
        final = chat.absorb(response.json()["choices"][0]["message"])
        if final is not None:
            return final


def floor_stream_sync(client: httpx.Client, url: str, rounds: int) -> str:
    chat = Conversation(rounds)
    while True:
        fold = Fold()
        with client.stream("POST", url, json=chat.body(True), headers=HEADERS) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                fold.feed(line)
        final = chat.absorb(fold.message())
        if final is not None:
            return final


async def floor_async(
    client: httpx.AsyncClient, url: str, rounds: int, threads: Executor | None = None
) -> str:
    chat = Conversation(rounds)
    while True:
        response = await client.post(url, json=chat.body(), headers=HEADERS)
        response.raise_for_status()
        message = response.json()["choices"][0]["message"]
        final = chat.absorb(message) if threads is None else await chat.absorb_on(threads, message)
        if final is not None:
            return final


async def floor_stream_async(
    client: httpx.AsyncClient, url: str, rounds: int, threads: Executor | None = None
) -> str:
    chat = Conversation(rounds)
    while True:
        fold = Fold()
        async with client.stream("POST", url, json=chat.body(True), headers=HEADERS) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                fold.feed(line)
        message = fold.message()
        final = chat.absorb(message) if threads is None else await chat.absorb_on(threads, message)
        if final is not None:
            return final


def expected(rounds: int) -> str:
    return f"Sunny in Paris all {rounds} days."


def make_agent(base_url: str, *, async_tool: bool = False) -> Any:
    from sfagent.agent import Agent
    from sfagent.tools import tool

    function = tool(lookup_async, name="lookup") if async_tool else lookup
    return Agent(MODEL, tools=[function], api_key=API_KEY, base_url=base_url)


# --- 1. per-turn overhead ---------------------------------------------------------------------

SyncRun = Callable[[], str]
AsyncRun = Callable[[], Awaitable[str]]
Timing = tuple[float, float]  # (wall s, CPU s) per run


def _medians(samples: dict[str, list[Timing]]) -> dict[str, Timing]:
    return {
        name: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for name, values in samples.items()
    }


def _median_sync(runners: dict[str, SyncRun], repeat: int, warmup: int) -> dict[str, Timing]:
    """Median wall and CPU seconds per run; runners interleaved so drift hits all alike."""
    samples: dict[str, list[Timing]] = {name: [] for name in runners}
    for i in range(warmup + repeat):
        for name, run in runners.items():
            cpu, start = time.process_time(), time.perf_counter()
            run()
            if i >= warmup:
                samples[name].append((time.perf_counter() - start, time.process_time() - cpu))
    return _medians(samples)


async def _median_async(
    runners: dict[str, AsyncRun], repeat: int, warmup: int
) -> dict[str, Timing]:
    samples: dict[str, list[Timing]] = {name: [] for name in runners}
    for i in range(warmup + repeat):
        for name, run in runners.items():
            cpu, start = time.process_time(), time.perf_counter()
            await run()
            if i >= warmup:
                samples[name].append((time.perf_counter() - start, time.process_time() - cpu))
    return _medians(samples)


def _check(name: str, output: str, rounds: int) -> str:
    if output != expected(rounds):
        raise RuntimeError(f"{name} answered {output!r}")
    return output


def per_turn_sync(base_url: str, rounds: int, repeat: int, warmup: int) -> dict[str, Timing]:
    url = f"{base_url}/chat/completions"
    agent = make_agent(base_url)
    text = prompt(rounds)

    def run_sync() -> str:
        return _check("run_sync", str(agent.run_sync(text).output), rounds)

    def stream_sync() -> str:
        events = list(agent.stream_sync(text))
        return _check("stream_sync", str(events[-1].result.output), rounds)

    with httpx.Client(timeout=LONG) as client:
        runners: dict[str, SyncRun] = {
            "floor_sync": lambda: _check("floor", floor_sync(client, url, rounds), rounds),
            "run_sync": run_sync,
            "floor_stream_sync": lambda: floor_stream_sync(client, url, rounds),
            "stream_sync": stream_sync,
        }
        try:
            return _median_sync(runners, repeat, warmup)
        finally:
            agent.close()


async def per_turn_async(base_url: str, rounds: int, repeat: int, warmup: int) -> dict[str, Timing]:
    from sfagent.client._transport import KeepAliveTransport

    url = f"{base_url}/chat/completions"
    agent = make_agent(base_url)
    agent_async_tool = make_agent(base_url, async_tool=True)
    text = prompt(rounds)

    async def run() -> str:
        return _check("run", str((await agent.run(text)).output), rounds)

    async def run_async_tool() -> str:
        return _check("run", str((await agent_async_tool.run(text)).output), rounds)

    async def stream() -> str:
        last = None
        async for last in agent.stream(text):  # noqa: B007 - the last event is the result
            pass
        return _check("stream", str(last.result.output), rounds)  # type: ignore[union-attr]

    client = httpx.AsyncClient(timeout=LONG, limits=FLOOR_LIMITS)
    same = httpx.AsyncClient(timeout=LONG, transport=KeepAliveTransport())
    threads = ThreadPoolExecutor(max_workers=32)
    runners: dict[str, AsyncRun] = {
        "floor_async": lambda: floor_async(client, url, rounds),
        "floor_async_same": lambda: floor_async(same, url, rounds),
        "floor_async_same_thread": lambda: floor_async(same, url, rounds, threads),
        "run": run,
        "run_async_tool": run_async_tool,
        "floor_stream_async": lambda: floor_stream_async(client, url, rounds),
        "floor_stream_async_same": lambda: floor_stream_async(same, url, rounds),
        "floor_stream_async_same_thread": lambda: floor_stream_async(same, url, rounds, threads),
        "stream": stream,
    }
    try:
        return await _median_async(runners, repeat, warmup)
    finally:
        await client.aclose()
        await same.aclose()
        threads.shutdown()
        await agent.aclose()
        await agent_async_tool.aclose()


PER_TURN_ROWS = [
    # (row label, sfagent key, raw httpx floor key, floor on sfagent's own transport)
    ("`Agent.run_sync`", "run_sync", "floor_sync", "floor_sync"),
    ("`await Agent.run`", "run", "floor_async", "floor_async_same_thread"),
    ("`await Agent.run`, async tool", "run_async_tool", "floor_async", "floor_async_same"),
    ("`Agent.stream_sync`", "stream_sync", "floor_stream_sync", "floor_stream_sync"),
    ("`Agent.stream`", "stream", "floor_stream_async", "floor_stream_async_same_thread"),
    ("`Agent.stream`, inline floor", "stream", "floor_stream_async", "floor_stream_async_same"),
    ("`await Agent.run`, inline floor", "run", "floor_async", "floor_async_same"),
]


def report_per_turn(args: argparse.Namespace) -> None:
    rounds, repeat, warmup = args.rounds, args.repeat, 3
    with Server(0.0) as server:
        times = per_turn_sync(server.base_url, rounds, repeat, warmup)
        times.update(asyncio.run(per_turn_async(server.base_url, rounds, repeat, warmup)))
    wall = {name: w / rounds * 1000 for name, (w, _) in times.items()}
    cpu = {name: c / rounds * 1e6 for name, (_, c) in times.items()}
    print(f"## 1. Per-turn overhead ({rounds} tool rounds + final answer per run, 0 ms latency)\n")
    print(f"ms per tool round (run time / {rounds}), median of {repeat} interleaved runs after")
    print(f"{warmup} warm-up runs; the server runs in its own process. *Raw floor*: plain httpx")
    print("(`httpx.Client` / `httpx.AsyncClient`), streamed rows parse SSE by hand. *Same")
    print("transport*: the raw loop on the transport sfagent uses (async: `httpx.AsyncClient` on")
    print("sfagent's `KeepAliveTransport`). With a sync tool, an async run calls it on a worker")
    print("thread (inline, it would stall every other run on the loop), so the async floor does")
    print("too; the *inline floor* rows compare with a floor that calls it inline.")
    print("CPU: the client process, us per round.")
    print("Target: <= 1.2x the same-transport floor.\n")
    print(
        "| driver | sfagent ms | raw floor ms | x raw floor | same-transport floor ms "
        "| x same transport | CPU us sfagent / same-transport floor |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, ours, raw, same in PER_TURN_ROWS:
        print(
            f"| {label} | {wall[ours]:.2f} | {wall[raw]:.2f} | {wall[ours] / wall[raw]:.2f}x "
            f"| {wall[same]:.2f} | {wall[ours] / wall[same]:.2f}x "
            f"| {cpu[ours]:.0f} / {cpu[same]:.0f} |"
        )
    print(flush=True)


# --- 2. concurrency -----------------------------------------------------------------------------


def _client_for(impl: str) -> Any:
    if impl == "floor":
        return httpx.AsyncClient(timeout=LONG, limits=FLOOR_LIMITS)
    if impl == "floor_keepalive":
        from sfagent.client._transport import KeepAliveTransport

        return httpx.AsyncClient(timeout=LONG, transport=KeepAliveTransport())
    from httpx_aiohttp import AiohttpTransport

    return httpx.AsyncClient(timeout=LONG, transport=AiohttpTransport(limits=FLOOR_LIMITS))


async def _concurrent(impl: str, base_url: str, runs: int, rounds: int) -> tuple[float, float]:
    """Wall and CPU time of `runs` concurrent runs, after one warm-up run (lazy imports, first
    connection)."""
    url = f"{base_url}/chat/completions"
    if impl.startswith("sfagent"):
        from sfagent.agent import Agent
        from sfagent.client import AsyncSiliconFlow

        if impl == "sfagent":
            agent = make_agent(base_url)
        else:  # sfagent on the floor's own transport
            http = _client_for("floor")
            client = AsyncSiliconFlow(api_key=API_KEY, base_url=base_url, http_client=http)
            agent = Agent(MODEL, tools=[lookup], client=client)

        async def one() -> str:
            return str((await agent.run(prompt(rounds))).output)

        close: Callable[[], Awaitable[None]] = agent.aclose
        if impl != "sfagent":
            close = http.aclose
    else:
        raw = _client_for(impl)

        async def one() -> str:
            return await floor_async(raw, url, rounds)

        close = raw.aclose
    try:
        await one()
        cpu, start = time.process_time(), time.perf_counter()
        outputs = await asyncio.gather(*(one() for _ in range(runs)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await close()
    if set(outputs) != {expected(rounds)}:
        raise RuntimeError(f"{impl}: unexpected answers {set(outputs)}")
    return wall, cpu


def client_child(impl: str, base_url: str, runs: int, rounds: int) -> None:
    """Child process: one concurrency measurement, printed as JSON."""
    wall, cpu = asyncio.run(_concurrent(impl, base_url, runs, rounds))
    print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": _peak_rss_mb()}))


def _peak_rss_mb() -> float:
    # This process's own high-water mark. ru_maxrss survives execve on Linux, so a child
    # would report its parent's peak when that is larger.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_concurrent(impl: str, server: Server, runs: int, rounds: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--client", impl, server.base_url, str(runs), str(rounds)]
    server_cpu, before = server.cpu(), server.stats()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} x {runs} failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["server_cpu"] = server.cpu() - server_cpu
    after = server.stats()
    # Warm-up included; the stats question itself is one connection and one request.
    connections = after["connections"] - before["connections"] - 1
    result["conn_per_request"] = connections / (after["requests"] - before["requests"] - 1)
    return result


CONCURRENT_IMPLS = {
    "floor": "raw `httpx.AsyncClient` (the floor)",
    "floor_aiohttp": "raw `httpx.AsyncClient` + `AiohttpTransport`",
    "floor_keepalive": "raw `httpx.AsyncClient` + sfagent's `KeepAliveTransport`",
    "sfagent": "sfagent `await Agent.run`, defaults",
    "sfagent_httpx": "sfagent on the floor's `httpx.AsyncClient`",
}
SLOW = 8.0
"""Seconds: a sample slower than this is not repeated (the order is clear, repeats cost minutes)."""


CONCURRENCY_NOTES = """\
CPU: the client process during the timed runs (after one warm-up run). Peak RSS: the whole
client process (its `VmHWM`, imports included). The floor is one shared `httpx.AsyncClient` with
httpx's default `Limits(100, keepalive 20)`, the fastest of the limits tried (unbounded,
200/200, 100/100, 50/50 and 20/20 are all slower with httpx 0.28's pool). Server CPU: the
loopback server process during the measurement (warm-up included); far below the wall time,
so the server is not the bottleneck. Target: sfagent wall <= 1.5x the floor's.
"""


def report_concurrency(args: argparse.Namespace) -> None:
    rounds, latency = 3, args.latency
    print(f"## 2. Concurrency ({rounds} tool turns + final answer = {rounds + 1} requests per run,")
    print(f"{latency * 1000:.0f} ms server latency; ideal wall {(rounds + 1) * latency:.2f} s)\n")
    print(f"Median of {args.crepeat} fresh subprocesses (1 when a sample takes > {SLOW:g} s).")
    print(CONCURRENCY_NOTES)
    print(
        "| runs | client | wall s | x floor | x aiohttp floor | CPU s | peak RSS MB "
        "| server CPU s | connections per request |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with Server(latency) as server:
        for runs in args.concurrency:
            results: dict[str, dict[str, float]] = {}
            for impl in CONCURRENT_IMPLS:
                samples = [measure_concurrent(impl, server, runs, rounds)]
                while len(samples) < args.crepeat and samples[0]["wall"] < SLOW:
                    samples.append(measure_concurrent(impl, server, runs, rounds))
                results[impl] = {
                    key: statistics.median(s[key] for s in samples) for key in samples[0]
                }
                results[impl]["n"] = len(samples)
            floor, aio = results["floor"]["wall"], results["floor_aiohttp"]["wall"]
            for impl, label in CONCURRENT_IMPLS.items():
                r = results[impl]
                once = " (1 sample)" if r["n"] < args.crepeat else ""
                print(
                    f"| {runs} | {label} | {r['wall']:.2f}{once} | {r['wall'] / floor:.2f}x "
                    f"| {r['wall'] / aio:.2f}x | {r['cpu']:.2f} | {r['rss_mb']:.0f} "
                    f"| {r['server_cpu']:.2f} | {r['conn_per_request']:.3f} |",
                    flush=True,
                )
    print()


# --- 3. import time -----------------------------------------------------------------------------

_DEFINE = """
@tool
def lookup(city: str, day: int = 0) -> str:
    'Weather for a city.'
    return city
agent = Agent("deepseek-ai/DeepSeek-V3", tools=[lookup], api_key="sk-bench")
"""
_FIRST_RUN = """
class Fixed:
    def complete(self, request, *, timeout=None):
        from sfagent import ChatCompletion
        choice = {'message': {'role': 'assistant', 'content': 'hi'}, 'finish_reason': 'stop'}
        return ChatCompletion.model_validate({'choices': [choice]})
    stream = complete_async = stream_async = complete
Agent(Fixed(), tools=[lookup]).run_sync('hello')
"""
IMPORTS = {
    "httpx, pydantic, jsonschema, docstring_parser (the dependencies)": (
        "import httpx, pydantic, jsonschema, docstring_parser"
    ),
    "`import sfagent`": "import sfagent",
    "`from sfagent import Agent, tool` (target <= 150 ms)": "from sfagent import Agent, tool",
    "... + define one `@tool` and an HTTP `Agent`": "from sfagent import Agent, tool" + _DEFINE,
    "... + a first `run_sync` on an in-process model": (
        "from sfagent import Agent, tool" + _DEFINE + _FIRST_RUN
    ),
}
"""What a script pays before its work starts: each step loads what it first needs."""


def import_time(statement: str, repeat: int) -> float:
    code = f"import time\nt = time.perf_counter()\n{statement}\nprint(time.perf_counter() - t)"
    samples = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        samples.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(samples) * 1000


def report_imports(repeat: int) -> None:
    print(f"## 3. Import time (fresh interpreter, median of {repeat})\n")
    print("| statement | ms |\n|---|---|")
    for label, statement in IMPORTS.items():
        print(f"| {label} | {import_time(statement, repeat):.0f} |", flush=True)
    print()


# --- main ---------------------------------------------------------------------------------------


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> Iterable[str]:
    yield f"# sfagent agent benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n"
    yield f"- Python {platform.python_version()} ({platform.python_implementation()}), "
    yield f"{platform.system()} {platform.release()}, {platform.machine()}\n"
    yield f"- CPU: {_cpu_model()}, {os.cpu_count()} logical cores\n"
    packages = ("sfagent", "httpx", "httpcore", "httpx-aiohttp", "aiohttp", "pydantic")
    yield "- " + ", ".join(f"{p} {_version(p)}" for p in packages) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="tool rounds per per-turn run")
    parser.add_argument("--repeat", type=int, default=30, help="per-turn runs measured")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--crepeat", type=int, default=3, help="subprocesses per measurement")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    parser.add_argument("--skip", nargs="*", default=[], choices=["turn", "concurrency", "import"])
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.crepeat, args.concurrency = 5, 1, [200]
    print("".join(machine_info()))
    if "turn" not in args.skip:
        report_per_turn(args)
    if "concurrency" not in args.skip:
        report_concurrency(args)
    if "import" not in args.skip:
        report_imports(3 if args.quick else 7)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(float(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
