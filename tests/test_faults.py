"""Fault injection: 500 agent runs against the loopback server under a seeded mix of faults.

Every run gets a plan, drawn from the seed and its number: the driver it goes through, the tool
calls the model makes (some with invalid arguments), how often the tool raises, and for each
turn the faults the server serves on successive attempts. From the plan and the retry policy the
test works out what must happen — the right answer, or the typed error the faults imply, after
exactly so many requests per turn — and then checks it against what each run did and against
the server's request log. The one-line summary is printed (``pytest -s`` or ``-rA`` shows it).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest

from sfagent import Agent, AsyncSiliconFlow, ModelRetry, RetryPolicy, SiliconFlow, tool
from sfagent.events import RunFinished
from sfagent.exceptions import (
    AgentRunError,
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    GatewayTimeoutError,
    IncompleteStreamError,
    InternalServerError,
    ModelRequestError,
    RateLimitError,
    ServiceUnavailableError,
    ToolRetriesExceeded,
)
from sfagent.result import RunResult
from sfagent.testing import LoopbackServer, RecordedRequest, Reply, ScriptedToolCall

SEED = 20261126
RUNS = 500
CONCURRENCY = 50
MAX_ATTEMPTS = 3
POLICY = RetryPolicy(
    max_attempts=MAX_ATTEMPTS, base_delay=0.001, max_delay=0.01, total_timeout=10.0
)
READ_TIMEOUT = 1.5
TIMEOUT = httpx.Timeout(connect=2.0, read=READ_TIMEOUT, write=2.0, pool=10.0)
# A reply delayed well past the read timeout: on a loaded machine the event loop can lag by more
# than a read timeout, and a reply arriving with the timer would count as on time.
SLOW = 8 * READ_TIMEOUT
OVER_BUDGET = 30  # a Retry-After beyond POLICY.total_timeout: never waited for
TOOL_RETRIES = 2
RUN_DEADLINE = 30.0  # seconds one run may take, faults included, before it counts as hung
TEST_DEADLINE = 90.0
KEY = "sk-fault-injection"
MODEL = "Qwen/Qwen3-8B"

# --- the faults --------------------------------------------------------------------------------

RATE_BODY = {
    "message": "Request was rejected due to rate limiting. Details: TPM limit.",
    "data": None,
}
OVERLOAD_BODY = {"code": 50505, "message": "Model service overloaded. Please try again later."}


@dataclass(frozen=True)
class Fault:
    """One injected failure: what the server does and what the client must make of it.

    Attributes:
        error: The exact `APIError` class the attempt must end with.
        retried: Whether the client may try again after it (budget permitting).
        streamed_only: Whether it only exists for a streamed request.
        make: The reply to serve, from the reply the turn would get without the fault.
    """

    error: type[APIError]
    retried: bool
    streamed_only: bool
    make: Callable[[Reply], Reply]


def _error(status: int, body: object, retry_after: float | None = None) -> Callable[[Reply], Reply]:
    return lambda _: Reply.error(status, body, retry_after=retry_after)


def _with(**changes: Any) -> Callable[[Reply], Reply]:
    return lambda ok: replace(ok, **changes)


FAULTS: dict[str, Fault] = {
    "429": Fault(RateLimitError, True, False, _error(429, RATE_BODY)),
    "429 retry-after 0": Fault(RateLimitError, True, False, _error(429, RATE_BODY, 0)),
    "429 retry-after 10ms": Fault(RateLimitError, True, False, _error(429, RATE_BODY, 0.01)),
    "429 retry-after over budget": Fault(
        RateLimitError, False, False, _error(429, RATE_BODY, OVER_BUDGET)
    ),
    "500": Fault(InternalServerError, True, False, _error(500, None)),
    "503": Fault(ServiceUnavailableError, True, False, _error(503, OVERLOAD_BODY)),
    "504": Fault(GatewayTimeoutError, True, False, _error(504, "Gateway Timeout")),
    "reset before response": Fault(
        APIConnectionError, True, False, _with(fault="drop_before_response")
    ),
    "slower than read timeout": Fault(APITimeoutError, True, False, _with(delay=SLOW)),
    "stream stalls before its first chunk": Fault(
        APITimeoutError, True, True, _with(chunk_delay=SLOW)
    ),
    "reset mid-stream": Fault(IncompleteStreamError, False, True, _with(fault="drop_mid_stream")),
    "cut before [DONE]": Fault(IncompleteStreamError, False, True, _with(fault="cut_before_done")),
    "malformed chunk": Fault(
        APIResponseValidationError, False, True, _with(fault="malformed_chunk")
    ),
    "error mid-stream": Fault(
        ServiceUnavailableError, False, True, _with(stream_error=OVERLOAD_BODY)
    ),
}

# --- plans -------------------------------------------------------------------------------------

# (driver, transport): the async drivers over both transports; the sync ones in threads.
DRIVERS = [
    ("run", "keepalive"),
    ("stream", "keepalive"),
    ("run", "httpx"),
    ("stream", "httpx"),
    ("run_sync", "httpx"),
    ("stream_sync", "httpx"),
]
DRIVER_WEIGHTS = [22, 22, 14, 14, 14, 14]
BAD_ARGUMENTS = [
    lambda run, a: f'{{"run": {run}, "a": {a}, "b": ',  # cut-off JSON
    lambda run, a: {"run": run, "a": str(a) + " apples", "b": 1},  # wrong type
    lambda run, a: {"run": run, "a": a},  # missing argument
]


@dataclass(frozen=True)
class Plan:
    """What one run will meet.

    Attributes:
        run: The run's number (it is in the prompt, so the server can find the plan).
        driver: ``run``, ``stream``, ``run_sync`` or ``stream_sync``.
        transport: ``keepalive`` (the async client's default) or ``httpx``.
        a: The first addend.
        b: The second addend.
        steps: What the model answers on each turn: ``bad`` (a call with invalid arguments),
            ``call`` (a valid call) or ``answer`` (the final text, from the tool's result).
        raises: How many of the tool's calls raise before one succeeds.
        faults: Turn → the faults served on its first attempts, in order.
    """

    run: int
    driver: str
    transport: str
    a: int
    b: int
    steps: tuple[str, ...]
    raises: int
    faults: dict[int, tuple[str, ...]]

    @property
    def prompt(self) -> str:
        return f"run {self.run}: what is {self.a} + {self.b}?"

    @property
    def streamed(self) -> bool:
        return self.driver.startswith("stream")


def make_plan(run: int) -> Plan:
    rng = random.Random(f"{SEED}/{run}")
    driver, transport = rng.choices(DRIVERS, DRIVER_WEIGHTS)[0]
    bad = rng.choices([0, 1, 2], [70, 20, 10])[0]
    raises = rng.choices([0, 1, 2, 3], [55, 25, 12, 8])[0]
    steps = ("bad",) * bad + ("call",) * (raises + 1) + ("answer",)
    kinds = [
        name for name, f in FAULTS.items() if driver.startswith("stream") or not f.streamed_only
    ]
    faults: dict[int, tuple[str, ...]] = {}
    for turn in range(1, len(steps) + 1):
        count = rng.choices([0, 1, 2, 3], [62, 24, 9, 5])[0]
        if count:
            faults[turn] = tuple(rng.choice(kinds) for _ in range(count))
    return Plan(run, driver, transport, rng.randint(-999, 999), rng.randint(0, 999), steps,
                raises, faults)  # fmt: skip


@dataclass(frozen=True)
class Expected:
    """What a plan must lead to.

    Attributes:
        error: The run's error class, or ``None`` when it must answer.
        cause: For a `ModelRequestError`, the exact class of its ``.error``.
        attempts: Turn → the requests the server must see for it.
        answer: The final output when the run succeeds.
        fault: The fault that ended the run, if one did.
    """

    error: type[AgentRunError] | None
    cause: type[APIError] | None
    attempts: dict[int, int]
    answer: str | None = None
    fault: str | None = None


def expect(plan: Plan) -> Expected:
    """Work out from the plan and `POLICY` what the run must do."""
    attempts: dict[int, int] = {}
    failures = calls = 0
    for turn, step in enumerate(plan.steps, 1):
        faults = plan.faults.get(turn, ())
        for number, name in enumerate(faults, 1):
            fault = FAULTS[name]
            if not fault.retried or number == MAX_ATTEMPTS:
                attempts[turn] = number
                return Expected(ModelRequestError, fault.error, attempts, fault=name)
        attempts[turn] = len(faults) + 1
        if step == "answer":
            return Expected(None, None, attempts, answer=answer_text(str(plan.a + plan.b)))
        if step == "call":
            calls += 1
        if step == "bad" or calls <= plan.raises:
            failures += 1
            if failures > TOOL_RETRIES:
                return Expected(ToolRetriesExceeded, None, attempts)
    raise AssertionError("a plan always ends with an answer")


def answer_text(tool_result: str) -> str:
    return f"The sum is {tool_result}."


# --- the server side ---------------------------------------------------------------------------

_RUN = re.compile(r"^run (\d+): ")


def locate(request: RecordedRequest) -> tuple[int, int]:
    """The (run, turn) of a chat request: the run from the prompt, the turn from the history."""
    messages = request.json.get("messages", [])
    match = _RUN.match(str(messages[0].get("content", ""))) if messages else None
    if match is None:
        raise AssertionError(f"a request without a run id: {request.body!r}")
    turn = 1 + sum(1 for m in messages if m.get("role") == "assistant")
    return int(match.group(1)), turn


@dataclass
class FaultyModel:
    """The server's responder: plays each run's plan, counting attempts per (run, turn)."""

    plans: dict[int, Plan]
    attempts: Counter[tuple[int, int]] = field(default_factory=Counter)
    served: list[tuple[int, int, int, str]] = field(default_factory=list)
    arrived: dict[tuple[int, int, int], float] = field(default_factory=dict)

    def __call__(self, request: RecordedRequest) -> Reply:
        run, turn = locate(request)
        self.attempts[run, turn] += 1
        number = self.attempts[run, turn]
        self.arrived[run, turn, number] = time.monotonic()
        plan = self.plans[run]
        ok = self._reply(plan, turn, request)
        faults = plan.faults.get(turn, ())
        if number <= len(faults):
            self.served.append((run, turn, number, faults[number - 1]))
            return FAULTS[faults[number - 1]].make(ok)
        return ok

    @staticmethod
    def _reply(plan: Plan, turn: int, request: RecordedRequest) -> Reply:
        step = plan.steps[turn - 1]
        if step == "answer":
            last = request.json["messages"][-1]
            assert last["role"] == "tool", last
            return Reply(text=answer_text(last["content"]))
        if step == "bad":
            arguments = BAD_ARGUMENTS[(plan.run + turn) % len(BAD_ARGUMENTS)](plan.run, plan.a)
        else:
            arguments = {"run": plan.run, "a": plan.a, "b": plan.b}
        return Reply(tool_calls=[ScriptedToolCall("add", arguments)])


def make_tool(plans: dict[int, Plan]) -> Any:
    calls: Counter[int] = Counter()

    def add(run: int, a: int, b: int) -> int:
        """Add two integers.

        Args:
            run: The run's number.
            a: First addend.
            b: Second addend.
        """
        calls[run] += 1  # a run's calls are sequential: no race on its key
        if calls[run] <= plans[run].raises:
            if calls[run] % 2:
                raise RuntimeError(f"adder overheated on call {calls[run]}")
            raise ModelRetry("the adder is busy; call it again")
        return a + b

    return tool(add)


# --- the client side -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one run did: its result or its error, and how long it took."""

    result: RunResult[Any] | None = None
    error: BaseException | None = None
    seconds: float = 0.0


class Agents:
    """One agent per (driver kind, transport), shared by all the runs that use it."""

    def __init__(self, base_url: str, add: Any) -> None:
        common: dict[str, Any] = {"timeout": TIMEOUT, "retry": POLICY, "api_key": KEY}
        self._http = httpx.AsyncClient()
        self.clients: list[Any] = [
            AsyncSiliconFlow(base_url=base_url, **common),
            AsyncSiliconFlow(base_url=base_url, http_client=self._http, **common),
            SiliconFlow(base_url=base_url, **common),
        ]
        options: dict[str, Any] = {"tools": [add], "tool_retries": TOOL_RETRIES}
        self.by_key = {
            "keepalive": Agent(MODEL, client=self.clients[0], **options),
            "httpx": Agent(MODEL, client=self.clients[1], **options),
            "sync": Agent(MODEL, client=self.clients[2], **options),
        }

    def for_plan(self, plan: Plan) -> Agent[Any, Any]:
        return self.by_key["sync" if plan.driver.endswith("_sync") else plan.transport]

    async def aclose(self) -> None:
        await self.clients[0].close()
        await self.clients[1].close()
        self.clients[2].close()
        await self._http.aclose()


def run_blocking(agent: Agent[Any, Any], plan: Plan) -> RunResult[Any]:
    if plan.driver == "run_sync":
        return agent.run_sync(plan.prompt)
    events = list(agent.stream_sync(plan.prompt))
    assert isinstance(events[-1], RunFinished)
    return events[-1].result


async def run_async(agent: Agent[Any, Any], plan: Plan) -> RunResult[Any]:
    if plan.driver == "run":
        return await agent.run(plan.prompt)
    last = None
    async for last in agent.stream(plan.prompt):  # noqa: B007 - the last event is the result
        pass
    assert isinstance(last, RunFinished)
    return last.result


async def run_all(plans: dict[int, Plan], agents: Agents) -> dict[int, Outcome]:
    limit = asyncio.Semaphore(CONCURRENCY)
    threads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fault-run")
    loop = asyncio.get_running_loop()

    async def one(plan: Plan) -> tuple[int, Outcome]:
        agent = agents.for_plan(plan)
        outcome = Outcome()
        async with limit:
            start = time.perf_counter()
            if plan.driver.endswith("_sync"):
                work = loop.run_in_executor(threads, run_blocking, agent, plan)
            else:
                work = run_async(agent, plan)
            try:
                outcome.result = await asyncio.wait_for(work, RUN_DEADLINE)
            except Exception as exc:  # judged against the plan below
                outcome.error = exc
            outcome.seconds = time.perf_counter() - start
        return plan.run, outcome

    try:
        done = await asyncio.gather(*(one(plan) for plan in plans.values()))
    finally:
        threads.shutdown(wait=False, cancel_futures=True)
    return dict(done)


# --- judging -------------------------------------------------------------------------------------


def judge(
    plan: Plan, want: Expected, got: Outcome, requests: Counter[tuple[int, int]]
) -> list[str]:
    """Every way the run strayed from its plan (empty when it kept to it)."""
    problems = []
    if isinstance(got.error, asyncio.TimeoutError):
        return [f"hung: no outcome within {RUN_DEADLINE} s"]
    if want.error is None:
        if got.error is not None:
            problems.append(f"expected the answer, got {got.error!r}")
        elif got.result is None or got.result.output != want.answer:
            output = got.result.output if got.result is not None else None
            problems.append(f"expected output {want.answer!r}, got {output!r}")
    elif not _of_expected_class(got.error, want):
        problems.append(f"expected {want.error.__name__}, got {got.error!r}")
    else:
        error = got.error
        assert isinstance(error, AgentRunError)
        cause = getattr(error, "error", None)
        if want.cause is not None and type(cause) is not want.cause:
            problems.append(f"expected .error {want.cause.__name__}, got {cause!r}")
        problems += _messages_kept(plan, want, error)
    seen = {turn: n for (run, turn), n in requests.items() if run == plan.run}
    if seen != want.attempts:
        problems.append(f"requests per turn: expected {want.attempts}, server saw {seen}")
    return problems


def _of_expected_class(error: BaseException | None, want: Expected) -> bool:
    """The run ended with the planned class: a failed request's error is both a
    `ModelRequestError` and the failed request's own class (so `except RateLimitError` works)."""
    if want.error is not ModelRequestError:
        return type(error) is want.error
    return isinstance(error, ModelRequestError) and (
        want.cause is None or isinstance(error, want.cause)
    )


def _messages_kept(plan: Plan, want: Expected, error: AgentRunError) -> list[str]:
    result = error.result
    messages = result.messages if result is not None else []
    if not messages or messages[0] != {"role": "user", "content": plan.prompt}:
        return [f"the partial result lost its messages: {messages[:1]!r}"]
    # Every turn that got an answer before the failure is in the history.
    answered = len(want.attempts) - (1 if want.error is ModelRequestError else 0)
    assistants = sum(1 for m in messages if m["role"] == "assistant")
    if assistants != answered:
        return [f"expected {answered} assistant messages in the partial run, got {assistants}"]
    return []


@pytest.mark.timeout(TEST_DEADLINE + 30)
def test_every_run_keeps_its_plan_under_faults() -> None:
    plans = {run: make_plan(run) for run in range(RUNS)}
    expected = {run: expect(plan) for run, plan in plans.items()}
    responder = FaultyModel(plans)
    started = time.perf_counter()
    with LoopbackServer(responder, api_key=KEY) as server:

        async def main() -> dict[int, Outcome]:
            agents = Agents(server.base_url, make_tool(plans))
            try:
                return await asyncio.wait_for(run_all(plans, agents), TEST_DEADLINE)
            finally:
                await agents.aclose()

        outcomes = asyncio.run(main())
        log = list(server.requests)
    wall = time.perf_counter() - started

    requests = Counter(locate(r) for r in log if r.path.endswith("/chat/completions"))
    problems = {
        run: issues
        for run in plans
        if (issues := judge(plans[run], expected[run], outcomes[run], requests))
    }
    print(summary(outcomes, requests, responder, wall))
    report = [
        f"run {run} {plans[run]} expected {expected[run]}: {'; '.join(issues)}"
        for run, issues in sorted(problems.items())
    ]
    report += bounds_kept(requests, responder)
    assert not report, f"{len(report)} runs strayed from their plans:\n" + "\n".join(report[:15])


def bounds_kept(requests: Counter[tuple[int, int]], responder: FaultyModel) -> list[str]:
    """The request log against the policy: attempts, no retry after data, Retry-After waited."""
    problems = [
        f"run {run} turn {turn}: {n} requests, more than max_attempts={MAX_ATTEMPTS}"
        for (run, turn), n in requests.items()
        if n > MAX_ATTEMPTS
    ]
    for run, turn, number, name in responder.served:
        if not FAULTS[name].retried and requests[run, turn] != number:
            problems.append(f"run {run} turn {turn}: retried after {name!r} (attempt {number})")
        next_try = responder.arrived.get((run, turn, number + 1))
        if name == "429 retry-after 10ms" and next_try is not None:
            waited = next_try - responder.arrived[run, turn, number]
            if waited < 0.009:
                problems.append(f"run {run} turn {turn}: Retry-After 0.01 s, waited {waited:.4f}")
    return problems


def summary(
    outcomes: dict[int, Outcome],
    requests: Counter[tuple[int, int]],
    responder: FaultyModel,
    wall: float,
) -> str:
    failed: Counter[str] = Counter()
    for outcome in outcomes.values():
        error = outcome.error
        if error is None:
            continue
        name = "ModelRequestError" if isinstance(error, ModelRequestError) else type(error).__name__
        cause = getattr(error, "error", None)
        failed[f"{name}/{type(cause).__name__}" if cause is not None else name] += 1
    completed = sum(1 for o in outcomes.values() if o.error is None)
    retries = sum(requests.values()) - len(requests)
    kinds = ", ".join(f"{name} {n}" for name, n in sorted(failed.items()))
    slowest = max(o.seconds for o in outcomes.values())
    return (
        f"fault injection: {len(outcomes)} runs, {completed} completed, "
        f"{sum(failed.values())} failed ({kinds}); {sum(requests.values())} requests, "
        f"{retries} retries, {len(responder.served)} faults served, "
        f"max {max(requests.values())} attempts per turn; slowest run {slowest:.2f} s, "
        f"wall {wall:.1f} s"
    )


# --- the plans themselves ------------------------------------------------------------------------


def test_the_plans_cover_every_fault_driver_and_ending() -> None:
    plans = [make_plan(run) for run in range(RUNS)]
    served = Counter(name for plan in plans for faults in plan.faults.values() for name in faults)
    assert set(served) == set(FAULTS)
    assert {(p.driver, p.transport) for p in plans} == set(DRIVERS)
    endings = Counter(_ending(expect(plan)) for plan in plans)
    assert endings["answer"] > RUNS // 3
    assert endings["ToolRetriesExceeded"] > 0
    causes = {f"cause {fault.error.__name__}" for fault in FAULTS.values()}
    assert set(endings) >= causes
    assert make_plan(7) == make_plan(7)


def _ending(want: Expected) -> str:
    if want.error is None:
        return "answer"
    if want.cause is not None:
        return f"cause {want.cause.__name__}"
    return want.error.__name__
