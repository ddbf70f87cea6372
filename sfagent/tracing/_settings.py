"""`TracingSettings` and the process-wide default; nothing here imports OpenTelemetry."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

from sfagent.exceptions import UserError

__all__ = ["CONTENT_ENV", "TracingSettings", "default_instrument", "instrument_all", "resolve"]

CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The variable OpenTelemetry's GenAI instrumentations read to record message content."""


@dataclass(frozen=True, eq=False)
class TracingSettings:
    """How an agent's runs become OpenTelemetry spans.

    Args:
        tracer_provider: Where spans go; ``None`` uses OpenTelemetry's global provider (set
            with ``opentelemetry.trace.set_tracer_provider``), as it is when the run starts.
        include_content: Record prompts, answers, tool arguments and tool results on the
            spans. ``None`` (the default) follows the environment variable
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (``true`` turns it on);
            off otherwise, since content may hold personal data.
        agent_name: Shown as ``gen_ai.agent.name`` and in the run span's name.
        provider_name: ``gen_ai.provider.name`` of every span (``"siliconflow"``).
    """

    tracer_provider: Any = None
    include_content: bool | None = None
    agent_name: str | None = None
    provider_name: str = "siliconflow"

    def content(self) -> bool:
        """Whether content is recorded, the environment consulted when not set here."""
        if self.include_content is not None:
            return self.include_content
        return os.environ.get(CONTENT_ENV, "").strip().lower() in ("true", "1")


_DEFAULT: list[TracingSettings | None] = [None]


def instrument_all(instrument: bool | TracingSettings = True) -> None:
    """Trace the runs of every agent made without its own ``instrument=`` setting.

    Args:
        instrument: ``True`` for the default `TracingSettings`, settings of your own, or
            ``False`` to stop.

    Raises:
        UserError: The ``otel`` extra (``opentelemetry-api``) is not installed.
    """
    _DEFAULT[0] = resolve(instrument)


def default_instrument() -> TracingSettings | None:
    """The settings `instrument_all` set, if it did."""
    return _DEFAULT[0]


def resolve(instrument: bool | TracingSettings) -> TracingSettings | None:
    """An ``instrument=`` value as settings (``None``: off), checking that tracing can work.

    Raises:
        UserError: Tracing is asked for and ``opentelemetry-api`` is not installed, or the
            value is neither a bool nor `TracingSettings`.
    """
    if instrument is False:
        return None
    if instrument is True:
        settings = TracingSettings()
    elif isinstance(instrument, TracingSettings):
        settings = instrument
    else:
        raise UserError(
            f"instrument must be True, False or a TracingSettings, got {type(instrument).__name__}"
        )
    if find_spec("opentelemetry") is None or find_spec("opentelemetry.trace") is None:
        raise UserError(
            "tracing needs OpenTelemetry's API: pip install 'sfagent[otel]' (opentelemetry-api)"
        )
    return settings
