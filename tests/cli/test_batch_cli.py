"""`sfagent batch` as a user runs it: offline on the demo model, against a loopback server, and
killed with SIGKILL at random points and resumed (the acceptance test of issue 13, section 3).

Cheap cases call `main` in-process; a batch that must be killed runs as a real subprocess
(``python -m sfagent batch ...``) against a `LoopbackServer` running in this test's process, so
the test sees every request the batch sent. The scripted model reads everything from the
request: the task's id and how many tool rounds it wants come from the user prompt, the turn
from the number of tool messages (so a repeated request for the same step is recognisable).
The agent is ``tests/cli/batch_agent.py``; its tool logs each call's idempotency key.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sfagent.batch import SQLiteJournal
from sfagent.cli import main
from sfagent.testing import LoopbackServer, RecordedRequest, Reply, ScriptedToolCall

REPO = Path(__file__).resolve().parents[2]
WEATHER = REPO / "examples" / "weather.py"
WEATHER_TASKS = REPO / "examples" / "data" / "weather_tasks.jsonl"
WEATHER_TEMPLATE = "What's the weather in {city}?"
AGENT = Path(__file__).resolve().with_name("batch_agent.py")

FAKE_KEY = "sk-batch-cli-test-0123456789"
OFFLINE_LINE = "No SILICONFLOW_API_KEY set: running on the offline demo model."
TEMPLATE = "Task {id}: the weather in {city}, rounds={rounds}."
PROMPT = re.compile(r"Task (\S+): the weather in (\w+), rounds=(\d+)\.")
MODEL_KEY = re.compile(r"^v1/turn-(\d+)/model$")
CALL_KEY = re.compile(r"^v1/turn-\d+/call/(.+)$")

RECORD_FIELDS = {
    "id",
    "status",
    "output",
    "error_type",
    "error_message",
    "turns",
    "usage",
    "cost",
    "currency",
    "latency",
    "started_at",
    "finished_at",
    "attempt",
}
USAGE_FIELDS = {"prompt_tokens", "completion_tokens", "total_tokens", "requests", "tool_calls"}
SUMMARY = re.compile(r"^batch: (\d+) done, (\d+) failed, ([\d,]+) tokens, cost (.+?), [\d.]+ s")
METRIC = re.compile(r'data-metric="([^"]+)" data-value="([^"]*)"')


# --- the scripted model ----------------------------------------------------------------------


def weather(city: str, day: int) -> str:
    """What batch_agent's `lookup` answers (kept in step with it)."""
    return f"{city}: sunny, 21 C on day {day}"


def responder(request: RecordedRequest) -> Reply:
    """A model that calls `lookup` once per turn until the prompt's rounds are done, then
    answers; it checks every tool message it is shown, so a wrong replay shows in the output."""
    messages = request.json["messages"]
    user = next(m["content"] for m in messages if m["role"] == "user")
    match = PROMPT.search(user)
    assert match is not None, user
    task, city, rounds = match.group(1), match.group(2), int(match.group(3))
    tools = [m for m in messages if m["role"] == "tool"]
    for day, message in enumerate(tools):
        if message["content"] != weather(city, day) or message["tool_call_id"] != f"call_{day}":
            return Reply(text=f"MISMATCH {task}: {message}")
    if len(tools) < rounds:
        day = len(tools)
        return Reply(
            tool_calls=[ScriptedToolCall("lookup", {"city": city, "day": day}, id=f"call_{day}")]
        )
    return Reply(text=answer(task, rounds))


def answer(task: str, rounds: int) -> str:
    return f"{task}: sunny for {rounds} days"


def step_of(request: RecordedRequest) -> tuple[str, int]:
    """The (task, turn) a model request asks for: turn 1 has no tool message yet."""
    messages = request.json["messages"]
    user = next(m["content"] for m in messages if m["role"] == "user")
    match = PROMPT.search(user)
    assert match is not None, user
    return match.group(1), 1 + sum(1 for m in messages if m["role"] == "tool")


