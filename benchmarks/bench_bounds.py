"""Every call bounded: each hostile server or model → the bound that ends it → the wall time and
peak memory it cost, measured.

The attacker is the raw-socket server of the tests (tests/client/fault_server.py), run in this
process. Each measurement runs in a fresh child process: it makes its client or agent, warms up
with one ordinary exchange (so imports and the first connection are not counted), notes its
peak resident memory (VmHWM) and thread count, meets the attack, and reports the attack's wall
time and how far VmHWM rose above that baseline. Four ways to meet each attack where they apply:
the sync client (`SiliconFlow`), the async client (`AsyncSiliconFlow`, default transport), an
agent on a sync driver and on an async driver (``run_sync``/``run``, or ``stream_sync``/``stream``
for a streamed attack), the agent with ``time_limit`` (3 s) and default caps.

Run:  python benchmarks/bench_bounds.py [--quick]

Prints a markdown table (about 2 minutes; ``--quick``: a 1 s limit, a 256 MiB bomb, a 64 MB body,
the sync client and driver only, about 30 s).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fault server lives with the tests

from tests.client.fault_server import (  # noqa: E402
    Behaviour,
    FaultServer,
    Wire,
    drip,
    endless,
    gzip_zeros_quick,
    respond,
    silent,
)

MIB = 1 << 20
KEY = "sk-bench-bounds"
MODEL = "Qwen/Qwen3-8B"
JSON = {"Content-Type": "application/json"}
SSE = {"Content-Type": "text/event-stream"}
MODES = ["client-sync", "client-async", "agent-sync", "agent-async"]
HEADERS = {
    "client-sync": "`SiliconFlow`",
    "client-async": "`AsyncSiliconFlow`",
    "agent-sync": "agent, sync driver",
    "agent-async": "agent, async driver",
}


@dataclass(frozen=True)
class Config:
    """What a run of the benchmark uses: the time bound, the bomb, the big body."""

    limit: float = 3.0  # the client's total timeout and the agent's time_limit
    slow_tool_limit: float = 2.0
    bomb: int = 4 << 30
    big_body: int = 200_000_000
    modes: tuple[str, ...] = tuple(MODES)

    @classmethod
    def quick(cls) -> Config:
        return cls(1.0, 1.0, 256 * MIB, 64_000_000, ("client-sync", "agent-sync"))


# --- what the server says ----------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str = "stop") -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    body = {"id": "b", "object": "chat.completion", "created": 1, "model": MODEL}
    return json.dumps(body | {"choices": [choice]}).encode()


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "b", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    return b"data: " + json.dumps(body | {"choices": [choice]}).encode() + b"\n\n"


def stream_of(text: str) -> bytes:
    """`text` streamed in 8-character pieces, then the finish reason and ``[DONE]``."""
    parts = [chunk({"role": "assistant", "content": text[:8]})]
    parts += [chunk({"content": text[i : i + 8]}) for i in range(8, len(text), 8)]
    return b"".join(parts) + chunk({}, "stop") + b"data: [DONE]\n\n"


def answer(text: str, stream: bool) -> Behaviour:
    """An ordinary answer (the warm-up, or a turn after the attack)."""
    if stream:
        return respond(stream_of(text), headers=SSE)
    return respond(completion({"content": text}), headers=JSON)


def tool_calls(arguments: list[str], name: str, stream: bool) -> Behaviour:
    calls = [
        {"id": f"c{i}", "type": "function", "function": {"name": name, "arguments": a}}
        for i, a in enumerate(arguments)
    ]
    if stream:
        indexed = [{"index": i, **c} for i, c in enumerate(calls)]
        body = chunk({"role": "assistant", "content": ""}) + chunk({"tool_calls": indexed})
        return respond(body + chunk({}, "tool_calls") + b"data: [DONE]\n\n", headers=SSE)
    message = {"content": "", "tool_calls": calls}
    return respond(completion(message, "tool_calls"), headers=JSON)


def sized_body(size: int) -> Behaviour:
    """A completion whose content makes the body `size` bytes, sent as fast as it is read,
    with its Content-Length (built a block at a time: the server never holds it whole)."""
    head = b'{"id": "b", "object": "chat.completion", "created": 1, "model": "m", "choices": '
    head += b'[{"index": 0, "message": {"role": "assistant", "content": "'
    tail = b'"}, "finish_reason": "stop"}]}'
    filler = size - len(head) - len(tail)
    block = b"x" * (1 << 16)
    fields = {**JSON, "Content-Length": str(size), "Connection": "close"}
    status = "HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"

    def behave(wire: Wire) -> bool:
        if not wire.send(status.encode() + head):
            return False
        left = filler
        while left > 0:
            if not wire.send(block[: min(left, len(block))]):
                return False
            left -= len(block)
        wire.send(tail)
        return False

    return behave


# --- the attacks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    """One hostile behaviour and how each side meets it.

    Attributes:
        name: What the server (or model) does.
        bound: What ends it, in words.
        behaviours: The server's answers after the warm-up, for a streamed request or not.
        stream: Whether it is met by a streamed request (``stream``, ``stream_sync``).
        modes: Which of `MODES` apply.
        client: Extra client arguments (the read-timeout attack sets its phases).
        agent: Extra `Agent` arguments, and which tool it has.
        threads: Whether to sample the thread count.
    """

    name: str
    bound: str
    behaviours: Callable[[Config], list[Behaviour]]
    stream: bool = False
    modes: tuple[str, ...] = tuple(MODES)
    client: Callable[[Config], dict[str, Any]] = lambda config: {}
    agent: Callable[[Config], dict[str, Any]] = lambda config: {}
    tool: str | None = None
    threads: bool = False


def _read_timeout(config: Config) -> float:
    return config.limit / 3


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


AGENT_ONLY = ("agent-sync", "agent-async")
FIRST = chunk({"role": "assistant", "content": "Hello"})
DONE = chunk({}, "stop") + b"data: [DONE]\n\n"
DRIPPED = stream_of(", this answer arrives one byte a second.")


def _attacks() -> list[Attack]:
    total = "total timeout: `timeout={limit:g}` (client), `time_limit={limit:g}` (agent)"
    size = "`max_response_bytes` (32 MiB)"
    return [
        Attack("server never answers", total, lambda c: [silent()]),
        Attack(
            "body drip, 1 B/s",
            total,
            lambda c: [drip(completion({"content": "x" * 300}), rate=1, headers=JSON)],
        ),
        Attack(
            "stream drip, 1 B/s",
            total,
            lambda c: [drip(DRIPPED, rate=1, prefix=FIRST, headers=SSE, length=False)],
            stream=True,
        ),
        Attack(
            "a byte just before each read timeout",
            "total timeout: read timeout {read:.2g} s, a byte every {gap:.2g} s; "
            "`total_timeout={limit:g}` (client), `time_limit={limit:g}` (agent)",
            lambda c: [drip(completion({"content": "x" * 300}), rate=1 / (0.9 * _read_timeout(c)))],
            client=lambda c: {"timeout": _timeout(_read_timeout(c))},
        ),
        Attack(
            "header drip, 1 B/s",
            total,
            lambda c: [drip(completion({"content": "hi"}), rate=1, head_too=True)],
        ),
        Attack(
            "gzip bomb: {bomb_wire} on the wire, {bomb} inflated",
            size + ", inflated 64 KiB at a time",
            lambda c: [_bomb(c, JSON)],
        ),
        Attack(
            "the same bomb as a stream",
            size + ", inflated 64 KiB at a time",
            lambda c: [_bomb(c, SSE)],
            stream=True,
        ),
        Attack("a {big_body} JSON body", size, lambda c: [sized_body(c.big_body)]),
        Attack(
            "endless content stream",
            size + ": text, reasoning and arguments",
            lambda c: [endless(FIRST, chunk({"content": "x" * 1000}))],
            stream=True,
        ),
        Attack(
            "endless tool-call arguments",
            size + ": text, reasoning and arguments",
            lambda c: [endless(_call_start(), _more_arguments())],
            stream=True,
        ),
        Attack(
            "an endless line",
            size + ": any one line or event",
            lambda c: [endless(b"", b"data: " + b"q" * 1000)],
            stream=True,
        ),
        Attack(
            "deep JSON: a bare line 100,000 objects deep",
            "typed error (`APIResponseValidationError`)",
            lambda c: [respond(FIRST + _deep_object(100_000) + b"\n\n" + DONE, headers=SSE)],
            stream=True,
        ),
        Attack(
            "deep JSON: tool-call arguments 100,000 deep",
            "the model is told its arguments are invalid; the run goes on",
            lambda c: [tool_calls([_deep(100_000)], "add", False), answer("done", False)],
            tool="add",
        ),
        Attack(
            "1,000 tool calls in one response",
            "`max_tool_calls` (64) run; the rest are answered `Not run`",
            lambda c: [tool_calls(_sums(1000), "add", False), answer("done", False)],
            modes=AGENT_ONLY,
            tool="add",
        ),
        Attack(
            "a sync tool that sleeps 30 s",
            "`time_limit={slow:g}`: the run stops waiting for the thread",
            lambda c: [tool_calls(['{"seconds": 30}'], "nap", False), answer("done", False)],
            modes=AGENT_ONLY,
            agent=lambda c: {"time_limit": c.slow_tool_limit},
            tool="nap",
        ),
        Attack(
            "1,000 sync tool calls of 5 ms each",
            "a pool of 32 threads per agent (`max_concurrency`); `max_tool_calls=None`",
            lambda c: [
                tool_calls(['{"seconds": 0.005}'] * 1000, "nap", False),
                answer("done", False),
            ],
            modes=AGENT_ONLY,
            agent=lambda c: {"max_tool_calls": None, "max_repeated_calls": None},
            tool="nap",
            threads=True,
        ),
    ]


def _timeout(read: float) -> Any:
    import httpx

    return httpx.Timeout(10.0, read=read)


def _bomb(config: Config, headers: dict[str, str]) -> Behaviour:
    return respond(gzip_zeros_quick(config.bomb), headers={"Content-Encoding": "gzip", **headers})


def _call_start() -> bytes:
    start = {"index": 0, "id": "e", "type": "function"}
    opening = {"name": "add", "arguments": '{"a": "'}
    return chunk({"role": "assistant", "tool_calls": [{**start, "function": opening}]})


def _more_arguments() -> bytes:
    return chunk({"tool_calls": [{"index": 0, "function": {"arguments": "z" * 1000}}]})


def _sums(count: int) -> list[str]:
    return [json.dumps({"a": i, "b": 1}) for i in range(count)]


def _size(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):g} GiB"
    if n >= MIB and n % MIB == 0:
        return f"{n // MIB} MiB"
    return f"{n / 1e6:.3g} MB"


def _names(config: Config) -> dict[str, Any]:
    return {
        "limit": config.limit,
        "read": _read_timeout(config),
        "gap": 0.9 * _read_timeout(config),
        "slow": config.slow_tool_limit,
        "bomb": _size(config.bomb),
        "bomb_wire": _size(len(gzip_zeros_quick(config.bomb))),
        "big_body": _size(config.big_body),
    }


# --- the child: one measurement ----------------------------------------------------------------


def _status() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "Threads"):
            fields[name] = int(value.split()[0])
    return fields


class ThreadPeak:
    """Samples the process's thread count every millisecond (itself not counted)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _status()["Threads"] - 1)

    def __enter__(self) -> ThreadPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _tools(name: str | None) -> list[Any]:
    from sfagent import tool

    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: First addend.
            b: Second addend.
        """
        return a + b

    def nap(seconds: float) -> str:
        """Sleep a while.

        Args:
            seconds: How long.
        """
        time.sleep(seconds)
        return "rested"

    chosen = {"add": add, "nap": nap}.get(name or "")
    return [tool(chosen)] if chosen else []


def _outcome(value: Any) -> str:
    from sfagent.exceptions import BudgetExceeded, ModelRequestError

    if isinstance(value, ModelRequestError):
        return f"ModelRequestError/{type(value.error).__name__}"
    if isinstance(value, BudgetExceeded):
        return f"BudgetExceeded({value.budget})"
    if isinstance(value, BaseException):
        return type(value).__name__
    if hasattr(value, "messages"):  # a RunResult
        tools = [m["content"] for m in value.messages if m["role"] == "tool"]
        not_run = sum(1 for t in tools if t.startswith("Not run"))
        told = sum(1 for t in tools if t.startswith("Error: Invalid arguments"))
        ran = len(tools) - not_run - told
        parts = [f"{ran} calls run"] if ran else []
        parts += [f"{not_run} not run"] if not_run else []
        parts += ["the model told"] if told else []
        return "answered" + (f" ({', '.join(parts)})" if parts else "")
    return "the response returned"


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Meet one attack in this process; returns its seconds, memory, threads and outcome."""
    config = Config(**{k: tuple(v) if k == "modes" else v for k, v in spec["config"].items()})
    attack = next(a for a in _attacks() if a.name == spec["attack"])
    mode, base_url = spec["mode"], spec["base_url"]
    if mode.endswith("async"):
        return asyncio.run(_child_async(attack, config, mode, base_url))
    from sfagent import Agent, SiliconFlow
    from sfagent.exceptions import SFAgentError

    with SiliconFlow(
        api_key=KEY, base_url=base_url, **_client_args(attack, config, mode)
    ) as client:
        if mode == "client-sync":
            call = _sync_call(client, attack.stream)
        else:
            agent = _agent(Agent, client, attack, config)
            call = _sync_run(agent, attack.stream)
        call()  # the warm-up
        before = _status()
        peak = ThreadPeak() if attack.threads else None
        start = time.monotonic()
        try:
            if peak is not None:
                with peak:
                    value = call()
            else:
                value = call()
        except SFAgentError as exc:
            value = exc
        seconds = time.monotonic() - start
    return _report(value, seconds, before, peak)


