"""`Agent`: tools, a model and the loop, with four thin drivers (sync/async × plain/streamed)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeGuard

from typing_extensions import TypeVar, Unpack

from sfagent._secret import Redactor, Secret
from sfagent.events import Event, RunFinished
from sfagent.exceptions import ToolDefinitionError, UserError
from sfagent.models import Model
from sfagent.settings import DEFAULT_MODEL, ModelSettings, tool_count_problem
from sfagent.steps import Steps
from sfagent.tools import Tool, ToolSet
from sfagent.tools.tool import SchemaToolKwargs
from sfagent.tools.toolset import ToolSource

# The loop, the wire models (pydantic) and the HTTP stack load when an agent is first made or
# run, not when this module is imported: `from sfagent import Agent, tool` stays cheap.
if TYPE_CHECKING:
    from sfagent.client.http_model import HTTPModel
    from sfagent.context import ApprovalRequest
    from sfagent.messages import ContentPart, MessageBase
    from sfagent.result import RunResult
    from sfagent.run._actions import Flow
    from sfagent.run._invoke import ToolPolicy
    from sfagent.run._nested import Nesting
    from sfagent.run._output import OutputMode
    from sfagent.run._prepare import PrepareTools
    from sfagent.run._state import Capabilities
    from sfagent.run._trace import RunTrace
    from sfagent.sessions.store import Session
    from sfagent.tracing import TracingSettings

    Prompt = str | Sequence[str | ContentPart]
    History = Sequence[MessageBase | Mapping[str, Any]]

__all__ = ["Agent"]

# Defaults (PEP 696) let `Agent("model", tools=[...])` type-check as Agent[None, str].
OutputT = TypeVar("OutputT", default=str)
DepsT = TypeVar("DepsT", default=None)

_NoDeps: type = type(None)


@dataclass(frozen=True)
class _Options:
    """Everything an `Agent` was made with, checked once; `Agent.replace` copies it."""

    model: str | Model
    tools: ToolSet
    instructions: str | None
    client: Any
    api_key: Secret  # never shown in a repr
    base_url: str | None
    settings: ModelSettings | None
    tool_choice: str | Mapping[str, Any] | None
    max_turns: int
    tool_retries: int
    max_total_tokens: int | None
    time_limit: float | None
    max_repeated_calls: int | None
    max_concurrency: int | None
    max_tool_calls: int | None
    reset_tool_choice: bool
    text_tool_calls: bool
    output_type: Any
    output_mode: OutputMode
    output_retries: int
    deps_type: Any
    approve: Callable[[ApprovalRequest], Any] | None
    instrument: bool | TracingSettings | None = None
    prepare_tools: PrepareTools | None = None

    def __post_init__(self) -> None:
        for name in ("max_turns", "max_concurrency", "max_repeated_calls", "max_total_tokens",
                     "time_limit", "max_tool_calls"):  # fmt: skip
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UserError(f"{name} must be > 0, got {value!r}")
        for name in ("tool_retries", "output_retries"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.output_mode not in ("json_object", "json_schema"):
            raise UserError(
                f"output_mode must be 'json_object' or 'json_schema', got {self.output_mode!r}"
            )
        needing = self.tools.needing_approval()  # lists no MCP server
        if needing and self.approve is None:
            raise UserError(f"tools {needing} require approval: pass approve=callback to the Agent")
        _check_prepare_tools(self.prepare_tools, self.tools)

    def request_settings(self) -> ModelSettings | None:
        """The settings every request carries, `tool_choice` merged in."""
        if self.tool_choice is None:
            return self.settings
        return (self.settings or ModelSettings()).merge(ModelSettings(tool_choice=self.tool_choice))


_OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(_Options))


class Agent(Generic[DepsT, OutputT]):
    """A model with tools, run in a loop until it answers.

    Each run sends the conversation with the tools' schemas, runs every tool call the model
    makes (concurrently when it makes several), sends the results back, and repeats until
    the model answers without calling tools. Bad calls become messages the model can act on;
    limits end the run with an `AgentRunError` that carries everything done so far.

    Args:
        model: A model id (sent over HTTP to SiliconFlow or `base_url`), or any `Model`,
            such as the offline models in `sfagent.testing`.
        tools: Tools, plain callables (made into tools), or MCP servers (`sfagent.mcp`),
            whose tools are listed when a run first needs them.
        instructions: The system prompt.
        client: A `SiliconFlow` or `AsyncSiliconFlow` client to use for `model` (an id).
        api_key: Key for the clients made here; defaults to ``SILICONFLOW_API_KEY``.
        base_url: Base URL for the clients made here.
        settings: Sampling and vendor parameters (`ModelSettings`).
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a named function.
            ``"required"`` and a named function force a call until tools have run, then the
            requests use ``"auto"`` so the model can answer (see `reset_tool_choice`).
            SiliconFlow rejects ``"required"`` (HTTP 400, code 20015): the agent then retries
            that request with ``"auto"`` and keeps ``"auto"`` from then on.
        max_turns: Model requests allowed per run.
        tool_retries: Failed calls (bad arguments, exceptions, timeouts) tolerated per tool
            per run before `ToolRetriesExceeded`; a tool's own `max_retries` wins.
        max_total_tokens: Token budget of a run (checked before each request).
        time_limit: Wall-clock budget of a run, in seconds.
        max_repeated_calls: How often one identical call (same tool, same arguments) may
            occur in a run before `RunawayLoopError`; ``None`` turns the check off.
        max_concurrency: Cap on tool calls running at once; also the size of the agent's pool
            of worker threads for sync tools (``None``: no cap on calls, 32 threads).
        reset_tool_choice: After tools have run, send ``"auto"`` instead of a forcing
            `tool_choice` (default). ``False`` forces a call on every turn; such a run can
            only end by a tool's `StopRun` or a limit.
        text_tool_calls: Run tool calls a model wrote into its answer's text in a known
            markup (Hermes/Qwen ``<tool_call>`` JSON, Qwen3-Coder ``<function=...>``, GLM
            ``<arg_key>``) when they name registered tools; a `ToolCallsFromText` event says
            so. ``False`` keeps such text as the answer.
        max_tool_calls: Tool calls run per model response; calls past it are not run and the
            model is told to make them in a later turn (``None``: no cap).
        output_type: The type of the final answer: ``str``, or a pydantic model (or any type
            pydantic validates) requested as JSON and validated.
        output_mode: ``"json_object"`` (the schema goes in the instructions) or
            ``"json_schema"`` (also sent as ``response_format``; falls back to json_object
            if the endpoint rejects it).
        output_retries: Times the model is re-asked when its answer does not validate.
        deps_type: The type of the `deps` each run passes to tools (for type checkers; a
            run given deps of another class is refused).
        approve: Called (sync or async) with an `ApprovalRequest` before each call of a
            tool marked ``requires_approval``; return ``True`` to run it.
        instrument: Trace runs as OpenTelemetry spans (``True``, or `TracingSettings`
            from `sfagent.tracing`; needs the ``otel`` extra). ``None`` follows
            `sfagent.tracing.instrument_all`; ``False`` never traces.
        prepare_tools: Chooses the tools each request offers: called (sync) before every
            model request with a `RunContext` (its ``messages`` are the conversation so far)
            and the agent's `ToolSet`; returns the tools to offer (the agent's own, or their
            names), at most 128. An agent with this hook may hold more than 128 tools. A call
            to a tool not offered that turn is answered as a call to an unknown tool.

    Raises:
        UserError: An invalid setting, or a tool needing approval without ``approve``.
        ConfigurationError: No API key for a model id (see `SiliconFlow`).
    """

    def __init__(
        self,
        model: str | Model = DEFAULT_MODEL,
        *,
        tools: Iterable[Tool[..., Any] | Callable[..., Any] | ToolSource] = (),
        instructions: str | None = None,
        client: Any = None,
        api_key: str | None = None,
        base_url: str | None = None,
        settings: ModelSettings | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
        max_turns: int = 20,
        tool_retries: int = 3,
        max_total_tokens: int | None = None,
        time_limit: float | None = None,
        max_repeated_calls: int | None = 3,
        max_concurrency: int | None = None,
        max_tool_calls: int | None = 64,
        reset_tool_choice: bool = True,
        text_tool_calls: bool = True,
        output_type: type[OutputT] = str,  # type: ignore[assignment]
        output_mode: OutputMode = "json_object",
        output_retries: int = 2,
        deps_type: type[DepsT] = _NoDeps,
        approve: Callable[[ApprovalRequest], Any] | None = None,
        instrument: bool | TracingSettings | None = None,
        prepare_tools: PrepareTools | None = None,
    ) -> None:
        options = _Options(
            model=model,
            tools=tools if isinstance(tools, ToolSet) else ToolSet(tools, limited=False),
            instructions=instructions,
            client=client,
            api_key=Secret(api_key),
            base_url=base_url,
            settings=settings,
            tool_choice=tool_choice,
            max_turns=max_turns,
            tool_retries=tool_retries,
            max_total_tokens=max_total_tokens,
            time_limit=time_limit,
            max_repeated_calls=max_repeated_calls,
            max_concurrency=max_concurrency,
            max_tool_calls=max_tool_calls,
            reset_tool_choice=reset_tool_choice,
            text_tool_calls=text_tool_calls,
            output_type=output_type,
            output_mode=output_mode,
            output_retries=output_retries,
            deps_type=deps_type,
            approve=approve,
            instrument=instrument,
            prepare_tools=prepare_tools,
        )
        self._setup(options)

    def _setup(self, options: _Options) -> None:
        from sfagent.run._output import OutputSpec
        from sfagent.run._pool import DEFAULT_TOOL_THREADS, ToolThreads
        from sfagent.run._prepare import ToolSelector
        from sfagent.run._state import Capabilities, LoopConfig

        # The options are kept (not the clients they made) so `replace` can build a sibling.
        self._options = options
        self.tools = options.tools
        model_id, self.model = _resolve_model(
            options.model, options.client, options.api_key.value, options.base_url
        )
        self._endpoint = Capabilities()
        self._config = LoopConfig(
            model=model_id,
            tools=options.tools,
            settings=options.request_settings(),
            instructions=options.instructions,
            max_turns=options.max_turns,
            tool_retries=options.tool_retries,
            max_total_tokens=options.max_total_tokens,
            time_limit=options.time_limit,
            max_repeated_calls=options.max_repeated_calls,
            output=None if options.output_type is str else OutputSpec(options.output_type),
            output_mode=options.output_mode,
            output_retries=options.output_retries,
            max_tool_calls=options.max_tool_calls,
            reset_tool_choice=options.reset_tool_choice,
            text_tool_calls=options.text_tool_calls,
            select_tools=(
                None
                if options.prepare_tools is None
                else ToolSelector(options.prepare_tools, options.tools)
            ),
        )
        self._threads = ToolThreads(options.max_concurrency or DEFAULT_TOOL_THREADS)
        self._tracing: TracingSettings | None = None
        if options.instrument is not None and options.instrument is not False:
            from sfagent.tracing._settings import resolve

            self._tracing = resolve(options.instrument)  # fails now if the extra is missing

    def __repr__(self) -> str:
        return f"Agent(model={self._config.model!r}, tools={self.tools.known_names})"

    @property
    def model_name(self) -> str:
        """The model id the agent's requests name."""
        return self._config.model

    def replace(self, **changes: Any) -> Agent[DepsT, OutputT]:
        """A new agent with the same settings except `changes` (any `Agent` argument).

        Example:
            >>> fast = agent.replace(model="Qwen/Qwen3-8B", max_turns=5)  # doctest: +SKIP

        Raises:
            UserError: A name that is not an `Agent` argument.
        """
        unknown = sorted(set(changes) - _OPTION_NAMES)
        if unknown:
            raise UserError(f"Agent.replace() got unknown settings: {', '.join(unknown)}")
        if "api_key" in changes:
            changes["api_key"] = Secret(changes["api_key"])
        if "tools" in changes and not isinstance(changes["tools"], ToolSet):
            changes["tools"] = ToolSet(changes["tools"], limited=False)
        sibling: Agent[DepsT, OutputT] = Agent.__new__(Agent)
        sibling._setup(dataclasses.replace(self._options, **changes))
        return sibling

    def as_tool(
        self,
        *,
        name: str,
        description: str,
        input_type: Any = str,
        input_description: str | None = None,
        **options: Unpack[SchemaToolKwargs],
    ) -> Tool[..., Any]:
        """This agent as a tool another agent can call: each call is a run of this agent.

        The inner run is bounded by the calling run (its time and tokens left), gets the
        calling run's ``deps``, and is sync inside a sync run and async inside an async one.
        Its usage is added to the caller's, its transcript is kept on the call's
        `ToolCallRecord.sub_run`, and in a streamed run its events arrive as `NestedEvent`s.
        If it fails, the calling model reads the error (``Error: tool 'x' failed:
        MaxTurnsExceeded: ...``) and the `ToolResult` event carries the typed error.

        Args:
            name: The tool's name.
            description: What the agent does, for the calling model.
            input_type: The type of the tool's one argument, ``input``: ``str`` (the prompt),
                or a pydantic model (or another type pydantic validates), sent as JSON.
            input_description: How the calling model should write ``input``.
            **options: Tool options: ``timeout``, ``max_retries``, ``requires_approval``,
                ``sequential``, ``strict``.

        Raises:
            UserError: No description.
            ToolDefinitionError: A bad name or an input type that cannot be a schema.
        """
        from sfagent.run._nested import AgentTool

        def start_sync(prompt: Any, deps: Any, stream: bool, parent: Any) -> Iterator[Event]:
            return self._events_sync(prompt, (), deps, stream, parent=parent)

        def start_async(prompt: Any, deps: Any, stream: bool, parent: Any) -> AsyncIterator[Event]:
            return self._events_async(prompt, (), deps, stream, parent=parent)

        return AgentTool(
            start_sync,
            start_async,
            name=name,
            description=description,
            input_type=input_type,
            input_description=input_description,
            **options,
        )

    # --- the four drivers -------------------------------------------------------------------

    async def run(
        self,
        prompt: Prompt | None = None,
        *,
        messages: History = (),
        deps: DepsT | None = None,
        run_id: str | None = None,
        steps: Steps | None = None,
        elapsed: float = 0.0,
        session: Session | None = None,
    ) -> RunResult[OutputT]:
        """Run to the final answer without streaming requests.

        Args:
            prompt: The user's message: text, or a list of text and content parts (plain
                strings in the list are text parts); may be omitted when `messages` already
                ends with one.
            messages: An earlier conversation to continue (`RunResult.messages`).
            deps: Dependencies handed to tools through `RunContext`.
            run_id: An id for this run, shown to tools as `RunContext.run_id` (their
                `idempotency_key` derives from it).
            steps: Performs each model request and tool call, or replays a recorded one
                (see `Steps`; `sfagent.batch` journals a batch's runs this way).
            elapsed: Seconds of `time_limit` already spent: a run resumed from its steps
                keeps the deadline it started with.
            session: A stored conversation (`sfagent.sessions`) to continue instead of
                `messages`: its history is sent, and what the run adds is appended to it when
                the run ends (a failed run's completed part too).

        Raises:
            AgentRunError: A limit was hit or a request failed; `.result` has the partial run.
            SessionStoreError: The session's store failed; `.result` has the run, if any.
        """
        # An attribute check: a runtime protocol's isinstance costs ~15 µs a run on 3.11.
        if steps is not None and not callable(getattr(steps, "step", None)):
            raise UserError(f"steps must be a Steps (an async step method), got {steps!r}")
        if not elapsed >= 0:
            raise UserError(f"elapsed must be >= 0 seconds, got {elapsed!r}")
        events = self._events_async(
            prompt,
            messages,
            deps,
            False,
            run_id=run_id,
            steps=steps,
            elapsed=elapsed,
            session=session,
        )
        return _result(await _last_async(events))

    def run_sync(
        self,
        prompt: Prompt | None = None,
        *,
        messages: History = (),
        deps: DepsT | None = None,
        session: Session | None = None,
    ) -> RunResult[OutputT]:
        """Like `run`, blocking; works inside a running event loop too (e.g. Jupyter)."""
        events = self._events_sync(prompt, messages, deps, False, session)
        last: Event | None = None
        for last in events:  # noqa: B007 - only the final event matters
            pass
        return _result(last)

    def stream(
        self,
        prompt: Prompt | None = None,
        *,
        messages: History = (),
        deps: DepsT | None = None,
        session: Session | None = None,
    ) -> AsyncIterator[Event]:
        """Run with streamed requests, yielding events; the last is `RunFinished`.

        With a `session`, the run's messages are stored before `RunFinished` is yielded; a
        stream closed before its end stores nothing.
        """
        return self._events_async(prompt, messages, deps, True, session=session)

    def stream_sync(
        self,
        prompt: Prompt | None = None,
        *,
        messages: History = (),
        deps: DepsT | None = None,
        session: Session | None = None,
    ) -> Iterator[Event]:
        """Like `stream`, blocking."""
        return self._events_sync(prompt, messages, deps, True, session)

    def _events_sync(
        self,
        prompt: Prompt | None,
        messages: History,
        deps: Any,
        stream: bool,
        session: Session | None = None,
        *,
        parent: Nesting | None = None,
    ) -> Iterator[Event]:
        from sfagent.run._drive_sync import drive_sync

        if session is not None:
            from sfagent.sessions._bridge import SessionRun, record_sync

            tie = SessionRun(session, messages, self._redactor())
            return record_sync(tie, lambda sent: self._events_sync(prompt, sent, deps, stream))

        listed, spent = True, 0.0
        if self.tools.sources:  # MCP servers: started and listed first, within the run's time
            from sfagent.run._prepare import list_sources, sources_budget

            budget = sources_budget(self._config.time_limit, 0.0, parent)
            listed, spent = list_sources(self.tools.sources, budget)
        flow = self._flow(
            prompt, messages, deps, stream, elapsed=spent, parent=parent, listed=listed
        )
        trace = self._trace()
        return drive_sync(flow, self.model, self._policy(deps), stream=stream, trace=trace)

    def _events_async(
        self,
        prompt: Prompt | None,
        messages: History,
        deps: Any,
        stream: bool,
        *,
        run_id: str | None = None,
        steps: Steps | None = None,
        elapsed: float = 0.0,
        session: Session | None = None,
        parent: Nesting | None = None,
    ) -> AsyncIterator[Event]:
        from sfagent.run._drive_async import drive_async  # asyncio loads only for async runs

        if session is not None:
            from sfagent.sessions._bridge import SessionRun, record_async

            tie = SessionRun(session, messages, self._redactor())
            return record_async(
                tie,
                lambda sent: self._events_async(
                    prompt, sent, deps, stream, run_id=run_id, steps=steps, elapsed=elapsed
                ),
            )

        policy, trace = self._policy(deps), self._trace()

        def start(listed: bool, spent: float) -> AsyncIterator[Event]:
            flow = self._flow(
                prompt, messages, deps, stream, run_id=run_id, elapsed=elapsed + spent,
                parent=parent, listed=listed,
            )  # fmt: skip
            return drive_async(flow, self.model, policy, stream=stream, steps=steps, trace=trace)

        if self.tools.sources:  # MCP servers: started and listed first, awaited, in the run's time
            from sfagent.run._prepare import after_sources, sources_budget

            budget = functools.partial(sources_budget, self._config.time_limit, elapsed, parent)
            return after_sources(self.tools.sources, budget, start)
        return start(True, 0.0)

    def _flow(
        self,
        prompt: Prompt | None,
        messages: History,
        deps: Any,
        stream: bool,
        *,
        run_id: str | None = None,
        elapsed: float = 0.0,
        parent: Nesting | None = None,
        listed: bool = True,
    ) -> Flow:
        from sfagent.run._loop import run_flow, start_state

        self._check_deps(deps)
        config = self._config
        if not listed:  # the time ran out while tool sources started: the run ends at once
            config = dataclasses.replace(config, tools=ToolSet(), select_tools=None)
        state = start_state(
            config,
            prompt,
            _history(messages),
            deps,
            endpoint=self._endpoint,
            learned=self._learn,
            run_id=run_id,
            elapsed=elapsed,
            parent=parent,
        )
        if not listed:
            state.deadline = config.clock()
        return run_flow(config, state, stream=stream)

    def _learn(self, endpoint: Capabilities) -> None:
        # A 400 for tool_choice="required" or json_schema: later runs skip the feature.
        self._endpoint = endpoint

    def _check_deps(self, deps: Any) -> None:
        expected = self._options.deps_type
        checkable = isinstance(expected, type) and expected is not _NoDeps
        if deps is not None and checkable and not isinstance(deps, expected):
            raise UserError(
                f"deps must be a {expected.__name__} (deps_type), got {type(deps).__name__}"
            )

    def _trace(self) -> RunTrace | None:
        # Tracing off costs a dict lookup: nothing of sfagent.tracing (or OpenTelemetry) loads
        # unless this agent asked for it or instrument_all() was called.
        settings = self._tracing
        if settings is None:
            if self._options.instrument is not None:
                return None
            chosen = sys.modules.get("sfagent.tracing._settings")
            settings = chosen.default_instrument() if chosen is not None else None
            if settings is None:
                return None
        from sfagent.tracing._otel import run_trace

        return run_trace(settings, self._config.model, self._redactor())

    def _redactor(self) -> Redactor:
        """What cuts this agent's key out of what it keeps: its own key, else its client's,
        else the environment's."""
        key = self._options.api_key.value
        client = self._options.client
        if key is None and client is not None and callable(getattr(client, "redact", None)):
            redactor: Redactor = client
            return redactor
        from sfagent.client.config import API_KEY_ENV

        return Secret(key if key is not None else os.environ.get(API_KEY_ENV, "").strip() or None)

    def _policy(self, deps: Any) -> ToolPolicy:
        from sfagent.run._invoke import ToolPolicy

        options = self._options
        return ToolPolicy(
            approve=options.approve,
            max_concurrency=options.max_concurrency,
            deps=deps,
            threads=self._threads,
        )

    # --- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync HTTP client the agent made (not one passed in), its tool threads,
        and the MCP servers its runs started (not those held open by their own `with`)."""
        self._threads.shutdown()
        self.tools.release_sources()
        if _is_http_model(self.model):
            self.model.close()

    async def aclose(self) -> None:
        """Close the HTTP clients the agent made, including the running loop's async one,
        and the MCP servers its runs started."""
        self._threads.shutdown()
        if self.tools.sources:
            import asyncio

            await asyncio.to_thread(self.tools.release_sources)  # stopping a server blocks
        if _is_http_model(self.model):
            await self.model.aclose()

    def __enter__(self) -> Agent[DepsT, OutputT]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Agent[DepsT, OutputT]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _check_prepare_tools(hook: Any, tools: ToolSet) -> None:
    """Without a hook every request carries every tool, so at most 128; a hook must be sync."""
    if hook is None:
        problem = tool_count_problem(len(tools.known_names))
        if problem:
            raise ToolDefinitionError(
                f"{problem} in one agent: pass prepare_tools= to offer at most 128 per request"
            )
        return
    if not callable(hook):
        raise UserError(f"prepare_tools must be a function, got {type(hook).__name__}")
    if inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(
        getattr(hook, "__call__", None)  # noqa: B004 - a callable instance's method
    ):
        raise UserError(
            "prepare_tools must be sync: it runs between turns, inside the loop (fetch what "
            "it needs before the run, or from a tool)"
        )


def _resolve_model(
    model: str | Model, client: Any, api_key: str | None, base_url: str | None
) -> tuple[str, Model]:
    if not isinstance(model, str):
        if not isinstance(model, Model):
            raise UserError(
                f"model must be a model id or a Model (complete/stream/complete_async/"
                f"stream_async), got {type(model).__name__}"
            )
        return str(getattr(model, "model_name", type(model).__name__)), model
    from sfagent.client.http_model import HTTPModel

    if client is None:
        return model, HTTPModel(api_key=api_key, base_url=base_url)
    from sfagent.client.clients import AsyncSiliconFlow, SiliconFlow

    if isinstance(client, SiliconFlow):
        return model, HTTPModel(client=client, api_key=api_key, base_url=base_url)
    if isinstance(client, AsyncSiliconFlow):
        return model, HTTPModel(async_client=client, api_key=api_key, base_url=base_url)
    raise UserError(
        f"client must be a SiliconFlow or AsyncSiliconFlow, got {type(client).__name__}"
    )


def _is_http_model(model: Model) -> TypeGuard[HTTPModel]:
    # Not loaded means no agent made one: closing an offline agent need not load the HTTP stack.
    module = sys.modules.get("sfagent.client.http_model")
    return module is not None and isinstance(model, module.HTTPModel)


def _history(messages: History) -> list[MessageBase]:
    from sfagent.messages import to_message_list

    return to_message_list(messages, UserError)


async def _last_async(events: AsyncIterator[Event]) -> Event | None:
    last: Event | None = None
    async for last in events:  # noqa: B007 - only the final event matters
        pass
    return last


def _result(last: Event | None) -> RunResult[Any]:
    if not isinstance(last, RunFinished):  # the flow always ends with one, or raises
        raise RuntimeError("the run ended without a RunFinished event")
    return last.result
