"""What does a durable run cost? `DurableAgent.run` against a plain `Agent.run`, per turn, on
SQLite and on PostgreSQL.

Every run is `bench_agent.py`'s conversation: N rounds of one ``lookup`` call, then a text
answer, played by the loopback server in its own process with no latency, so what is left is
the client's work, and for a durable run DBOS's: the run's row, a step record per model request
and per tool call (2N + 2 steps), the result. Plain and durable runs alternate, so drift on a
busy machine hits both alike; times are medians.

SQLite is a file in a temporary folder. PostgreSQL is a throwaway cluster on 127.0.0.1 that
this script starts (``tests/durable/_postgres.py``, the durable tests' own) with PostgreSQL's
default durability (``fsync`` on: what a deployment pays), as an unprivileged user when run as
root. Without PostgreSQL its rows say why.

Run:  python benchmarks/bench_durable.py [--quick] [--rounds N] [--runs N] [--blocks N]

Prints a markdown table (about 25 s; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from bench_agent import Server, expected, make_agent, prompt

HERE = Path(__file__).resolve().parent
POSTGRES_HELPER = HERE.parent / "tests" / "durable" / "_postgres.py"


def postgres_helper() -> ModuleType:
    """The durable tests' cluster helper, loaded by path (the tests are not a package here)."""
    spec = importlib.util.spec_from_file_location("sfagent_bench_postgres", POSTGRES_HELPER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


async def timed(run: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await run()
    return time.perf_counter() - start


async def measure(
    database_url: str, base_url: str, lengths: tuple[int, ...], runs: int
) -> dict[tuple[str, int], list[float]]:
    """Seconds per run of each kind and length, alternating, DBOS launched on `database_url`."""
    from sfagent.durable import DurableAgent, launch, shutdown

    agent = make_agent(base_url)
    durable = DurableAgent(agent, name="bench", replace=True)

    def kinds(rounds: int) -> dict[str, Callable[[], Awaitable[None]]]:
        text, answer = prompt(rounds), expected(rounds)

        async def plain() -> None:
            result = await agent.run(text)
            assert result.output == answer, result.output

        async def durable_run() -> None:
            result = await durable.run(text, run_id=f"bench-{uuid.uuid4().hex}")
            assert result.output == answer, result.output

        return {"plain": plain, "durable": durable_run}

    runners = {(kind, n): run for n in lengths for kind, run in kinds(n).items()}
    launch(database_url, executor_id="bench")
    try:
        for run in runners.values():  # warm-up: connections, DBOS's first statements
            await run()
        times: dict[tuple[str, int], list[float]] = {key: [] for key in runners}
        for _ in range(runs):
            for key, run in runners.items():
                times[key].append(await timed(run))
        return times
    finally:
        shutdown()
        await agent.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="tool rounds per run (10)")
    parser.add_argument("--runs", type=int, default=10, help="runs of each kind per block (10)")
    parser.add_argument("--blocks", type=int, default=3, help="blocks per backend (3)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 blocks of 3")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.blocks = 3, 2
    rounds = args.rounds
    if rounds < 2:
        parser.error("--rounds must be at least 2 (the per-turn cost is read from 1 and N)")

    lengths = (1, rounds)
    backends: dict[str, str] = {}
    skipped: dict[str, str] = {}
    helper = postgres_helper()
    cluster = None
    try:
        cluster = helper.PostgresCluster.start(fast=False)
        backends["PostgreSQL"] = cluster.create_database("bench")
    except helper.PostgresUnavailable as exc:
        skipped["PostgreSQL"] = str(exc)
    samples: dict[str, dict[tuple[str, int], list[float]]] = {}
    with tempfile.TemporaryDirectory() as folder, Server(0.0) as server:
        backends = {"SQLite": f"sqlite:///{Path(folder) / 'dbos.sqlite'}", **backends}
        try:
            # Blocks alternate between the backends too (DBOS is one per process at a time).
            for _ in range(args.blocks):
                for name, url in backends.items():
                    times = asyncio.run(measure(url, server.base_url, lengths, args.runs))
                    for key, values in times.items():
                        samples.setdefault(name, {}).setdefault(key, []).extend(values)
        finally:
            if cluster is not None:
                cluster.stop()

    count = args.runs * args.blocks
    print(f"## Durable runs: per-turn time ({rounds} tool rounds + final answer per run)\n")
    print(f"ms per tool round (run time / {rounds}), median of {count} runs of each kind; plain")
    print("`await Agent.run` and `await DurableAgent.run` alternate on the same agent against the")
    print(f"loopback server (own process, 0 ms latency). A durable run records {2 * rounds + 2}")
    print("steps. *Per added turn*: the durable run's extra time for each further tool round")
    print(f"(from runs of 1 and {rounds} rounds); *per run*: its extra time once per run (the")
    print("run's row, input and result). PostgreSQL: a local cluster on 127.0.0.1, default")
    print("durability (fsync on).\n")
    print(
        "| system database | plain ms/turn | durable ms/turn | x plain "
        "| added per turn ms | added per run ms |"
    )
    print("|---|---|---|---|---|---|")
    for name, times in samples.items():
        med = {key: statistics.median(values) * 1000 for key, values in times.items()}
        plain, durable = med["plain", rounds] / rounds, med["durable", rounds] / rounds
        slope = (
            (med["durable", rounds] - med["durable", 1]) - (med["plain", rounds] - med["plain", 1])
        ) / (rounds - 1)
        fixed = med["durable", 1] - med["plain", 1] - slope
        print(
            f"| {name} | {plain:.2f} | {durable:.2f} | {durable / plain:.1f}x "
            f"| {slope:.1f} | {fixed:.0f} |"
        )
    for name, why in skipped.items():
        print(f"| {name} | - | - | - | - | not measured: {why} |")
    print()


if __name__ == "__main__":
    main()
