"""The `sfagent` command, driven as a subprocess: offline, and online against a loopback server.

Every subprocess runs without ``SILICONFLOW_API_KEY`` (offline: the demo model) or with a fake
key and ``--base-url`` pointing at a `LoopbackServer` of this test, so nothing leaves the host.
A few cheap checks (formatting, argument edge cases) call `main` in-process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from sfagent._text import shorten
from sfagent.cli import EXIT_CODES, main
from sfagent.cli._render import Renderer, Style, format_duration, format_usage
from sfagent.events import ReasoningDelta, TextDelta, ToolCallStarted, ToolResult
from sfagent.testing import DEFAULT_MODELS, LoopbackServer, Reply, ScriptedToolCall
from sfagent.tools import ToolSet, tool
from sfagent.usage import RunUsage

FAKE_KEY = "sk-cli-test-secret-0123456789"
OFFLINE_LINE = "No SILICONFLOW_API_KEY set: running on the offline demo model."

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
WEATHER = DOCS.read_text(encoding="utf-8").split("```python\n", 1)[1].split("```", 1)[0]
"""The tool file shown in docs/cli.md: the tests run exactly what the docs show."""

AGENT_FILE = '''
from sfagent import Agent, tool


@tool
def lookup(term: str) -> str:
    """Look a term up.

    Args:
        term: What to look up.
    """
    print("looking it up...")  # with --json, this must not reach stdout
    return f"{term} means something"


print("module imported")
agent = Agent("deepseek-ai/DeepSeek-V3", tools=[lookup], instructions="File instructions.")
'''

SLOW_TOOL = '''
import pathlib
import time

from sfagent import tool

MARK = pathlib.Path(__file__).with_name("started")


@tool
def slow(city: str) -> str:
    """Take a while (only the first time).

    Args:
        city: A city.
    """
    first = not MARK.exists()
    MARK.write_text("x")
    if first:
        time.sleep(30)
    return f"done {city}"
'''


# --- helpers ---------------------------------------------------------------------------------


def _env(key: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SILICONFLOW_")}
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    if key is not None:
        env["SILICONFLOW_API_KEY"] = key
    return env


def sfagent(
    *args: str,
    cwd: Path,
    key: str | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    tty: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sfagent ARGS`` and return the finished process.

    With ``tty=True`` its stdout is a terminal (a pseudo-terminal), as when a person runs it;
    otherwise stdout is a pipe, as in ``sfagent run ... | cat``.
    """
    command = [sys.executable, "-m", "sfagent", *args]
    if tty:
        return _on_a_terminal(command, cwd=cwd, env=env or _env(key), stdin=stdin)
    return subprocess.run(
        command,
        cwd=cwd,
        env=env or _env(key),
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=30,
        check=False,
    )


def _on_a_terminal(
    command: list[str], *, cwd: Path, env: dict[str, str], stdin: str | None
) -> subprocess.CompletedProcess[str]:
    import pty

    master, slave = pty.openpty()
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=slave,
        stderr=subprocess.PIPE,
    ) as proc:
        os.close(slave)
        assert proc.stdin is not None
        assert proc.stderr is not None
        proc.stdin.write((stdin or "").encode())
        proc.stdin.close()
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        os.close(master)
        err = proc.stderr.read().decode("utf-8")
        code = proc.wait(timeout=30)
    out = b"".join(chunks).decode("utf-8").replace("\r\n", "\n")
    return subprocess.CompletedProcess(command, code, out, err)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line on stderr (and no traceback)."""
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture
def weather(tmp_path: Path) -> Path:
    path = tmp_path / "weather.py"
    path.write_text(WEATHER, encoding="utf-8")
    return path


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


# --- offline ---------------------------------------------------------------------------------


def test_run_offline_streams_tool_calls_answer_and_usage(weather: Path, tmp_path: Path) -> None:
    proc = sfagent(
        "run", "weather.py", "What's the weather in Beijing and Shanghai?", cwd=tmp_path, tty=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == OFFLINE_LINE  # exactly one line, nothing else
    out = proc.stdout
    assert '→ get_weather {"city": "Beijing"}' in out
    assert "← get_weather Shanghai: sunny, 21°C (" in out
    assert "(demo model) Here is what the tools returned:" in out
    assert out.splitlines()[-1].startswith("2 requests · ")
    assert "2 tool calls" in out.splitlines()[-1]
    shown = DOCS.read_text(encoding="utf-8").split("```console\n", 1)[1].split("```", 1)[0]
    command, notice, *lines = shown.splitlines()
    assert command == """$ sfagent run weather.py "What's the weather in Beijing and Shanghai?\""""
    assert notice == OFFLINE_LINE
    assert _untimed(out.splitlines()) == _untimed(lines)  # the docs show the real thing


