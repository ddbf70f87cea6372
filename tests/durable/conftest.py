"""DBOS for the durable tests: a fresh system database per test, launched on the test's event
loop (DBOS is one per process, so these tests run one at a time).

`dbos_url` is SQLite. `db_url` (not launched) and `dbos_db_url` (launched) run a test once on
SQLite and once on PostgreSQL: a throwaway cluster this session starts (`_postgres.py`), one
database per test so DBOS's tables never meet. Without PostgreSQL the PostgreSQL half skips,
saying why, unless ``SFAGENT_REQUIRE_INTEGRATION=1`` (CI), where it fails."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("dbos", reason="the durable tests need the dbos extra")

from sfagent.durable import launch, shutdown

from ._postgres import PostgresCluster, PostgresUnavailable

FAST_POLL = {"notification_listener_polling_interval_sec": 0.01}
"""DBOS polls its SQLite database for messages; its default second makes every stop slow."""


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # DBOS runs on asyncio only


@pytest.fixture
async def dbos_url(tmp_path: Path) -> AsyncIterator[str]:
    url = sqlite_url(tmp_path / "dbos.sqlite")
    launch(url, executor_id="tests", **FAST_POLL)
    try:
        yield url
    finally:
        shutdown()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the whole session (started at the first test that asks)."""
    try:
        cluster = PostgresCluster.start()
    except PostgresUnavailable as exc:
        if os.environ.get("SFAGENT_REQUIRE_INTEGRATION") == "1":
            pytest.fail(f"SFAGENT_REQUIRE_INTEGRATION=1 and {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL cannot be started here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty system database on each backend (not launched)."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "dbos.sqlite")
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database()


@pytest.fixture
async def dbos_db_url(db_url: str) -> AsyncIterator[str]:
    """`db_url`, launched in this process."""
    launch(db_url, executor_id="tests", **FAST_POLL)
    try:
        yield db_url
    finally:
        shutdown()
