"""Answering a durable run that waits for an approval, from any process (no launch needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbos import DBOSClient

from sfagent.durable._dbos import APP_NAME, APPROVAL_EVENT, DurableRunError

__all__ = ["PendingApproval", "approve", "pending_approval"]


@dataclass(frozen=True)
class PendingApproval:
    """The call a durable run waits on.

    Attributes:
        run_id: The run.
        call_id: The model's id for the call.
        tool: The tool it would run.
        arguments: Its arguments as the model sent them (JSON text).
    """

    run_id: str
    call_id: str
    tool: str
    arguments: str


def pending_approval(
    run_id: str, *, database_url: str | None = None, wait: float = 0.0
) -> PendingApproval | None:
    """The call `run_id` waits to have approved, or ``None`` when it waits for none.

    Args:
        run_id: The durable run's id.
        database_url: DBOS's system database (default: `launch`'s default).
        wait: Seconds to wait for the run to reach an approval.
    """
    client = _client(database_url)
    try:
        return _pending(client, run_id, wait)
    finally:
        client.destroy()


def approve(
    run_id: str,
    *,
    approved: bool = True,
    call_id: str | None = None,
    database_url: str | None = None,
    by: str | None = None,
    wait: float = 0.0,
) -> PendingApproval:
    """Answer the approval a durable run waits for; the run goes on (wherever it runs next).

    Args:
        run_id: The durable run's id.
        approved: ``False`` denies the call (the model is told so).
        call_id: The call meant; refused if the run waits on another one.
        database_url: DBOS's system database (default: `launch`'s default).
        by: Who decided, kept with the answer.
        wait: Seconds to wait for the run to reach an approval.

    Returns:
        The call that was answered.

    Raises:
        DurableRunError: The run waits for no approval, or for another call.
    """
    client = _client(database_url)
    try:
        pending = _pending(client, run_id, wait)
        if pending is None:
            raise DurableRunError(f"run {run_id!r} is not waiting for an approval")
        if call_id is not None and call_id != pending.call_id:
            raise DurableRunError(
                f"run {run_id!r} waits for an approval of call {pending.call_id!r} "
                f"({pending.tool}), not {call_id!r}"
            )
        topic = _topic(client, run_id)
        client.send(run_id, {"approved": approved, "by": by}, topic=topic)
        return pending
    finally:
        client.destroy()


def _client(database_url: str | None) -> DBOSClient:
    if database_url is None:
        database_url = f"sqlite:///{Path('sfagent-durable.sqlite').resolve()}"
    return DBOSClient(system_database_url=database_url, application_name=APP_NAME)


def _pending(client: DBOSClient, run_id: str, wait: float) -> PendingApproval | None:
    value: Any = client.get_event(run_id, APPROVAL_EVENT, timeout_seconds=wait)
    if not isinstance(value, dict):
        return None
    return PendingApproval(run_id, value["call_id"], value["tool"], value["arguments"])


def _topic(client: DBOSClient, run_id: str) -> str:
    value: Any = client.get_event(run_id, APPROVAL_EVENT, timeout_seconds=0)
    return str(value["key"])
