"""MCP servers as tool sets (the ``sfagent[mcp]`` extra, on the official ``mcp`` SDK).

`MCPServerStdio` starts a server as a subprocess; `MCPServerHTTP` reaches one over streamable
HTTP. Either goes in `Agent(tools=[...])` beside `@tool` functions; see the "MCP" page of the
docs.

Importing this package does not import the SDK: it loads when a server is first made.
"""

from __future__ import annotations

from sfagent.mcp._errors import (
    MCPConnectionError,
    MCPError,
    MCPRequestError,
    MCPServerCrashed,
    MCPTimeoutError,
)
from sfagent.mcp.server import MCPServer, MCPServerHTTP, MCPServerStdio, ServerOptions

__all__ = [
    "MCPConnectionError",
    "MCPError",
    "MCPRequestError",
    "MCPServer",
    "MCPServerCrashed",
    "MCPServerHTTP",
    "MCPServerStdio",
    "MCPTimeoutError",
    "ServerOptions",
]
