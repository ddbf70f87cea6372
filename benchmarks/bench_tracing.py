"""What does tracing cost per turn? The same runs with tracing off, on without a provider, and
on with the OpenTelemetry SDK exporting every span.

The workload is `bench_agent.py`'s: the model asks for one ``lookup`` call per request, N times,
then answers; the loopback server plays the model in its own process. Agents identical but for
``instrument=`` run in `Agent.run_sync`, `await Agent.run` and `Agent.stream_sync`, each traced
configuration interleaved with an untraced agent (so drift hits both alike):

- *off*: no ``instrument=``, no ``instrument_all()``: the code path of an install without the
  ``otel`` extra (a separate row checks that such a run imports no OpenTelemetry at all, and
  times it in a process where none is loaded);
- *on, no provider*: ``instrument=True`` with no tracer provider configured: OpenTelemetry's API
  hands out non-recording spans;
- *on, SDK*: an SDK `TracerProvider` with a `BatchSpanProcessor` and an exporter that drops
  what it is given (what a service pays before its exporter's own network cost);
- *on, SDK + content*: the same, recording messages, tool arguments and results.

Run:  python benchmarks/bench_tracing.py [--quick]

Prints a markdown table: ms per tool round (run time / rounds), median of the interleaved runs,
and each configuration's ratio to *off*. ``--baseline DIR`` also times an earlier sfagent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench_agent import API_KEY, MODEL, Server, expected, lookup, prompt

CONFIGS = ("off", "on, no provider", "on, SDK", "on, SDK + content")
DRIVERS = {
    "`Agent.run_sync`": "run_sync",
    "`await Agent.run`": "run",
    "`Agent.stream_sync`": "stream_sync",
}


def _agent(base_url: str, config: str) -> Any:
    from sfagent.agent import Agent

    instrument: Any = None
    if config == "on, no provider":
        instrument = True
    elif config.startswith("on, SDK"):
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        from sfagent.tracing import TracingSettings

        class Dropping(SpanExporter):
            def export(self, spans: Sequence[Any]) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Dropping()))
        instrument = TracingSettings(
            tracer_provider=provider, include_content=config.endswith("content")
        )
    options = {} if instrument is None else {"instrument": instrument}  # a release without it
    return Agent(MODEL, tools=[lookup], api_key=API_KEY, base_url=base_url, **options)


def _check(output: object, rounds: int) -> None:
    if output != expected(rounds):
        raise RuntimeError(f"unexpected answer {output!r}")


def _interleaved(
    runners: dict[str, Callable[[], None]], repeat: int, warmup: int
) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(warmup + repeat):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            if i >= warmup:
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


async def _ainterleaved(
    runners: dict[str, Callable[[], Awaitable[None]]], repeat: int, warmup: int
) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(warmup + repeat):
        for name, run in runners.items():
            start = time.perf_counter()
            await run()
            if i >= warmup:
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def measure_sync(
    base_url: str, rounds: int, repeat: int, warmup: int, stream: bool, configs: Sequence[str]
) -> dict[str, float]:
    agents = {config: _agent(base_url, config) for config in configs}
    text = prompt(rounds)

    def runner(agent: Any) -> Callable[[], None]:
        if stream:
            return lambda: _check(list(agent.stream_sync(text))[-1].result.output, rounds)
        return lambda: _check(agent.run_sync(text).output, rounds)

    try:
        return _interleaved({c: runner(a) for c, a in agents.items()}, repeat, warmup)
    finally:
        for agent in agents.values():
            agent.close()


async def measure_async(
    base_url: str, rounds: int, repeat: int, warmup: int, configs: Sequence[str]
) -> dict[str, float]:
    agents = {config: _agent(base_url, config) for config in configs}
    text = prompt(rounds)

    def runner(agent: Any) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            _check((await agent.run(text)).output, rounds)

        return run

    try:
        return await _ainterleaved({c: runner(a) for c, a in agents.items()}, repeat, warmup)
    finally:
        for agent in agents.values():
            await agent.aclose()


_FRESH = """
import json, statistics, sys, time
sys.path.insert(0, {here!r})
from bench_tracing import _agent, _check
from bench_agent import prompt
agent = _agent({url!r}, "off")
times = []
for i in range({warmup} + {repeat}):
    start = time.perf_counter()
    _check(agent.run_sync(prompt({rounds})).output, {rounds})
    if i >= {warmup}:
        times.append(time.perf_counter() - start)
