"""sfagent next to peer frameworks (pydantic-ai, openai-agents) on one tool-calling workload.

Every framework holds the same conversation with the same loopback server
(`sfagent.testing.LoopbackServer`, in a child process so it has its own core and GIL): the model
asks for one call of ``lookup(city, day)``, the tool runs, its result goes back, N times over,
then the model answers in text. The server decides each reply from the request alone (it counts
the ``tool`` messages in the conversation), so every framework sees the same exchanges. A raw
httpx loop doing the same exchanges by hand is the floor.

1. Per turn, no server latency: ms per tool round, median of many runs after warm-up, the
   frameworks interleaved run by run, all in this one process.
2. Concurrency, 50 ms server latency: 200 concurrent runs of 3 tool turns (4 requests each) on
   one agent; wall, CPU and peak RSS of a fresh subprocess per measurement.
3. Import time of each framework in a fresh interpreter.

Each framework is configured as its documentation shows, with its default HTTP client:
pydantic-ai ``Agent(OpenAIChatModel(model, provider=OpenAIProvider(base_url, api_key)))`` with an
``@agent.tool_plain`` tool; openai-agents ``Agent(model=OpenAIChatCompletionsModel(model,
openai_client=AsyncOpenAI(base_url, api_key)))`` with a ``function_tool``, tracing disabled;
sfagent ``Agent(model, tools=[lookup], api_key, base_url)``. A framework that is not installed
gets "-" in its rows.

Setup (a venv of its own; the peers are not sfagent dependencies):

    python3 -m venv /tmp/peers
    /tmp/peers/bin/pip install -e . -r benchmarks/requirements-peers.txt
    /tmp/peers/bin/python benchmarks/bench_peers.py [--quick]

Prints markdown tables (about two and a half minutes on 2 cores; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

# The workload, the model script and the raw httpx floor are bench_agent's, so both benchmarks
# measure exactly the same exchanges.
from bench_agent import (  # type: ignore[import-not-found]
    _ROUNDS,
    API_KEY,
    FLOOR_LIMITS,
    LONG,
    MODEL,
    TOOLS,
    Timing,
    _cpu_model,
    _medians,
    _version,
    expected,
    floor_async,
    floor_sync,
    lookup,
    prompt,
)

FRAMEWORKS = ("floor", "floor_keepalive", "openai_sdk", "sfagent", "pydantic-ai", "openai-agents")
LABELS = {
    "floor": "raw httpx loop (floor)",
    "floor_keepalive": "raw httpx + `KeepAliveTransport` (sfagent's transport)",
    "openai_sdk": "raw loop on `openai` SDK (the peers' client)",
    "sfagent": "sfagent",
    "pydantic-ai": "pydantic-ai",
    "openai-agents": "openai-agents",
}
IMPORTS = {
    "floor": "import httpx",
    "openai_sdk": "from openai import AsyncOpenAI",
    "sfagent": "from sfagent import Agent",
    "pydantic-ai": (
        "from pydantic_ai import Agent; from pydantic_ai.models.openai import OpenAIChatModel; "
        "from pydantic_ai.providers.openai import OpenAIProvider"
    ),
    "openai-agents": (
        "from agents import Agent, Runner, OpenAIChatCompletionsModel; "
        "from openai import AsyncOpenAI"
    ),
}


# --- the workload -------------------------------------------------------------------------------


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
    return Reply(text=expected(wanted))


def serve(latency: float) -> None:
    """Child process: serve until stdin closes; the first stdout line is the base URL."""
    from sfagent.testing import LoopbackServer

    with LoopbackServer(responder, latency=latency) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()


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
        assert self._proc.stdout is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)
        self._proc.stdout.close()


# --- the raw httpx floor ------------------------------------------------------------------------


class Conversation:
    """The floor's bookkeeping: the messages, the request body, running the tool calls."""

    def __init__(self, rounds: int) -> None:
        self.messages: list[dict[str, Any]] = [{"role": "user", "content": prompt(rounds)}]

    def body(self) -> dict[str, Any]:
        return {"model": MODEL, "messages": self.messages, "tools": TOOLS}

    def absorb(self, message: dict[str, Any]) -> str | None:
        """Append the answer and the tool results; returns the final text, if it is final."""
        calls = message.get("tool_calls")
        assistant = {"role": "assistant", "content": message.get("content") or ""}
        if calls:
            assistant["tool_calls"] = calls
        self.messages.append(assistant)
        if not calls:
            return str(message.get("content"))
        for call in calls:
            result = lookup(**json.loads(call["function"]["arguments"]))
            self.messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        return None


