"""Run the loopback server in its own process, so it does not share the client's GIL.

In one process the server thread and the client fight over the GIL and every measurement picks up
their switching; in a child process the server gets a core of its own, as a real server would.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_CHILD = """
import sys
from sfagent.testing import LoopbackServer, Reply
reply = Reply(text="Hello! How can I help you today?", reasoning="The user greets me.")
with LoopbackServer(default=reply, latency=float(sys.argv[1])) as server:
    print(server.base_url, flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
"""


@contextmanager
def server_process(latency: float = 0.0) -> Iterator[str]:
    """Start a loopback server in a child process; yields its base URL."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