def _client_args(attack: Attack, config: Config, mode: str) -> dict[str, Any]:
    args = attack.client(config)
    if mode.startswith("client"):
        if "timeout" in args:
            args["total_timeout"] = config.limit
        else:
            args["timeout"] = config.limit  # a number: also the whole call's bound
    return args


def _agent(agent_class: Any, client: Any, attack: Attack, config: Config) -> Any:
    """The attack's agent: `time_limit` (or the attack's own), default caps, its tool."""
    options = {"time_limit": config.limit, **attack.agent(config)}
    return agent_class(MODEL, client=client, tools=_tools(attack.tool), **options)


def _sync_call(client: Any, stream: bool) -> Callable[[], Any]:
    from sfagent.settings import ChatRequest

    request = ChatRequest([{"role": "user", "content": "hi"}], model=MODEL)
    if not stream:
        return lambda: client.complete(request)

    def read() -> Any:
        with client.stream(request) as chunks:
            for _ in chunks:
                pass
        return chunks.get_final_response()

    return read


def _sync_run(agent: Any, stream: bool) -> Callable[[], Any]:
    if not stream:
        return lambda: agent.run_sync("hi")

    def run() -> Any:
        events = agent.stream_sync("hi")
        last = None
        for last in events:  # noqa: B007 - the last event holds the result
            pass
        return last.result  # type: ignore[union-attr]

    return run


