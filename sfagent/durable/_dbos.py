"""The DBOS engine: one workflow that runs any registered agent, its steps, and launching DBOS.

The workflow's input is a plain spec (the agent's registered name, the prompt, the history,
the deps), since an `Agent` holds clients and locks that cannot be recorded; the process that
recovers a run finds the agent again by name. Its first step records when the run started, so
a time limit spans a recovery. Every later step is a model request or a tool call, keyed as
`sfagent.steps` keys them; DBOS checks on replay that the n-th step has the recorded key, so a
run that took another path than its record fails loudly instead of misreading it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import pickle
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

try:
    from dbos import DBOS, DBOSConfig, SetWorkflowID, WorkflowHandleAsync
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError(
        "sfagent.durable runs on DBOS, which is not installed: pip install 'sfagent[dbos]'"
    ) from exc

from sfagent.agent import Agent
from sfagent.context import ApprovalRequest
from sfagent.exceptions import SFAgentError, UserError
from sfagent.result import RunResult
from sfagent.steps import STEP_KEY_VERSION

__all__ = [
    "APPROVAL_EVENT",
    "APP_VERSION",
    "STARTED_STEP",
    "WORKFLOW_NAME",
    "DBOSSteps",
    "DurableAgent",
    "DurableRun",
    "DurableRunError",
    "launch",
    "registered_agent",
    "shutdown",
    "system_database_url",
    "wait_for_approval",
]

DepsT = TypeVar("DepsT")
OutputT = TypeVar("OutputT")

WORKFLOW_NAME = "sfagent/agent-run"
"""The DBOS workflow every durable run is (stable: recovery finds runs by it)."""

APP_NAME = "sfagent"
"""The DBOS application name `launch` uses by default."""

APP_VERSION = "sfagent-durable-1"
"""The DBOS application version `launch` pins. DBOS recovers only the runs of its own version,
and its default (a hash of the workflow's source) would strand every pending run at each
upgrade of sfagent or dbos. Whether a newer release can read an older run is decided by the
run itself, from the step format recorded in its input."""

STARTED_STEP = "sfagent/started"
"""The first step of every run: the wall-clock time it started."""

APPROVAL_EVENT = "sfagent/pending-approval"
"""The DBOS event a run waiting for an approval sets: what it asks (``None`` once decided)."""

DEFAULT_APPROVAL_TIMEOUT = 7 * 24 * 3600.0
"""Seconds a run waits for an approval before the call counts as denied (a week)."""

READABLE_FORMATS = frozenset({STEP_KEY_VERSION})
"""Step formats this release can resume (see `sfagent.steps.STEP_KEY_VERSION`)."""

_AGENTS: dict[str, DurableAgent[Any, Any]] = {}
_LAUNCHED: dict[str, str] = {}


class DurableRunError(SFAgentError):
    """A durable run cannot be started or resumed here (its agent is not registered in this
    process, or it was recorded in a step format this release does not read)."""


class DBOSSteps:
    """A run's steps as DBOS steps; used inside the workflow only.

    The step's id is drawn before anything is awaited, so tool calls run concurrently keep the
    order the model gave them on every replay (DBOS matches steps by position).

    Approvals: an agent made with ``approve=wait_for_approval`` parks the run until `approve`
    answers from any process (the wait is durable: the process may exit and the run resumes
    with the answer), or `approval_timeout` passes (then the call is denied). Any other
    approval callback is asked once and its answer recorded as a step.

    Args:
        approval_timeout: Seconds to wait for an approval.
    """

    def __init__(self, approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT) -> None:
        self.approval_timeout = approval_timeout

    async def step(
        self, key: str, perform: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """The value DBOS recorded at this step, or ``await perform()``, recorded."""
        reservation = DBOS.reserve_step()

        async def performed() -> dict[str, Any]:
            return await perform()

        return await reservation.run_async({"name": key}, performed)

    async def approval(
        self,
        key: str,
        request: ApprovalRequest,
        ask: Callable[[ApprovalRequest], Any] | None,
    ) -> bool:
        """The recorded decision on a call, the agent's callback's, or a person's (see above)."""
        if ask is not None and ask is not wait_for_approval:

            async def asked() -> dict[str, Any]:
                answer = ask(request)
                if inspect.isawaitable(answer):
                    answer = await answer
                return {"approved": bool(answer)}

            return bool((await self.step(key, asked))["approved"])
        pending = {
            "key": key,
            "call_id": request.call_id,
            "tool": request.tool_name,
            "arguments": request.arguments,
        }
        await DBOS.set_event_async(APPROVAL_EVENT, pending)
        answer = await DBOS.recv_async(key, timeout_seconds=self.approval_timeout)
        await DBOS.set_event_async(APPROVAL_EVENT, None)
        return isinstance(answer, dict) and answer.get("approved") is True


class DurableRun(Generic[OutputT]):
    """A durable run started (or found again): its id, and its result when it ends.

    Args:
        run_id: The run's id (its DBOS workflow id).
        handle: DBOS's handle on the workflow.
    """

    def __init__(self, run_id: str, handle: WorkflowHandleAsync[RunResult[OutputT]]) -> None:
        self.run_id = run_id
        self._handle = handle

    def __repr__(self) -> str:
        return f"DurableRun({self.run_id!r})"

    async def result(self) -> RunResult[OutputT]:
        """Wait for the run to end; its result, or the `AgentRunError` that ended it."""
        return await self._handle.get_result()

    async def status(self) -> str:
        """DBOS's status of the run: ``PENDING``, ``SUCCESS``, ``ERROR``, ``ENQUEUED``..."""
        info = await self._handle.get_status()
        return str(info.status)


class DurableAgent(Generic[DepsT, OutputT]):
    """An `Agent` whose runs are DBOS workflows, resumable after a crash.

    Make it where the module is imported, before `launch`: a process that recovers a run finds
    its agent by `name`, so every process that may resume the run must register the same agent
    under the same name.

    Args:
        agent: The agent to run (model, tools, limits, output type as usual).
        name: A stable name for it, unique in the process.
        replace: Register under a name already taken (the new agent serves later runs).
        approval_timeout: Seconds a run of an agent made with ``approve=wait_for_approval``
            waits for `approve` before the call counts as denied.

    Raises:
        UserError: The name is empty or already registered for another agent.
    """

    agent: Agent[DepsT, OutputT]
    name: str

    def __init__(
        self,
        agent: Agent[DepsT, OutputT],
        *,
        name: str,
        replace: bool = False,
        approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"a durable agent needs a non-empty name, got {name!r}")
        if not isinstance(agent, Agent):
            raise UserError(f"DurableAgent wraps an Agent, got {type(agent).__name__}")
        taken = _AGENTS.get(name)
        if taken is not None and taken.agent is not agent and not replace:
            raise UserError(
                f"a durable agent named {name!r} is already registered; choose another name "
                "(runs are resumed by it) or pass replace=True"
            )
        if not approval_timeout > 0:
            raise UserError(f"approval_timeout must be > 0 seconds, got {approval_timeout!r}")
        self.agent = agent
        self.name = name
        self.approval_timeout = approval_timeout
        _AGENTS[name] = self

    def __repr__(self) -> str:
        return f"DurableAgent({self.name!r}, {self.agent!r})"

    async def run(
        self,
        prompt: Any = None,
        *,
        messages: Sequence[Any] = (),
        deps: DepsT | None = None,
        run_id: str | None = None,
    ) -> RunResult[OutputT]:
        """Run to the final answer as a durable workflow.

        With the `run_id` of a run that already ended, returns its recorded result without
        running anything; of a run in progress elsewhere, waits for it.

        Args:
            prompt: As for `Agent.run`.
            messages: An earlier conversation to continue (JSON-able wire dicts).
            deps: Handed to tools; recorded with the run, so it must pickle.
            run_id: The run's id (default: a new one); tools see it as `RunContext.run_id`.

        Raises:
            AgentRunError: As `Agent.run` does; `.result` holds the run so far.
            UserError: `deps` or the prompt cannot be recorded.
        """
        started = await self.start(prompt, messages=messages, deps=deps, run_id=run_id)
        return await started.result()

    async def start(
        self,
        prompt: Any = None,
        *,
        messages: Sequence[Any] = (),
        deps: DepsT | None = None,
        run_id: str | None = None,
    ) -> DurableRun[OutputT]:
        """Start the run and return at once; `DurableRun.result` waits for it (see `run`)."""
        spec = self.spec(prompt, messages=messages, deps=deps)
        workflow_id = run_id or f"{self.name}-{uuid.uuid4().hex}"
        with SetWorkflowID(workflow_id):
            handle = await DBOS.start_workflow_async(_agent_run, spec)
        return DurableRun(workflow_id, handle)

    def spec(
        self, prompt: Any = None, *, messages: Sequence[Any] = (), deps: DepsT | None = None
    ) -> dict[str, Any]:
        """The workflow input of a run of this agent: what DBOS records to resume it.

        Raises:
            UserError: Something in it does not pickle (DBOS records inputs with pickle).
        """
        spec = {
            "format": STEP_KEY_VERSION,
            "agent": self.name,
            "prompt": prompt,
            "messages": list(messages),
            "deps": deps,
        }
        try:
            pickle.dumps(spec)
        except Exception as exc:
            raise UserError(
                f"a durable run's prompt, messages and deps are recorded with pickle, and "
                f"these cannot be: {exc}"
            ) from None
        return spec


@DBOS.workflow(name=WORKFLOW_NAME)
async def _agent_run(spec: dict[str, Any]) -> RunResult[Any]:
    durable = registered_agent(spec)
    started: float = await DBOS.run_step_async({"name": STARTED_STEP}, time.time)
    return await durable.agent.run(
        spec["prompt"],
        messages=spec["messages"],
        deps=spec["deps"],
        run_id=DBOS.workflow_id,
        steps=DBOSSteps(durable.approval_timeout),
        elapsed=max(0.0, time.time() - started),
    )


def registered_agent(spec: dict[str, Any]) -> DurableAgent[Any, Any]:
    """The agent a run's spec names, once its step format is known to be readable.

    Raises:
        DurableRunError: The format is unknown or the agent is not registered here.
    """
    found = spec.get("format")
    if found not in READABLE_FORMATS:
        raise DurableRunError(
            f"run {DBOS.workflow_id!r} was recorded in step format {found!r}; this release "
            f"of sfagent reads {sorted(READABLE_FORMATS)}: finish it with the release that "
            "started it"
        )
    name = spec.get("agent")
    durable = _AGENTS.get(str(name))
    if durable is None:
        raise DurableRunError(
            f"run {DBOS.workflow_id!r} belongs to the durable agent {name!r}, which this "
            f"process has not registered (it has {sorted(_AGENTS)}): create "
            f"DurableAgent(agent, name={name!r}) at import time, before launch()"
        )
    return durable


def wait_for_approval(request: ApprovalRequest) -> bool:
    """The approval callback of an agent whose runs wait durably for a person's answer.

    Give it as ``Agent(..., approve=wait_for_approval)`` and run the agent through
    `DurableAgent`: a call of a tool marked ``requires_approval`` then parks the run until
    `approve` answers it, from any process. Outside a durable run there is nobody to wait for,
    so the call fails (the model is told why).

    Raises:
        UserError: Always, when called: a durable run never calls it.
    """
    raise UserError(
        f"{request.tool_name} needs an approval that only a durable run can wait for: run the "
        "agent through DurableAgent, or give it another approval callback"
    )


def launch(
    database_url: str | None = None,
    *,
    name: str = APP_NAME,
    executor_id: str | None = None,
    app_version: str = APP_VERSION,
    queues: Sequence[str] = (),
    **config: Any,
) -> None:
    """Configure and launch DBOS; pending runs of this executor are resumed.

    Call it once per process, after the `DurableAgent`s are made, preferably inside the
    program's event loop (DBOS resumes runs on the loop it was launched from). DBOS's log
    records go through `logging` (the ``dbos`` logger) rather than straight to stderr.

    Args:
        database_url: DBOS's system database: ``sqlite:///path.sqlite`` on one machine,
            ``postgresql://user:password@host/db`` across machines (default:
            ``sfagent-durable.sqlite`` in the working directory).
        name: The DBOS application name (processes sharing runs use the same one).
        executor_id: This process's stable, unique id among the workers (DBOS resumes a
            crashed process's runs in the process that comes back with its id).
        app_version: Pinned so that upgrades do not strand pending runs (see `APP_VERSION`).
        queues: The DBOS queues this process takes work from (a batch worker's; see
            `serve`). None by default, so that a process running its own durable runs never
            picks up another's batch tasks.
        **config: Further `DBOSConfig` keys.
    """
    if database_url is None:
        database_url = f"sqlite:///{Path('sfagent-durable.sqlite').resolve()}"
    records = logging.getLogger("dbos")
    if not records.handlers:
        # With a handler of ours DBOS adds no console handler and its records propagate.
        records.addHandler(logging.NullHandler())
    settings: DBOSConfig = {
        "name": name,
        "system_database_url": database_url,
        "application_version": app_version,
    }
    if executor_id is not None:
        settings["executor_id"] = executor_id
    settings.update(config)  # type: ignore[typeddict-item]
    DBOS(config=settings)
    DBOS.listen_queues(list(queues))
    DBOS.launch()
    _LAUNCHED["database_url"] = database_url


def system_database_url() -> str:
    """The system database DBOS was launched with in this process (by `launch`).

    Raises:
        DurableRunError: DBOS was not launched through `launch`.
    """
    url = _LAUNCHED.get("database_url")
    if url is None:
        raise DurableRunError("DBOS was not launched with sfagent.durable.launch() here")
    return url


def shutdown() -> None:
    """Stop DBOS in this process (runs in progress stay pending, to resume at next launch)."""
    DBOS.destroy()
    _LAUNCHED.clear()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    # DBOS made its own executor the loop's default and has shut it down: without a fresh
    # one, DNS lookups and to_thread calls on this loop would fail.
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor())
