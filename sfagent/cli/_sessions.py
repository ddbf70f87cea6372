"""`sfagent chat --session ID`: the conversation kept in a SQLite file between chats."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

from sfagent.cli._load import CLIError
from sfagent.sessions import Session, SessionError, SessionStoreError, SQLiteSessionStore

__all__ = ["SESSIONS_DB_ENV", "default_sessions_db", "open_session"]

SESSIONS_DB_ENV = "SFAGENT_SESSIONS_DB"
"""The environment variable naming the sessions file when ``--sessions-db`` is not given."""


def default_sessions_db() -> Path:
    """``$SFAGENT_SESSIONS_DB``, else ``sfagent/sessions.db`` in the user's data directory.

    The data directory is ``%LOCALAPPDATA%`` on Windows, else ``$XDG_DATA_HOME`` or
    ``~/.local/share``.
    """
    named = os.environ.get(SESSIONS_DB_ENV, "").strip()
    if named:
        return Path(named).expanduser()
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        base = Path(os.environ["LOCALAPPDATA"])
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "").strip()
        base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "sfagent" / "sessions.db"


def open_session(conversation_id: str, db: str | None, err: TextIO) -> Session:
    """The conversation `conversation_id` of the sessions file, checked by loading it.

    Says on `err` whether it is new or resumed.

    Raises:
        CLIError: The id is unusable, or the file cannot be made or read.
    """
    path = Path(db).expanduser() if db else default_sessions_db()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot make the directory for {path}: {exc.strerror}") from None
    try:
        session = SQLiteSessionStore(path).session(conversation_id)
        stored = len(session.messages())
    except SessionError as exc:
        raise CLIError(f"--session: {exc}") from None
    except SessionStoreError as exc:
        raise CLIError(f"sessions file {path}: {exc}") from None
    if stored:
        err.write(f"Resuming conversation {conversation_id!r} ({stored} messages, {path}).\n")
    else:
        err.write(f"New conversation {conversation_id!r}, saved in {path}.\n")
    return session
