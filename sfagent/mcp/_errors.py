"""The errors of `sfagent.mcp`: a branch of `SFAgentError` for talking to MCP servers."""

from __future__ import annotations

from sfagent.exceptions import SFAgentError

__all__ = [
    "MCPConnectionError",
    "MCPError",
    "MCPRequestError",
    "MCPServerCrashed",
    "MCPTimeoutError",
]


class MCPError(SFAgentError):
    """Something went wrong talking to an MCP server.

    Attributes:
        server: The server's name (`MCPServer.name`).
        message: What went wrong.
    """

    def __init__(self, message: str, *, server: str) -> None:
        self.server = server
        self.message = message
        super().__init__(f"MCP server '{server}': {message}")


class MCPConnectionError(MCPError):
    """The server could not be started or reached, or its handshake failed."""


class MCPServerCrashed(MCPError):
    """The connection ended while the server was in use (a stdio server exited).

    The next use starts the server again; the request that was cut off is not repeated.
    """


class MCPTimeoutError(MCPError):
    """A request to the server took longer than its time bound."""


class MCPRequestError(MCPError):
    """The server answered a request with a JSON-RPC error.

    Attributes:
        code: The JSON-RPC error code.
    """

    def __init__(self, message: str, *, server: str, code: int) -> None:
        super().__init__(message, server=server)
        self.code = code
