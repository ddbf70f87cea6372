"""A turn of parallel tool calls (sync and async, finishing in another order than the model
gave them) killed with SIGKILL while two are in flight, then resumed: the finished calls are
not run again, the two in flight run again under the same idempotency keys, and the run ends
exactly as a plain run of the same agent does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from dbos import DBOSClient

from sfagent.testing import LoopbackServer, RecordedRequest, Reply, ScriptedToolCall

pytestmark = pytest.mark.timeout(120)

CHILD = Path(__file__).with_name("parallel_child.py")
# In the model's order; "c" and "e" hang until the kill, the rest finish in the order
# a (thread, at once), b (loop, 0.1 s), f (thread, 0.2 s), d (loop, 0.3 s).
CALLS = [
    ("c", "work_sync", 0.0),
    ("a", "work_sync", 0.0),
    ("e", "work_async", 0.0),
    ("d", "work_async", 0.3),
    ("b", "work_async", 0.1),
    ("f", "work_sync", 0.2),
]
FINISHED = {"a", "b", "d", "f"}


def six_jobs(request: RecordedRequest) -> Reply:
    messages = request.json["messages"]
    if messages[-1]["role"] == "user":
        calls = [
            ScriptedToolCall(tool, {"name": name, "seconds": seconds}, id=f"call-{name}")
            for name, tool, seconds in CALLS
        ]
        return Reply(tool_calls=calls)
    return Reply(text="; ".join(m["content"] for m in messages if m["role"] == "tool"))


def child(server: LoopbackServer, db: str, log: Path, mode: str) -> list[str]:
    return [sys.executable, str(CHILD), server.base_url, db, str(log), mode]


def tool_log(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def recorded_calls(db: str) -> set[str]:
    client = DBOSClient(system_database_url=db)
    try:
        steps = client.list_workflow_steps("run-p", load_output=False)
    except Exception:  # the run's process has not made its tables yet
        return set()
    finally:
        client.destroy()
    return {
        s["function_name"].rpartition("/call-")[2] for s in steps if "/call-" in s["function_name"]
    }


def run_to_end(server: LoopbackServer, db: str, log: Path, mode: str) -> dict[str, Any]:
    done = subprocess.run(child(server, db, log, mode), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome


def test_a_killed_turn_of_parallel_calls_runs_only_the_unfinished_ones(
    db_url: str, tmp_path: Path
) -> None:
    log, block = tmp_path / "tools.log", tmp_path / "tools.log.block"
    with LoopbackServer(six_jobs) as server:
        block.touch()
        process = subprocess.Popen(
            child(server, db_url, log, "start"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 60
            while recorded_calls(db_url) != FINISHED or len(tool_log(log)) < 6 + 4:
                assert process.poll() is None, "the run ended before the kill"
                assert time.monotonic() < deadline, (recorded_calls(db_url), tool_log(log))
                time.sleep(0.05)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
        block.unlink()
        killed_at = len(tool_log(log))
        durable = run_to_end(server, db_url, log, "resume")
        durable_requests = [r.json for r in server.requests]

    with LoopbackServer(six_jobs) as server:
        plain = run_to_end(server, db_url, tmp_path / "plain.log", "plain")
        plain_requests = [r.json for r in server.requests]

    assert durable == plain
    assert durable["output"].startswith("c done on a thread; a done on a thread; e done on")
    assert durable_requests == plain_requests  # the same conversation, each request sent once
    assert len(durable_requests) == 2

    before, after = tool_log(log)[:killed_at], tool_log(log)[killed_at:]
    effects = Counter(e["key"] for e in tool_log(log) if e["event"] == "effect")
    assert effects == Counter(f"run-p/call-{name}" for name, _, _ in CALLS)  # each once
    finished = [e["key"].rpartition("-")[2] for e in before if e["event"] == "effect"]
    assert finished == ["a", "b", "f", "d"]
    assert sorted(e["key"] for e in after if e["event"] == "start") == [
        "run-p/call-c",
        "run-p/call-e",
    ]  # only the calls in flight ran again, under their first keys
    assert len({e["pid"] for e in before}) == len({e["pid"] for e in after}) == 1
