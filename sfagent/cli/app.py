"""The `sfagent` command: run, chat with, and inspect tool-calling agents from a terminal.

```
sfagent run FILE_OR_MODULE "prompt"   one run, shown live (or --json)
sfagent chat FILE_OR_MODULE           a conversation with history (--session ID keeps it)
sfagent tools FILE_OR_MODULE          the `tools` JSON exactly as sent
sfagent models                        the model ids your key can use
sfagent batch TASKS --agent FILE --out RESULTS
                                      many tasks, under rate limits, resumable
                                      (--engine dbos: on workers on many machines)
sfagent worker --agent FILE           run such a batch's tasks, on any machine
sfagent pending RUN_ID                the call a durable run waits to have approved
sfagent approve RUN_ID [--deny]       answer it, from any process
```

Without ``SILICONFLOW_API_KEY`` the agent runs on the built-in offline demo model. Errors are
one line on stderr; see `EXIT_CODES`. The library never prints: this module does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sfagent._version import __version__
from sfagent.cli._approve import add_approval_commands
from sfagent.cli._load import CLIError, load_target
from sfagent.cli._report import describe_run_error, report

if TYPE_CHECKING:
    from sfagent.agent import Agent
    from sfagent.cli._commands import RunOptions

__all__ = ["EXIT_CODES", "main"]

EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "the run ended without an answer (turn limit, budget, a tool failing...)",
    2: "usage error: bad option, file, module, tools, prompt file, missing key",
    3: "the API failed: an HTTP error status, a connection error or a timeout",
    4: "approve/pending: no durable run with that id",
    5: "approve/pending/worker/batch --engine dbos: DBOS's database cannot be reached or read",
    70: "internal error (a bug: rerun with --debug for the traceback)",
    130: "interrupted (Ctrl-C)",
}
"""What each exit code of `sfagent` means."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `sfagent` command.

    Args:
        argv: The arguments (without the program name); ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit code (see `EXIT_CODES`).
    """
    _tolerant_output()
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # argparse fills an optional positional before the options that follow it: take the
    # prompt of `run FILE --offline "prompt"` back from the leftovers.
    if extra and getattr(args, "prompt", "") is None and not extra[0].startswith("-"):
        args.prompt, extra = extra[0], extra[1:]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.debug:
        logging.basicConfig(format="%(name)s: %(message)s")
        logging.getLogger("sfagent").setLevel(logging.DEBUG)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.handler(args)
        return code
    except KeyboardInterrupt:
        sys.stdout.flush()
        sys.stderr.write("\nInterrupted.\n")
        _exit_now_if_threads_linger(130)
        return 130
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        return report(exc, debug=args.debug)


# --- commands --------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from sfagent.cli._commands import run_once

    prompt = _read_prompt(args.prompt, args.prompt_file)
    out = sys.stdout
    # With --json, stdout holds the JSON only: what the file or its tools print goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        agent, model_id, demo = _agent_for(args)
        return run_once(
            agent,
            prompt,
            model_id=model_id,
            demo=demo,
            options=_options(args),
            as_json=args.json,
            out=out,
        )


def _cmd_chat(args: argparse.Namespace) -> int:
    from sfagent.cli._commands import chat_loop

    agent, _, _ = _agent_for(args)
    session = None
    if args.session is not None:
        from sfagent.cli._sessions import open_session

        session = open_session(args.session, args.sessions_db, sys.stderr)
    elif args.sessions_db is not None:
        raise CLIError("--sessions-db needs --session ID (the conversation to keep there)")
    return chat_loop(
        agent,
        stream=args.stream,
        out=sys.stdout,
        err=sys.stderr,
        read_line=_line_reader(sys.stdin),
        describe=lambda exc: describe_run_error(exc, partial=False),
        session=session,
    )


def _cmd_batch(args: argparse.Namespace) -> int:
    from sfagent.cli._batch import BatchOptions, run_batch_command

    options = BatchOptions(
        tasks=args.tasks,
        out=args.out,
        template=args.template,
        journal=args.journal,
        resume=args.resume,
        force=args.force,
        rpm=args.rpm,
        tpm=args.tpm,
        rpd=args.rpd,
        tpd=args.tpd,
        concurrency=args.concurrency,
        budget=args.budget,
        transcripts=args.transcripts,
        report=args.report,
        progress=not args.no_progress,
        via_batch_api=args.via == "batch-api",
        base_url=args.base_url,
        completion_window=args.completion_window,
        poll_interval=args.poll_interval,
        job=args.job,
    )
    if args.engine == "dbos":
        _check_dbos_options(args)
    elif args.database_url or args.job or args.name:
        raise CLIError("--database-url, --job and --name go with --engine dbos")
    args.target, args.stream = args.agent, False
    if options.via_batch_api and (args.offline or not _key_set()):
        raise CLIError("--via batch-api needs SILICONFLOW_API_KEY: the demo model has no batch API")
    # What the agent's file prints must not mix with the progress line.
    with contextlib.redirect_stdout(sys.stderr):
        agent, _, _ = _agent_for(args)
        if args.engine == "dbos":
            from sfagent.cli._distributed import agent_name_for, database_url, run_dbos_batch

            name = args.name or agent_name_for(args.agent)
            url = database_url(args.database_url)
            return run_dbos_batch(agent, name, options, url, sys.stderr)
        return run_batch_command(agent, options, sys.stderr)


def _check_dbos_options(args: argparse.Namespace) -> None:
    if args.via == "batch-api":
        raise CLIError("--engine dbos runs tasks on your workers: it cannot go --via batch-api")
    if args.journal or args.force:
        raise CLIError(
            "--engine dbos keeps its record in the database: --journal and --force do not "
            "apply (--resume continues a --job)"
        )


def _cmd_worker(args: argparse.Namespace) -> int:
    from sfagent.cli._distributed import (
        agent_name_for,
        database_url,
        default_worker_id,
        run_worker,
    )

    args.target, args.stream = args.agent, False
    with contextlib.redirect_stdout(sys.stderr):
        agent, _, _ = _agent_for(args)
    name = args.name or agent_name_for(args.agent)
    worker_id = args.worker_id or default_worker_id()
    return run_worker(agent, name, database_url(args.database_url), worker_id, sys.stderr)


def _key_set() -> bool:
    from sfagent.cli._commands import api_key_set

    return api_key_set()


def _cmd_tools(args: argparse.Namespace) -> int:
    from sfagent.cli._commands import api_key_set

    found = load_target(args.target, offline=not api_key_set())
    sys.stdout.write(json.dumps(found.tools.schemas, indent=2, ensure_ascii=False) + "\n")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from sfagent.cli._commands import list_models

    return list_models(args.base_url, sys.stdout)


def _options(args: argparse.Namespace) -> RunOptions:
    from sfagent.cli._commands import RunOptions, api_key_set

    return RunOptions(
        model=args.model,
        base_url=args.base_url,
        max_turns=args.max_turns,
        instructions=args.instructions,
        offline=args.offline or not api_key_set(),
        stream=args.stream,
    )


def _agent_for(args: argparse.Namespace) -> tuple[Agent[Any, Any], str, bool]:
    from sfagent.cli._commands import OFFLINE_NOTICE, api_key_set, build_agent

    options = _options(args)
    found = load_target(args.target, offline=options.offline)
    agent, model_id, demo = build_agent(found, options)
    if demo and not args.offline and not api_key_set():
        sys.stderr.write(OFFLINE_NOTICE + "\n")
        sys.stderr.flush()
    return agent, model_id, demo


# --- input -----------------------------------------------------------------------------------


def _read_prompt(prompt: str | None, prompt_file: str | None) -> str:
    if prompt is not None and prompt_file is not None:
        raise CLIError("give the prompt as an argument or with --prompt-file, not both")
    if prompt_file is None:
        if prompt is None or not prompt.strip():
            raise CLIError('missing prompt: sfagent run FILE "prompt" (or --prompt-file PATH)')
        return prompt
    if prompt_file == "-":
        text = sys.stdin.read()
        source = "stdin"
    else:
        path = Path(prompt_file)
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CLIError(f"prompt file not found: {path}") from None
        except IsADirectoryError:
            raise CLIError(f"prompt file is a directory: {path}") from None
        except UnicodeDecodeError:
            raise CLIError(f"prompt file is not UTF-8 text: {path}") from None
        except OSError as exc:
            raise CLIError(f"cannot read prompt file {path}: {exc.strerror}") from None
    if not text.strip():
        raise CLIError(f"the prompt from {source} is empty")
    return text.strip()


def _line_reader(stdin: TextIO) -> Callable[[str], str | None]:
    """`input()` with a prompt on a terminal; plain lines from a pipe. ``None`` at the end."""

    def read(prompt: str) -> str | None:
        if stdin.isatty():
            try:
                return input(prompt)
            except EOFError:
                sys.stdout.write("\n")
                return None
        line = stdin.readline()
        return line if line else None

    return read


def _exit_now_if_threads_linger(code: int) -> None:
    """Exit at once if a tool thread still runs: interpreter shutdown would wait for it."""
    if any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _tolerant_output() -> None:
    """Never crash printing a character the terminal's encoding lacks."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")


