"""An MCP server's tools beside your own: a notes server over stdio, started by the agent.

Needs the MCP extra: pip install 'sfagent[mcp]'. Run it:
    python examples/mcp_stdio.py
    python examples/mcp_stdio.py "Save a note titled 'tea' saying 'buy oolong', then list them."
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from sfagent import Agent, tool
from sfagent.mcp import MCPServerStdio

# The server is a Python file run with this interpreter; nothing starts until a run needs it.
notes = MCPServerStdio(
    sys.executable,
    [str(Path(__file__).with_name("_mcp_notes_server.py"))],
    prefix="notes",  # its tools become notes_save_note, notes_list_notes, notes_read_note
    sequential=True,  # calls of one turn run in the model's order: save, then list
    timeout=30,
)


@tool
def today() -> str:
    """Today's date, as YYYY-MM-DD."""
    return dt.date.today().isoformat()


def main(question: str) -> None:
    from _model import pick_model  # examples/ is on sys.path when run as a script

    agent = Agent(
        pick_model("Qwen/Qwen3-8B"),
        tools=[notes, today],
        instructions="You keep the user's notes. Use the notes tools; never invent notes.",
    )
    with agent:  # also stops the notes server the run started
        result = agent.run_sync(question)
    for turn in result.turns:
        for call in turn.tool_calls:
            print(f"→ {call.name}({call.arguments})")
    print(result.output)
    # Python code reaches the server directly too: here, a resource.
    with notes:
        [groceries] = notes.read_resource_sync("notes://groceries")
    print(f"(resource notes://groceries: {getattr(groceries, 'text', '')})")


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "Save a note titled 'tea' saying 'buy oolong', then list them.")
