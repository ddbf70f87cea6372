"""Every example in ``examples/`` runs, offline by default and over HTTP with a key.

Each example runs as a user runs it: ``python examples/NAME.py`` in a subprocess from the repo
root. Offline runs have ``SILICONFLOW_API_KEY`` removed; online runs point
``SILICONFLOW_BASE_URL`` at a `LoopbackServer` and check the example really used it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sfagent import Tool
from sfagent.testing import LoopbackServer, RecordedRequest, Reply, ScriptedToolCall

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DATA = EXAMPLES / "data"
DEMO = "No SILICONFLOW_API_KEY: running offline on the demo model."
SCRIPTED = "No SILICONFLOW_API_KEY: running offline on the scripted model."


def run_example(
    name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python examples/<name>.py args...`` from the repo root, without an API key."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SILICONFLOW_")}
    return subprocess.run(
        [sys.executable, f"examples/{name}.py", *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def ok(process: subprocess.CompletedProcess[str], stderr: str | None) -> str:
    """Check the run succeeded and printed exactly `stderr` there; return its stdout."""
    assert process.returncode == 0, process.stderr
    assert process.stderr.strip() == (stderr or ""), process.stderr
    return process.stdout


def load(name: str) -> ModuleType:
    """Import an example from its file, as ``sfagent run examples/NAME.py`` does."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- offline: every example ----------------------------------------------------------------


def check_weather() -> None:
    out = ok(run_example("weather"), DEMO)
    assert '→ get_weather({"city": "Beijing"})' in out
    assert '→ get_weather({"city": "Shanghai"})' in out
    assert re.search(r"Beijing.*temperature.*celsius", out)
    assert re.search(r"Shanghai.*temperature.*celsius", out)
    assert re.search(r"^\(2 requests, \d+ tokens\)$", out, re.MULTILINE)


def check_custom_tools() -> None:
    out = ok(run_example("custom_tools"), SCRIPTED)
    # The final answer is built from what the three tools really returned.
    assert out.splitlines()[-1] == (
        "(17 + 25) * 3 = 126. 42 km is 26.0976 miles. Your notes that mention tea: hangzhou.txt."
    )
    assert '→ search_files({"query": "tea"}) = [{"file":"hangzhou.txt","line":6,' in out