async def _child_async(attack: Attack, config: Config, mode: str, base_url: str) -> dict[str, Any]:
    from sfagent import Agent, AsyncSiliconFlow
    from sfagent.exceptions import SFAgentError
    from sfagent.settings import ChatRequest

    args = _client_args(attack, config, mode)
    async with AsyncSiliconFlow(api_key=KEY, base_url=base_url, **args) as client:
        request = ChatRequest([{"role": "user", "content": "hi"}], model=MODEL)
        agent = _agent(Agent, client, attack, config)

        async def call() -> Any:
            if mode == "client-async" and not attack.stream:
                return await client.complete(request)
            if mode == "client-async":
                async with client.stream(request) as chunks:
                    async for _ in chunks:
                        pass
                return await chunks.get_final_response()
            if not attack.stream:
                return await agent.run("hi")
            last = None
            async for last in agent.stream("hi"):  # noqa: B007 - the last event holds the result
                pass
            return last.result  # type: ignore[union-attr]

        await call()  # the warm-up
        before = _status()
        peak = ThreadPeak() if attack.threads else None
        start = time.monotonic()
        try:
            if peak is not None:
                with peak:
                    value = await call()
            else:
                value = await call()
        except SFAgentError as exc:
            value = exc
        seconds = time.monotonic() - start
    return _report(value, seconds, before, peak)


