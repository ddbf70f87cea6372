"""A batch across machines, as users run it: ``sfagent batch --engine dbos`` submits a few
hundred tasks to PostgreSQL and two ``sfagent worker`` processes share them; one worker is
killed with SIGKILL mid-way and started again under its id. Every task ends exactly once in
the results file, no model request that got its answer is sent again (only those in flight
at the kill), and the two workers drew on one shared rate budget. And (over a minute, so run
where SFAGENT_REQUIRE_INTEGRATION=1, as in .ci/run) a TPM limit binding two workers holds in
every 60-second window the server saw."""

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
import sqlalchemy as sa

from sfagent.offline.replies import Completion
from sfagent.testing import LoopbackServer, RecordedRequest, Reply, ScriptedToolCall

from ._postgres import PostgresCluster

pytestmark = pytest.mark.timeout(420)

AGENT = str(Path(__file__).with_name("batch_agent.py"))
TASKS = 240
ROUNDS = 3
CONCURRENCY = 6


def three_lookups(request: RecordedRequest) -> Reply:
    messages = request.json["messages"]
    city = next(m["content"] for m in messages if m["role"] == "user")
    done = sum(1 for m in messages if m["role"] == "tool")
    if done < ROUNDS:
        return Reply(tool_calls=[ScriptedToolCall("lookup", {"city": city, "day": done})])
    return Reply(text=f"sunny in {city}")


def request_key(request: RecordedRequest) -> tuple[str, int]:
    """A request's place: its task (the city) and its turn (tool results so far)."""
    messages = request.json["messages"]
    city = next(m["content"] for m in messages if m["role"] == "user")
    return city, sum(1 for m in messages if m["role"] == "tool")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sfagent", *args]


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    variables = dict(os.environ)
    variables["SILICONFLOW_API_KEY"] = "sk-batch-workers-test"  # else the CLI runs the demo
    variables["SFAGENT_TEST_TOOL_LOG"] = str(tmp_path / "tools.jsonl")
    return variables


