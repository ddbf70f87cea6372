"""The switch that keeps tests from talking to a real model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sfagent.client.http_model import RequestGuard

__all__ = ["allow_model_requests", "block_model_requests"]


def allow_model_requests(allowed: bool) -> None:
    """Allow or block, for the whole process, model requests that leave this machine.

    When blocked, an agent's HTTP model raises `UserError` instead of sending a request to
    any host but 127.0.0.1/localhost (so the loopback server keeps working). Offline models
    are never affected. Call ``allow_model_requests(False)`` in a ``conftest.py``.
    """
    RequestGuard.blocked = not allowed


@contextmanager
def block_model_requests() -> Iterator[None]:
    """Block model requests that leave this machine inside a ``with`` block."""
    before = RequestGuard.blocked
    RequestGuard.blocked = True
    try:
        yield
    finally:
        RequestGuard.blocked = before
