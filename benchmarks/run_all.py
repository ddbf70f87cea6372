"""Run every benchmark and write one markdown report with the machine's details.

Run:  ``python benchmarks/run_all.py [--quick] [--out benchmarks/results/report.md]``

Each script makes its comparisons inside its own run (sfagent and its floor or peer measured
side by side, interleaved), so the ratios hold even on a busy machine; absolute times do not.
The scripts run one after another, each in its own interpreter; the report keeps their
markdown output as is, under one header that says where and when it was measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, arguments for a full run, arguments for --quick)
SUITE: list[tuple[str, list[str], list[str]]] = [
    ("bench_tools.py", [], ["--quick"]),
    ("bench_stream.py", [], ["--repeat", "2"]),
    ("bench_client.py", [], ["--requests", "100", "--rounds", "3"]),
    ("bench_agent.py", [], ["--quick"]),
    ("bench_durable.py", [], ["--quick"]),
    ("bench_bounds.py", [], ["--quick"]),
    ("bench_mcp.py", [], ["--quick"]),
    ("bench_tracing.py", [], ["--quick"]),
    ("bench_limiter.py", [], ["--requests", "2000"]),
    # The journal's cost only: the 10,000-task limit scenarios take 20 minutes on their own.
    ("bench_batch.py", ["--skip", "limits", "--tasks", "2000"], ["--skip", "limits", "--quick"]),
    (
        "bench_transport.py",
        ["--runs", "200", "1000", "--repeat", "3"],
        ["--runs", "200", "--repeat", "1"],
    ),
]


def machine() -> str:
    """A markdown block describing this machine and the software measured."""
    from importlib.metadata import version

    def ver(name: str) -> str:
        try:
            return version(name)
        except Exception:  # not installed
            return "-"

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    packages = ", ".join(
        f"{n} {ver(n)}" for n in ("sfagent", "httpx", "httpx-aiohttp", "pydantic", "openai")
    )
    return "\n".join(
        [
            f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
            f"- python: {platform.python_version()} ({platform.python_implementation()})",
            f"- packages: {packages}",
            f"- load average when started: {load:.2f}",
        ]
    )


def run(script: str, arguments: list[str]) -> tuple[str, float, int]:
    """Run one benchmark script; return its output, its duration and its exit code."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(HERE / script), *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout if done.returncode == 0 else done.stdout + "\n```\n" + done.stderr + "```"
    return output.strip(), time.perf_counter() - start, done.returncode


def main() -> int:
    """Run the suite and write the report; exit non-zero if a script failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "report.md")
    args = parser.parse_args()
    sections = ["# sfagent benchmarks", "", machine(), ""]
    failed = 0
    for script, full, quick in SUITE:
        arguments = quick if args.quick else full
        print(f"running {script} {' '.join(arguments)}", file=sys.stderr, flush=True)
        output, seconds, code = run(script, arguments)
        failed += code != 0
        command = " ".join(["python", f"benchmarks/{script}", *arguments])
        sections += [f"## `{command}` ({seconds:.0f} s)", "", output, ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(sections), encoding="utf-8")
    print(f"report written to {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
