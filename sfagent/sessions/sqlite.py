"""`SQLiteSessionStore`: conversations in one SQLite file (the standard library's sqlite3).

Each append is one ``BEGIN IMMEDIATE`` transaction: it takes the file's write lock, reads the
conversation's last sequence number and inserts its messages after it, so appends from any
number of threads and processes land whole and in order, and none is lost. Readers never
wait for writers (write-ahead logging).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sfagent.sessions.store import (
    Session,
    SessionError,
    SessionStoreError,
    check_conversation_id,
    decode_message,
    encode_message,
    to_messages,
)

if TYPE_CHECKING:
    from sfagent.messages import MessageBase
    from sfagent.sessions.trimming import Trimmer

__all__ = ["SCHEMA_VERSION", "SQLiteSessionStore"]

SCHEMA_VERSION = "1"
"""The layout of the tables below; a file with another is refused, never rewritten."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sfagent_session_info (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS sfagent_session_messages (
        conversation_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        message TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (conversation_id, seq)
    ) WITHOUT ROWID""",
)


class SQLiteSessionStore:
    """A `SessionStore` in a SQLite file, shared safely by threads and processes.

    The file is made (readable by its owner only) with its tables on first use; its tables
    are prefixed ``sfagent_session_``, so it may be a file the application uses for more.

    Args:
        path: The database file. Its directory must exist.
        timeout: Seconds a write waits for another writer's lock before giving up.

    Raises:
        SessionError: An in-memory path (``":memory:"``: use `MemorySessionStore`), a
            missing directory or a bad `timeout`.
        SessionStoreError: The file cannot be opened as a database, or was made by a
            newer sfagent.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        text = os.fspath(path)
        if not isinstance(text, str) or text in ("", ":memory:") or text.startswith("file:"):
            raise SessionError(
                f"path must name a database file, got {text!r} (for a store in memory, "
                "use MemorySessionStore)"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise SessionError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.path = Path(text)
        self.timeout = float(timeout)
        if not self.path.parent.is_dir():
            raise SessionError(f"the directory of {self.path} does not exist")
        self._create()

    def __repr__(self) -> str:
        return f"SQLiteSessionStore({str(self.path)!r})"

    def session(self, conversation_id: str, *, trim: Trimmer | None = None) -> Session:
        """A handle on one conversation (see `Session`)."""
        return Session(self, conversation_id, trim=trim)

    def load(self, conversation_id: str) -> list[MessageBase]:
        """Every message of the conversation, oldest first (empty for an unknown id)."""
        check_conversation_id(conversation_id)
        with self._open() as db:
            rows = db.execute(
                "SELECT message FROM sfagent_session_messages WHERE conversation_id = ? "
                "ORDER BY seq",
                (conversation_id,),
            ).fetchall()
        return [
            decode_message(text, conversation_id=conversation_id, position=i)
            for i, (text,) in enumerate(rows)
        ]

    def append(self, conversation_id: str, messages: Sequence[MessageBase]) -> None:
        """Add `messages` to the end of the conversation in one transaction."""
        check_conversation_id(conversation_id)
        encoded = [encode_message(m) for m in to_messages(messages)]
        if not encoded:
            return
        now = time.time()
        with self._open() as db, _transaction(db):
            (last,) = db.execute(
                "SELECT COALESCE(MAX(seq), -1) FROM sfagent_session_messages "
                "WHERE conversation_id = ?",
                (conversation_id,),
            ).fetchone()
            db.executemany(
                "INSERT INTO sfagent_session_messages (conversation_id, seq, message, "
                "created_at) VALUES (?, ?, ?, ?)",
                [(conversation_id, last + 1 + i, text, now) for i, text in enumerate(encoded)],
            )

    def clear(self, conversation_id: str) -> None:
        """Forget the conversation."""
        check_conversation_id(conversation_id)
        with self._open() as db, _transaction(db):
            db.execute(
                "DELETE FROM sfagent_session_messages WHERE conversation_id = ?",
                (conversation_id,),
            )

    def conversations(self) -> list[str]:
        """The ids of the conversations holding messages, sorted."""
        with self._open() as db:
            rows = db.execute(
                "SELECT DISTINCT conversation_id FROM sfagent_session_messages "
                "ORDER BY conversation_id"
            ).fetchall()
        return [conversation_id for (conversation_id,) in rows]

    # --- the file ------------------------------------------------------------------------------

    def _create(self) -> None:
        if not self.path.exists():
            # Conversations are private: the file (and SQLite's -wal/-shm beside it, which
            # copy its mode) is the owner's alone.
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError as exc:
                raise SessionStoreError(f"cannot create {self.path}: {exc.strerror}") from None
        with self._open() as db:
            db.execute("PRAGMA journal_mode=WAL")
            with _transaction(db):
                for statement in _SCHEMA:  # not executescript: it would commit first
                    db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO sfagent_session_info (name, value) VALUES (?, ?)",
                    ("schema", SCHEMA_VERSION),
                )
                (version,) = db.execute(
                    "SELECT value FROM sfagent_session_info WHERE name = 'schema'"
                ).fetchone()
        if version != SCHEMA_VERSION:
            raise SessionStoreError(
                f"{self.path} holds sessions in layout {version}; this sfagent reads layout "
                f"{SCHEMA_VERSION} (upgrade sfagent, or use another file)"
            )

    @contextmanager
    def _open(self) -> Iterator[sqlite3.Connection]:
        """A connection for one operation; any SQLite failure becomes a `SessionStoreError`.

        One connection per operation, not one per store: a store is shared by threads (an
        async run calls it from a worker thread), and a connection may not be.
        """
        try:
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise SessionStoreError(f"cannot open {self.path}: {exc}") from None
        try:
            yield db
        except sqlite3.Error as exc:
            raise SessionStoreError(f"session store {self.path}: {exc}") from None
        finally:
            db.close()


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (the write lock, taken at once) ... ``COMMIT``, or roll back."""
    if not db.in_transaction:
        db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
