"""A real MCP server for the tests, written with the SDK's own server API.

Run over stdio (``python notes_server.py``) or streamable HTTP on loopback
(``python notes_server.py --http``: binds 127.0.0.1 on a free port and prints it first).
``--log PATH`` appends a line per notable event (a cancelled call), for the tests to read.
``--start-delay SECONDS`` sleeps that long before serving: a server slow to start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

app = MCPServer("notes")
_log: Path | None = None
_notes: dict[str, str] = {"today": "buy milk"}


def _record(line: str) -> None:
    if _log is not None:
        with _log.open("a", encoding="utf-8") as out:
            out.write(line + "\n")


@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool()
def save_note(title: str, text: str, tags: list[str] | None = None) -> str:
    """Save a note under a title.

    Args:
        title: The note's title.
        text: What the note says.
        tags: Labels for the note.
    """
    _notes[title] = text
    return f"saved '{title}'" + (f" with tags {', '.join(tags)}" if tags else "")


@app.tool()
def annotate(labels: dict[str, str]) -> str:
    """Attach free-form labels (a schema strict mode cannot express)."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


@app.tool()
def refuse(reason: str) -> str:
    """Always fails, with a reason the model can act on."""
    raise ToolError(f"refused: {reason}")


@app.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    _record("started slow")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        _record("cancelled slow")
        raise
    return "slept"


@app.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@app.tool()
def crash() -> str:
    """Exit the server process at once, mid-call."""
    os._exit(3)


@app.tool()
async def grow(ctx: Context) -> str:
    """Add an `echo` tool and announce the changed list."""

    def echo(text: str) -> str:
        """Say it back."""
        return text

    app.add_tool(echo, name="echo")
    await ctx.session.send_tool_list_changed()
    return "grown"


@app.resource("notes://{title}")
def note(title: str) -> str:
    """A saved note."""
    return _notes.get(title, "")


@app.prompt()
def summarize(title: str) -> str:
    """Ask for a summary of a note."""
    return f"Summarize the note '{title}': {_notes.get(title, '')}"


def _serve_http() -> None:
    import uvicorn
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import PlainTextResponse

    web = app.streamable_http_app()

    async def check_token(request, call_next):  # type: ignore[no-untyped-def]
        if request.headers.get("authorization") != "Bearer test-token":
            return PlainTextResponse("unauthorized", status_code=401)
        return await call_next(request)

    web.add_middleware(BaseHTTPMiddleware, dispatch=check_token)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # Listening before the port is told: a client that connects at once waits in the
    # backlog until uvicorn serves, instead of being refused while it starts.
    sock.listen(128)
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(web, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--log")
    parser.add_argument("--start-delay", type=float, default=0.0)
    options = parser.parse_args()
    _log = Path(options.log) if options.log else None
    if options.start_delay:
        time.sleep(options.start_delay)
    if options.http:
        _serve_http()
    else:
        app.run()
    sys.exit(0)
