"""Real MCP servers for the tests: `notes_server.py` over stdio, and over streamable HTTP on
127.0.0.1 in a subprocess of its own."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfagent.mcp import MCPServerStdio

SERVER = Path(__file__).resolve().parent / "notes_server.py"
TOKEN = "Bearer test-token"


@pytest.fixture
def server_log(tmp_path: Path) -> Path:
    """Where the server writes what the tests check (a cancelled call)."""
    return tmp_path / "server.log"


@pytest.fixture
def stdio_server(tmp_path: Path, server_log: Path) -> Iterator[MCPServerStdio]:
    """The notes server over stdio, started on first use and closed after the test."""
    with (tmp_path / "stderr.txt").open("w", encoding="utf-8") as errlog:
        server = MCPServerStdio(
            sys.executable, [str(SERVER), "--log", str(server_log)], errlog=errlog, timeout=20.0
        )
        try:
            yield server
        finally:
            server.close()


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """The URL of the notes server over streamable HTTP on loopback (it wants `TOKEN`)."""
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--http"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the port, once bound (or "" if it died)
        if not line.strip().isdigit():
            pytest.fail(f"the HTTP MCP server did not start (exit code {process.poll()})")
        yield f"http://127.0.0.1:{int(line)}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def wait_for(check: object, timeout: float = 10.0) -> bool:
    """Poll `check()` until true or `timeout` seconds pass (bounded: no test waits forever)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False
