"""Hostile fault injection: seeded agent runs that meet drips, bombs, endless streams, deep JSON
and responses with 1,000 tool calls, on all four drivers, over HTTP.

The ordinary fault run (tests/test_faults.py) plays a well-behaved server that fails in the usual
ways. This one plays a hostile one with the raw-socket server of tests/client/fault_server.py.
Every run gets a plan, drawn from the seed and its number: its driver, 0–2 normal tool turns, one
hostile turn, and (when the run can go on after it) 0–1 more tool turns and the answer. From the
plan the test works out what must happen and checks each run against it:

- a body or stream dripped at 1 byte/s: the run (given `TIME_LIMIT`) ends with
  ``BudgetExceeded(budget="time")`` within ``TIME_LIMIT + 0.25 s`` (plus `MARGIN`), never early;
  a stream cut off keeps the text it received as an incomplete turn;
- a gzip bomb, an endless body or stream (content, reasoning, one call's arguments, one line): the
  run ends with a `ModelRequestError` that is also a `ResponseTooLargeError` naming the client's
  ``max_response_bytes`` (1 MiB here), and the process's peak memory stays bounded;
- tool-call arguments nested thousands deep: the model is told its arguments are invalid, and
  the run goes on to its answer;
- a response with 1,000 tool calls: ``max_tool_calls`` (64) of them run, every one is answered,
  and the run goes on to its answer.

For every run: the exact outcome, no hang, one request per turn (nothing here may be retried),
and a partial result whose messages replay (every tool call answered, `ChatRequest` accepts
them); for the whole test, a wall bound and a peak-memory bound. The runs go in three waves, each
run concurrently (see `run_waves`). The one-line summary is printed (``pytest -s`` or ``-rA``
shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sfagent import Agent, AsyncSiliconFlow, RetryPolicy, SiliconFlow, tool
from sfagent.events import RunFinished
from sfagent.exceptions import BudgetExceeded, ModelRequestError, ResponseTooLargeError
from sfagent.result import RunResult
from sfagent.settings import ChatRequest
from tests.client.fault_server import (
    Behaviour,
    FaultServer,
    drip,
    endless,
    gzip_zeros_quick,
    request_json,
    respond,
    routed,
    sse_chunk,
)
from tests.test_faults import Outcome

SEED = 20261201
MIB = 1 << 20
CAP = MIB  # the clients' max_response_bytes
BOMB = 256 * MIB  # what the gzip bomb inflates to (256 KiB on the wire)
TIME_LIMIT = 0.5  # the time limit of a run that meets a drip
SLACK = 0.25  # the issue's bound: a run ends within time_limit + 0.25 s
MARGIN = 0.25  # for a loaded 2-core machine
DEPTH = 5000  # how deep the hostile arguments nest
MANY = 1000  # tool calls in one hostile response
MAX_TOOL_CALLS = 64  # the agent's default
POLICY = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)
CONCURRENCY = 12
RUN_DEADLINE = 15.0  # seconds one run may take before it counts as hung
TEST_DEADLINE = 25.0  # the whole run's wall bound
MEMORY = 64 * MIB  # peak memory the size wave may add (one unbounded bomb alone adds 256 MiB)
KEY = "sk-hostile-faults"
MODEL = "Qwen/Qwen3-8B"
JSON = {"Content-Type": "application/json"}
SSE = {"Content-Type": "text/event-stream"}

# (driver, transport): the async drivers over both transports; the sync ones in threads.
DRIVERS = [
    ("run", "keepalive"),
    ("stream", "keepalive"),
    ("run", "httpx"),
    ("stream", "httpx"),
    ("run_sync", "httpx"),
    ("stream_sync", "httpx"),
]
# The hostile turn's kind → how the run ends: "time", "size", or None (it goes on).
KINDS: dict[str, str | None] = {
    "drip": "time",
    "gzip bomb": "size",
    "endless": "size",
    "deep JSON": None,
    "1,000 calls": None,
}
RUNS = 2 * len(DRIVERS) * len(KINDS)  # every (driver, kind) pair twice

# --- plans -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one run will meet.

    Attributes:
        run: The run's number (it is in the prompt, so the server can find the plan).
        driver: ``run``, ``stream``, ``run_sync`` or ``stream_sync``.
        transport: ``keepalive`` (the async client's default) or ``httpx``.
        kind: The hostile turn's kind, a key of `KINDS`.
        variant: How that kind is played (e.g. what an endless stream repeats).
        steps: Each turn: ``call`` (one valid call), ``hostile`` or ``answer``.
        addends: The ``(a, b)`` of each valid call, in order.
    """

    run: int
    driver: str
    transport: str
    kind: str
    variant: str
    steps: tuple[str, ...]
    addends: tuple[tuple[int, int], ...]

    @property
    def prompt(self) -> str:
        return f"run {self.run}: add some numbers"

    @property
    def streamed(self) -> bool:
        return self.driver.startswith("stream")

    @property
    def ends(self) -> str | None:
        return KINDS[self.kind]

    @property
    def hostile_turn(self) -> int:
        return self.steps.index("hostile") + 1

    @property
    def answer(self) -> str:
        return f"run {self.run} is done"


