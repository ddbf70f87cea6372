"""Tools for testing code that uses sfagent, without the network.

`LoopbackServer` is a real HTTP server on 127.0.0.1 that speaks SiliconFlow's API, answering with
scripted `Reply` objects and injecting faults on request.
"""

from __future__ import annotations

from sfagent.testing._script import Fault, RecordedRequest, Reply, ScriptedToolCall
from sfagent.testing._server import DEFAULT_MODELS, LoopbackServer

__all__ = [
    "DEFAULT_MODELS",
    "Fault",
    "LoopbackServer",
    "RecordedRequest",
    "Reply",
    "ScriptedToolCall",
]
