"""The two stores beyond the conformance suite: the SQLite file, its failures, and processes."""

from __future__ import annotations

import pickle
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sfagent.exceptions import SFAgentError, UserError
from sfagent.messages import (
    AssistantMessage,
    ImagePart,
    TextPart,
    ToolMessage,
    UserMessage,
    image_part,
)
from sfagent.sessions import (
    MemorySessionStore,
    Session,
    SessionError,
    SessionStore,
    SessionStoreError,
    SQLiteSessionStore,
)
from sfagent.testing.sessions import dumped

RICH = [
    UserMessage(content=[TextPart(text="What is this?"), image_part("https://example.com/c.png")]),
    AssistantMessage(
        content=None,
        reasoning_content="Look it up.",
        tool_calls=[{"id": "c1", "function": {"name": "see", "arguments": '{"q": "猫"}'}}],  # type: ignore[list-item]
        vendor_extra={"kept": True},  # type: ignore[call-arg]
    ),
    ToolMessage(tool_call_id="c1", content="a cat 🐈"),
    AssistantMessage(content="A cat."),
]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SessionStore:
    if request.param == "memory":
        return MemorySessionStore()
    return SQLiteSessionStore(tmp_path / "sessions.db")


def test_messages_load_back_as_the_same_models(store: SessionStore) -> None:
    store.append("c", RICH)
    loaded = store.load("c")
    assert [type(m) for m in loaded] == [type(m) for m in RICH]
    assert dumped(loaded) == dumped(RICH)
    assert isinstance(loaded[0].content[1], ImagePart)  # type: ignore[attr-defined]
    assert loaded[1].model_extra == {"vendor_extra": {"kept": True}}
    assert store.load("unknown") == []


def test_bad_input_is_a_typed_error(store: SessionStore) -> None:
    session = Session(store, "c")
    with pytest.raises(SessionError, match=r"messages\[1\] is not a chat message"):
        session.append([{"role": "user", "content": "ok"}, {"role": "robot", "content": "?"}])
    with pytest.raises(SessionError, match=r"messages\[0\] must be a message or a dict"):
        session.append(["just text"])  # type: ignore[list-item]
    with pytest.raises(SessionError, match="must be a list of messages"):
        session.append("hello")  # type: ignore[arg-type]
    with pytest.raises(SessionError, match="empty"):
        store.load("")
    assert store.load("c") == []  # a bad batch stores none of it
    assert isinstance(SessionError("x"), UserError)


def test_session_history_checks_what_a_trimmer_returns(store: SessionStore) -> None:
    store.append("c", RICH)
    with pytest.raises(SessionError, match="must return a list"):
        Session(store, "c", trim=lambda messages: tuple(messages)).history()  # type: ignore[arg-type,return-value]


def test_sqlite_refuses_paths_that_are_no_file(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match="MemorySessionStore"):
        SQLiteSessionStore(":memory:")
    with pytest.raises(SessionError, match="does not exist"):
        SQLiteSessionStore(tmp_path / "missing" / "s.db")
    with pytest.raises(SessionError, match="timeout"):
        SQLiteSessionStore(tmp_path / "s.db", timeout=0)


def test_sqlite_file_is_private_and_shares_a_database(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:  # the application's own table stays untouched
        db.execute("CREATE TABLE users (name TEXT)")
        db.execute("INSERT INTO users VALUES ('ann')")
    db.close()
    store = SQLiteSessionStore(path)
    store.append("c", RICH[:1])
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM users").fetchall() == [("ann",)]
    db.close()
    fresh = tmp_path / "fresh.db"
    SQLiteSessionStore(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_sqlite_reports_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just text " * 100, encoding="utf-8")
    with pytest.raises(SessionStoreError, match=r"notes\.txt"):
        SQLiteSessionStore(path)


def test_sqlite_refuses_a_newer_layout(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteSessionStore(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE sfagent_session_info SET value = '2' WHERE name = 'schema'")
    db.close()
    with pytest.raises(SessionStoreError, match="layout 2"):
        SQLiteSessionStore(path)


def test_a_corrupt_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteSessionStore(path)
    store.append("c", RICH)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE sfagent_session_messages SET message = '[1]' WHERE seq = 2")
    db.close()
    with pytest.raises(SessionStoreError, match="stored message 2 is not a chat message") as e:
        store.load("c")
    assert e.value.conversation_id == "c"


def test_a_locked_file_times_out_as_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteSessionStore(path, timeout=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(SessionStoreError, match="locked"):
            store.append("c", RICH[:1])
        assert store.load("c") == []  # readers are not blocked (write-ahead log)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.append("c", RICH[:1])
    assert len(store.load("c")) == 1


def test_errors_pickle_with_their_attributes() -> None:
    error = SessionStoreError("disk full", conversation_id="c", result={"output": 1})
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.conversation_id, copy.result) == (
        SessionStoreError,
        "disk full",
        "c",
        {"output": 1},
    )
    assert isinstance(copy, SFAgentError)
    assert str(pickle.loads(pickle.dumps(SessionError("bad id")))) == "bad id"


WRITER = textwrap.dedent(
    """
    import sys
    from sfagent.sessions import SQLiteSessionStore
    from sfagent.messages import AssistantMessage, UserMessage

    path, writer, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = SQLiteSessionStore(path)
    for n in range(count):
        tag = f"{writer}:{n}"
        store.append("shared", [UserMessage(content=tag), AssistantMessage(content="re " + tag)])
    """
)


def test_processes_appending_to_one_conversation_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteSessionStore(path)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), "40"]) for w in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    loaded = SQLiteSessionStore(path).load("shared")
    assert len(loaded) == 4 * 40 * 2
    last: dict[str, int] = {}
    for user, answer in zip(loaded[::2], loaded[1::2], strict=True):
        assert answer.content == f"re {user.content}"  # type: ignore[attr-defined]
        writer, n = str(user.content).split(":")  # type: ignore[attr-defined]
        assert int(n) == last.get(writer, -1) + 1
        last[writer] = int(n)


def test_a_conversation_survives_the_process(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    code = (
        "import sys; from sfagent.sessions import SQLiteSessionStore; "
        "SQLiteSessionStore(sys.argv[1]).session('kept').append("
        "[{'role': 'user', 'content': 'remember me'}])"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    assert dumped(SQLiteSessionStore(path).session("kept").messages()) == [
        {"role": "user", "content": "remember me"}
    ]
