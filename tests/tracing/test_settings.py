"""Turning tracing on and off: per agent, for every agent, and what it costs when off."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from sfagent import UserError
from sfagent.agent import Agent
from sfagent.testing import ScriptedModel
from sfagent.tracing import TracingSettings, _settings, instrument_all
from tests.tracing.conftest import Spans


@pytest.fixture
def no_default() -> Iterator[None]:
    yield
    instrument_all(False)


def test_an_agent_without_instrument_makes_no_spans(spans: Spans) -> None:
    Agent(ScriptedModel(["hi"])).run_sync("hello")
    assert spans.all == []


def test_instrument_all_traces_agents_that_did_not_choose(spans: Spans, no_default: None) -> None:
    instrument_all(spans.settings)
    Agent(ScriptedModel(["hi"])).run_sync("hello")
    Agent(ScriptedModel(["hi"]), instrument=False).run_sync("hello")  # chose: no spans
    assert [s.name for s in spans.all] == ["chat scripted", "invoke_agent"]
    instrument_all(False)
    Agent(ScriptedModel(["hi"])).run_sync("hello")
    assert len(spans.all) == 2


def test_agent_name_names_the_run_span(spans: Spans) -> None:
    settings = TracingSettings(tracer_provider=spans.provider, agent_name="weather")
    Agent(ScriptedModel(["hi"]), instrument=settings).run_sync("hello")
    run = spans.root()
    assert run.name == "invoke_agent weather"
    assert (run.attributes or {})["gen_ai.agent.name"] == "weather"


def test_replace_keeps_or_changes_the_setting(spans: Spans) -> None:
    agent = Agent(ScriptedModel(["a", "b"]), instrument=spans.settings)
    agent.replace(instrument=False).run_sync("hello")
    assert spans.all == []


def test_a_bad_value_is_refused() -> None:
    with pytest.raises(UserError, match="instrument must be"):
        Agent(ScriptedModel([]), instrument="yes")  # type: ignore[arg-type]


def test_without_the_extra_asking_for_tracing_fails_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_settings, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"sfagent\[otel\]"):
        Agent(ScriptedModel([]), instrument=True)
    with pytest.raises(UserError, match=r"sfagent\[otel\]"):
        instrument_all()


def test_a_run_without_tracing_never_imports_opentelemetry() -> None:
    code = (
        "import sys\n"
        "from sfagent import Agent\n"
        "from sfagent.testing import ScriptedModel\n"
        "import sfagent.tracing\n"  # the settings alone load nothing either
        "assert Agent(ScriptedModel(['hi'])).run_sync('hello').output == 'hi'\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_traced_run_without_a_provider_works_and_records_nothing() -> None:
    # OpenTelemetry's API alone: spans are non-recording, the run is unchanged.
    code = (
        "import sys\n"
        "from sfagent import Agent\n"
        "from sfagent.testing import ScriptedModel\n"
        "agent = Agent(ScriptedModel(['hi']), instrument=True)\n"
        "assert agent.run_sync('hello').output == 'hi'\n"
        "from opentelemetry import trace\n"
        "from sfagent.tracing import TracingSettings\n"
        "from sfagent.tracing._otel import run_trace\n"
        "assert run_trace(TracingSettings(), 'm') is None  # costs what an untraced run does\n"
        "print(type(trace.get_tracer_provider()).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ProxyTracerProvider"