# --- arguments -------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sfagent",
        description="Tool-calling agents on SiliconFlow. Without SILICONFLOW_API_KEY, "
        "runs on the offline demo model.",
    )
    parser.add_argument("--version", action="version", version=f"sfagent {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.set_defaults(command=None)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and debug logs",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="run an agent on one prompt")
    _target(run)
    run.add_argument("prompt", nargs="?", help="the user's message")
    run.add_argument(
        "--prompt-file", metavar="PATH", help="read the prompt from PATH (- for stdin)"
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON (output, usage, turns, messages) only",
    )
    _agent_options(run)
    run.set_defaults(command="run", handler=_cmd_run)

    _chat_parser(sub, common)

    tools = sub.add_parser("tools", parents=[common], help="print the tools JSON as sent")
    _target(tools)
    tools.set_defaults(command="tools", handler=_cmd_tools)

    _batch_parser(sub, common)
    _worker_parser(sub, common)
    add_approval_commands(sub, common)

    models = sub.add_parser("models", parents=[common], help="list the models your key can use")
    models.add_argument("--base-url", help="API base URL (default: SILICONFLOW_BASE_URL or .cn)")
    models.set_defaults(command="models", handler=_cmd_models)
    return parser


def _batch_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    batch = sub.add_parser(
        "batch",
        parents=[common],
        help="run many tasks through an agent, under rate limits, resumable",
        description="Run every task of a JSONL or CSV file through an agent; one result line "
        "per task in --out. A journal beside it records each step: --resume after a crash "
        "pays for nothing twice.",
    )
    batch.add_argument("tasks", metavar="TASKS", help="a .jsonl or .csv file of tasks")
    batch.add_argument(
        "--agent",
        required=True,
        metavar="FILE_OR_MODULE",
        help="the agent or tools (a file or module, :NAME to pick one)",
    )
    batch.add_argument("--out", required=True, metavar="PATH", help="results, one JSON line each")
    batch.add_argument("--template", help="the prompt, with {field} filled from each row")
    batch.add_argument("--journal", metavar="PATH", help="the journal (default: OUT.journal)")
    batch.add_argument("--resume", action="store_true", help="continue the journal's batch")
    batch.add_argument(
        "--force", action="store_true", help="resume although the agent or template changed"
    )
    for name, what in (("rpm", "requests per minute"), ("tpm", "tokens per minute"),
                       ("rpd", "requests per day"), ("tpd", "tokens per day")):  # fmt: skip
        batch.add_argument(f"--{name}", type=_positive, metavar="N", help=f"at most N {what}")
    batch.add_argument(
        "--concurrency", type=_positive, default=16, metavar="N", help="runs at once (16)"
    )
    batch.add_argument("--budget", metavar="CNY", help="start no task once this much is spent")
    batch.add_argument("--transcripts", action="store_true", help="keep each run's messages")
    batch.add_argument("--report", metavar="PATH", help="write an HTML report there")
    batch.add_argument("--no-progress", action="store_true", help="no live progress line")
    _batch_engine_options(batch)
    _agent_options(batch, stream=False)
    batch.set_defaults(command="batch", handler=_cmd_batch)