def _report(
    value: Any, seconds: float, before: dict[str, int], peak: ThreadPeak | None
) -> dict[str, Any]:
    after = _status()
    return {
        "seconds": seconds,
        "memory_kib": after["VmHWM"] - before["VmHWM"],
        "threads": peak.peak if peak is not None else None,
        "threads_before": before["Threads"],
        "outcome": _outcome(value),
    }


# --- the parent: serve each attack, run the children, print the table ---------------------------


@dataclass
class Row:
    attack: Attack
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)


def measure(attack: Attack, config: Config, mode: str) -> dict[str, Any]:
    """Serve `attack` (after one ordinary answer for the warm-up) and meet it in a child."""
    warm = answer("warm", attack.stream)
    with FaultServer(warm, *attack.behaviours(config), lifetime=60) as server:
        spec = {
            "attack": attack.name,
            "mode": mode,
            "base_url": server.base_url,
            "config": config.__dict__,
        }
        done = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "no output"}
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def cell(result: dict[str, Any] | None) -> str:
    if result is None:
        return "—"
    if "error" in result:
        return f"failed: {result['error']}"
    text = f"{result['seconds']:.2f} s, +{result['memory_kib'] / 1024:.1f} MiB"
    if result["threads"] is not None:
        text += f", {result['threads']} threads (from {result['threads_before']})"
    return text


