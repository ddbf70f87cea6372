"""The code in the docs runs: every Python block of a page, in order, in one namespace.

Model requests go to a loopback server that answers like the offline demo model (it calls the
tools it is given, then sums up). A block that is deliberately partial is marked with
``<!-- fragment -->`` on the line before it and is only compiled, not run. The examples page
is checked against the example files instead (tests/test_examples.py).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sfagent import Agent
from sfagent.client.http_model import RequestGuard
from sfagent.offline.replies import RecordedRequest
from sfagent.settings import ChatRequest, ModelSettings
from sfagent.testing import DemoModel, LoopbackServer, Reply

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"(<!-- fragment -->\n)?```python\n(.*?)```", re.DOTALL)
SKIP_PAGES = {"examples.md", "reference.md"}

# Names some pages use without defining them: the world their snippets live in.
PREAMBLE = '''
from typing import Any, Literal
from sfagent import tool

@tool
def get_weather(city: str) -> dict[str, Any]:
    """Get the weather in a city."""
    return {"city": city, "celsius": 21.5}

class Database:
    user_id = 7
    def orders_of(self, user_id: int) -> list[str]:
        return ["tea"]

db = Database()
'''


def _answer(recorded: RecordedRequest) -> Reply:
    body = recorded.json
    settings = ModelSettings(response_format=body.get("response_format"))
    request = ChatRequest(
        body["messages"], model=body["model"], tools=body.get("tools"), settings=settings
    )
    return DemoModel().reply_for(request)


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(_answer) as srv:
        yield srv


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.glob("*.md") if p.name not in SKIP_PAGES)


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_page_code_runs(
    page: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Snippets may flip process-wide switches (testing.md blocks model requests): undo them.
    monkeypatch.setattr(RequestGuard, "blocked", RequestGuard.blocked)
    monkeypatch.setenv("SILICONFLOW_API_KEY", "sk-docs-test")
    monkeypatch.setenv("SILICONFLOW_BASE_URL", server.base_url)
    monkeypatch.chdir(tmp_path)
    # A real module, so dataclasses and pydantic can find the snippets' globals.
    module = types.ModuleType(f"docs_{page.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    exec(compile(PREAMBLE, "preamble", "exec"), namespace)
    try:
        _run_blocks(page, namespace)
    finally:
        _close_agents(namespace)


def _run_blocks(page: Path, namespace: dict[str, Any]) -> None:
    for number, match in enumerate(BLOCK.finditer(page.read_text(encoding="utf-8")), 1):
        fragment, code = match.groups()
        # Top-level `await` is allowed, as in a notebook: such a block runs in an event loop.
        compiled = compile(
            code, f"{page.name} block {number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
        if fragment:
            continue
        try:
            result = eval(compiled, namespace)
            if inspect.iscoroutine(result):
                asyncio.run(result)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{page.name} block {number} failed: {type(exc).__name__}: {exc}")


def _close_agents(namespace: dict[str, Any]) -> None:
    # Snippets leave agents open, as short scripts do; the test must not leak their sockets.
    for name, value in list(namespace.items()):
        if isinstance(value, Agent):
            value.close()
            del namespace[name]