def check_report_task(tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.md"
    out = ok(run_example("report_task", str(report)), SCRIPTED)
    assert out.startswith("Plan: list the notes")
    for tool_name in ("list_files", "file_stats", "read_file", "write_report"):
        assert f"→ {tool_name}(" in out
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Notes report\n")
    counts = {}
    for path in sorted(DATA.glob("*.txt")):
        content = path.read_text(encoding="utf-8")
        counts[path.name] = len(content.split())
        assert f"| {path.name} | {len(content.splitlines())} | {counts[path.name]} |" in text
    longest = max(counts, key=counts.__getitem__)
    assert f"The longest note is **{longest}**" in text
    assert text in out  # the example prints the report it wrote


def check_structured_output() -> None:
    out = ok(run_example("structured_output"), SCRIPTED)
    assert out.startswith("Hangzhou: 2 days, about 1500 yuan\n")
    printed = out[out.index("\n{") + 1 :]
    plan = load("structured_output").TripPlan.model_validate_json(printed)
    assert plan.city == "Hangzhou"
    assert [day.day for day in plan.days] == [1, 2]


def check_streaming() -> None:
    out = ok(run_example("streaming"), SCRIPTED)
    assert "\x1b[" not in out  # no colour codes when stdout is not a terminal
    assert out.splitlines() == [
        "Two cities to compare. I'll look up both populations.",
        '→ get_population({"city": "Chongqing"})',
        '→ get_population({"city": "Chengdu"})',
        *[line for line in out.splitlines() if line.startswith("← ")],
        "32.1 million against 21.4 million: Chongqing is larger.",
        "Chongqing is bigger: about 32.1 million people, against 21.4 million in Chengdu.",
        out.splitlines()[-1],
    ]
    assert re.search(r"^← Chongqing: 32\.1 million \(\d+\.\d ms\)$", out, re.MULTILINE)
    assert re.search(r"^← Chengdu: 21\.4 million \(\d+\.\d ms\)$", out, re.MULTILINE)
    assert re.fullmatch(r"\(2 requests, \d+ tokens\)", out.splitlines()[-1])


def check_vision() -> None:
    out = ok(run_example("vision"), SCRIPTED)
    assert out.startswith("bar_chart.png: There are three bars: red, green and blue.")


def check_many_runs() -> None:
    out = ok(run_example("many_runs"), DEMO)
    capitals = load("many_runs").CAPITALS
    for country, capital in capitals.items():
        assert re.search(rf"^ *{country}: .*{capital}$", out, re.MULTILINE), country
    assert re.search(r"^20 runs in \d+\.\d\d s", out, re.MULTILINE)
    assert re.search(r"^40 requests, 20 tool calls, \d+ tokens$", out, re.MULTILINE)


def check_batch_weather() -> None:
    out = ok(run_example("batch_weather"), DEMO)
    rows = [json.loads(line) for line in (DATA / "weather_tasks.jsonl").read_text().splitlines()]
    for row in rows:
        assert re.search(rf"^{row['id']} \[done\] .*{re.escape(row['city'])}", out, re.MULTILINE)
    assert re.search(r"^20 done, 0 failed, 0 from the journal; \d+ tokens, no price$", out, re.M)


def check_tracing_console() -> None:
    out = ok(run_example("tracing_console"), DEMO)
    spans = re.findall(r"^\[span (\w+) parent (\S+)\] (\S+(?: \S+)?) \(", out, re.MULTILINE)
    names = [name for _, _, name in spans]
    assert names == ["chat demo", *["execute_tool get_weather"] * 2, "chat demo", "invoke_agent"]
    run = spans[-1][0]
    assert all(parent == run for _, parent, _ in spans[:-1])  # one tree under the run
    assert "gen_ai.tool.call.arguments" not in out  # content only with --content
    assert "Beijing" in out.splitlines()[-2]
    content = ok(run_example("tracing_console", "--content"), DEMO)
    assert 'gen_ai.tool.call.arguments=\'{"city": "Beijing"}\'' in content


def check_planner() -> None:
    out = ok(run_example("planner"), SCRIPTED)
    lines = out.splitlines()
    # The planner's calls, each with the calls of the agent it delegated to beneath it.
    assert lines[0].startswith('→ research({"input": "Which sights in Hangzhou?"}) = The Hangzhou')
    assert lines[1] == '    → list_notes({}) = ["agents.txt","hangzhou.txt","siliconflow.txt"]'
    assert lines[2].startswith('    → read_note({"name": "hangzhou.txt"}) = Hangzhou travel notes')
    assert lines[3] == '→ compute({"input": "4 * 90 / 60"}) = 6.0'
    assert lines[4] == '    → calculate({"expression": "4 * 90 / 60"}) = 6.0'
    # The answer is built from what the helpers really found and computed.
    assert lines[5].startswith("The Hangzhou notes suggest 4 stops: West Lake is best at sunrise")
    assert lines[5].endswith("At 90 minutes a stop that is 6.0 hours.")
    # Three planner requests, three researcher requests, two calculator requests.
    assert re.fullmatch(r"\(8 requests and \d+ tokens, helpers included\)", lines[6])


def check_mcp_stdio() -> None:
    out = ok(run_example("mcp_stdio"), DEMO)
    assert '→ notes_save_note({"title": "tea", "text": "buy oolong"})' in out
    assert '- notes_list_notes({}): {"result": ["groceries", "tea"]}' in out  # the same server
    assert '- notes_read_note({"title": "tea"}): {"result": "buy oolong"}' in out
    assert "→ today({})" in out
    assert out.splitlines()[-1] == "(resource notes://groceries: rice, eggs, green tea)"


REFUND = 'refund({"order_id": "A-1042", "amount_cny": 120.0})'


def check_durable_approval() -> None:
    out = ok(run_example("durable_approval"), DEMO).splitlines()
    assert out[0] == f"refund-A-1042 waits for approval: {REFUND}"
    assert re.fullmatch(rf"sfagent approve: approved call '\w+' of run 'refund-A-1042': "
                        rf"{re.escape(REFUND)}", out[1])  # fmt: skip
    assert out[2:] == [
        "refund-A-1042: (demo model) Here is what the tools returned:",
        f"- {REFUND}: refunded 120 yuan on order A-1042",
        "(2 requests)",
    ]


def test_durable_approval_waits_across_processes(tmp_path: Path) -> None:
    # The docstring's second way: park and exit, look and approve from the CLI, resume.
    runs = tmp_path / "runs.sqlite"
    parked = ok(run_example("durable_approval", "park", str(runs)), DEMO)
    assert parked == f"refund-A-1042 waits for approval: {REFUND}\n"
    url = f"sqlite:///{runs}"
    waiting = sfagent_cli("pending", "refund-A-1042", "--database-url", url)
    assert waiting.returncode == 0, waiting.stderr
    assert waiting.stdout.endswith(f": {REFUND}\n")
    denied = sfagent_cli("approve", "refund-A-1042", "--deny", "--database-url", url)
    assert denied.returncode == 0, denied.stderr
    out = ok(run_example("durable_approval", "resume", str(runs)), DEMO)
    assert out.startswith("refund-A-1042: (demo model) Here is what the tools returned:\n")
    assert "did not approve" in out
    assert "refunded" not in out


OFFLINE_CHECKS: dict[str, Callable[..., None]] = {
    "weather": check_weather,
    "custom_tools": check_custom_tools,
    "report_task": check_report_task,
    "structured_output": check_structured_output,
    "streaming": check_streaming,
    "vision": check_vision,
    "many_runs": check_many_runs,
    "batch_weather": check_batch_weather,
    "tracing_console": check_tracing_console,
    "mcp_stdio": check_mcp_stdio,
    "planner": check_planner,
    "durable_approval": check_durable_approval,
}


def test_every_example_on_disk_is_tested() -> None:
    on_disk = {p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
    assert on_disk == set(OFFLINE_CHECKS)


@pytest.mark.parametrize("name", sorted(OFFLINE_CHECKS))
def test_example_runs_offline(name: str, tmp_path: Path) -> None:
    check = OFFLINE_CHECKS[name]
    if name == "report_task":
        check(tmp_path)
    else:
        check()


def test_report_task_without_a_path_writes_to_a_temporary_folder() -> None:
    out = ok(run_example("report_task"), SCRIPTED)
    report = Path(re.search(r"^--- (.+report\.md) ---$", out, re.MULTILINE)[1])  # type: ignore[index]
    try:
        assert report.read_text(encoding="utf-8").startswith("# Notes report")
    finally:
        report.unlink()
        report.parent.rmdir()


@pytest.mark.parametrize("name", sorted(OFFLINE_CHECKS))
def test_example_imports_without_side_effects(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI imports an example to find its tools: nothing may run or print on import.
    module = load(name)
    assert capsys.readouterr() == ("", "")
    tools = [v for v in vars(module).values() if isinstance(v, Tool)]
    assert tools or name == "vision"  # a question about an image needs no tools


def sfagent_cli(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SILICONFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "sfagent", *args],
        cwd=ROOT,
        env={**clean, "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def test_cli_finds_the_example_tools() -> None:
    # One file is enough here: the import test above covers every example the same way.
    process = sfagent_cli("tools", "examples/custom_tools.py")
    assert process.returncode == 0, process.stderr
    names = [t["function"]["name"] for t in json.loads(process.stdout)]
    assert names == ["calculate", "convert_units", "search_files"]


def test_cli_runs_the_weather_example_offline() -> None:
    # The README's first command.
    question = "What's the weather in Beijing and Shanghai?"
    process = sfagent_cli("run", "examples/weather.py", question)
    assert process.returncode == 0, process.stderr
    # Piped, stdout holds the answer; the tool lines went to stderr.
    assert '→ get_weather {"city": "Beijing"}' in process.stderr
    assert '→ get_weather {"city": "Shanghai"}' in process.stderr
    assert "Beijing" in process.stdout
    assert "Shanghai" in process.stdout


# --- online: over HTTP against a loopback server -------------------------------------------


@pytest.fixture
def serve() -> Iterator[Callable[..., LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def start(replies: Any) -> LoopbackServer:
        servers.append(LoopbackServer(replies).start())
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def online(name: str, server: LoopbackServer, *args: str) -> str:
    env = {"SILICONFLOW_API_KEY": "test", "SILICONFLOW_BASE_URL": server.base_url}
    return ok(run_example(name, *args, env=env), None)


def last_role(request: RecordedRequest) -> str:
    return str(request.json["messages"][-1]["role"])


def test_weather_online(serve: Callable[..., LoopbackServer]) -> None:
    def reply(request: RecordedRequest) -> Reply:
        if last_role(request) == "user":
            return Reply(
                tool_calls=[
                    ScriptedToolCall("get_weather", {"city": "Beijing"}),
                    ScriptedToolCall("get_weather", {"city": "Shanghai", "unit": "fahrenheit"}),
                ]
            )
        return Reply(text="Beijing is rainy; Shanghai is windy.")

    server = serve(reply)
    out = online("weather", server)
    assert out.splitlines()[2] == "Beijing is rainy; Shanghai is windy."
    first, second = (r.json for r in server.requests)
    assert [r.path for r in server.requests] == ["/v1/chat/completions"] * 2
    assert first["model"] == "Qwen/Qwen3-8B"
    assert first["messages"][-1]["content"] == "What's the weather in Beijing and Shanghai?"
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather"]
    results = [json.loads(m["content"]) for m in second["messages"] if m["role"] == "tool"]
    assert [(r["city"], r["unit"]) for r in results] == [
        ("Beijing", "celsius"),
        ("Shanghai", "fahrenheit"),
    ]


def test_vision_online_sends_the_image_inline(serve: Callable[..., LoopbackServer]) -> None:
    server = serve([Reply(text="Three bars; the green one is tallest.")])
    out = online("vision", server)
    assert out.startswith("bar_chart.png: Three bars; the green one is tallest.")
    (request,) = server.requests
    assert request.json["model"] == "Qwen/Qwen2.5-VL-72B-Instruct"
    text, image = request.json["messages"][-1]["content"]
    assert text["type"] == "text"
    assert image["type"] == "image_url"
    assert image["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert image["image_url"]["detail"] == "low"


def test_many_runs_online(serve: Callable[..., LoopbackServer]) -> None:
    def reply(request: RecordedRequest) -> Reply:
        messages = request.json["messages"]
        if last_role(request) == "user":
            country = messages[-1]["content"].removeprefix("What is the capital of ")[:-1]
            return Reply(tool_calls=[ScriptedToolCall("get_capital", {"country": country})])
        return Reply(text=messages[-1]["content"])

    server = serve(reply)
    out = online("many_runs", server)
    assert "Mexico: Mexico City\n" in out
    assert "40 requests, 20 tool calls" in out
    assert len(server.requests) == 40
    assert {r.json["model"] for r in server.requests} == {"Qwen/Qwen3-8B"}
    assert all(r.json["enable_thinking"] is False for r in server.requests)


def test_batch_weather_online_resumes_without_asking_again(
    serve: Callable[..., LoopbackServer], tmp_path: Path
) -> None:
    asked = re.compile(r"What's the weather in (.+), in (celsius|fahrenheit)\?")

    def reply(request: RecordedRequest) -> Reply:
        messages = request.json["messages"]
        if last_role(request) == "user":
            match = asked.fullmatch(messages[-1]["content"])
            assert match, messages[-1]
            arguments = {"city": match[1], "unit": match[2]}
            return Reply(tool_calls=[ScriptedToolCall("get_weather", arguments)])
        found = json.loads(messages[-1]["content"])
        return Reply(text=f"{found['city']}: {found['temperature']} {found['unit']}.")

    server = serve(reply)
    journal = str(tmp_path / "weather.journal")
    first = online("batch_weather", server, journal)
    assert "city-08 [done] Xi'an: " in first
    assert re.search(r"^city-10 \[done\] Harbin: \d+ fahrenheit\.$", first, re.MULTILINE)
    assert re.search(r"^20 done, 0 failed, 0 from the journal; \d+ tokens, ", first, re.M)
    assert len(server.requests) == 40
    assert {r.json["model"] for r in server.requests} == {"Qwen/Qwen3-8B"}

    again = online("batch_weather", server, journal)
    assert len(server.requests) == 40  # every answer came from the journal
    assert "20 done, 0 failed, 20 from the journal; 0 tokens" in again
    assert sorted(again.splitlines()[:-1]) == sorted(first.splitlines()[:-1])


# --- docs/examples.md ----------------------------------------------------------------------


def doc_sections() -> dict[str, str]:
    """The sections of docs/examples.md by the example their heading names."""
    text = (ROOT / "docs" / "examples.md").read_text(encoding="utf-8")
    sections = {}
    for section in text.split("\n## ")[1:]:
        heading = section.splitlines()[0]
        match = re.search(r"`examples/(\w+)\.py`", heading)
        assert match, f"section {heading!r} names no example file"
        sections[match[1]] = section
    return sections


def test_tracing_console_online_shows_siliconflow_trace_ids(
    serve: Callable[..., LoopbackServer],
) -> None:
    server = serve(
        [
            Reply(tool_calls=[ScriptedToolCall("get_weather", {"city": "Lhasa"})]),
            Reply(text="Lhasa: sunny."),
        ]
    )
    out = online("tracing_console", server, "Weather in Lhasa?")
    assert (
        len(re.findall(r"^\[span .*\] chat Qwen/Qwen3-8B .*siliconflow\.trace_id='\w+'", out, re.M))
        == 2
    )
    assert out.splitlines()[-1] == "Lhasa: sunny."


def test_docs_have_one_section_per_example() -> None:
    assert sorted(doc_sections()) == sorted(OFFLINE_CHECKS)


@pytest.mark.parametrize("name", sorted(OFFLINE_CHECKS))
def test_docs_show_only_code_from_the_example(name: str) -> None:
    source = (EXAMPLES / f"{name}.py").read_text(encoding="utf-8")
    section = doc_sections()[name]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert blocks, f"no code from {name}.py in its section"
    for block in blocks:
        # Verbatim, possibly dedented (code from inside a function or a __main__ block).
        assert any(textwrap.indent(block, " " * n) in source for n in (0, 4, 8)), block
    for command in re.findall(r"^python (examples/\S+\.py)", section, re.MULTILINE):
        assert command == f"examples/{name}.py"


def test_streaming_online_streams_reasoning_and_text(serve: Callable[..., LoopbackServer]) -> None:
    call = ScriptedToolCall("get_population", {"city": "Wuhan"})
    server = serve(
        [
            Reply(reasoning="Look it up.", tool_calls=[call]),
            Reply(reasoning="Got it.", text="Wuhan has about 13.7 million people."),
        ]
    )
    out = online("streaming", server, "How big is Wuhan?")
    lines = out.splitlines()
    assert lines[:3] == ["Look it up.", '→ get_population({"city": "Wuhan"})', lines[2]]
    assert lines[2].startswith("← Wuhan: 13.7 million (")
    assert lines[3:5] == ["Got it.", "Wuhan has about 13.7 million people."]
    for request in server.requests:
        assert request.json["stream"] is True
        assert request.json["enable_thinking"] is True


def test_structured_output_online_asks_for_json(serve: Callable[..., LoopbackServer]) -> None:
    plan = {
        "city": "Xi'an",
        "days": [{"day": 1, "morning": "City wall", "afternoon": "Terracotta Army",
                  "evening": "Muslim Quarter"}],
        "budget_cny": 800,
    }  # fmt: skip
    server = serve(
        [
            Reply(tool_calls=[ScriptedToolCall("find_sights", {"city": "Xi'an"})]),
            Reply(text=json.dumps(plan)),
        ]
    )
    out = online("structured_output", server, "Plan one day in Xi'an.")
    assert out.startswith("Xi'an: 1 days, about 800 yuan\n  Day 1: City wall / Terracotta Army")
    for request in server.requests:
        assert request.json["response_format"] == {"type": "json_object"}
        assert request.json["max_tokens"] == 2048