def variants(kind: str, streamed: bool) -> list[str]:
    if kind == "drip":  # early: from the first byte (a stream: after its first chunk)
        return ["early", "late"]
    if kind == "endless":
        return ["content", "reasoning", "arguments", "a line"] if streamed else ["body"]
    if kind == "deep JSON":
        return ["lists", "objects"]
    return ["one chunk" if streamed else "one body"]


def make_plan(run: int) -> Plan:
    rng = random.Random(f"{SEED}/{run}")
    driver, transport = DRIVERS[run % len(DRIVERS)]
    kind = list(KINDS)[run // len(DRIVERS) % len(KINDS)]
    choices = variants(kind, driver.startswith("stream"))
    variant = choices[run // 2 % len(choices)]  # each driver meets each variant
    before = ("call",) * rng.choice([0, 1, 2])
    after = ("call",) * rng.choice([0, 1]) + ("answer",) if KINDS[kind] is None else ()
    steps = (*before, "hostile", *after)
    addends = tuple(
        (rng.randint(-999, 999), rng.randint(0, 999)) for step in steps if step == "call"
    )
    return Plan(run, driver, transport, kind, variant, steps, addends)


# --- what the server sends ---------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}
    body = {"id": "h", "object": "chat.completion", "created": 1, "model": MODEL}
    return json.dumps(body | {"choices": [choice]}).encode()


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {"id": "h", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    return b"data: " + json.dumps(body | {"choices": [choice]}).encode() + b"\n\n"


def streamed(message: dict[str, Any], finish: str) -> bytes:
    """The message as a stream: the content in 8-character pieces, the calls, the finish
    reason and ``[DONE]``."""
    text = message.get("content") or ""
    parts = [chunk({"role": "assistant", "content": text[:8]})]
    parts += [chunk({"content": text[i : i + 8]}) for i in range(8, len(text), 8)]
    calls = [{"index": i, **call} for i, call in enumerate(message.get("tool_calls") or [])]
    if calls:
        parts.append(chunk({"tool_calls": calls}))
    parts.append(chunk({}, finish) + b"data: [DONE]\n\n")
    return b"".join(parts)


def answer(message: dict[str, Any], finish: str, stream: bool) -> Behaviour:
    if stream:
        return respond(streamed(message, finish), headers=SSE, keep_alive=True)
    return respond(completion(message, finish), headers=JSON, keep_alive=True)


def calls(*pairs: tuple[str, str], stream: bool) -> Behaviour:
    """Answer with tool calls to ``add``, one per (id, arguments) pair."""
    wire = [
        {"id": call_id, "type": "function", "function": {"name": "add", "arguments": arguments}}
        for call_id, arguments in pairs
    ]
    return answer({"content": "", "tool_calls": wire}, "tool_calls", stream)


def deep_arguments(plan: Plan) -> str:
    if plan.variant == "lists":
        nest = "[" * DEPTH + "]" * DEPTH
    else:
        nest = '{"a":' * DEPTH + "1" + "}" * DEPTH
    return f'{{"run": {plan.run}, "a": {nest}, "b": 1}}'


def hostile(plan: Plan, stream: bool) -> Behaviour:
    """The hostile turn's behaviour."""
    if plan.kind == "drip":
        return _drip(plan, stream)
    if plan.kind == "gzip bomb":
        headers = {"Content-Encoding": "gzip", **(SSE if stream else JSON)}
        return respond(gzip_zeros_quick(BOMB), headers=headers)
    if plan.kind == "endless":
        return _endless(plan.variant)
    if plan.kind == "deep JSON":
        return calls(("deep", deep_arguments(plan)), stream=stream)
    many = [(f"m{i}", json.dumps({"run": plan.run, "a": i, "b": 1})) for i in range(MANY)]
    return calls(*many, stream=stream)


DRIPPED = {"content": "Hello, this answer arrives one byte a second."}


def _drip(plan: Plan, stream: bool) -> Behaviour:
    """The answer, sent a byte a second after a prefix: the first chunk of a stream (its text
    must be kept) or nothing of a body, and a third of either for the "late" variant."""
    if stream:
        whole = streamed(DRIPPED, "stop")
        cut = whole.index(b"\n\n") + 2
    else:
        whole = completion(DRIPPED, "stop")
        cut = 0
    cut += len(whole) // 3 if plan.variant == "late" else 0
    headers = SSE if stream else JSON
    return drip(whole[cut:], rate=1, prefix=whole[:cut], headers=headers, length=not stream)


def _endless(variant: str) -> Behaviour:
    if variant == "body":
        first = b'{"id": "h", "choices": [{"index": 0, "message": {"content": "'
        return endless(first, b"x" * 1024, headers=JSON)
    if variant == "content":
        return endless(sse_chunk(role="assistant", content=""), sse_chunk(content="x" * 1000))
    if variant == "reasoning":
        return endless(sse_chunk(role="assistant"), sse_chunk(reasoning_content="y" * 1000))
    if variant == "arguments":
        start = {"index": 0, "id": "e", "type": "function"}
        opening = {"name": "add", "arguments": '{"a": "'}
        first = sse_chunk(tool_calls=[{**start, "function": opening}])
        more = sse_chunk(tool_calls=[{"index": 0, "function": {"arguments": "z" * 1000}}])
        return endless(first, more)
    return endless(b"", b"data: " + b"q" * 1000)  # one line that never ends


# --- the server side ---------------------------------------------------------------------------

_RUN = re.compile(r"^run (\d+): ")


def locate(body: dict[str, Any]) -> tuple[int, int]:
    """The (run, turn) of a chat request: the run from the prompt, the turn from the history."""
    messages = body.get("messages", [])
    match = _RUN.match(str(messages[0].get("content", ""))) if messages else None
    if match is None:
        raise AssertionError(f"a request without a run id: {messages[:1]!r}")
    return int(match.group(1)), 1 + sum(1 for m in messages if m.get("role") == "assistant")


@dataclass
class HostileModel:
    """The server's responder: plays each run's plan, counting requests per (run, turn)."""

    plans: dict[int, Plan]
    requests: Counter[tuple[int, int]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, raw: bytes) -> Behaviour:
        body = request_json(raw)
        run, turn = locate(body)
        with self.lock:
            self.requests[run, turn] += 1
        plan = self.plans[run]
        stream = bool(body.get("stream"))
        step = plan.steps[turn - 1]
        if step == "hostile":
            return hostile(plan, stream)
        if step == "answer":
            return answer({"content": plan.answer}, "stop", stream)
        a, b = plan.addends[plan.steps[:turn].count("call") - 1]
        return calls((f"c{turn}", json.dumps({"run": run, "a": a, "b": b})), stream=stream)


class Adder:
    """The one tool, counting its calls per run (a turn's calls run concurrently)."""

    def __init__(self) -> None:
        self.calls: Counter[int] = Counter()
        self._lock = threading.Lock()

        def add(run: int, a: int, b: int) -> int:
            """Add two integers.

            Args:
                run: The run's number.
                a: First addend.
                b: Second addend.
            """
            with self._lock:
                self.calls[run] += 1
            return a + b

        self.tool = tool(add)


# --- the client side ---------------------------------------------------------------------------


class Agents:
    """One agent per (client, time limit): the clients capped at `CAP`, shared by their runs."""

    def __init__(self, base_url: str, add: Any) -> None:
        common: dict[str, Any] = {
            "api_key": KEY,
            "base_url": base_url,
            "retry": POLICY,
            "max_response_bytes": CAP,
            "timeout": httpx.Timeout(10.0),
        }
        self._http = httpx.AsyncClient()
        self.clients: dict[str, Any] = {
            "keepalive": AsyncSiliconFlow(**common),
            "httpx": AsyncSiliconFlow(http_client=self._http, **common),
            "sync": SiliconFlow(**common),
        }
        self.agents = {
            (key, limited): Agent(
                MODEL,
                client=client,
                tools=[add],
                max_tool_calls=MAX_TOOL_CALLS,
                time_limit=TIME_LIMIT if limited else None,
            )
            for key, client in self.clients.items()
            for limited in (False, True)
        }

    def for_plan(self, plan: Plan) -> Agent[Any, Any]:
        key = "sync" if plan.driver.endswith("_sync") else plan.transport
        return self.agents[key, plan.ends == "time"]

    async def aclose(self) -> None:
        await self.clients["keepalive"].close()
        await self.clients["httpx"].close()
        self.clients["sync"].close()
        await self._http.aclose()


def run_blocking(agent: Agent[Any, Any], plan: Plan) -> Outcome:
    outcome = Outcome()
    start = time.monotonic()
    try:
        if plan.driver == "run_sync":
            outcome.result = agent.run_sync(plan.prompt)
        else:
            last = None
            for last in agent.stream_sync(plan.prompt):  # noqa: B007 - the last event is the result
                pass
            assert isinstance(last, RunFinished)
            outcome.result = last.result
    except Exception as exc:  # judged against the plan
        outcome.error = exc
    outcome.seconds = time.monotonic() - start
    return outcome


async def run_async(agent: Agent[Any, Any], plan: Plan) -> Outcome:
    outcome = Outcome()
    start = time.monotonic()
    try:
        if plan.driver == "run":
            outcome.result = await agent.run(plan.prompt)
        else:
            last = None
            async for last in agent.stream(plan.prompt):  # noqa: B007 - the last event is the result
                pass
            assert isinstance(last, RunFinished)
            outcome.result = last.result
    except Exception as exc:  # judged against the plan
        outcome.error = exc
    outcome.seconds = time.monotonic() - start
    return outcome


async def run_all(plans: dict[int, Plan], agents: Agents) -> dict[int, Outcome]:
    limit = asyncio.Semaphore(CONCURRENCY)
    threads = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="hostile-run")
    loop = asyncio.get_running_loop()

    async def one(plan: Plan) -> tuple[int, Outcome]:
        agent = agents.for_plan(plan)
        async with limit:
            if plan.driver.endswith("_sync"):
                work = loop.run_in_executor(threads, run_blocking, agent, plan)
            else:
                work = asyncio.ensure_future(run_async(agent, plan))
            try:
                return plan.run, await asyncio.wait_for(work, RUN_DEADLINE)
            except asyncio.TimeoutError as exc:
                return plan.run, Outcome(error=exc, seconds=RUN_DEADLINE)

    try:
        done = await asyncio.gather(*(one(plan) for plan in plans.values()))
    finally:
        threads.shutdown(wait=False, cancel_futures=True)
    return dict(done)


# --- peak memory -------------------------------------------------------------------------------


def _status(field_name: str) -> int:
    """A field of /proc/self/status, in bytes (0 where there is no /proc)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def peak_growth() -> Iterator[list[int]]:
    """Yields a list that holds, after the block, how far the process's resident memory rose
    above where it started: from VmHWM, reset at the start (Linux's clear_refs), or else from
    samples taken every 5 ms."""
    growth = [0]
    start = _status("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")
        sampled = False
    except OSError:
        sampled = True
    peak = [start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], _status("VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    if sampled:
        sampler.start()
    try:
        yield growth
    finally:
        stop.set()
        if sampled:
            sampler.join()
        growth[0] = max((peak[0] if sampled else _status("VmHWM")) - start, 0)


# --- judging -----------------------------------------------------------------------------------


def judge(
    plan: Plan, got: Outcome, requests: Counter[tuple[int, int]], calls: Counter[int]
) -> list[str]:
    """Every way the run strayed from its plan (empty when it kept to it)."""
    if isinstance(got.error, asyncio.TimeoutError):
        return [f"hung: no outcome within {RUN_DEADLINE} s"]
    problems = _ending(plan, got)
    result = got.result if got.error is None else getattr(got.error, "result", None)
    if result is None:
        return [*problems, "no result, not even a partial one"]
    problems += replayable(result.messages, plan.prompt)
    problems += _history(plan, result)
    seen = {turn: n for (run, turn), n in requests.items() if run == plan.run}
    wanted = {turn: 1 for turn in range(1, len(plan.steps) + 1)}
    if seen != wanted:
        problems.append(f"requests per turn: expected {wanted}, server saw {seen}")
    ran = len(plan.addends) + (MAX_TOOL_CALLS if plan.kind == "1,000 calls" else 0)
    if calls[plan.run] != ran:
        problems.append(f"the tool ran {calls[plan.run]} times, expected {ran}")
    return problems


def _ending(plan: Plan, got: Outcome) -> list[str]:
    error = got.error
    if plan.ends is None:
        if error is not None:
            return [f"expected the answer, got {error!r}"]
        assert got.result is not None
        if got.result.output != plan.answer:
            return [f"expected output {plan.answer!r}, got {got.result.output!r}"]
        return []
    if plan.ends == "time":
        if not (isinstance(error, BudgetExceeded) and error.budget == "time"):
            return [f'expected BudgetExceeded(budget="time"), got {error!r}']
        if not TIME_LIMIT - 0.001 <= got.seconds <= TIME_LIMIT + SLACK + MARGIN:
            return [f"ended after {got.seconds:.3f} s; the time limit is {TIME_LIMIT} s"]
        return []
    if not (isinstance(error, ModelRequestError) and isinstance(error, ResponseTooLargeError)):
        return [f"expected a ModelRequestError that is a ResponseTooLargeError, got {error!r}"]
    if error.limit != CAP or f"max_response_bytes={CAP}" not in str(error):
        return [f"the error does not name the cap: {error}"]
    return []


def replayable(messages: list[dict[str, Any]], prompt: str) -> list[str]:
    """Problems that would stop `messages` from being sent again: a lost prompt, a tool call
    without its answer (or an answer without its call), a message the API would refuse."""
    if not messages or messages[0] != {"role": "user", "content": prompt}:
        return [f"the messages lost the prompt: {messages[:1]!r}"]
    problems = []
    waiting: list[str] = []
    for message in messages[1:]:
        if message["role"] == "tool":
            if not waiting or message.get("tool_call_id") != waiting.pop(0):
                problems.append(f"a tool message answers no call: {message.get('tool_call_id')}")
        else:
            if waiting:
                problems.append(f"tool calls left unanswered: {waiting[:3]}")
            waiting = [c["id"] for c in message.get("tool_calls") or []]
    if waiting:
        problems.append(f"tool calls left unanswered: {waiting[:3]}")
    try:
        ChatRequest(messages, model=MODEL)
    except Exception as exc:  # any refusal is a finding
        problems.append(f"ChatRequest refuses the messages: {exc!r}")
    return problems


def _history(plan: Plan, result: RunResult[Any]) -> list[str]:
    """The history holds every answered turn, and the tool messages say what the plan implies."""
    answered = plan.steps if plan.ends is None else plan.steps[: plan.hostile_turn - 1]
    assistants = sum(1 for m in result.messages if m["role"] == "assistant")
    if assistants != len(answered):
        return [f"expected {len(answered)} assistant messages, got {assistants}"]
    expected = _tool_messages(plan, [step for step in answered if step != "answer"])
    tools = [m["content"] for m in result.messages if m["role"] == "tool"]
    if len(tools) != len(expected):
        return [f"expected {len(expected)} tool messages, got {len(tools)}"]
    wrong = [
        (i, text[:80])
        for i, (text, ok) in enumerate(zip(tools, expected, strict=True))
        if not ok(text)
    ]
    problems = [f"unexpected tool messages (index, text): {wrong[:3]}"] if wrong else []
    if plan.ends == "time" and plan.streamed:
        # The stream's first chunk had arrived: its text is kept, marked incomplete.
        last = result.turns[-1] if result.turns else None
        if last is None or not last.incomplete:
            problems.append("the cut-off stream left no incomplete turn")
        elif not (last.response.message.content or "").startswith("Hello, t"):
            problems.append(f"the incomplete turn lost its text: {last.response.message!r}")
    return problems


def _tool_messages(plan: Plan, steps: list[str]) -> list[Callable[[str], bool]]:
    """A check for each tool message the answered `steps` must have left, in order."""
    expected: list[Callable[[str], bool]] = []
    sums = iter(plan.addends)
    for step in steps:
        if step == "call":
            a, b = next(sums)
            expected.append(lambda text, want=str(a + b): text == want)
        elif plan.kind == "deep JSON":  # the model is told, like any bad arguments
            expected.append(
                lambda text: (
                    text.startswith("Error: Invalid arguments for tool 'add'")
                    and "nested too deeply" in text
                )
            )
        else:  # the first MAX_TOOL_CALLS run, the rest are answered without running
            expected += [lambda text, want=str(i + 1): text == want for i in range(MAX_TOOL_CALLS)]
            not_run = f"Not run: at most {MAX_TOOL_CALLS} tool calls are run per turn"
            expected += [lambda text, want=not_run: text.startswith(want)] * (MANY - MAX_TOOL_CALLS)
    return expected


# --- the test ----------------------------------------------------------------------------------


@dataclass
class Wave:
    """The runs that end one way, run together: their outcomes, wall time and peak memory."""

    name: str
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    seconds: float = 0.0
    growth: int = 0


async def run_waves(plans: dict[int, Plan], agents: Agents) -> list[Wave]:
    """The runs in three waves, each run concurrently: those that must end on time first
    (a CPU-heavy run beside them would block the event loop their deadlines run on), then
    those that must end at the size cap (the peak memory is theirs), then the rest."""
    waves = [Wave("time"), Wave("size"), Wave("structure")]
    for wave in waves:
        batch = {
            run: plan for run, plan in plans.items() if (plan.ends or "structure") == wave.name
        }
        started = time.monotonic()
        with peak_growth() as growth:
            wave.outcomes = await run_all(batch, agents)
        wave.seconds = time.monotonic() - started
        wave.growth = growth[0]
    return waves


@pytest.mark.timeout(TEST_DEADLINE + 30)
def test_every_hostile_run_keeps_its_plan_and_its_bounds() -> None:
    plans = {run: make_plan(run) for run in range(RUNS)}
    responder = HostileModel(plans)
    adder = Adder()
    gzip_zeros_quick(BOMB)  # built before the clock starts
    with FaultServer(routed(responder), lifetime=TEST_DEADLINE + 20) as server:

        async def main() -> list[Wave]:
            agents = Agents(server.base_url, adder.tool)
            try:
                return await asyncio.wait_for(run_waves(plans, agents), TEST_DEADLINE)
            finally:
                await agents.aclose()

        started = time.monotonic()
        waves = asyncio.run(main())
        wall = time.monotonic() - started

    outcomes = {run: outcome for wave in waves for run, outcome in wave.outcomes.items()}
    problems = {
        run: issues
        for run, plan in plans.items()
        if (issues := judge(plan, outcomes[run], responder.requests, adder.calls))
    }
    print(summary(plans, waves, wall))
    report = [
        f"run {run} {plans[run].driver}/{plans[run].transport} {plans[run].kind} "
        f"({plans[run].variant}), steps {plans[run].steps}: {'; '.join(issues)}"
        for run, issues in sorted(problems.items())
    ]
    size = waves[1]
    if size.growth > MEMORY:
        rose = f"{size.growth / MIB:.0f} MiB (bound {MEMORY // MIB})"
        report.append(f"the size wave's peak memory rose {rose}")
    if wall > TEST_DEADLINE:
        report.append(f"the whole run took {wall:.1f} s (bound {TEST_DEADLINE} s)")
    assert not report, f"{len(report)} problems:\n" + "\n".join(report[:15])


def summary(plans: dict[int, Plan], waves: list[Wave], wall: float) -> str:
    ended: Counter[str] = Counter()
    outcomes = {run: outcome for wave in waves for run, outcome in wave.outcomes.items()}
    for outcome in outcomes.values():
        error = outcome.error
        if error is None:
            ended["answered"] += 1
        elif isinstance(error, ModelRequestError):
            ended[f"ModelRequestError/{type(error.error).__name__}"] += 1
        elif isinstance(error, BudgetExceeded):
            ended[f"BudgetExceeded({error.budget})"] += 1
        else:
            ended[type(error).__name__] += 1
    drips = [outcomes[run].seconds for run, plan in plans.items() if plan.kind == "drip"]
    endings = ", ".join(f"{name} {n}" for name, n in sorted(ended.items()))
    phases = ", ".join(f"{w.name} {w.seconds:.1f} s +{w.growth / MIB:.0f} MiB" for w in waves)
    return (
        f"hostile faults: {len(outcomes)} runs ({len(DRIVERS)} drivers x {len(KINDS)} kinds): "
        f"{endings}; drips ended {min(drips):.2f}-{max(drips):.2f} s "
        f"(time_limit {TIME_LIMIT} s); waves (wall, peak memory): {phases}; wall {wall:.1f} s"
    )


def test_the_plans_cover_every_kind_driver_and_variant() -> None:
    plans = [make_plan(run) for run in range(RUNS)]
    assert Counter((p.driver, p.transport, p.kind) for p in plans) == Counter(
        {(d, t, k): 2 for d, t in DRIVERS for k in KINDS}
    )
    assert {p.variant for p in plans} >= {"content", "arguments", "body", "lists", "objects"}
    assert {p.steps.index("hostile") for p in plans} == {0, 1, 2}
    assert make_plan(7) == make_plan(7)