# --- the frameworks -----------------------------------------------------------------------------


class Runners:
    """One framework's agent, its sync and async run (None when it has none), and its cleanup."""

    def __init__(
        self,
        run_sync: Callable[[str, int], str] | None,
        run: Callable[[str, int], Awaitable[str]],
        aclose: Callable[[], Awaitable[None]] | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.run_sync, self.run, self.aclose, self.close = run_sync, run, aclose, close


def make_floor(base_url: str, *, sync: bool, keepalive: bool = False) -> Runners:
    url = f"{base_url}/chat/completions"
    if sync and not keepalive:
        client = httpx.Client(timeout=LONG)
        return Runners(
            lambda text, rounds: floor_sync(client, url, rounds), _none, close=client.close
        )
    if sync:
        return Runners(None, _none)
    if keepalive:
        from sfagent.client._transport import KeepAliveTransport

        aclient = httpx.AsyncClient(timeout=LONG, transport=KeepAliveTransport())
    else:
        aclient = httpx.AsyncClient(timeout=LONG, limits=FLOOR_LIMITS)

    async def run(text: str, rounds: int) -> str:
        return await floor_async(aclient, url, rounds)

    return Runners(None, run, aclose=aclient.aclose)


def make_floor_keepalive(base_url: str, *, sync: bool) -> Runners:
    return make_floor(base_url, sync=sync, keepalive=True)


def make_openai_sdk(base_url: str, *, sync: bool) -> Runners:
    """The floor's loop on the openai SDK's client, as both peers call it."""
    from openai import AsyncOpenAI, OpenAI

    if sync:
        client = OpenAI(base_url=base_url, api_key=API_KEY)

        def run_sync(text: str, rounds: int) -> str:
            chat = Conversation(rounds)
            while True:
                completion = client.chat.completions.create(
                    model=MODEL, messages=chat.messages, tools=TOOLS
                )
                final = chat.absorb(completion.choices[0].message.model_dump())
                if final is not None:
                    return final

        return Runners(run_sync, _none, close=client.close)
    aclient = AsyncOpenAI(base_url=base_url, api_key=API_KEY)

    async def run(text: str, rounds: int) -> str:
        chat = Conversation(rounds)
        while True:
            completion = await aclient.chat.completions.create(
                model=MODEL, messages=chat.messages, tools=TOOLS
            )
            final = chat.absorb(completion.choices[0].message.model_dump())
            if final is not None:
                return final

    return Runners(None, run, aclose=aclient.close)


async def _none(text: str, rounds: int) -> str:
    raise NotImplementedError


def make_sfagent(base_url: str, *, sync: bool) -> Runners:
    from sfagent import Agent

    agent = Agent(MODEL, tools=[lookup], api_key=API_KEY, base_url=base_url)

    async def run(text: str, rounds: int) -> str:
        return str((await agent.run(text)).output)

    return Runners(
        lambda text, rounds: str(agent.run_sync(text).output), run, agent.aclose, agent.close
    )


def make_pydantic_ai(base_url: str, *, sync: bool) -> Runners:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(base_url=base_url, api_key=API_KEY)
    agent = Agent(OpenAIChatModel(MODEL, provider=provider))
    agent.tool_plain(lookup)

    async def run(text: str, rounds: int) -> str:
        return str((await agent.run(text)).output)

    async def aclose() -> None:
        await provider.client.close()

    return Runners(lambda text, rounds: str(agent.run_sync(text).output), run, aclose)


def make_openai_agents(base_url: str, *, sync: bool) -> Runners:
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=base_url, api_key=API_KEY)
    model = OpenAIChatCompletionsModel(model=MODEL, openai_client=client)
    agent = Agent(name="bench", model=model, tools=[function_tool(lookup)])

    async def run(text: str, rounds: int) -> str:
        result = await Runner.run(agent, text, max_turns=rounds + 5)
        return str(result.final_output)

    def run_sync(text: str, rounds: int) -> str:
        return str(Runner.run_sync(agent, text, max_turns=rounds + 5).final_output)

    return Runners(run_sync, run, client.close)


