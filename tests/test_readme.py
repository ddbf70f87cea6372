"""The README's promises: its two set-up commands and its code example work as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfagent.testing import LoopbackServer, Reply, ScriptedToolCall

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.DOTALL)
COMMANDS = [code.strip() for lang, code in BLOCKS if lang == "bash"]
PYTHON = [code for lang, code in BLOCKS if lang == "python"]


def _offline_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SILICONFLOW_API_KEY", None)
    env.pop("SILICONFLOW_BASE_URL", None)
    return env


def test_exactly_two_setup_commands() -> None:
    assert len(COMMANDS) == 2
    main_job, tests = COMMANDS
    assert main_job.startswith("pip install -e . && sfagent run ")
    assert tests == "pip install -e '.[dev]' && pytest"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert COMMANDS[1] in ci


def test_the_main_job_runs_offline_and_says_so() -> None:
    # The part after the install: `sfagent run FILE "prompt"`, run as the README says.
    command = COMMANDS[0].split("&&", 1)[1].strip()
    match = re.fullmatch(r'sfagent run (\S+) "(.+)"', command)
    assert match, command
    file, prompt = match.groups()
    done = subprocess.run(
        [sys.executable, "-m", "sfagent", "run", file, prompt, "--no-stream"],
        cwd=ROOT,
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "offline" in done.stderr.lower()
    assert "Beijing" in done.stdout
    assert "Shanghai" in done.stdout


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    calls = [ScriptedToolCall("get_weather", {"city": c}) for c in ("Beijing", "Shanghai")]
    with LoopbackServer([Reply(tool_calls=calls), Reply(text="Both 21 °C.")]) as srv:
        yield srv


def test_the_code_example_runs(server: LoopbackServer, tmp_path: Path) -> None:
    (example,) = PYTHON
    script = tmp_path / "readme_example.py"
    script.write_text(example, encoding="utf-8")
    env = _offline_env() | {"SILICONFLOW_API_KEY": "test", "SILICONFLOW_BASE_URL": server.base_url}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Both 21 °C.")
    assert "requests=2" in done.stdout
    assert len(server.requests) == 2
    results = [m for m in server.requests[1].json["messages"] if m["role"] == "tool"]
    assert [r["content"] for r in results] == [
        '{"city":"Beijing","temperature":21,"unit":"celsius"}',
        '{"city":"Shanghai","temperature":21,"unit":"celsius"}',
    ]
