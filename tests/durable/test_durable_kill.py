"""A durable run's process killed with SIGKILL mid-run, then started again: the run finishes
from its last recorded step, no model request that got its answer is sent again, and only the
tool call in flight at the kill runs again (with the same idempotency key)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sfagent.durable import approve, pending_approval
from sfagent.testing import LoopbackServer, RecordedRequest, Reply, ScriptedToolCall

from .conftest import sqlite_url

pytestmark = pytest.mark.timeout(120)

CHILD = Path(__file__).with_name("durable_child.py")
CITIES = ["Paris", "Lhasa", "Oslo"]


def one_city_a_turn(request: RecordedRequest) -> Reply:
    answered = sum(1 for m in request.json["messages"] if m["role"] == "tool")
    if answered < len(CITIES):
        city = CITIES[answered]
        return Reply(tool_calls=[ScriptedToolCall("lookup", {"city": city}, id=f"call-{city}")])
    return Reply(text="Sunny in all three.")


def child(
    server: LoopbackServer, db: str, log: Path, mode: str, limit: float = 0, *extra: str
) -> list[str]:
    return [
        sys.executable, str(CHILD), server.base_url, db, str(log), "run-1", mode, str(limit),
        *extra,
    ]  # fmt: skip


def tool_log(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def start_and_kill_in_lhasa(server: LoopbackServer, db: str, log: Path, limit: float) -> None:
    (log.parent / (log.name + ".block")).touch()
    process = subprocess.Popen(child(server, db, log, "start", limit), stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(e["city"] == "Lhasa" for e in tool_log(log)):
            assert process.poll() is None, "the run ended before reaching Lhasa"
            assert time.monotonic() < deadline, "the run never reached Lhasa"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    (log.parent / (log.name + ".block")).unlink()


def resume(
    server: LoopbackServer, db: str, log: Path, limit: float = 0, *extra: str
) -> dict[str, Any]:
    done = subprocess.run(
        child(server, db, log, "resume", limit, *extra), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome


def tools_answered(server: LoopbackServer) -> list[int]:
    return [
        sum(1 for m in r.json["messages"] if m["role"] == "tool")
        for r in server.requests
        if r.path.endswith("/chat/completions")
    ]


def test_a_killed_run_finishes_from_its_last_step(db_url: str, tmp_path: Path) -> None:
    db, log = db_url, tmp_path / "tools.log"
    with LoopbackServer(one_city_a_turn) as server:
        start_and_kill_in_lhasa(server, db, log, limit=0)
        assert tools_answered(server) == [0, 1]
        outcome = resume(server, db, log)
    assert outcome == {"output": "Sunny in all three.", "requests": 4}
    assert tools_answered(server) == [0, 1, 2, 3]  # every request sent once
    calls = [(e["city"], e["event"]) for e in tool_log(log)]
    assert calls == [
        ("Paris", "start"), ("Paris", "end"),
        ("Lhasa", "start"),  # killed here
        ("Lhasa", "start"), ("Lhasa", "end"),  # only the call in flight ran again
        ("Oslo", "start"), ("Oslo", "end"),
    ]  # fmt: skip
    lhasa = {e["key"] for e in tool_log(log) if e["city"] == "Lhasa"}
    assert lhasa == {"run-1/call-Lhasa"}
    first, second = {e["pid"] for e in tool_log(log)[:3]}, {e["pid"] for e in tool_log(log)[3:]}
    assert len(first) == len(second) == 1
    assert first != second


def test_a_time_limit_spans_the_recovery(tmp_path: Path) -> None:
    db, log = sqlite_url(tmp_path / "dbos.sqlite"), tmp_path / "tools.log"
    limit = 3.0
    with LoopbackServer(one_city_a_turn) as server:
        started = time.monotonic()
        start_and_kill_in_lhasa(server, db, log, limit)
        time.sleep(max(0.0, limit + 0.5 - (time.monotonic() - started)))
        outcome = resume(server, db, log, limit)
    assert outcome == {"error": "BudgetExceeded", "budget": "time"}
    assert tools_answered(server) == [0, 1]  # nothing was sent after the limit passed


def test_an_approval_sent_while_no_process_runs_the_run_is_taken_up_at_restart(
    db_url: str, tmp_path: Path
) -> None:
    db, log = db_url, tmp_path / "tools.log"

    def reply(request: RecordedRequest) -> Reply:
        messages = request.json["messages"]
        if messages[-1]["role"] == "user":
            call = ScriptedToolCall("delete_file", {"path": "/tmp/old.log"}, id="del-1")
            return Reply(tool_calls=[call])
        return Reply(text=f"Done: {messages[-1]['content']}")

    with LoopbackServer(reply) as server:
        process = subprocess.Popen(
            child(server, db, log, "start", 0, "approval"), stdout=subprocess.DEVNULL
        )
        try:
            pending = pending_approval("run-1", database_url=db, wait=30)
            assert pending is not None, "the run never asked for an approval"
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        assert pending.tool == "delete_file"
        approve("run-1", call_id="del-1", database_url=db, by="ops")  # no process runs it now
        assert not tool_log(log)
        outcome = resume(server, db, log, 0, "approval")
    assert outcome == {"output": "Done: deleted /tmp/old.log", "requests": 2}
    assert [e["event"] for e in tool_log(log)] == ["delete"]
    assert tools_answered(server) == [0, 1]  # the first request was not sent again