MAKERS: dict[str, Callable[..., Runners]] = {
    "floor": make_floor,
    "floor_keepalive": make_floor_keepalive,
    "openai_sdk": make_openai_sdk,
    "sfagent": make_sfagent,
    "pydantic-ai": make_pydantic_ai,
    "openai-agents": make_openai_agents,
}


def installed(framework: str) -> bool:
    from importlib.util import find_spec

    modules = {
        "floor": "httpx",
        "floor_keepalive": "sfagent",
        "openai_sdk": "openai",
        "pydantic-ai": "pydantic_ai",
        "openai-agents": "agents",
    }
    return find_spec(modules.get(framework, framework)) is not None


def _check(name: str, output: str, rounds: int) -> None:
    if output != expected(rounds):
        raise RuntimeError(f"{name} answered {output!r}")


# --- 1. per turn --------------------------------------------------------------------------------


def per_turn_sync(
    base_url: str, frameworks: list[str], rounds: int, repeat: int, warmup: int
) -> dict[str, Timing]:
    """Median wall and CPU seconds per sync run; frameworks interleaved run by run."""
    runners = {name: MAKERS[name](base_url, sync=True) for name in frameworks}
    runs = {name: r.run_sync for name, r in runners.items() if r.run_sync is not None}
    samples: dict[str, list[Timing]] = {name: [] for name in runs}
    text = prompt(rounds)
    try:
        for i in range(warmup + repeat):
            for name, run in runs.items():
                cpu, start = time.process_time(), time.perf_counter()
                output = run(text, rounds)
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                _check(name, output, rounds)
                if i >= warmup:
                    samples[name].append((wall, cpu))
    finally:
        for r in runners.values():
            if r.close is not None:
                r.close()
    return _medians(samples)


async def per_turn_async(
    base_url: str, frameworks: list[str], rounds: int, repeat: int, warmup: int
) -> dict[str, Timing]:
    runners = {name: MAKERS[name](base_url, sync=False) for name in frameworks}
    samples: dict[str, list[Timing]] = {name: [] for name in runners}
    text = prompt(rounds)
    try:
        for i in range(warmup + repeat):
            for name, r in runners.items():
                cpu, start = time.process_time(), time.perf_counter()
                output = await r.run(text, rounds)
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                _check(name, output, rounds)
                if i >= warmup:
                    samples[name].append((wall, cpu))
    finally:
        for r in runners.values():
            if r.aclose is not None:
                await r.aclose()
    return _medians(samples)


