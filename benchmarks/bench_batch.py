"""The batch runner at scale: limits that hold over 10,000 tasks, memory, the journal's cost.

Run:  ``python benchmarks/bench_batch.py [--tasks 10000] [--quick]``  (about 20 minutes; --quick:
1,000 tasks a scenario, about 3 minutes)

Every scenario is one `BatchRunner` in a fresh client process (so its peak RSS is its own) against
a `LoopbackServer` in another process answering after 50 ms. Each task is an agent run of three
tool turns and a final answer (four model requests, a sync tool called three times), with
``max_tokens=256``. The server logs when each request arrived and the tokens its answer reported;
the windows are measured there, where SiliconFlow measures them.

1. *RPM binds*: ``RateLimits(rpm=6000)``, concurrency 64.
2. *TPM binds*: ``rpm=6000`` and a TPM set to 80% of the tokens 6,000 requests a minute use (taken
   from a probe batch of 100 tasks), so the token limit is the one that binds.
3. *memory*: scenario 1 at 1,000 tasks beside the 10,000-task run: peak RSS should stay flat.
4. *journal cost*: no limits, 2,000 tasks at concurrency 64 and at 256, with the SQLite journal
   against none (the journal records every model answer and tool result before the run acts on
   it); the cost is the lost share of tasks a second (medians of 4 alternating runs each).

Columns: the most requests and tokens any 60-second window held at the server (every window,
wherever it starts); the achieved rate (the mean of the 60-second windows starting each second from
the first request to a minute before the last) as a share of the binding limit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_limiter import _window_max, _window_mean  # noqa: E402  (shared window arithmetic)

MODEL = "deepseek-ai/DeepSeek-V3"
LATENCY = 0.05
ROUNDS = 3
RPM = 6000
PAIRS = 4
"""Runs with and without the journal, alternating, for its cost (the median of each side):
at 256 runs single runs on 2 shared cores swing by 20 points."""

# --- the server process --------------------------------------------------------------------------

_SERVER = """
import json, sys, time
from sfagent.offline.replies import Completion
from sfagent.testing import LoopbackServer, Reply, ScriptedToolCall

ROUNDS = int(sys.argv[3])
log = []

def answer(request):
    done = sum(1 for m in request.json.get("messages", []) if m.get("role") == "tool")
    if done < ROUNDS:
        call = ScriptedToolCall("lookup", {"city": "Paris", "day": done}, id=f"call_{done}")
        reply = Reply(tool_calls=[call])
    else:
        reply = Reply(text=f"Sunny in Paris all {ROUNDS} days.")
    tokens = Completion(reply, request).response()["usage"]["total_tokens"]
    log.append((time.time(), tokens))
    return reply

with LoopbackServer(answer, latency=float(sys.argv[1])) as server:
    print(server.base_url, flush=True)
    sys.stdin.read()
with open(sys.argv[2], "w") as out:
    json.dump(log, out)
"""


class Server:
    """The loopback server in a child process; `close` returns its request log."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.child = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(LATENCY), str(log), str(ROUNDS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.child.stdout is not None
        self.base_url = self.child.stdout.readline().strip()

    def close(self) -> list[tuple[float, int]]:
        assert self.child.stdin is not None
        assert self.child.stdout is not None
        self.child.stdin.close()
        self.child.wait(timeout=120)
        self.child.stdout.close()
        return [(when, tokens) for when, tokens in json.loads(self.log.read_text())]


# --- the client process --------------------------------------------------------------------------

_CLIENT = """
import asyncio, json, sys, time
from sfagent import Agent, ModelSettings, tool
from sfagent.batch import BatchRunner, RateLimits

base_url, tasks, rpm, tpm, concurrency, journal, out = sys.argv[1:8]

@tool
def lookup(city: str, day: int) -> str:
    \"\"\"Look up the weather.

    Args:
        city: The city.
        day: Days from today.
    \"\"\"
    return f"{city}, day {day}: sunny, 21 C"

agent = Agent(
    "MODEL_ID", tools=[lookup], api_key="sk-bench", base_url=base_url,
    settings=ModelSettings(max_tokens=256),
)
limits = None
if int(rpm) or int(tpm):
    limits = RateLimits(rpm=int(rpm) or None, tpm=int(tpm) or None)
runner = BatchRunner(
    agent, limits=limits, concurrency=int(concurrency),
    journal=None if journal == "none" else journal,
)
prompts = [
    {"id": f"t{i}", "prompt": f"What is the weather in Paris? ({i})"} for i in range(int(tasks))
]

async def main():
    done = failed = tokens = 0
    started = time.perf_counter()
    with open(out, "w") as results:
        async for record in runner.run(prompts):
            results.write(json.dumps(record) + "\\n")
            if record["status"] == "done":
                done += 1
            else:
                failed += 1
            tokens += record["usage"]["total_tokens"]
    wall = time.perf_counter() - started
    await agent.aclose()
    return done, failed, tokens, wall

done, failed, tokens, wall = asyncio.run(main())
with open("/proc/self/status") as status:
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
print(json.dumps({"done": done, "failed": failed, "tokens": tokens, "wall": wall,
                  "rss_mb": hwm / 1024}))
""".replace("MODEL_ID", MODEL)


