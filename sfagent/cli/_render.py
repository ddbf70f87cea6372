"""What `sfagent run` and `sfagent chat` show: events as terminal lines, results as JSON.

Plain ANSI escapes, used only when the stream is a terminal and ``NO_COLOR`` is unset (see
https://no-color.org); ``FORCE_COLOR`` turns them on anyway. The formatting functions are pure;
`Renderer` only writes what they return.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import IO, Any

from sfagent._text import shorten
from sfagent.events import (
    Event,
    ReasoningDelta,
    RunFinished,
    TextDelta,
    ToolCallStarted,
    ToolResult,
)
from sfagent.result import RunResult
from sfagent.usage import RunUsage

__all__ = [
    "Renderer",
    "Style",
    "format_duration",
    "format_usage",
    "replay",
    "result_json",
]


class Style:
    """ANSI styling that switches itself off where it does not belong.

    Args:
        enabled: Whether to emit escape codes.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def for_stream(cls, stream: IO[str], environ: dict[str, str] | None = None) -> Style:
        """Colours for `stream`: on a terminal, unless ``NO_COLOR`` or ``TERM=dumb``."""
        env = os.environ if environ is None else environ
        if env.get("NO_COLOR"):
            return cls(False)
        if env.get("FORCE_COLOR"):
            return cls(True)
        isatty = getattr(stream, "isatty", None)
        return cls(bool(isatty and isatty()) and env.get("TERM") != "dumb")

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled and text else text

    def dim(self, text: str) -> str:
        """Faint text (reasoning, usage)."""
        return self._wrap("2", text)

    def bold(self, text: str) -> str:
        """Bold text (tool names)."""
        return self._wrap("1", text)

    def red(self, text: str) -> str:
        """Red text (errors)."""
        return self._wrap("31", text)

    def green(self, text: str) -> str:
        """Green text (successful tool results)."""
        return self._wrap("32", text)

    def cyan(self, text: str) -> str:
        """Cyan text (tool calls)."""
        return self._wrap("36", text)


def format_duration(seconds: float) -> str:
    """``"12 ms"`` under a second, ``"1.25 s"`` above."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def format_usage(usage: RunUsage, wall_time: float) -> str:
    """The run's usage as one line: requests, tokens, tool calls, wall time."""
    requests = f"{usage.requests} request{'s' if usage.requests != 1 else ''}"
    tokens = (
        f"{usage.total_tokens} tokens ({usage.prompt_tokens} prompt + "
        f"{usage.completion_tokens} completion"
    )
    if usage.reasoning_tokens:
        tokens += f", {usage.reasoning_tokens} reasoning"
    if usage.estimated:
        tokens = "~" + tokens + ", estimated: the server reported no usage"
    calls = f"{usage.tool_calls} tool call{'s' if usage.tool_calls != 1 else ''}"
    return " · ".join([requests, tokens + ")", calls, format_duration(wall_time)])


