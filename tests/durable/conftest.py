"""DBOS for the durable tests: a fresh SQLite system database per test, launched on the test's
event loop (DBOS is one per process, so these tests run one at a time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("dbos", reason="the durable tests need the dbos extra")

from sfagent.durable import launch, shutdown

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