def report_per_turn(frameworks: list[str], rounds: int, repeat: int, warmup: int) -> None:
    with Server(0.0) as server:
        sync = per_turn_sync(server.base_url, frameworks, rounds, repeat, warmup)
        asyn = asyncio.run(per_turn_async(server.base_url, frameworks, rounds, repeat, warmup))
    print(f"## 1. Per turn ({rounds} tool rounds + final answer per run, 0 ms latency)\n")
    print(f"ms per tool round (run time / {rounds}), median of {repeat} runs after {warmup}")
    print("warm-up runs, all frameworks in this one process, interleaved run by run (sync ones")
    print("first, then async ones in one event loop). CPU: this process, us per round. Sync:")
    print("sfagent `Agent.run_sync`, pydantic-ai `Agent.run_sync`, openai-agents")
    print("`Runner.run_sync`, floor `httpx.Client`; async: `await` of the same, floor")
    print("`httpx.AsyncClient`.\n")
    print("| framework | sync ms | x floor | async ms | x floor | CPU us sync / async |")
    print("|---|---|---|---|---|---|")

    def cell(times: dict[str, Timing], name: str) -> tuple[str, str, str]:
        if name not in times:
            return "-", "-", "-"
        wall, cpu = times[name]
        ms = wall / rounds * 1000
        ratio = wall / times["floor"][0]
        return f"{ms:.2f}", f"{ratio:.2f}x", f"{cpu / rounds * 1e6:.0f}"

    for name in FRAMEWORKS:
        s_ms, s_x, s_cpu = cell(sync, name)
        a_ms, a_x, a_cpu = cell(asyn, name)
        note = "" if name in frameworks else " (not installed)"
        print(f"| {LABELS[name]}{note} | {s_ms} | {s_x} | {a_ms} | {a_x} | {s_cpu} / {a_cpu} |")
    print(flush=True)


# --- 2. concurrency -----------------------------------------------------------------------------