def ends_with(row: Row) -> str:
    def join(modes: list[str]) -> str:
        seen = [row.cells[m]["outcome"] for m in modes if "outcome" in row.cells.get(m, {})]
        return " / ".join(dict.fromkeys(seen))

    client = join(["client-sync", "client-async"])
    agent = join(["agent-sync", "agent-async"])
    if client and agent:
        return f"client: {client}; agent: {agent}"
    return client or agent


def table(rows: list[Row], config: Config) -> str:
    names = _names(config)
    modes = [m for m in MODES if m in config.modes]
    lines = [
        "| attack | bound | ends with | " + " | ".join(HEADERS[m] for m in modes) + " |",
        "|---|---|---|" + "---:|" * len(modes),
    ]
    for row in rows:
        cells = [cell(row.cells.get(m)) for m in modes]
        name = row.attack.name.format(**names)
        bound = row.attack.bound.format(**names)
        lines.append(f"| {name} | {bound} | {ends_with(row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short limits, small attacks")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(json.loads(args.child))
        print(json.dumps(result), flush=True)
        os._exit(0)  # a tool thread still asleep must not hold the process
    config = Config.quick() if args.quick else Config()
    gzip_zeros_quick(config.bomb)  # built once, before any measurement
    rows = []
    names = _names(config)
    for attack in _attacks():
        row = Row(attack)
        for mode in config.modes:
            if mode in attack.modes:
                print(f"{attack.name.format(**names)} / {mode}", file=sys.stderr, flush=True)
                row.cells[mode] = measure(attack, config, mode)
        rows.append(row)
    from importlib.metadata import version

    print(
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, httpx {version('httpx')}"
        f" (load average {os.getloadavg()[0]:.2f} at the start). Time: the attack's wall "
        "time. Memory: how far the peak resident memory (VmHWM) of a fresh process rose above "
        "its value after the warm-up.\n"
    )
    print(table(rows, config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