def test_postgres_two_workers_one_killed_every_task_once_nothing_paid_twice(
    postgres_cluster: PostgresCluster, tmp_path: Path, env: dict[str, str]
) -> None:
    url = postgres_cluster.create_database()
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "".join(json.dumps({"id": f"t{i}", "prompt": f"city {i}"}) + "\n" for i in range(TASKS))
    )
    out, log = tmp_path / "results.jsonl", Path(env["SFAGENT_TEST_TOOL_LOG"])
    with LoopbackServer(three_lookups, latency=0.02) as server:
        env["SFAGENT_TEST_BASE_URL"] = server.base_url
        env["DBOS_SYSTEM_DATABASE_URL"] = url  # how a password stays out of `ps`

        def worker(worker_id: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                cli("worker", "--agent", AGENT, "--worker-id", worker_id),
                env=env,
                stderr=subprocess.DEVNULL,
            )

        submit_args = [
            "batch", str(tasks), "--agent", AGENT, "--out", str(out), "--engine", "dbos",
            "--job", "cities", "--concurrency", str(CONCURRENCY), "--no-progress",
            "--tpm", "1000000", "--report", str(tmp_path / "report.html"),
        ]  # fmt: skip
        submit = subprocess.Popen(
            cli(*submit_args),
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        first, second = worker("worker-a"), worker("worker-b")
        try:
            deadline = time.monotonic() + 180
            while len({e["pid"] for e in lines(log)}) < 2 or len(lines(out)) < TASKS // 3:
                assert submit.poll() is None, submit.stderr.read() if submit.stderr else ""
                assert time.monotonic() < deadline, "the workers never got a third done"
                time.sleep(0.1)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
            killed_at = len(server.requests)
            assert len(lines(out)) < TASKS, "the batch ended before the kill"
            again = worker("worker-a")  # the same id: it resumes what the killed one held
            try:
                _, said = submit.communicate(timeout=300)
            finally:
                again.send_signal(signal.SIGTERM)
                assert again.wait(timeout=60) == 0
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(timeout=60)
            finally:
                for process in (first, second, submit):
                    if process.poll() is None:
                        process.kill()
                        process.wait()
        assert submit.returncode == 0, said
        assert f"{TASKS} done, 0 failed" in said
        assert "tasks.jsonl" in (tmp_path / "report.html").read_text()  # the same report page

        records = lines(out)
        ids = Counter(r["id"] for r in records)
        assert set(ids) == {f"t{i}" for i in range(TASKS)}
        assert max(ids.values()) == 1  # each task's record exactly once
        assert {(r["status"], r["turns"]) for r in records} == {("done", ROUNDS + 1)}, records[0]

        # No recorded model request sent again: only those in flight at the kill (at most
        # one per task the killed worker was running) went out twice.
        sent = Counter(request_key(r) for r in server.requests)
        assert len(sent) == TASKS * (ROUNDS + 1)
        repeated = {key: n for key, n in sent.items() if n > 1}
        assert len(repeated) <= CONCURRENCY, repeated
        assert all(n == 2 for n in repeated.values())
        assert killed_at < len(server.requests)  # the restarted worker did go on

    tools = Counter(entry["key"] for entry in lines(log))
    assert len(tools) == TASKS * ROUNDS
    assert sum(n - 1 for n in tools.values()) <= CONCURRENCY  # only calls cut by the kill
    assert len({entry["pid"] for entry in lines(log)}) == 3  # both workers, and the restart

    # Both workers' requests were admitted against one shared budget in the database.
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            buckets = conn.execute(sa.text("SELECT bucket FROM sfagent_rate_buckets")).all()
    finally:
        engine.dispose()
    assert [row[0] for row in buckets] == [f"{server.base_url}|Qwen/Qwen3-8B"]


@pytest.mark.skipif(
    os.environ.get("SFAGENT_REQUIRE_INTEGRATION") != "1",
    reason="over a minute: run with SFAGENT_REQUIRE_INTEGRATION=1 (.ci/run does)",
)
def test_postgres_tpm_holds_across_two_workers_in_every_minute(
    postgres_cluster: PostgresCluster, tmp_path: Path, env: dict[str, str]
) -> None:
    tpm, tasks_count = 3000, 40
    url = postgres_cluster.create_database()
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(
        "".join(
            json.dumps({"id": f"t{i}", "prompt": f"city {i}"}) + "\n" for i in range(tasks_count)
        )
    )
    received: list[tuple[float, int]] = []  # (when, tokens its answer reports)

    def one_lookup(request: RecordedRequest) -> Reply:
        messages = request.json["messages"]
        if any(m["role"] == "tool" for m in messages):
            reply = Reply(text="sunny")
        else:
            reply = Reply(tool_calls=[ScriptedToolCall("lookup", {"city": "x", "day": 0})])
        usage = Completion(reply, request).response()["usage"]
        received.append((time.monotonic(), int(usage["total_tokens"])))
        return reply

    out = tmp_path / "results.jsonl"
    with LoopbackServer(one_lookup) as server:
        env["SFAGENT_TEST_BASE_URL"] = server.base_url
        env["DBOS_SYSTEM_DATABASE_URL"] = url
        workers = [
            subprocess.Popen(
                cli("worker", "--agent", AGENT, "--worker-id", worker_id),
                env=env,
                stderr=subprocess.DEVNULL,
            )
            for worker_id in ("worker-a", "worker-b")
        ]
        try:
            done = subprocess.run(
                cli(
                    "batch",
                    str(tasks),
                    "--agent",
                    AGENT,
                    "--out",
                    str(out),
                    "--engine",
                    "dbos",
                    "--job",
                    "tpm",
                    "--concurrency",
                    "8",
                    "--no-progress",
                    "--tpm",
                    str(tpm),
                ),
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        finally:
            for process in workers:
                process.send_signal(signal.SIGTERM)
            for process in workers:
                process.wait(timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(lines(out)) == tasks_count
    assert len({e["pid"] for e in lines(Path(env["SFAGENT_TEST_TOOL_LOG"]))}) == 2
    total = sum(tokens for _, tokens in received)
    assert total > tpm  # the limit had to bind: more than a minute's tokens
    busiest = 0
    for start, _ in received:  # every 60-second window that starts at a request
        inside = sum(n for when, n in received if start <= when < start + 60)
        assert inside <= tpm, f"{inside} tokens in the minute from {start}"
        busiest = max(busiest, inside)
    assert busiest >= tpm // 2  # and the workers together did use the minute's tokens
    assert received[-1][0] - received[0][0] >= 60 * (total // tpm) - 5
