"""The throwaway PostgreSQL cluster the durable tests run on: it serves as an unprivileged user
when the tests run as root, hands out databases that need its password, and says why when it
cannot start."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
import pytest

from . import _postgres
from ._postgres import PostgresCluster, PostgresUnavailable


def test_the_server_runs_as_an_unprivileged_user(postgres_cluster: PostgresCluster) -> None:
    url = postgres_cluster.create_database()
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    owner = Path(f"/proc/{row[0]}").stat().st_uid
    assert owner != 0
    assert owner == (os.geteuid() if os.geteuid() != 0 else postgres_cluster.owner.pw_uid)  # type: ignore[union-attr]


def test_a_database_needs_the_password(postgres_cluster: PostgresCluster) -> None:
    url = postgres_cluster.create_database()
    wrong = url.replace(postgres_cluster.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)


def test_without_the_server_programs_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_postgres, "find_bin_dir", lambda: None)
    with pytest.raises(PostgresUnavailable, match="apt-get install postgresql"):
        PostgresCluster.start()


def test_a_failing_initdb_is_told_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # Outside pytest's own folders, which only their owner may enter: as root, the programs
    # run as an unprivileged user.
    fake = tempfile.TemporaryDirectory(prefix="sfagent-fake-pg-")
    bin_dir = Path(fake.name)
    bin_dir.chmod(0o755)
    for name in ("initdb", "pg_ctl", "postgres"):
        program = bin_dir / name
        program.write_text("#!/bin/sh\necho 'initdb: error: disk full' >&2\nexit 1\n")
        program.chmod(0o755)
    made: list[str] = []
    real_mkdtemp = _postgres.tempfile.mkdtemp

    def mkdtemp(**options: str) -> str:
        made.append(real_mkdtemp(**options))
        return made[-1]

    monkeypatch.setattr(_postgres, "find_bin_dir", lambda: bin_dir)
    monkeypatch.setattr(_postgres.tempfile, "mkdtemp", mkdtemp)
    with fake, pytest.raises(PostgresUnavailable, match="initdb failed: initdb: error: disk"):
        PostgresCluster.start()
    assert made
    assert not Path(made[0]).exists()
