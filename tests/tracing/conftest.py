"""Spans of traced runs, caught by the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from sfagent.tracing import TracingSettings


class Spans:
    """The finished spans of one test, and the settings that send spans here."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.settings = TracingSettings(tracer_provider=self.provider)

    def with_content(self) -> TracingSettings:
        """Settings that also record content."""
        return TracingSettings(tracer_provider=self.provider, include_content=True)

    @property
    def all(self) -> list[ReadableSpan]:
        """Every finished span, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        """The spans whose name starts with `prefix`, in the order they started."""
        found = [s for s in self.all if s.name.startswith(prefix)]
        return sorted(found, key=lambda s: s.start_time or 0)

    def root(self) -> ReadableSpan:
        """The one ``invoke_agent`` span."""
        (run,) = self.named("invoke_agent")
        return run

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """The spans whose parent is `parent`, in the order they started."""
        assert parent.context is not None
        found = [
            s
            for s in self.all
            if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]
        return sorted(found, key=lambda s: s.start_time or 0)


@pytest.fixture
def spans() -> Iterator[Spans]:
    caught = Spans()
    yield caught
    caught.provider.shutdown()
