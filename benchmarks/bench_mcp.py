"""The per-turn cost of an MCP tool call (stdio) against the same function as a local `@tool`.

Run: ``python benchmarks/bench_mcp.py [--quick]``. Prints a markdown table.

Each run is an agent on a scripted model (no network, no model latency) that makes `TURNS`
tool turns, one call of ``add(a, b)`` each, then answers. The MCP agent calls ``add`` on a
real MCP server over stdio (written with the SDK's server API, a subprocess of this process);
the local agent calls the same function as a `@tool`. The server is started once and held open
(`with server:`), so a run pays only for its calls; the start (spawn, handshake, listing) is
timed apart. Runs alternate MCP, local, MCP, local... so a busy machine weighs on both alike;
the figures are medians of the per-turn times (run time / turns).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sfagent import Agent, tool
from sfagent.mcp import MCPServerStdio
from sfagent.offline.replies import Reply, ScriptedToolCall
from sfagent.testing import ScriptedModel

TURNS = 20

SERVER = '''
from mcp.server.mcpserver import MCPServer

app = MCPServer("bench")


@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


if __name__ == "__main__":
    app.run()
'''


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def script() -> ScriptedModel:
    turns: list[Any] = [
        Reply(tool_calls=[ScriptedToolCall("add", {"a": i, "b": 1})]) for i in range(TURNS)
    ]
    return ScriptedModel([*turns, "done"])


def agent_for(tools: list[Any]) -> Agent[None, str]:
    return Agent(script(), tools=tools, max_turns=TURNS + 1, max_repeated_calls=None)


def timed_sync(tools: list[Any]) -> float:
    agent = agent_for(tools)
    start = time.perf_counter()
    result = agent.run_sync("go")
    elapsed = time.perf_counter() - start
    assert result.messages[-2]["content"] in ('{"result":20}', "20"), result.messages[-2]
    return elapsed / TURNS


def timed_async(tools: list[Any]) -> float:
    agent = agent_for(tools)

    async def run() -> float:
        start = time.perf_counter()
        await agent.run("go")
        return (time.perf_counter() - start) / TURNS

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    rounds = 5 if parser.parse_args().quick else 15
    with tempfile.TemporaryDirectory() as folder:
        script_path = Path(folder) / "bench_server.py"
        script_path.write_text(SERVER, encoding="utf-8")
        server = MCPServerStdio(sys.executable, [str(script_path)], errlog=sys.stderr)
        starts: list[float] = []
        for _ in range(3):
            begin = time.perf_counter()
            server.connect()
            starts.append(time.perf_counter() - begin)
            server.close()
        samples: dict[tuple[str, str], list[float]] = {}
        with server:
            for _ in range(rounds):
                for driver, timed in (("run_sync", timed_sync), ("run", timed_async)):
                    for kind, tools in (("MCP (stdio)", [server]), ("local @tool", [add])):
                        samples.setdefault((driver, kind), []).append(timed(tools))
    print(f"Per tool turn, median of {rounds} runs × {TURNS} turns (scripted model, 0 ms):\n")
    print("| driver | local @tool | MCP tool (stdio) | MCP overhead per call |")
    print("|---|---|---|---|")
    for driver in ("run_sync", "run"):
        local = statistics.median(samples[(driver, "local @tool")]) * 1e6
        remote = statistics.median(samples[(driver, "MCP (stdio)")]) * 1e6
        print(f"| {driver} | {local:,.0f} µs | {remote:,.0f} µs | {remote - local:,.0f} µs |")
    print(
        f"\nStarting the server (spawn, handshake, tools/list), median of 3: "
        f"{statistics.median(starts) * 1e3:,.0f} ms"
    )


if __name__ == "__main__":
    main()
