"""Answering a durable run that waits for an approval, from any process (no launch needed).

The database's password never reaches an error: URLs are shown with it masked, and what the
driver says is cleaned of it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOSClient

from sfagent._secret import Secret
from sfagent.durable._dbos import APP_NAME, APPROVAL_EVENT, DurableRunError
from sfagent.exceptions import UserError

__all__ = [
    "NoPendingApprovalError",
    "PendingApproval",
    "RunNotFoundError",
    "SystemDatabaseError",
    "approve",
    "pending_approval",
]


POLL_SECONDS = 0.05
"""How often a wait looks again for a database that is not there yet."""


class RunNotFoundError(DurableRunError):
    """The system database holds no durable run with this id."""


class NoPendingApprovalError(DurableRunError):
    """The run waits for no approval, or for another call than the one named."""


class SystemDatabaseError(DurableRunError):
    """DBOS's system database cannot be reached or read (the message never shows its
    password)."""


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

    Raises:
        RunNotFoundError: No run has this id.
        SystemDatabaseError: The database cannot be reached or read.
        UserError: A malformed argument.
    """
    run_id, wait = _checked_id(run_id), _checked_wait(wait)
    with _database(database_url, wait) as database:
        found = _pending(database, run_id, wait)
        return None if found is None else found[0]


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
        NoPendingApprovalError: The run waits for no approval, or for another call.
        RunNotFoundError: No run has this id.
        SystemDatabaseError: The database cannot be reached or read.
        UserError: A malformed argument.
    """
    run_id, wait = _checked_id(run_id), _checked_wait(wait)
    with _database(database_url, wait) as database:
        found = _pending(database, run_id, wait)
        if found is None:
            status = _status(database, run_id)
            raise NoPendingApprovalError(
                f"run {run_id!r} is not waiting for an approval (its status: {status})"
            )
        pending, topic = found
        if call_id is not None and call_id != pending.call_id:
            raise NoPendingApprovalError(
                f"run {run_id!r} waits for an approval of call {pending.call_id!r} "
                f"({pending.tool}), not {call_id!r}"
            )
        database.client.send(run_id, {"approved": approved, "by": by}, topic=topic)
        return pending


@dataclass(frozen=True)
class _Database:
    client: DBOSClient
    shown: str  # the URL with its password masked
    password: Secret


@contextmanager
def _database(database_url: str | None, wait: float) -> Iterator[_Database]:
    """A client on the system database; its errors become `SystemDatabaseError`.

    Within `wait` seconds a SQLite database that does not exist yet may appear (the run's own
    process creates it as it starts).
    """
    if database_url is None:
        database_url = f"sqlite:///{Path('sfagent-durable.sqlite').resolve()}"
    url = parsed_url(database_url)
    password = Secret(url.password if isinstance(url.password, str) else None)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        deadline = time.monotonic() + wait
        while not path.is_file() and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if not path.is_file():
            # SQLite would create an empty file here and then find no runs in it.
            raise SystemDatabaseError(
                f"no DBOS system database at {path}: `launch` creates it at a run's start"
            )
    records = logging.getLogger("dbos")
    if not records.handlers:
        # With a handler of ours DBOS adds no console handler and its records propagate.
        records.addHandler(logging.NullHandler())
    client: DBOSClient | None = None
    try:
        client = DBOSClient(
            system_database_url=database_url,
            application_name=APP_NAME,
            retry_connection_errors=False,  # an unreachable database is an error, not a wait
        )
        yield _Database(client, shown, password)
    except sa.exc.SQLAlchemyError as exc:
        cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        said = password.redact(str(cause).strip().splitlines()[0] if str(cause).strip() else "")
        raise SystemDatabaseError(
            f"cannot read DBOS's system database at {shown}: {type(cause).__name__}: {said}"
        ) from None
    finally:
        if client is not None:
            client.destroy()


def parsed_url(database_url: str) -> sa.URL:
    if not isinstance(database_url, str):
        raise UserError(f"database_url must be a string, got {type(database_url).__name__}")
    try:
        url = sa.make_url(database_url)
    except (sa.exc.ArgumentError, ValueError):
        url = None
    if url is None or url.get_backend_name() not in ("sqlite", "postgresql"):
        raise UserError(
            "database_url must be sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB, got "
            f"{_masked(database_url)!r}"
        )
    return url


def _masked(text: str) -> str:
    """Text that did not parse as a URL, with what could be a password in it cut out."""
    scheme, found, rest = text.partition("://")
    if found and "@" in rest:
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return text


def _checked_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not run_id.strip():
        raise UserError(f"a run id must be a non-empty string, got {run_id!r}")
    return run_id


def _checked_wait(wait: float) -> float:
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait < math.inf:
        raise UserError(f"wait must be a number of seconds >= 0, got {wait!r}")
    return float(wait)


def _pending(database: _Database, run_id: str, wait: float) -> tuple[PendingApproval, str] | None:
    """What the run waits on and the topic to answer it under; ``None`` if it waits on nothing."""
    deadline = time.monotonic() + wait
    while True:
        left = max(0.0, deadline - time.monotonic())
        try:
            value: Any = database.client.get_event(run_id, APPROVAL_EVENT, timeout_seconds=left)
            break
        except sa.exc.OperationalError:
            # A database the run's process is still creating has no tables yet.
            if time.monotonic() >= deadline:
                raise
            time.sleep(POLL_SECONDS)
    if not isinstance(value, dict):
        _status(database, run_id)  # an unknown run is an error, not "nothing pending"
        return None
    pending = PendingApproval(run_id, value["call_id"], value["tool"], value["arguments"])
    return pending, str(value["key"])


def _status(database: _Database, run_id: str) -> str:
    found = database.client.list_workflows(
        workflow_ids=[run_id], load_input=False, load_output=False
    )
    if not found:
        raise RunNotFoundError(f"no durable run {run_id!r} in {database.shown}")
    return str(found[0].status)


def check_reachable(database_url: str, *, timeout: float = 10.0) -> None:
    """Connect to a PostgreSQL system database once, to fail fast (DBOS itself would retry
    for ever); a SQLite one is created where it is missing, so it is not checked.

    Raises:
        UserError: The URL is neither SQLite nor PostgreSQL.
        SystemDatabaseError: The server cannot be reached or refuses the login (the password
            masked).
    """
    url = parsed_url(database_url)
    if url.get_backend_name() == "sqlite":
        return
    password = Secret(url.password if isinstance(url.password, str) else None)
    shown = url.render_as_string(hide_password=True)
    engine = sa.create_engine(
        url.set(drivername="postgresql+psycopg"),
        connect_args={"connect_timeout": max(1, math.ceil(timeout))},
        poolclass=sa.pool.NullPool,
    )
    try:
        with engine.connect():
            pass
    except sa.exc.SQLAlchemyError as exc:
        cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        said = password.redact(str(cause).strip().splitlines()[0] if str(cause).strip() else "")
        raise SystemDatabaseError(
            f"cannot reach DBOS's system database at {shown}: {type(cause).__name__}: {said}"
        ) from None
    finally:
        engine.dispose()
