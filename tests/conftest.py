"""Shared pytest configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "siliconflow"
"""The captured SiliconFlow payloads beside the project (``../shared/fixtures/siliconflow``)."""


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only."""
    return "asyncio"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Directory of the captured SiliconFlow payloads."""
    if not FIXTURES.is_dir():
        pytest.fail(f"fixtures not found at {FIXTURES}; the shared/ folder must sit beside the project")
    return FIXTURES
