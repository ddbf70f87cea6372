"""Agent runs as durable workflows on DBOS: a crash or a redeploy resumes a run from its last
completed step (the ``sfagent[dbos]`` extra).

`DurableAgent` runs an `Agent` as a DBOS workflow: each model request and each tool call is a
DBOS step, recorded in DBOS's system database (SQLite on one machine, PostgreSQL across
machines) before the run goes on. A process killed mid-run and started again finishes the run
from the last recorded step; no recorded model request is sent again. See the "Scaling out"
page of the docs.

A batch can run the same way across machines: `DurableBatch` puts its tasks on a durable
queue, and workers (`serve`, or ``sfagent worker``) anywhere the database is reachable run
them, the minute limits shared by all of them.

Importing this package imports ``dbos`` (about half a second); ``import sfagent`` never does.
"""

from __future__ import annotations

from sfagent.durable._approval import (
    NoPendingApprovalError,
    PendingApproval,
    RunNotFoundError,
    SystemDatabaseError,
    approve,
    check_reachable,
    pending_approval,
)
from sfagent.durable._batch import BATCH_TASK_WORKFLOW, DurableBatch, batch_queue, serve
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
from sfagent.durable._shared_limits import SharedRateLimiter

__all__ = [
    "APP_VERSION",
    "BATCH_TASK_WORKFLOW",
    "WORKFLOW_NAME",
    "DBOSSteps",
    "DurableAgent",
    "DurableBatch",
    "DurableRun",
    "DurableRunError",
    "NoPendingApprovalError",
    "PendingApproval",
    "RunNotFoundError",
    "SharedRateLimiter",
    "SystemDatabaseError",
    "approve",
    "batch_queue",
    "check_reachable",
    "launch",
    "pending_approval",
    "serve",
    "shutdown",
    "wait_for_approval",
]
