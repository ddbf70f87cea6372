"""OpenTelemetry traces of a run, printed to the console: one line per span as it ends.

The run is one ``invoke_agent`` span; under it, each model request is a ``chat`` span and each
tool call an ``execute_tool`` span, in the GenAI semantic conventions. In a service, send them
to your collector instead (an OTLP exporter) and they sit under your request's span.

Run it (needs ``pip install 'sfagent[otel]' opentelemetry-sdk``):
    python examples/tracing_console.py
    python examples/tracing_console.py --content "Weather in Lhasa?"   # also record messages
"""

from __future__ import annotations

import sys
import zlib
from typing import TYPE_CHECKING

from sfagent import Agent, tool

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

# What each line shows of a span, besides its name and duration.
SHOWN = (
    "gen_ai.request.model",
    "gen_ai.response.finish_reasons",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
    "siliconflow.trace_id",
    "sfagent.request.retries",
    "error.type",
    "gen_ai.tool.call.arguments",
)


@tool
def get_weather(city: str) -> dict[str, str | int]:
    """Get the current weather in a city.

    Args:
        city: The city's name in English, e.g. "Hangzhou".
    """
    seed = zlib.crc32(city.strip().lower().encode())
    conditions = ["sunny", "cloudy", "light rain", "windy", "overcast"][seed % 5]
    return {"city": city, "celsius": 5 + seed % 26, "conditions": conditions}


def span_line(span: ReadableSpan) -> str:
    """One line for a finished span: its name, how long it took, what it says."""
    took = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    attributes = span.attributes or {}
    shown = " ".join(f"{key}={attributes[key]!r}" for key in SHOWN if key in attributes)
    parent = f"{span.parent.span_id:016x}" if span.parent else "-" * 16
    own = f"{span.context.span_id:016x}" if span.context else "?"
    return f"[span {own} parent {parent}] {span.name} ({took:.1f} ms) {shown}\n"


def main(question: str, *, content: bool = False) -> None:
    from _model import pick_model  # examples/ is on sys.path when run as a script
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    from sfagent.tracing import TracingSettings

    # A provider of your own; `opentelemetry.trace.set_tracer_provider(provider)` and
    # `instrument=True` would use the global one instead.
    provider = TracerProvider()
    exporter = ConsoleSpanExporter(out=sys.stdout, formatter=span_line)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = TracingSettings(tracer_provider=provider, include_content=content)

    agent = Agent(
        pick_model("Qwen/Qwen3-8B"),
        tools=[get_weather],
        instructions="You are a concise weather assistant. Use the tools; never guess.",
        instrument=settings,
    )
    with agent:
        result = agent.run_sync(question)
    provider.shutdown()  # flushes every span
    print(result.output)


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--content"]
    main(
        arguments[0] if arguments else "What's the weather in Beijing and Shanghai?",
        content="--content" in sys.argv[1:],
    )