agent.close()
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
import sfagent
print(json.dumps({{"median": statistics.median(times), "otel_modules": loaded,
                  "package": sfagent.__file__}}))
"""


def measure_fresh_off(
    base_url: str, rounds: int, repeat: int, warmup: int, package: str | None = None
) -> dict[str, Any]:
    """`run_sync` with tracing off in a process that never loads OpenTelemetry; with
    `package`, the sfagent found in that folder (an earlier release) instead of this one."""
    here = str(Path(__file__).resolve().parent)
    code = _FRESH.format(here=here, url=base_url, rounds=rounds, repeat=repeat, warmup=warmup)
    env = dict(os.environ)
    if package is not None:
        env["PYTHONPATH"] = package
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=here
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    wanted = Path(package or Path(here).parent).resolve()
    if wanted not in Path(result["package"]).resolve().parents:
        raise RuntimeError(f"timed the sfagent in {result['package']}, not the one in {wanted}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="tool rounds per run")
    parser.add_argument("--repeat", type=int, default=60, help="measured runs per configuration")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="a folder holding an earlier sfagent (e.g. `git archive HEAD sfagent | tar -x -C "
        "DIR`): its run_sync is timed against this one's with tracing off, in fresh processes",
    )
    args = parser.parse_args()
    rounds, repeat, warmup = args.rounds, (10 if args.quick else args.repeat), 3
    with Server(0.0) as server:
        fresh = measure_fresh_off(server.base_url, rounds, repeat, warmup)
        if args.baseline:
            pairs = [
                (
                    measure_fresh_off(server.base_url, rounds, repeat, warmup)["median"],
                    measure_fresh_off(server.base_url, rounds, repeat, warmup, args.baseline)[
                        "median"
                    ],
                )
                for _ in range(3)  # alternated, so drift hits both alike
            ]
        rows: dict[str, dict[str, tuple[float, float]]] = {}
        for label, driver in DRIVERS.items():
            # Each configuration against its own "off", interleaved pairwise: a table of four
            # agents at once (two SDK exporter threads among them) moved every column.
            rows[label] = {}
            for config in CONFIGS[1:]:
                pair = ("off", config)
                common = (server.base_url, rounds, repeat, warmup)
                if driver == "run":
                    times = asyncio.run(measure_async(*common, pair))
                else:
                    times = measure_sync(*common, driver == "stream_sync", pair)
                rows[label][config] = (times["off"], times[config])
    per_round = 1000 / rounds
    print(
        f"## Tracing: per-turn cost ({rounds} tool rounds + final answer per run, 0 ms latency)\n"
    )
    print(f"ms per tool round, median of {repeat} interleaved runs after {warmup} warm-up runs.\n")
    print("Each cell: off ms / on ms (ratio), the two interleaved in one pass.\n")
    print("| driver | " + " | ".join(CONFIGS[1:]) + " |")
    print("|---|" + "---|" * (len(CONFIGS) - 1))
    for label, cells in rows.items():
        shown = [
            f"{off * per_round:.3f} / {on * per_round:.3f} ({on / off:.2f}x)"
            for off, on in cells.values()
        ]
        print(f"| {label} | " + " | ".join(shown) + " |")
    print(
        f"\nOff, in a process that never imports OpenTelemetry (`run_sync`, not interleaved): "
        f"{fresh['median'] * per_round:.3f} ms per round; OpenTelemetry modules loaded: "
        f"{fresh['otel_modules'] or 'none'}."
    )
    if args.baseline:
        now = statistics.median(p[0] for p in pairs) * per_round
        before = statistics.median(p[1] for p in pairs) * per_round
        print(
            f"\nOff, this tree vs `{args.baseline}` (fresh processes, median of 3 alternations): "
            f"{now:.3f} vs {before:.3f} ms per round ({now / before:.2f}x)."
        )


if __name__ == "__main__":
    main()
