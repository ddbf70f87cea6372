"""Folding a chat-completions stream into one response: the documented home of these names.

The code lives in `sfagent.client.streaming`, with the rest of the wire layer; this module
keeps the documented import path (``from sfagent.streaming import StreamState``).
"""

from sfagent.client.streaming import (
    StreamAccumulator,
    StreamState,
    error_from_stream_payload,
    stream_error_status,
)

__all__ = ["StreamAccumulator", "StreamState", "error_from_stream_payload", "stream_error_status"]