def chat_requests(server: LoopbackServer) -> list[RecordedRequest]:
    return [r for r in server.requests if r.path.startswith("/v1/chat/completions")]


# --- helpers ---------------------------------------------------------------------------------


def write_tasks(path: Path, count: int, rounds: int) -> list[str]:
    ids = [f"t{i:03d}" for i in range(count)]
    cities = ["Paris", "Oslo", "Lima", "Hanoi", "Quito"]
    path.write_text(
        "".join(
            json.dumps({"id": task, "city": cities[i % len(cities)], "rounds": rounds}) + "\n"
            for i, task in enumerate(ids)
        ),
        encoding="utf-8",
    )
    return ids


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`sfagent ARGS` in-process: the exit code, stdout and stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def summary_of(err: str) -> re.Match[str]:
    lines = [line for line in err.splitlines() if line.startswith("batch: ")]
    assert len(lines) == 1, err
    match = SUMMARY.match(lines[0])
    assert match is not None, lines[0]
    return match


def metrics(html: str) -> dict[str, str]:
    return dict(METRIC.findall(html))


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(-(-p * len(ordered) // 100), 1)  # ceil(p / 100 * n), at least 1
    return ordered[int(rank) - 1]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SILICONFLOW_")}
    env["SILICONFLOW_API_KEY"] = FAKE_KEY
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def batch_command(tasks: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sfagent",
        "batch",
        str(tasks),
        "--agent",
        str(AGENT),
        "--out",
        str(out),
        "--template",
        TEMPLATE,
        "--base-url",
        base_url,
        "--no-progress",
        *extra,
    ]


def wait_for(condition: Any, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until `condition()` holds (or `proc` has exited); fail after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            return
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout} s waiting")
        time.sleep(0.001)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No key (the demo model), working in `tmp_path`."""
    for name in ("SILICONFLOW_API_KEY", "SILICONFLOW_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LoopbackServer]:
    """A dummy key, a loopback server playing the model, and a tool log in `tmp_path`."""
    monkeypatch.delenv("SILICONFLOW_BASE_URL", raising=False)
    monkeypatch.setenv("SILICONFLOW_API_KEY", FAKE_KEY)
    monkeypatch.setenv("BATCH_AGENT_LOG", str(tmp_path / "tools.log"))
    monkeypatch.chdir(tmp_path)
    with LoopbackServer(responder, latency=0.005) as server:
        yield server


def weather_batch(*extra: str) -> list[str]:
    return [
        "batch",
        str(WEATHER_TASKS),
        "--agent",
        str(WEATHER),
        "--template",
        WEATHER_TEMPLATE,
        "--out",
        "results.jsonl",
        *extra,
    ]


# --- 1. offline, on the demo model -----------------------------------------------------------


def test_offline_batch_writes_a_record_per_task_and_a_report(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, *weather_batch("--report", "report.html"))

    assert code == 0, err
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == OFFLINE_LINE
    assert lines[-1] == "report: report.html"
    assert "\r" not in err  # stderr is no terminal: no progress line
    assert "task/s" not in err
    assert "Traceback" not in err
    assert len(lines) == 3, err  # the notice, the summary, where the report went

    rows = [json.loads(line) for line in WEATHER_TASKS.read_text(encoding="utf-8").splitlines()]
    records = read_records(offline / "results.jsonl")
    assert sorted(r["id"] for r in records) == [row["id"] for row in rows]
    cities = {row["id"]: row["city"] for row in rows}
    for record in records:
        assert set(record) == RECORD_FIELDS, record
        assert set(record["usage"]) == USAGE_FIELDS
        assert record["status"] == "done"
        assert record["error_type"] is None
        assert record["error_message"] is None
        # the tool saw its city (Xi'an too: an apostrophe inside a word is no quote)
        assert json.dumps(cities[record["id"]], ensure_ascii=False) in record["output"]
        assert record["turns"] == 2  # one tool call, then the answer
        usage = record["usage"]
        assert usage["requests"] == 2
        assert usage["tool_calls"] == 1
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
        assert record["cost"] is None  # the demo model has no price
        assert record["currency"] == "CNY"
        assert record["attempt"] == 1
        assert record["latency"] >= 0
        assert record["started_at"] <= record["finished_at"]
        assert record["finished_at"] - record["started_at"] >= record["latency"] - 0.01

    summary = summary_of(err)
    tokens = sum(r["usage"]["total_tokens"] for r in records)
    assert summary.group(1, 2) == (str(len(records)), "0")
    assert int(summary.group(3).replace(",", "")) == tokens
    assert summary.group(4) == "unknown"
    assert "results in results.jsonl" in err

    html = (offline / "report.html").read_text(encoding="utf-8")
    found = metrics(html)
    assert found["tasks"] == str(len(records))
    assert found["done"] == str(len(records))
    assert found["failed"] == "0"
    assert found["retried"] == "0"
    for key in USAGE_FIELDS:
        assert found[key] == str(sum(r["usage"][key] for r in records)), key
    assert found["total_cost"] == ""  # unknown, not zero
    latencies = [r["latency"] for r in records]
    for p in (50, 90, 99):
        assert float(found[f"p{p}_latency"]) == nearest_rank(latencies, p)
    assert not re.search(r'(src|href)="https?:', html)  # self-contained


def test_offline_batch_passes_the_city_with_an_apostrophe(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, *weather_batch())
    assert code == 0, err
    (record,) = [r for r in read_records(offline / "results.jsonl") if r["id"] == "city-08"]
    assert '"city": "Xi\'an"' in record["output"]


def test_report_peak_rpm_counts_the_requests_of_a_batch_with_limits(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, *weather_batch("--rpm", "100000", "--report", "report.html"))

    assert code == 0, err
    records = read_records(offline / "results.jsonl")
    found = metrics((offline / "report.html").read_text(encoding="utf-8"))
    requests = sum(r["usage"]["requests"] for r in records)
    assert found["requests"] == str(requests)
    assert found["peak_rpm"] == str(requests)  # the whole batch took well under a minute
    assert found["peak_tpm"] == str(sum(r["usage"]["total_tokens"] for r in records))


def test_report_peak_rpm_counts_the_requests_of_a_batch_without_limits(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, *weather_batch("--report", "report.html"))

    assert code == 0, err
    records = read_records(offline / "results.jsonl")
    html = (offline / "report.html").read_text(encoding="utf-8")
    requests = sum(r["usage"]["requests"] for r in records)
    assert "No requests were recorded." not in html
    assert metrics(html)["peak_rpm"] == str(requests)


def test_progress_line_only_on_a_terminal(offline: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    env = {k: v for k, v in os.environ.items() if not k.startswith("SILICONFLOW_")}
    command = [sys.executable, "-m", "sfagent", *weather_batch()]

    def stderr_of(*extra: str, tty: bool) -> str:
        for name in ("results.jsonl", "results.jsonl.journal"):
            (offline / name).unlink(missing_ok=True)
        if not tty:
            proc = subprocess.run(
                [*command, *extra], env=env, capture_output=True, timeout=60, check=False
            )
            assert proc.returncode == 0, proc.stderr
            return proc.stderr.decode()
        master, slave = pty.openpty()
        # a terminal 100 columns wide (a fresh pseudo-terminal has no size: tqdm draws nothing)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        try:
            with subprocess.Popen(
                [*command, *extra], env=env, stdout=subprocess.DEVNULL, stderr=slave
            ) as proc:
                os.close(slave)
                slave = -1
                chunks = []
                while True:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: the child closed the terminal
                        break
                    if not chunk:
                        break
                    chunks.append(chunk)
                assert proc.wait(timeout=60) == 0
        finally:
            os.close(master)
            if slave != -1:
                os.close(slave)
        return b"".join(chunks).decode()

    drawn = stderr_of(tty=True)
    assert "20/20" in drawn  # tqdm's bar: every task counted
    assert "\r" in drawn
    assert "batch: 20 done, 0 failed" in drawn
    assert "20/20" not in stderr_of(tty=False)
    quiet = stderr_of("--no-progress", tty=True)
    assert "20/20" not in quiet
    assert "batch: 20 done, 0 failed" in quiet


# --- 2. a second start -----------------------------------------------------------------------


def test_second_start_is_refused_and_resume_finishes_each_task_once(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, *weather_batch())
    assert code == 0, err
    results = offline / "results.jsonl"
    first = results.read_bytes()
    first_records = read_records(results)

    code, out, err = run_cli(capsys, *weather_batch())
    assert code == 2
    assert out == ""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "--resume" in errors[0]
    assert "Traceback" not in err
    assert results.read_bytes() == first  # the first start's results, untouched

    code, _, err = run_cli(capsys, *weather_batch("--resume"))
    assert code == 0, err
    records = read_records(results)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 20
    assert sorted(records, key=lambda r: r["id"]) == sorted(first_records, key=lambda r: r["id"])
    summary = summary_of(err)
    assert summary.group(1, 2) == ("20", "0")
    assert "20 finished before (resumed)" in err


# --- 3. errors -------------------------------------------------------------------------------


def one_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_missing_tasks_file(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "batch", "nope.jsonl", "--agent", str(WEATHER), "--out", "r.jsonl", "--offline"
    )
    assert code == 2
    assert out == ""
    assert "nope.jsonl" in one_error(err)
    assert not (offline / "r.jsonl").exists()


def test_template_naming_a_missing_field(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys,
        "batch",
        str(WEATHER_TASKS),
        "--agent",
        str(WEATHER),
        "--out",
        "r.jsonl",
        "--template",
        "Weather in {town}?",
        "--journal",
        "other.journal",
        "--offline",
    )
    assert code == 2
    assert out == ""
    line = one_error(err)
    assert "'town'" in line
    assert "line 1" in line


def test_template_error_leaves_nothing_that_blocks_the_fixed_command(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, *weather_batch("--template", "Weather in {town}?", "--offline"))
    assert code == 2, err
    assert not (offline / "results.jsonl").exists()
    code, _, err = run_cli(capsys, *weather_batch("--offline"))
    assert code == 0, err


@pytest.mark.parametrize(
    ("value", "problem"),
    [("0", "must be at least 1"), ("-3", "must be at least 1"), ("ten", "not a whole number")],
)
def test_bad_rpm(
    offline: Path, capsys: pytest.CaptureFixture[str], value: str, problem: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(weather_batch("--rpm", value))
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    # argparse's usage, then one error line (like every other bad option of `sfagent`)
    assert err.strip().splitlines()[-1] == (
        f"sfagent batch: error: argument --rpm: {problem}"
        + (f", got {value}" if problem.startswith("must") else f": {value!r}")
    )
    assert not (offline / "results.jsonl").exists()


def test_agent_file_that_does_not_exist(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys,
        "batch",
        str(WEATHER_TASKS),
        "--agent",
        "missing_agent.py",
        "--out",
        "r.jsonl",
        "--offline",
    )
    assert code == 2
    assert out == ""
    assert "missing_agent.py" in one_error(err)
    assert not (offline / "r.jsonl").exists()
    assert not (offline / "r.jsonl.journal").exists()


def test_tpm_below_what_every_request_needs_is_refused_before_anything_runs(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The weather agent sets no max_tokens: each request is estimated at 512 completion
    tokens (the server's default) plus its prompt, so --tpm 100 could never admit one."""
    code, out, err = run_cli(capsys, *weather_batch("--tpm", "100"))
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: --tpm 100 is too low: every request is estimated at ~512 "), err
    assert "the server's default of 512" in line
    assert "raise the TPM limit or lower max_tokens" in line
    assert not (offline / "results.jsonl").exists()
    assert not (offline / "results.jsonl.journal").exists()


def test_tpm_below_one_request_fails_that_task_with_its_reason(
    offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--tpm 600 is above the 512 completion tokens but below each request's ~850 tokens (the
    prompt and the tool's schema too): each task fails at its request, without sending it."""
    code, _, err = run_cli(capsys, *weather_batch("--tpm", "600"))
    assert code == 1
    assert "Traceback" not in err
    records = read_records(offline / "results.jsonl")
    assert len(records) == 20
    for record in records:
        assert record["status"] == "failed"
        assert record["error_type"] == "EstimateTooLargeError"
        assert re.match(r"a request needs ~\d+ tokens .* but TPM is 600", record["error_message"])
        assert record["usage"]["requests"] == 0
    assert summary_of(err).group(1, 2) == ("0", "20")


# --- 4. against a real HTTP server -----------------------------------------------------------


def test_batch_against_the_server_under_limits(
    online: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks, rounds = 12, 3
    ids = write_tasks(tmp_path / "tasks.jsonl", tasks, rounds)
    code, out, err = run_cli(
        capsys,
        "batch",
        "tasks.jsonl",
        "--agent",
        str(AGENT),
        "--out",
        "results.jsonl",
        "--template",
        TEMPLATE,
        "--base-url",
        online.base_url,
        "--rpm",
        # Room for all in the minute, paced 16 a second (at exactly 48, the pacer would spread
        # them over the minute and the test would take it).
        str(tasks * (rounds + 1) * 20),
        "--tpm",
        "1000000",
        "--concurrency",
        "4",
        "--report",
        "report.html",
    )
    assert code == 0, err
    assert out == ""
    assert OFFLINE_LINE not in err

    requests = chat_requests(online)
    assert len(online.requests) == len(requests)  # nothing but chat completions
    assert len(requests) == tasks * (rounds + 1)
    assert Counter(step_of(r) for r in requests) == Counter(
        {(t, turn): 1 for t in ids for turn in range(1, rounds + 2)}
    )
    assert all(not r.json.get("stream") for r in requests)  # whole requests only
    assert {r.json["model"] for r in requests} == {"deepseek-ai/DeepSeek-V3"}

    records = read_records(tmp_path / "results.jsonl")
    assert sorted(r["id"] for r in records) == ids
    costs = Decimal(0)
    for record in records:
        assert record["status"] == "done", record
        assert record["output"] == answer(record["id"], rounds)
        assert record["turns"] == rounds + 1
        assert record["usage"]["requests"] == rounds + 1
        assert record["usage"]["tool_calls"] == rounds
        assert record["cost"] is not None
        assert Decimal(record["cost"]) > 0
        costs += Decimal(record["cost"])
    summary = summary_of(err)
    assert summary.group(4) == f"{costs:.4f} CNY"

    log = (tmp_path / "tools.log").read_text(encoding="utf-8").split()[1::2]
    assert Counter(log) == Counter({f"{t}/call_{d}": 1 for t in ids for d in range(rounds)})

    found = metrics((tmp_path / "report.html").read_text(encoding="utf-8"))
    assert found["requests"] == str(len(requests))
    assert int(found["peak_rpm"]) == len(requests) <= tasks * (rounds + 1)
    assert found["peak_tpm"] == str(sum(r["usage"]["total_tokens"] for r in records))
    assert Decimal(found["total_cost"]) == costs


def test_rpm_holds_back_requests_then_resume_sends_the_rest_once(
    tmp_path: Path,
) -> None:
    """--rpm 7 for a batch of 30 requests: the pacer lets one go, the next a few seconds later,
    then one every 8.6 s. The batch is killed while the third waits and resumed with room:
    every request went exactly once."""
    tasks, rounds, rpm = 10, 2, 7
    ids = write_tasks(tmp_path / "tasks.jsonl", tasks, rounds)
    out = tmp_path / "results.jsonl"
    env = child_env(BATCH_AGENT_LOG=str(tmp_path / "tools.log"))
    with LoopbackServer(responder, latency=0.005) as server:
        command = batch_command(tmp_path / "tasks.jsonl", out, server.base_url)
        with subprocess.Popen(
            [*command, "--rpm", str(rpm), "--concurrency", "4"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as proc:
            try:
                wait_for(lambda: len(server.requests) >= 2, 60, proc)
                assert proc.poll() is None
                time.sleep(1.5)  # the answers come in 5 ms; the next slot is 8.6 s away
                assert len(server.requests) == 2
                assert proc.poll() is None  # still waiting for the limiter
            finally:
                kill(proc)
        assert len(server.requests) == 2

        finished = subprocess.run(
            [*command, "--resume", "--rpm", "1000"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert finished.returncode == 0, finished.stderr
        steps = Counter(step_of(r) for r in chat_requests(server))
        # the 2 answered before the kill were recorded: neither was asked again
        assert steps == Counter({(t, turn): 1 for t in ids for turn in range(1, rounds + 2)})
    records = read_records(out)
    assert sorted(r["id"] for r in records) == ids
    assert all(r["status"] == "done" for r in records)


def test_tpm_holds_back_requests(tmp_path: Path) -> None:
    """--tpm 2500 for a batch needing about 3,300 tokens: what was sent and recorded stays
    under the limit, and the batch waits (killed while it does)."""
    tasks, rounds, tpm = 10, 2, 2500
    write_tasks(tmp_path / "tasks.jsonl", tasks, rounds)
    out = tmp_path / "results.jsonl"
    with LoopbackServer(responder, latency=0.005) as server:
        command = batch_command(tmp_path / "tasks.jsonl", out, server.base_url)
        with subprocess.Popen(
            [*command, "--tpm", str(tpm), "--concurrency", "4"],
            env=child_env(),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ) as proc:
            try:
                wait_for(lambda: len(server.requests) > 0, 60, proc)
                seen = -1
                while seen != len(server.requests):  # until it has stopped sending
                    seen = len(server.requests)
                    time.sleep(1.5)
                assert proc.poll() is None  # waiting for the limiter, not finished
            finally:
                kill(proc)
        sent = len(server.requests)
    assert 0 < sent < tasks * (rounds + 1)
    with SQLiteJournal(tmp_path / "results.jsonl.journal") as journal:
        used = [
            payload["usage"]["total_tokens"]
            for task in journal.task_ids()
            for key, payload in journal.steps(task).items()
            if MODEL_KEY.match(key)
        ]
    assert len(used) == sent  # every answer was recorded before the kill
    assert sum(used) <= tpm


# --- 5. killed at random points, resumed each time -------------------------------------------

KILL_TASKS = 300
KILL_ROUNDS = 2
KILLS = 20
CONCURRENCY = 8


def test_killed_twenty_times_and_resumed(tmp_path: Path) -> None:
    """Issue 13's acceptance test: SIGKILL at random points 20 times, resume each time.

    Every task ends with one record; no model request whose answer was recorded is sent again
    by a later start, no tool call whose result was recorded runs again, and the repeats
    (requests and tool calls in flight at a kill) stay within kills x concurrency.
    """
    rng = random.Random(20240613)
    ids = write_tasks(tmp_path / "tasks.jsonl", KILL_TASKS, KILL_ROUNDS)
    out = tmp_path / "results.jsonl"
    journal_path = tmp_path / "results.jsonl.journal"
    log = tmp_path / "tools.log"
    # At each kill: which start it ended, how many requests the server had seen, and the model
    # steps ((task, turn)) and tool calls ("task/call id") the journal held.
    kills: list[tuple[int, int, set[tuple[str, int]], set[str]]] = []
    deadline = time.monotonic() + 90
    final: subprocess.CompletedProcess[str] | None = None

    with LoopbackServer(responder, latency=0.01) as server:
        command = batch_command(
            tmp_path / "tasks.jsonl", out, server.base_url, "--concurrency", str(CONCURRENCY)
        )
        start = 0
        while len(kills) < KILLS:
            start += 1
            assert time.monotonic() < deadline, f"only {len(kills)} kills in time"
            env = child_env(BATCH_AGENT_LOG=str(log), BATCH_AGENT_START=str(start))
            before = len(server.requests)
            resume = ["--resume"] if start > 1 else []
            with subprocess.Popen(
                [*command, *resume],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ) as proc:
                try:
                    if start > 1 and rng.random() < 0.25:
                        time.sleep(rng.uniform(0.05, 0.8))  # often still starting up
                    else:
                        target = before + rng.randint(1, 25)
                        wait_for(lambda t=target: len(server.requests) >= t, 60, proc)
                        time.sleep(rng.uniform(0, 0.015))
                    assert proc.poll() is None, f"start {start} finished before its kill"
                finally:
                    kill(proc)
            with SQLiteJournal(journal_path) as journal:
                model_steps, call_steps = set(), set()
                for task in journal.task_ids():
                    for key in journal.steps(task):
                        if m := MODEL_KEY.match(key):
                            model_steps.add((task, int(m.group(1))))
                        elif m := CALL_KEY.match(key):
                            call_steps.add(f"{task}/{m.group(1)}")
            kills.append((start, len(server.requests), model_steps, call_steps))

        start += 1
        final = subprocess.run(
            [*command, "--resume"],
            env=child_env(BATCH_AGENT_LOG=str(log), BATCH_AGENT_START=str(start)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        requests = chat_requests(server)
        assert len(requests) == len(server.requests)

    assert final.returncode == 0, final.stderr
    assert "Traceback" not in final.stderr
    assert summary_of(final.stderr).group(1, 2) == (str(KILL_TASKS), "0")
    assert len(kills) == KILLS

    # every task's record, exactly once, and right
    records = read_records(out)
    assert len(records) == KILL_TASKS
    assert sorted(r["id"] for r in records) == ids
    for record in records:
        assert record["status"] == "done", record
        assert record["output"] == answer(record["id"], KILL_ROUNDS)
        assert record["turns"] == KILL_ROUNDS + 1
        assert record["usage"]["tool_calls"] == KILL_ROUNDS
    restarted = sum(r["attempt"] - 1 for r in records)
    assert restarted <= KILLS * CONCURRENCY  # only tasks running at a kill start again

    # the model requests: every step asked, repeats only for answers not yet recorded
    keys = [step_of(r) for r in requests]
    counts = Counter(keys)
    assert set(counts) == {(t, turn) for t in ids for turn in range(1, KILL_ROUNDS + 2)}
    repeats = sum(n - 1 for n in counts.values())
    assert repeats <= KILLS * CONCURRENCY
    resent = [
        (start, key) for start, seen, recorded, _ in kills for key in keys[seen:] if key in recorded
    ]
    assert resent == [], f"requests for recorded steps sent again: {resent[:10]}"

    # the tool's side effects: each idempotency key once, but for calls in flight at a kill
    lines = [line.split(" ", 1) for line in log.read_text(encoding="utf-8").splitlines()]
    executed = Counter(key for _, key in lines)
    assert set(executed) == {f"{t}/call_{d}" for t in ids for d in range(KILL_ROUNDS)}
    tool_repeats = sum(n - 1 for n in executed.values())
    assert tool_repeats <= KILLS * CONCURRENCY
    rerun = [
        (start, key)
        for start, _, _, recorded in kills
        for run_in, key in lines
        if int(run_in) > start and key in recorded
    ]
    assert rerun == [], f"recorded tool calls run again: {rerun[:10]}"

    print(  # the numbers for the report (pytest -s)
        f"kills={len(kills)} starts={start} requests={len(requests)} "
        f"request_repeats={repeats} tool_repeats={tool_repeats} restarted_tasks={restarted} "
        f"bound={KILLS * CONCURRENCY} requests_at_last_kill={kills[-1][1]}"
    )