class _Channel:
    """One output stream, and whether what was written to it ended a line."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self.write = write
        self.fresh_line = True
        self.mode = ""  # "reasoning", "text", or "" at the start of a line

    def stream(self, mode: str, shown: str, raw: str) -> None:
        if self.mode != mode:
            self.end_line()
            self.mode = mode
        self.write(shown)
        self.fresh_line = raw.endswith("\n")

    def line(self, text: str) -> None:
        self.end_line()
        self.mode = ""
        self.write(text + "\n")

    def end_line(self) -> None:
        if not self.fresh_line:
            self.write("\n")
            self.fresh_line = True


class Renderer:
    """Writes a run's events to a terminal as they arrive.

    Reasoning is dimmed; each tool call shows its arguments when it starts, then its result
    (shortened to one line) and duration; answer text streams as is.

    Args:
        write: Where the answer goes (e.g. ``sys.stdout.write``); flushed by `flush`.
        style: Colours to use.
        flush: Called after each event so text appears while it streams.
        width: Characters a shortened tool result may take.
        aside: Where everything else goes (reasoning, tool lines, usage); by default the same
            place as the answer. `sfagent run | cat` sends it to stderr, so stdout holds the
            answer only.
    """

    def __init__(
        self,
        write: Callable[[str], object],
        style: Style,
        *,
        flush: Callable[[], object] = lambda: None,
        width: int = 100,
        aside: Callable[[str], object] | None = None,
    ) -> None:
        self._main = _Channel(write)
        self._aside = _Channel(aside) if aside is not None else self._main
        self._flush = flush
        self.style = style
        self.width = width
        self._answer_shown = False  # text seen since the last tool call

    def handle(self, event: Event) -> None:
        """Show one event."""
        if isinstance(event, ReasoningDelta):
            if event.text:
                self._aside.stream("reasoning", self.style.dim(event.text), event.text)
        elif isinstance(event, TextDelta):
            if event.text:
                self._main.stream("text", event.text, event.text)
                self._answer_shown = True
        elif isinstance(event, ToolCallStarted):
            self._answer_shown = False
            arrow = self.style.cyan("→ ") + self.style.bold(event.name)
            self._aside.line(arrow + " " + event.arguments)
        elif isinstance(event, ToolResult):
            self._aside.line(self._result_line(event))
        self._flush()

    def finish(self, usage: RunUsage, wall_time: float, *, output: Any = None) -> None:
        """Write the output if no text showed it (e.g. a tool's `StopRun`), then usage."""
        if not self._answer_shown and output is not None:
            self._main.line(_output_text(output))
        self.end_line()
        self._answer_shown = False
        self._aside.line(self.style.dim(format_usage(usage, wall_time)))
        self._flush()

    def end_line(self) -> None:
        """Make sure what follows starts on a new line."""
        self._main.end_line()
        self._aside.end_line()
        self._flush()

    def _result_line(self, event: ToolResult) -> str:
        took = self.style.dim(f"({format_duration(event.duration)})")
        if event.error is not None:
            mark = self.style.red("✗ ")
            text = self.style.red(shorten(event.content or event.error, self.width, one_line=True))
        else:
            mark = self.style.green("← ")
            text = shorten(event.content, self.width, one_line=True)
        return f"{mark}{self.style.bold(event.name)} {text} {took}"


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    from pydantic_core import to_json

    return to_json(output, indent=2).decode()


def replay(result: RunResult[Any]) -> Iterator[Event]:
    """A finished run's events rebuilt from its turn records (for runs that did not stream).

    Tool calls appear as started-then-finished pairs, in call order.
    """
    for number, turn in enumerate(result.turns, start=1):
        choices = turn.response.choices
        message = choices[0].message if choices else None
        if message is not None and message.reasoning_content:
            yield ReasoningDelta(message.reasoning_content, number)
        content = message.content if message is not None else None
        if isinstance(content, str) and content:
            yield TextDelta(content, number)
        for call in turn.tool_calls:
            yield ToolCallStarted(call.call_id, call.name, call.arguments, number)
            yield ToolResult(
                call.call_id, call.name, call.content, call.duration, call.error, number
            )
    if result.output is not None or result.turns:
        yield RunFinished(result)


def result_json(
    result: RunResult[Any] | None,
    *,
    model: str,
    offline: bool,
    wall_time: float,
    error: dict[str, Any] | None = None,
) -> str:
    """The machine-readable summary `sfagent run --json` prints.

    Keys: ``output``, ``model``, ``offline``, ``usage``, ``wall_time``, ``turns`` (per model
    request: finish reason and tool calls), ``messages`` (the whole conversation) and
    ``error`` (``null`` on success).
    """
    from pydantic_core import to_jsonable_python

    turns = []
    if result is not None:
        for number, turn in enumerate(result.turns, start=1):
            choices = turn.response.choices
            turns.append(
                {
                    "turn": number,
                    "finish_reason": choices[0].finish_reason if choices else None,
                    "tool_calls": [asdict(call) for call in turn.tool_calls],
                }
            )
    payload = {
        "output": to_jsonable_python(result.output) if result is not None else None,
        "model": model,
        "offline": offline,
        "usage": asdict(result.usage) if result is not None else asdict(RunUsage()),
        "wall_time": round(wall_time, 3),
        "turns": turns,
        "messages": result.messages if result is not None else [],
        "error": error,
    }
    return json.dumps(payload, ensure_ascii=False, indent=2)
