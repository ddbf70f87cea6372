"""Agent runs as durable workflows on DBOS: a crash or a redeploy resumes a run from its last
completed step (the ``sfagent[dbos]`` extra).

`DurableAgent` runs an `Agent` as a DBOS workflow: each model request and each tool call is a
DBOS step, recorded in DBOS's system database (SQLite on one machine, PostgreSQL across
machines) before the run goes on. A process killed mid-run and started again finishes the run
from the last recorded step; no recorded model request is sent again. See the "Scaling out"
page of the docs.

Importing this package imports ``dbos`` (about half a second); ``import sfagent`` never does.
"""

from __future__ import annotations

from sfagent.durable._approval import (
    NoPendingApprovalError,
    PendingApproval,
    RunNotFoundError,
    SystemDatabaseError,
    approve,
    pending_approval,
)
from sfagent.durable._dbos import (
    APP_VERSION,
    WORKFLOW_NAME,
    DBOSSteps,
    DurableAgent,
    DurableRun,
    DurableRunError,
    launch,
    shutdown,
    wait_for_approval,
)

__all__ = [
    "APP_VERSION",
    "WORKFLOW_NAME",
    "DBOSSteps",
    "DurableAgent",
    "DurableRun",
    "DurableRunError",
    "NoPendingApprovalError",
    "PendingApproval",
    "RunNotFoundError",
    "SystemDatabaseError",
    "approve",
    "launch",
    "pending_approval",
    "shutdown",
    "wait_for_approval",
]