async def _concurrent(framework: str, base_url: str, runs: int, rounds: int) -> tuple[float, float]:
    """Wall and CPU seconds of `runs` concurrent runs on one agent, after one warm-up run."""
    runner = MAKERS[framework](base_url, sync=False)
    text = prompt(rounds)
    try:
        _check(framework, await runner.run(text, rounds), rounds)
        cpu, start = time.process_time(), time.perf_counter()
        outputs = await asyncio.gather(*(runner.run(text, rounds) for _ in range(runs)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        if runner.aclose is not None:
            await runner.aclose()
    if set(outputs) != {expected(rounds)}:
        raise RuntimeError(f"{framework}: unexpected answers {set(outputs)}")
    return wall, cpu


def _peak_rss_mb() -> float:
    """This process's peak RSS. Not ``ru_maxrss``: Linux carries that over ``execve``, so a
    child would report its parent's peak when the parent's is higher."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def client_child(framework: str, base_url: str, runs: int, rounds: int) -> None:
    """Child process: one concurrency measurement, printed as JSON."""
    wall, cpu = asyncio.run(_concurrent(framework, base_url, runs, rounds))
    total = time.process_time()
    print(json.dumps({"wall": wall, "cpu": cpu, "cpu_total": total, "rss_mb": _peak_rss_mb()}))


def measure_concurrent(framework: str, server: Server, runs: int, rounds: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--client", framework, server.base_url]
    command += [str(runs), str(rounds)]
    server_cpu = server.cpu()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{framework} x {runs} failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    result["server_cpu"] = server.cpu() - server_cpu
    return result


def report_concurrency(frameworks: list[str], runs: int, latency: float, repeat: int) -> None:
    rounds = 3
    print(f"## 2. Concurrency ({runs} concurrent runs x {rounds} tool turns + final answer,")
    print(f"{latency * 1000:.0f} ms server latency; ideal wall {(rounds + 1) * latency:.2f} s)\n")
    print(f"Median of {repeat} fresh subprocesses per row, the rows measured in turn, {repeat}")
    print(
        "times over. One agent (one HTTP client, the framework's default) shared by all runs, one"
    )
    print("warm-up run first. CPU runs: the client process during the concurrent runs; CPU")
    print("process: the whole client process, imports included. Peak RSS: the client process")
    print("(`VmHWM`). Server CPU: the loopback server process during the measurement. The floors")
    print("use httpx's default pool, `Limits(100, keepalive 20)`.\n")
    print(
        "| client | wall s | x floor | x same-transport floor | CPU s runs / process "
        "| peak RSS MB "
        "| server CPU s |"
    )
    print("|---|---|---|---|---|---|---|")
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in frameworks}
    with Server(latency) as server:
        for _ in range(repeat):
            for name in frameworks:
                samples[name].append(measure_concurrent(name, server, runs, rounds))
    results = {
        name: {key: statistics.median(s[key] for s in values) for key in values[0]}
        for name, values in samples.items()
    }
    floor = results["floor"]["wall"]
    aio = results["floor_keepalive"]["wall"] if "floor_keepalive" in results else float("nan")
    for name in FRAMEWORKS:
        if name not in results:
            print(f"| {LABELS[name]} (not installed) | - | - | - | - | - | - |")
            continue
        r = results[name]
        print(
            f"| {LABELS[name]} | {r['wall']:.2f} | {r['wall'] / floor:.2f}x "
            f"| {r['wall'] / aio:.2f}x | {r['cpu']:.2f} / {r['cpu_total']:.2f} "
            f"| {r['rss_mb']:.0f} | {r['server_cpu']:.2f} |",
            flush=True,
        )
    print()


# --- 3. import time -----------------------------------------------------------------------------


def import_time(statement: str, repeat: int) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    samples = []
    for _ in range(repeat + 1):  # the first run fills the bytecode cache (see `main`)
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        samples.append(float(done.stdout))
    return statistics.median(samples[1:]) * 1000


def report_imports(frameworks: list[str], repeat: int) -> None:
    print(f"## 3. Import time (fresh interpreter, median of {repeat} after one warm-up)\n")
    print("| framework | statement | ms |\n|---|---|---|")
    for name in (name for name in frameworks if name in IMPORTS):
        statement = IMPORTS[name]
        print(f"| {LABELS[name]} | `{statement}` | {import_time(statement, repeat):.0f} |")
    print(flush=True)


# --- main ---------------------------------------------------------------------------------------


def machine_info() -> str:
    packages = ("sfagent", "pydantic-ai-slim", "openai-agents", "openai", "httpx", "httpx2")
    packages += ("pydantic",)
    return (
        f"# sfagent and peer frameworks ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n"
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}, {platform.machine()}\n"
        f"- CPU: {_cpu_model()}, {os.cpu_count()} logical cores\n"
        f"- {', '.join(f'{p} {_version(p)}' for p in packages)}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="tool rounds per per-turn run")
    parser.add_argument("--repeat", type=int, default=30, help="per-turn runs measured")
    parser.add_argument("--runs", type=int, default=200, help="concurrent runs")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--crepeat", type=int, default=3, help="subprocesses per measurement")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    parser.add_argument("--skip", nargs="*", default=[], choices=["turn", "concurrency", "import"])
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.crepeat = 5, 1
    frameworks = [name for name in FRAMEWORKS if installed(name)]
    print(machine_info())
    missing = [name for name in FRAMEWORKS if name not in frameworks]
    if missing:
        print(f"Not installed, shown as '-': {', '.join(missing)}.\n")
    started = time.perf_counter()
    # Child processes get a bytecode cache of their own: with PYTHONDONTWRITEBYTECODE set and no
    # __pycache__ next to an editable install, sfagent alone would be compiled on every import,
    # while the peers' wheels come with their bytecode.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="bench-peers-pycache-") as cache:
        os.environ["PYTHONPYCACHEPREFIX"] = cache
        if "turn" not in args.skip:
            report_per_turn(frameworks, args.rounds, args.repeat, warmup=3)
        if "concurrency" not in args.skip:
            report_concurrency(frameworks, args.runs, args.latency, args.crepeat)
        if "import" not in args.skip:
            report_imports(frameworks, 3 if args.quick else 5)
    print(f"Total time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(float(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