def run_batch(
    tmp: Path,
    name: str,
    tasks: int,
    *,
    rpm: int = 0,
    tpm: int = 0,
    concurrency: int = 64,
    journal: bool = True,
) -> dict[str, Any]:
    """One batch in a fresh client process against a fresh server; what both saw."""
    server = Server(tmp / f"{name}.server.json")
    try:
        journal_path = str(tmp / f"{name}.journal") if journal else "none"
        argv = [server.base_url, str(tasks), str(rpm), str(tpm), str(concurrency)]
        argv += [journal_path, str(tmp / f"{name}.jsonl")]
        done = subprocess.run(
            [sys.executable, "-c", _CLIENT, *argv], capture_output=True, text=True, timeout=3600
        )
    finally:
        log = server.close()
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["log"] = log
    return result


def windows(result: dict[str, Any]) -> dict[str, float]:
    log = result["log"]
    return {
        "max_requests": _window_max(log, tokens=False),
        "max_tokens": _window_max(log, tokens=True),
        "rpm": _window_mean(log, tokens=False),
        "tpm": _window_mean(log, tokens=True),
        "span": log[-1][0] - log[0][0],
    }


def limits_table(rows: list[tuple[str, int, int, int, dict[str, Any]]]) -> None:
    print(
        "| scenario | tasks | requests | limits | most requests in a 60 s window "
        "| most tokens in a 60 s window | achieved | share of the binding limit "
        "| failed | wall s | peak RSS MB |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, tasks, rpm, tpm, result in rows:
        w = windows(result)
        limit = f"RPM {rpm:,}" + (f", TPM {tpm:,}" if tpm else "")
        binding_tokens = bool(tpm) and tpm / w["tpm"] < rpm / w["rpm"]
        achieved = f"{w['tpm']:,.0f} tokens/min" if binding_tokens else f"{w['rpm']:,.0f} req/min"
        share = w["tpm"] / tpm if binding_tokens else w["rpm"] / rpm
        print(
            f"| {name} | {tasks:,} | {len(result['log']):,} | {limit} | {w['max_requests']:,} "
            f"| {w['max_tokens']:,} | {achieved} | {share:.1%} | {result['failed']} "
            f"| {result['wall']:.0f} | {result['rss_mb']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1,000 tasks a scenario")
    parser.add_argument("--skip", nargs="*", default=[], choices=["limits", "journal"])
    args = parser.parse_args()
    tasks = 1000 if args.quick else args.tasks
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {LATENCY * 1000:.0f} ms")
        print(f"latency, {ROUNDS} tool turns + a final answer per task\n")
        if "limits" not in args.skip:
            probe = run_batch(tmp, "probe", 100)
            per_request = sum(t for _, t in probe["log"]) / len(probe["log"])
            tpm = int(0.8 * RPM * per_request)
            print(f"probe: {per_request:.0f} tokens a request on average; TPM set to {tpm:,}\n")
            rows = []
            for name, n, limit_tpm in (
                ("RPM binds", 1000, 0),
                ("RPM binds", tasks, 0),
                ("TPM binds", tasks, tpm),
            ):
                if n > tasks:
                    continue
                started = time.monotonic()
                result = run_batch(tmp, f"{name}-{n}".replace(" ", "_"), n, rpm=RPM, tpm=limit_tpm)
                print(f"  ({name}, {n:,} tasks: {time.monotonic() - started:.0f} s)", flush=True)
                rows.append((name, n, RPM, limit_tpm, result))
            print()
            limits_table(rows)
        if "journal" not in args.skip:
            n = min(tasks, 2000)
            print(f"\njournal cost: {n:,} tasks, no limits\n")
            print("| concurrency | without a journal, tasks/s | with the journal, tasks/s | cost |")
            print("|---:|---:|---:|---:|")
            for concurrency in (64, 256):
                rates = {}
                for i, journal in enumerate((False, True) * PAIRS):  # interleaved: drift hits both
                    name = f"j{concurrency}-{journal}-{i}"
                    result = run_batch(tmp, name, n, concurrency=concurrency, journal=journal)
                    assert result["failed"] == 0, result
                    rates.setdefault(journal, []).append(n / result["wall"])
                without, with_journal = (
                    statistics.median(rates[False]),
                    statistics.median(rates[True]),
                )
                cost = 1 - with_journal / without
                print(f"| {concurrency} | {without:,.0f} | {with_journal:,.0f} | {cost:.1%} |")


if __name__ == "__main__":
    main()
