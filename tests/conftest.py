"""Shared pytest configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

_SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "siliconflow"
_VENDORED = Path(__file__).resolve().parent / "fixtures" / "siliconflow"
FIXTURES = _SHARED if _SHARED.is_dir() else _VENDORED
"""The captured SiliconFlow payloads: ``../shared/fixtures/siliconflow`` beside the project when
it is there, else the copy in ``tests/fixtures`` (so a lone clone still runs its tests)."""


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only."""
    return "asyncio"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Directory of the captured SiliconFlow payloads."""
    if not FIXTURES.is_dir():
        pytest.fail(
            f"fixtures not found at {FIXTURES}; the shared/ folder must sit beside the project"
        )
    return FIXTURES