def _chat_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    chat = sub.add_parser("chat", parents=[common], help="talk with an agent, keeping history")
    _target(chat)
    _agent_options(chat)
    chat.add_argument(
        "--session",
        metavar="ID",
        help="keep the conversation under ID, and resume it if it exists",
    )
    chat.add_argument(
        "--sessions-db",
        metavar="PATH",
        help="the SQLite file of --session (default: $SFAGENT_SESSIONS_DB, "
        "else ~/.local/share/sfagent/sessions.db)",
    )
    chat.set_defaults(command="chat", handler=_cmd_chat)


def _batch_engine_options(batch: argparse.ArgumentParser) -> None:
    """Where the batch runs: `--via batch-api` (SiliconFlow's queue), `--engine dbos` (workers)."""
    batch.add_argument(
        "--via",
        choices=["chat", "batch-api"],
        default="chat",
        help="batch-api: single-turn tasks without tools as SiliconFlow batches (half price)",
    )
    batch.add_argument(
        "--completion-window", default="24h", help="with --via batch-api: 24h to 336h (24h)"
    )
    batch.add_argument(
        "--poll-interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="with --via batch-api: seconds between polls (60)",
    )
    batch.add_argument(
        "--engine",
        choices=["local", "dbos"],
        default="local",
        help="dbos: put the tasks on a durable queue for `sfagent worker`s on any machine",
    )
    _database_url_option(batch)
    batch.add_argument("--job", metavar="ID", help="with --engine dbos: the job's id (TASKS' name)")
    _name_option(batch)


