"""OpenTelemetry traces of agent runs, in the semantic conventions for generative AI.

Turn it on per agent (``Agent(..., instrument=True)`` or ``instrument=TracingSettings(...)``)
or for every agent (`instrument_all`). Each run is an ``invoke_agent`` span; under it, each
model request is a ``chat {model}`` span and each tool call an ``execute_tool {name}`` span.
Needs the ``otel`` extra (``opentelemetry-api``); an exporter comes from the OpenTelemetry SDK
or your platform. Importing this package does not import OpenTelemetry: the first traced run
does.
"""

from __future__ import annotations

from sfagent.tracing._settings import TracingSettings, instrument_all

__all__ = ["TracingSettings", "instrument_all"]
