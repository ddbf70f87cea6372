"""A small MCP server for `mcp_stdio.py`: notes kept in memory, served over stdio.

Written with the official SDK's server API (``pip install 'sfagent[mcp]'``). The agent starts
it as a subprocess; you never run it yourself. A helper of the example, not an example.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

app = MCPServer("notes")
notes: dict[str, str] = {"groceries": "rice, eggs, green tea"}


@app.tool()
def save_note(title: str, text: str) -> str:
    """Save a note under a title, replacing any note of that title.

    Args:
        title: A short title, e.g. "tea".
        text: What the note says.
    """
    notes[title.strip().lower()] = text
    return f"Saved note '{title}'."


@app.tool()
def list_notes() -> list[str]:
    """The titles of every saved note."""
    return sorted(notes)


@app.tool()
def read_note(title: str) -> str:
    """Read the note with this title.

    Args:
        title: The note's title.
    """
    key = title.strip().lower()
    if key not in notes:
        # An error result (isError): the model reads it and can try another title.
        raise ToolError(f"no note titled '{title}'; titles: {', '.join(sorted(notes))}")
    return notes[key]


@app.resource("notes://{title}")
def note(title: str) -> str:
    """A note, as a resource."""
    return notes.get(title, "")


if __name__ == "__main__":
    app.run()