def _worker_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    worker = sub.add_parser(
        "worker",
        parents=[common],
        help="run the tasks of `sfagent batch --engine dbos` (on any number of machines)",
        description="Take tasks of the agent's batches from the database's durable queue and "
        "run them, until Ctrl-C or SIGTERM. Tasks in progress at a stop (or a crash) resume "
        "from their last recorded step when a worker with the same --worker-id starts.",
    )
    worker.add_argument(
        "--agent",
        required=True,
        metavar="FILE_OR_MODULE",
        help="the same agent the batch was submitted with (:NAME to pick one)",
    )
    _database_url_option(worker)
    worker.add_argument(
        "--worker-id",
        metavar="ID",
        help="this worker's stable, unique id (default: the machine's name; give each "
        "worker on one machine its own)",
    )
    _name_option(worker)
    _agent_options(worker, stream=False)
    worker.set_defaults(command="worker", handler=_cmd_worker)


def _database_url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="DBOS's system database, postgresql://... across machines (default: "
        "$DBOS_SYSTEM_DATABASE_URL, else ./sfagent-durable.sqlite)",
    )


def _name_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--name",
        metavar="NAME",
        help="with --engine dbos: the agent's name on the queue, the same for the batch and "
        "its workers (default: the agent file's name, with :NAME)",
    )


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="FILE_OR_MODULE",
        help="a Python file or dotted module with @tool functions, a ToolSet or an Agent "
        "(append :NAME to pick one)",
    )


def _agent_options(parser: argparse.ArgumentParser, *, stream: bool = True) -> None:
    parser.add_argument("--model", help="model id (default: the file's agent's, or DeepSeek-V3)")
    parser.add_argument("--max-turns", type=_positive, metavar="N", help="model requests allowed")
    parser.add_argument("--instructions", help="system prompt (replaces the file's)")
    parser.add_argument("--base-url", help="API base URL, ending in /v1")
    parser.add_argument("--offline", action="store_true", help="run on the offline demo model")
    if not stream:
        return
    parser.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stream requests (default: on)",
    )


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
