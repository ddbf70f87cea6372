"""The work behind `sfagent run`, `chat` and `models`: build the agent, run it, show it."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from sfagent.agent import Agent
from sfagent.cli._load import CLIError, Found
from sfagent.cli._render import Renderer, Style, replay, result_json
from sfagent.client.config import API_KEY_ENV
from sfagent.context import ApprovalRequest
from sfagent.events import RunFinished
from sfagent.exceptions import AgentRunError
from sfagent.result import RunResult
from sfagent.sessions import Session, SessionStoreError

__all__ = [
    "OFFLINE_NOTICE",
    "RunOptions",
    "api_key_set",
    "build_agent",
    "chat_loop",
    "execute",
    "list_models",
    "run_once",
]

OFFLINE_NOTICE = f"No {API_KEY_ENV} set: running on the offline demo model."


@dataclass(frozen=True)
class RunOptions:
    """The command-line options that shape the agent.

    Attributes:
        model: ``--model``: a model id, replacing the file's.
        base_url: ``--base-url``.
        max_turns: ``--max-turns``.
        instructions: ``--instructions``, replacing the file's.
        offline: ``--offline``, or no key in the environment.
        stream: Whether requests stream.
    """

    model: str | None = None
    base_url: str | None = None
    max_turns: int | None = None
    instructions: str | None = None
    offline: bool = False
    stream: bool = True


def api_key_set() -> bool:
    """Whether ``SILICONFLOW_API_KEY`` holds a key (never shown)."""
    return bool(os.environ.get(API_KEY_ENV, "").strip())


def build_agent(found: Found, options: RunOptions) -> tuple[Agent[Any, Any], str, bool]:
    """The agent to run: the file's own with the options applied, or one around its tools.

    Returns:
        The agent, the model id its requests name, and whether it runs on the demo model.
    """
    from sfagent.client.http_model import HTTPModel
    from sfagent.offline.demo import DemoModel
    from sfagent.settings import DEFAULT_MODEL

    if found.agent is None:
        model_id = options.model or DEFAULT_MODEL
        agent: Agent[Any, Any] = Agent(
            DemoModel() if options.offline else model_id,
            tools=found.tools,
            instructions=options.instructions,
            base_url=options.base_url,
            max_turns=options.max_turns or 20,
            approve=_ask_approval if any(t.requires_approval for t in found.tools) else None,
        )
        return agent, "demo" if options.offline else model_id, options.offline
    original = found.agent
    changes: dict[str, Any] = {}
    if options.max_turns:
        changes["max_turns"] = options.max_turns
    if options.instructions is not None:
        changes["instructions"] = options.instructions
    is_http = isinstance(original.model, HTTPModel)
    if options.offline and (is_http or options.model or options.base_url):
        return original.replace(model=DemoModel(), **changes), "demo", True
    if options.model or (options.base_url and is_http):
        changes["model"] = options.model or original.model_name
        changes["base_url"] = options.base_url
        changes["client"] = None  # a new id or site: new clients for it
    agent = original.replace(**changes) if changes else original
    return agent, agent.model_name, False


def _ask_approval(request: ApprovalRequest) -> bool:
    """Ask on the terminal before a tool marked ``requires_approval`` runs; refuse off a TTY."""
    if not sys.stdin.isatty():
        return False
    sys.stderr.write(f"Allow {request.tool_name}({request.arguments})? [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def execute(
    agent: Agent[Any, Any],
    prompt: str,
    *,
    messages: Sequence[dict[str, Any]] = (),
    session: Session | None = None,
    stream: bool,
    renderer: Renderer | None,
) -> RunResult[Any]:
    """Run `agent` on `prompt`, showing events on `renderer` (if any) as they come.

    Without streaming, the run's events are rebuilt from its records once it ends, so both
    modes show the same lines.

    Raises:
        AgentRunError: The run ended without an answer (its partial run shown first).
    """
    if not stream:
        try:
            result = agent.run_sync(prompt, messages=messages, session=session)
        except AgentRunError as exc:
            if renderer is not None and isinstance(exc.result, RunResult):
                for event in replay(exc.result):
                    renderer.handle(event)
            raise
        if renderer is not None:
            for event in replay(result):
                renderer.handle(event)
        return result
    events = agent.stream_sync(prompt, messages=messages, session=session)
    try:
        for event in events:
            if renderer is not None:
                renderer.handle(event)
            if isinstance(event, RunFinished):
                return event.result
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()
    raise RuntimeError("the run ended without a RunFinished event")


def run_once(
    agent: Agent[Any, Any],
    prompt: str,
    *,
    model_id: str,
    demo: bool,
    options: RunOptions,
    as_json: bool,
    out: TextIO,
) -> int:
    """`sfagent run`: one prompt, shown live (or as JSON), then the usage line."""
    renderer = None if as_json else _renderer(out)
    started = time.perf_counter()
    try:
        result = execute(agent, prompt, stream=options.stream, renderer=renderer)
    except AgentRunError as exc:
        if as_json:
            partial = exc.result if isinstance(exc.result, RunResult) else None
            wall = time.perf_counter() - started
            error = {"type": type(exc).__name__, "message": str(exc)}
            out.write(
                result_json(partial, model=model_id, offline=demo, wall_time=wall, error=error)
                + "\n"
            )
        elif renderer is not None:
            renderer.end_line()
        raise
    wall = time.perf_counter() - started
    if as_json:
        out.write(result_json(result, model=model_id, offline=demo, wall_time=wall) + "\n")
    elif renderer is not None:
        renderer.finish(result.usage, wall, output=result.output)
    return 0


def chat_loop(
    agent: Agent[Any, Any],
    *,
    stream: bool,
    out: TextIO,
    err: TextIO,
    read_line: Callable[[str], str | None],
    describe: Callable[[BaseException], str],
    session: Session | None = None,
) -> int:
    """`sfagent chat`: a conversation that keeps its history.

    Ctrl-C cancels the current turn (the history stays as it was before it); Ctrl-D (end of
    input), ``/exit`` or ``/quit`` end the conversation; ``/reset`` clears the history. With a
    `session` the history is the stored conversation (``/reset`` empties it), and a failed
    turn's completed part is stored.
    """
    renderer = _renderer(out, err)
    history: list[dict[str, Any]] = []
    for line in _turns(read_line, out):
        if line in ("/exit", "/quit"):
            break
        if line == "/reset":
            history = []
            if session is not None:
                session.clear()
            err.write("History cleared.\n")
            continue
        started = time.perf_counter()
        try:
            result = execute(
                agent, line, messages=history, session=session, stream=stream, renderer=renderer
            )
        except KeyboardInterrupt:
            renderer.end_line()
            err.write("Turn cancelled (history unchanged).\n")
            continue
        except AgentRunError as exc:
            renderer.end_line()
            kept = "history unchanged" if session is None else "its completed part is saved"
            err.write(f"error: {describe(exc)} ({kept})\n")
            continue
        except SessionStoreError as exc:
            renderer.end_line()
            err.write(f"error: the turn could not be saved: {exc}\n")
            continue
        renderer.finish(result.usage, time.perf_counter() - started, output=result.output)
        if session is None:
            history = list(result.messages)
    return 0


def _turns(read_line: Callable[[str], str | None], out: TextIO) -> Iterator[str]:
    """The user's non-empty lines until end of input; Ctrl-C at the prompt starts a new one."""
    while True:
        try:
            line = read_line("you> ")
        except KeyboardInterrupt:
            out.write("\n")
            continue
        if line is None:
            return
        line = line.strip()
        if line:
            yield line


def list_models(base_url: str | None, out: TextIO) -> int:
    """`sfagent models`: the model ids the key can use, one per line.

    Raises:
        CLIError: No API key is set.
    """
    if not api_key_set():
        raise CLIError(
            f"{API_KEY_ENV} is not set: listing models needs an API key "
            "(`sfagent run` works offline without one)"
        )
    from sfagent.client.clients import SiliconFlow

    with SiliconFlow(base_url=base_url) as client:
        ids = client.list_models()
    for model_id in ids:
        out.write(model_id + "\n")
    return 0


def _renderer(out: TextIO, err: TextIO | None = None) -> Renderer:
    # On a terminal everything shows in order; piped (`sfagent run ... | cat`), stdout holds
    # the answer only and the rest (reasoning, tool lines, usage) goes to stderr.
    err = err if err is not None else sys.stderr
    isatty = getattr(out, "isatty", None)
    aside = None if isatty is not None and isatty() else err.write

    def flush() -> None:
        out.flush()
        err.flush()

    return Renderer(out.write, Style.for_stream(out), flush=flush, aside=aside)
