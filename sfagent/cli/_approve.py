"""`sfagent approve` and `sfagent pending`: answer, or look at, the approval a durable run waits
for, from any machine that reaches its system database.

```
sfagent pending RUN_ID [--database-url URL] [--wait S] [--json]
sfagent approve RUN_ID [--database-url URL] [--deny] [--call CALL_ID] [--by NAME] [--wait S]
```

The database comes from ``--database-url``, else ``DBOS_SYSTEM_DATABASE_URL`` (DBOS's own
variable; keeps a password out of the process list), else `launch`'s default file. Exit codes:
0 done (or, for ``pending``, the run waits for an approval); 1 the run waits for no approval
(or for another call than ``--call``); 2 a bad argument; 4 no run with that id; 5 the database
cannot be reached or read. Importing this module does not import DBOS: the commands do.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import TYPE_CHECKING, Any

from sfagent.cli._load import CLIError

if TYPE_CHECKING:
    from sfagent.durable import PendingApproval

__all__ = ["DATABASE_URL_ENV", "add_approval_commands"]

DATABASE_URL_ENV = "DBOS_SYSTEM_DATABASE_URL"
"""The environment variable read when ``--database-url`` is not given."""

NOT_WAITING, NO_SUCH_RUN, DATABASE_FAILED = 1, 4, 5


def add_approval_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``approve`` and ``pending`` to the `sfagent` command's subparsers."""
    approve = sub.add_parser(
        "approve",
        parents=[common],
        help="approve (or --deny) the tool call a durable run waits for",
        description="Answer the approval a durable run is parked on; the run goes on in "
        "whichever process runs it next (now, or at its next start).",
    )
    _run_arguments(approve)
    approve.add_argument("--deny", action="store_true", help="deny the call instead")
    approve.add_argument(
        "--call", metavar="CALL_ID", help="the call meant: refused if the run waits on another"
    )
    approve.add_argument("--by", metavar="NAME", help="who decided (kept with the answer)")
    approve.set_defaults(command="approve", handler=_cmd_approve)

    pending = sub.add_parser(
        "pending",
        parents=[common],
        help="show the tool call a durable run waits to have approved",
        description="Show the call a durable run is parked on (exit 0), or say that it waits "
        "for none (exit 1).",
    )
    _run_arguments(pending)
    pending.set_defaults(command="pending", handler=_cmd_pending)


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID", help="the durable run's id")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help=f"DBOS's system database (default: ${DATABASE_URL_ENV}, else "
        "sqlite:///sfagent-durable.sqlite here)",
    )
    parser.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for the run to reach an approval (0)",
    )
    parser.add_argument("--json", action="store_true", help="print the call as JSON")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def _cmd_pending(args: argparse.Namespace) -> int:
    durable = _durable()
    try:
        found = durable.pending_approval(
            args.run_id, database_url=_database_url(args), wait=args.wait
        )
    except durable.DurableRunError as exc:
        raise _cli_error(exc) from None
    if found is None:
        if args.json:
            sys.stdout.write(json.dumps({"run_id": args.run_id, "pending": None}) + "\n")
        sys.stderr.write(f"run {args.run_id!r} is not waiting for an approval\n")
        return NOT_WAITING
    if args.json:
        sys.stdout.write(json.dumps({"run_id": args.run_id, "pending": _fields(found)}) + "\n")
    else:
        sys.stdout.write(
            f"run {found.run_id!r} waits for an approval of call {found.call_id!r}: "
            f"{found.tool}({found.arguments})\n"
        )
    return 0


def _cmd_approve(args: argparse.Namespace) -> int:
    durable = _durable()
    try:
        answered = durable.approve(
            args.run_id,
            approved=not args.deny,
            call_id=args.call,
            database_url=_database_url(args),
            by=args.by,
            wait=args.wait,
        )
    except durable.DurableRunError as exc:
        raise _cli_error(exc) from None
    verdict = "denied" if args.deny else "approved"
    if args.json:
        fields = {"run_id": args.run_id, verdict: _fields(answered)}
        sys.stdout.write(json.dumps(fields) + "\n")
    else:
        sys.stdout.write(
            f"{verdict} call {answered.call_id!r} of run {answered.run_id!r}: "
            f"{answered.tool}({answered.arguments})\n"
        )
    return 0


def _durable() -> Any:
    try:
        import sfagent.durable as durable
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    return durable


def _database_url(args: argparse.Namespace) -> str | None:
    url: str | None = args.database_url or os.environ.get(DATABASE_URL_ENV) or None
    return url


def _cli_error(exc: Exception) -> CLIError:
    from sfagent.durable import NoPendingApprovalError, RunNotFoundError, SystemDatabaseError

    if isinstance(exc, NoPendingApprovalError):
        return CLIError(str(exc), exit_code=NOT_WAITING)
    if isinstance(exc, RunNotFoundError):
        return CLIError(str(exc), exit_code=NO_SUCH_RUN)
    if isinstance(exc, SystemDatabaseError):
        return CLIError(str(exc), exit_code=DATABASE_FAILED)
    return CLIError(str(exc), exit_code=2)


def _fields(found: PendingApproval) -> dict[str, str]:
    return {"call_id": found.call_id, "tool": found.tool, "arguments": found.arguments}
