"""`sfagent chat --session ID`: a conversation kept in SQLite and resumed by a later process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sfagent.sessions import SQLiteSessionStore
from sfagent.testing import LoopbackServer, Reply
from tests.cli.test_cli import FAKE_KEY, OFFLINE_LINE, WEATHER, _env, one_error_line, sfagent


@pytest.fixture
def weather(tmp_path: Path) -> Path:
    path = tmp_path / "weather.py"
    path.write_text(WEATHER, encoding="utf-8")
    return path


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


def roles(db: Path, conversation: str) -> list[str]:
    return [m.role for m in SQLiteSessionStore(db).load(conversation)]  # type: ignore[attr-defined]


def test_a_saved_conversation_resumes_offline(weather: Path, tmp_path: Path) -> None:
    db = tmp_path / "chats.db"
    args = ("chat", str(weather), "--session", "trip", "--sessions-db", str(db))
    first = sfagent(*args, cwd=tmp_path, stdin="What about Rome?\n")
    assert first.returncode == 0, first.stderr
    assert "New conversation 'trip'" in first.stderr
    assert roles(db, "trip") == ["user", "assistant", "tool", "assistant"]
    second = sfagent(*args, cwd=tmp_path, stdin="What about Lima?\n")
    assert second.returncode == 0, second.stderr
    assert f"Resuming conversation 'trip' (4 messages, {db})" in second.stderr
    assert roles(db, "trip") == ["user", "assistant", "tool", "assistant"] * 2
    assert SQLiteSessionStore(db).load("trip")[4].content == "What about Lima?"  # type: ignore[attr-defined]


def test_a_resumed_chat_sends_the_stored_history(
    weather: Path, tmp_path: Path, server: LoopbackServer
) -> None:
    server.add(Reply(text="Hello!"), Reply(text="You said hi."))
    db = tmp_path / "chats.db"
    args = ("chat", str(weather), "--base-url", server.base_url, "--session", "s1")
    args += ("--sessions-db", str(db))
    assert sfagent(*args, cwd=tmp_path, key=FAKE_KEY, stdin="hi\n").returncode == 0
    proc = sfagent(*args, cwd=tmp_path, key=FAKE_KEY, stdin="what did I say?\n")
    assert proc.returncode == 0, proc.stderr
    assert "You said hi." in proc.stdout
    second = server.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert [m["content"] for m in second] == ["hi", "Hello!", "what did I say?"]
    assert FAKE_KEY.encode() not in db.read_bytes()


def test_a_failed_turn_keeps_its_completed_part(
    weather: Path, tmp_path: Path, server: LoopbackServer
) -> None:
    server.add(Reply.error(400, "bad request"), Reply(text="Second try worked."))
    db = tmp_path / "chats.db"
    args = ("chat", str(weather), "--base-url", server.base_url, "--session", "s")
    args += ("--sessions-db", str(db))
    proc = sfagent(*args, cwd=tmp_path, key=FAKE_KEY, stdin="first\nsecond\n")
    assert proc.returncode == 0, proc.stderr
    assert "(its completed part is saved)" in proc.stderr
    # The failed turn's prompt is kept, so the model sees both.
    assert [m["content"] for m in server.requests[1].body["messages"]] == ["first", "second"]
    assert roles(db, "s") == ["user", "user", "assistant"]


def test_reset_empties_the_saved_conversation(weather: Path, tmp_path: Path) -> None:
    db = tmp_path / "chats.db"
    args = ("chat", str(weather), "--session", "r", "--sessions-db", str(db))
    proc = sfagent(*args, cwd=tmp_path, stdin="What about Rome?\n/reset\nWhat about Oslo?\n")
    assert proc.returncode == 0, proc.stderr
    stored = SQLiteSessionStore(db).load("r")
    assert [m.role for m in stored] == ["user", "assistant", "tool", "assistant"]  # type: ignore[attr-defined]
    assert stored[0].content == "What about Oslo?"  # type: ignore[attr-defined]


def test_the_default_file_is_in_the_users_data_directory(weather: Path, tmp_path: Path) -> None:
    env = _env() | {"XDG_DATA_HOME": str(tmp_path / "data")}
    proc = sfagent("chat", str(weather), "--session", "d", cwd=tmp_path, env=env, stdin="hi\n")
    assert proc.returncode == 0, proc.stderr
    assert roles(tmp_path / "data" / "sfagent" / "sessions.db", "d")[0] == "user"
    env["SFAGENT_SESSIONS_DB"] = str(tmp_path / "named.db")
    proc = sfagent("chat", str(weather), "--session", "d", cwd=tmp_path, env=env, stdin="hi\n")
    assert proc.returncode == 0, proc.stderr
    assert roles(tmp_path / "named.db", "d") == ["user", "assistant", "tool", "assistant"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sessions-db", "x.db"], "--sessions-db needs --session ID"),
        (["--session", " "], "--session: a conversation id must not be empty"),
        (["--session", "a", "--sessions-db", "notes.txt"], "sessions file notes.txt"),
    ],
)
def test_session_mistakes_are_one_line(
    extra: list[str], message: str, weather: Path, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("not a database " * 200, encoding="utf-8")
    proc = sfagent("chat", str(weather), *extra, cwd=tmp_path, stdin="hi\n")
    assert proc.returncode == 2, proc.stderr
    assert message in one_error_line(proc)
    assert OFFLINE_LINE in proc.stderr
