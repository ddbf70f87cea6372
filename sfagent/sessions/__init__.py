"""Conversations that persist: a store keyed by conversation id, and history trimming.

- `SQLiteSessionStore(path)`: one SQLite file, shared safely by threads and processes;
  `MemorySessionStore()`: in the process. Any object with the `SessionStore` methods works.
- `store.session("conv-1")` (or `Session(store, "conv-1")`) is one conversation; pass it to
  a run (``agent.run_sync("hi", session=session)``) to send its history and store what the
  run adds, the completed part of a failed run included.
- `TrimByCount(n)` and `TrimByTokens(n)` cut what a run sends (``session(..., trim=...)``)
  without ever separating a tool call from its answer; the store keeps everything.

`sfagent.testing.sessions` holds the conformance checks any store and any trimmer must pass.
"""

from __future__ import annotations

from sfagent.sessions.memory import MemorySessionStore
from sfagent.sessions.sqlite import SQLiteSessionStore
from sfagent.sessions.store import Session, SessionError, SessionStore, SessionStoreError
from sfagent.sessions.trimming import (
    TrimByCount,
    TrimByTokens,
    Trimmer,
    estimate_tokens,
    history_problems,
)

__all__ = [
    "MemorySessionStore",
    "SQLiteSessionStore",
    "Session",
    "SessionError",
    "SessionStore",
    "SessionStoreError",
    "TrimByCount",
    "TrimByTokens",
    "Trimmer",
    "estimate_tokens",
    "history_problems",
]