def _untimed(lines: list[str]) -> list[str]:
    return [re.sub(r"\d+(\.\d+)? m?s\b", "T", line) for line in lines]


def test_run_json_is_the_only_stdout(weather: Path, tmp_path: Path) -> None:
    # options on both sides of the file: the prompt is found either way
    proc = sfagent(
        "run", "--json", str(weather), "--no-stream", "What's the weather in Paris?", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["output"].startswith("(demo model)")
    assert data["offline"] is True
    assert data["error"] is None
    assert data["usage"]["requests"] == 2
    assert data["usage"]["tool_calls"] == 1
    assert data["turns"][0]["tool_calls"][0]["name"] == "get_weather"
    assert data["turns"][0]["tool_calls"][0]["arguments"] == '{"city": "Paris"}'
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "tool", "assistant"]


def test_tools_prints_the_schemas_as_sent(weather: Path, tmp_path: Path) -> None:
    proc = sfagent("tools", str(weather), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    @tool
    def get_weather(city: str) -> str:
        """Current weather of a city.

        Args:
            city: The city's name.
        """
        return city

    assert json.loads(proc.stdout) == ToolSet([get_weather]).schemas
    assert "21°C" not in proc.stdout
    assert proc.stdout.startswith("[\n  {")  # pretty-printed


def test_module_level_agent_runs_offline_with_cli_options(tmp_path: Path) -> None:
    (tmp_path / "lookup_agent.py").write_text(AGENT_FILE, encoding="utf-8")
    prompt = tmp_path / "prompt.txt"
    prompt.write_text('What does "entropy" mean?\n', encoding="utf-8")
    # a dotted module name, importable from the working directory, and the prompt from a file
    proc = sfagent("run", "lookup_agent", "--prompt-file", str(prompt), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert OFFLINE_LINE in proc.stderr.splitlines()
    data = json.loads(proc.stdout)
    assert data["turns"][0]["tool_calls"][0]["content"] == "entropy means something"
    assert data["messages"][0] == {"role": "system", "content": "File instructions."}
    assert "looking it up..." in proc.stderr


def test_prompt_from_stdin_and_instructions_override(tmp_path: Path) -> None:
    (tmp_path / "lookup_agent.py").write_text(AGENT_FILE, encoding="utf-8")
    proc = sfagent(
        "run", "lookup_agent.py:agent", "--prompt-file", "-", "--instructions", "Be terse.",
        "--json", cwd=tmp_path, stdin="Define 'sfagent'.",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["messages"][:2] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Define 'sfagent'."},
    ]


def test_max_turns_reports_the_partial_result(weather: Path, tmp_path: Path) -> None:
    proc = sfagent("run", str(weather), "What's the weather in Oslo?", "--max-turns", "1", "--json",
                   cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "partial result kept: 1 request, 1 tool call" in line
    data = json.loads(proc.stdout)  # the partial run, for machines
    assert data["error"]["type"] == "MaxTurnsExceeded"
    assert data["output"] is None
    assert data["usage"]["tool_calls"] == 1


def test_chat_keeps_history_and_exits_on_eof(weather: Path, tmp_path: Path) -> None:
    proc = sfagent(
        "chat",
        str(weather),
        cwd=tmp_path,
        stdin="What about Rome?\n\nWhat about Lima?\n",
        tty=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == OFFLINE_LINE
    assert '→ get_weather {"city": "Rome"}' in proc.stdout
    assert '→ get_weather {"city": "Lima"}' in proc.stdout
    usage_lines = [line for line in proc.stdout.splitlines() if " requests · " in line]
    assert len(usage_lines) == 2


# --- user mistakes ---------------------------------------------------------------------------


def test_file_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import json\n\nx = 1 / 0\n", encoding="utf-8")
    (tmp_path / "empty.py").write_text("def plain(): ...\n", encoding="utf-8")
    (tmp_path / "w.py").write_text(WEATHER, encoding="utf-8")
    script = (
        "import sys\nfrom sfagent.cli import EXIT_CODES, main\n"
        'for argv in (["run", "missing.py", "hi"], ["run", "broken.py", "hi"],\n'
        '             ["tools", "empty.py"], ["run", "w.py", "--prompt-file", "nope.txt"],\n'
        '             ["run", "w.py"], ["tools", "no_such_module"]):\n'
        "    print(main(argv), flush=True)\n"
    )  # several mistakes in one process keeps this file fast
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=_env(), capture_output=True,
        text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.stdout.split() == ["2"] * 6
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: no such file: missing.py",
        "error: importing broken.py failed (line 3): ZeroDivisionError: division by zero",
        "error: no tools in empty.py: decorate functions with @tool, "
        "or define a ToolSet or an Agent",
        "error: prompt file not found: nope.txt",
        'error: missing prompt: sfagent run FILE "prompt" (or --prompt-file PATH)',
        "error: no file or module named 'no_such_module' (a file path must exist; "
        "a module must be importable from here)",
    ]


def test_models_without_a_key_is_a_clear_error(tmp_path: Path) -> None:
    proc = sfagent("models", cwd=tmp_path)
    assert proc.returncode == 2
    assert "SILICONFLOW_API_KEY is not set" in one_error_line(proc)
    assert proc.stdout == ""


def test_bad_option_exits_2(weather: Path, tmp_path: Path) -> None:
    proc = sfagent("run", str(weather), "hi", "--max-turns", "0", cwd=tmp_path)
    assert proc.returncode == 2
    assert "must be at least 1" in proc.stderr


# --- online, against the loopback server -----------------------------------------------------


def test_run_online_streamed(weather: Path, tmp_path: Path, server: LoopbackServer) -> None:
    server.add(
        Reply(reasoning="Need the weather.", tool_calls=[ScriptedToolCall("get_weather",
              {"city": "Hangzhou"})]),
        Reply(text="It is sunny in Hangzhou."),
    )  # fmt: skip
    proc = sfagent("run", str(weather), "Weather in Hangzhou?", "--model", "Qwen/Qwen3-8B",
                   "--base-url", server.base_url, cwd=tmp_path, key=FAKE_KEY,
                   tty=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # a key is set: no offline notice
    assert "Need the weather." in proc.stdout
    assert "← get_weather Hangzhou: sunny, 21°C" in proc.stdout
    assert "It is sunny in Hangzhou." in proc.stdout
    bodies = [r.body for r in server.requests]
    assert [b["stream"] for b in bodies] == [True, True]
    assert {b["model"] for b in bodies} == {"Qwen/Qwen3-8B"}
    assert FAKE_KEY not in proc.stdout + proc.stderr


def test_run_online_not_streamed_reasoning_dimmed(
    weather: Path, tmp_path: Path, server: LoopbackServer
) -> None:
    server.add(Reply(reasoning="Thinking hard.", text="Forty-two."))
    env = _env(FAKE_KEY)
    del env["NO_COLOR"]
    env["FORCE_COLOR"] = "1"
    proc = sfagent("run", str(weather), "Answer?", "--no-stream", "--base-url", server.base_url,
                   cwd=tmp_path, env=env, tty=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "\033[2mThinking hard.\033[0m" in proc.stdout
    assert "Forty-two." in proc.stdout
    assert "stream" not in server.requests[0].body


def test_piped_stdout_holds_the_answer_only(
    weather: Path, tmp_path: Path, server: LoopbackServer
) -> None:
    # `sfagent run ... | cat`: reasoning, tool lines and usage go to stderr, not into the answer.
    server.add(
        Reply(reasoning="Need the weather.", tool_calls=[ScriptedToolCall("get_weather",
              {"city": "Hangzhou"})]),
        Reply(reasoning="Got it.", text="It is sunny in Hangzhou."),
    )  # fmt: skip
    proc = sfagent("run", str(weather), "Weather in Hangzhou?", "--base-url", server.base_url,
                   cwd=tmp_path, key=FAKE_KEY)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "It is sunny in Hangzhou.\n"
    assert "Need the weather." in proc.stderr
    assert "← get_weather Hangzhou: sunny, 21°C" in proc.stderr
    assert " requests · " in proc.stderr.splitlines()[-1]


def test_chat_online_sends_history(weather: Path, tmp_path: Path, server: LoopbackServer) -> None:
    server.add(Reply(text="Hello!"), Reply(text="You said hi."))
    proc = sfagent("chat", str(weather), "--base-url", server.base_url, cwd=tmp_path,
                   key=FAKE_KEY, stdin="hi\nwhat did I say?\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Hello!" in proc.stdout
    assert "You said hi." in proc.stdout
    second = server.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[0]["content"] == "hi"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.error(401, "Api key is invalid"), "error: HTTP 401: Api key is invalid"),
        (
            Reply.error(
                400,
                {"code": 20012, "message": "Model does not exist. Please check it carefully.",
                 "data": None},
            ),
            "error: HTTP 400, code 20012: Model does not exist. Please check it carefully.",
        ),
    ],
    ids=["401", "400-20012"],
)  # fmt: skip
def test_api_errors_are_one_line_with_siliconflow_message(
    weather: Path, tmp_path: Path, server: LoopbackServer, reply: Reply, expected: str
) -> None:
    server.add(reply)
    proc = sfagent("run", str(weather), "hi", "--base-url", server.base_url, cwd=tmp_path,
                   key=FAKE_KEY)  # fmt: skip
    assert proc.returncode == 3
    line = one_error_line(proc)
    assert line.startswith(expected)
    assert FAKE_KEY not in proc.stdout + proc.stderr


def test_models_lists_ids(tmp_path: Path, server: LoopbackServer) -> None:
    proc = sfagent("models", "--base-url", server.base_url, cwd=tmp_path, key=FAKE_KEY)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == list(DEFAULT_MODELS)


# --- Ctrl-C ----------------------------------------------------------------------------------


def _started(tmp_path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 15
    while not (tmp_path / "started").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _popen(args: Sequence[str], tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sfagent", *args], cwd=tmp_path, env=_env(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        encoding="utf-8",
    )  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_ends_run_with_130(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW_TOOL, encoding="utf-8")
    proc = _popen(["run", "slow.py", "go to Paris"], tmp_path)
    _started(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert "Interrupted." in err
    assert "Traceback" not in err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_in_chat_cancels_the_turn_only(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW_TOOL, encoding="utf-8")
    proc = _popen(["chat", "slow.py"], tmp_path)
    assert proc.stdin is not None
    proc.stdin.write("go to Paris\n")
    proc.stdin.flush()
    _started(tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate("go to Rome\n", timeout=10)
    assert proc.returncode == 0, err
    assert "Turn cancelled (history unchanged)." in err
    assert "done Rome" in out
    assert "done Paris" not in out


# --- in-process: formatting and internals ----------------------------------------------------


def test_formatting_helpers() -> None:
    assert shorten("a\n  b\tc", 100, one_line=True) == "a b c"
    assert shorten("x" * 200, 10, one_line=True) == "x" * 9 + "…"
    estimated = RunUsage(requests=1, prompt_tokens=3, completion_tokens=2, total_tokens=5)
    estimated.estimated = True
    assert "~5 tokens (3 prompt + 2 completion, estimated: the server reported no usage)" in (
        format_usage(estimated, 1.0)
    )
    assert format_duration(0.0123) == "12 ms"
    assert format_duration(2.5) == "2.50 s"
    usage = RunUsage(requests=1, prompt_tokens=5, completion_tokens=3, total_tokens=8,
                     reasoning_tokens=2, tool_calls=1)  # fmt: skip
    assert format_usage(usage, 1.5) == (
        "1 request · 8 tokens (5 prompt + 3 completion, 2 reasoning) · 1 tool call · 1.50 s"
    )


def test_style_follows_no_color_and_tty() -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    tty = Tty()
    assert Style.for_stream(tty, {}).enabled  # type: ignore[arg-type]
    assert not Style.for_stream(tty, {"NO_COLOR": "1"}).enabled  # type: ignore[arg-type]
    assert not Style.for_stream(tty, {"TERM": "dumb"}).enabled  # type: ignore[arg-type]
    assert Style.for_stream(sys.stdout, {"FORCE_COLOR": "1"}).enabled


def test_renderer_lines() -> None:
    out: list[str] = []
    renderer = Renderer(out.append, Style(False), width=20)
    renderer.handle(ReasoningDelta("think", 1))
    renderer.handle(TextDelta("Let me look.", 1))
    renderer.handle(ToolCallStarted("c1", "search", '{"q": "x"}', 1))
    renderer.handle(ToolResult("c1", "search", "line one\nline two " * 5, 0.5, None, 1))
    renderer.handle(ToolResult("c2", "fail", "Error: boom", 0.0, "boom", 1))
    renderer.finish(RunUsage(requests=1), 0.1, output="the answer")
    assert "".join(out).splitlines() == [
        "think",
        "Let me look.",
        '→ search {"q": "x"}',
        "← search line one line two l… (500 ms)",
        "✗ fail Error: boom (0 ms)",
        "the answer",
        "1 request · 0 tokens (0 prompt + 0 completion) · 0 tool calls · 100 ms",
    ]


def test_internal_errors_hide_the_traceback_unless_debug(
    weather: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sfagent.cli._commands as cli_run

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli_run, "run_once", broken)
    monkeypatch.delenv("SILICONFLOW_API_KEY", raising=False)
    assert main(["run", str(weather), "hi"]) == 70
    err = capsys.readouterr().err
    assert "error: internal error: RuntimeError: boom (rerun with --debug" in err
    assert "Traceback" not in err
    assert main(["--debug", "run", str(weather), "hi"]) == 70
    assert "Traceback" in capsys.readouterr().err


def test_debug_prints_a_failing_tools_traceback(tmp_path: Path) -> None:
    (tmp_path / "lookup.py").write_text(
        "from sfagent import tool\n\n\n"
        "@tool\n"
        "def lookup(city: str) -> str:\n"
        '    """Look a city up."""\n'
        '    return {"Beijing": "sunny"}[city]\n',
        encoding="utf-8",
    )
    quiet = sfagent("run", "lookup.py", "Weather in Paris?", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "Traceback" not in quiet.stderr
    loud = sfagent("--debug", "run", "lookup.py", "Weather in Paris?", cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert "Traceback" in loud.stderr
    assert "KeyError: 'Paris'" in loud.stderr
    assert 'lookup.py", line 7, in lookup' in loud.stderr  # the user's own frame


def test_several_agents_need_a_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two_sets.py"
    path.write_text(
        "from sfagent import ToolSet\n\ndef f(x: int) -> int:\n    return x\n\n"
        "a = ToolSet([f])\nb = ToolSet()\n",
        encoding="utf-8",
    )
    assert main(["tools", str(path)]) == 2
    assert "defines several ToolSets (a, b): pick one with two_sets.py:NAME" in (
        capsys.readouterr().err
    )
    assert main(["tools", f"{path}:a"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["function"]["name"] == "f"


def test_docs_list_every_exit_code() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for code in EXIT_CODES:
        assert f"\n| {code} | " in text
