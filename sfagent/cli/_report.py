"""How a failed command is told: one line on stderr and the exit code `EXIT_CODES` gives it."""

from __future__ import annotations

import os
import sys
import traceback

from sfagent._secret import Secret
from sfagent.cli._load import CLIError
from sfagent.client.config import API_KEY_ENV

__all__ = ["describe_run_error", "report"]


def report(exc: BaseException, *, debug: bool) -> int:
    from sfagent.exceptions import AgentRunError, APIError, ModelRequestError, UserError

    if isinstance(exc, CLIError):
        message, code = exc.message, exc.exit_code
    elif isinstance(exc, ModelRequestError | APIError):
        message, code = _describe_api_error(exc), 3
    elif isinstance(exc, AgentRunError):
        message, code = describe_run_error(exc), 1
    elif isinstance(exc, UserError):
        message, code = str(exc), 2
    else:
        if debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__)
        message = f"internal error: {type(exc).__name__}: {_first_line(str(exc))}"
        if not debug:
            message += " (rerun with --debug for the traceback)"
        code = 70
    if debug and not isinstance(exc, CLIError) and code != 70:
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    sys.stdout.flush()
    sys.stderr.write(f"error: {_redact(message)}\n")
    return code


def describe_run_error(exc: BaseException, *, partial: bool = True) -> str:
    from sfagent.exceptions import AgentRunError, ModelRequestError

    if isinstance(exc, ModelRequestError):
        return _describe_api_error(exc)
    text = _first_line(str(exc))
    result = exc.result if isinstance(exc, AgentRunError) else None
    usage = getattr(result, "usage", None)
    if usage is not None and partial:
        done = f"{_plural(usage.requests, 'request')}, {_plural(usage.tool_calls, 'tool call')}"
        text += f" (partial result kept: {done}; --json prints it)"
    return text


_HINTS: dict[int, str] = {
    401: "check SILICONFLOW_API_KEY (keys of siliconflow.cn and .com differ)",
    403: "the model may need real-name verification, or the balance ran out",
    404: "check --base-url: it should end in /v1",
}


def _describe_api_error(exc: BaseException) -> str:
    from sfagent.exceptions import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        ModelRequestError,
    )

    error = exc.error if isinstance(exc, ModelRequestError) else exc
    if isinstance(error, APITimeoutError):
        return f"the API timed out: {_first_line(str(error))}"
    if isinstance(error, APIConnectionError):
        return f"cannot reach the API: {_first_line(str(error))}"
    text = _first_line(str(error))
    if isinstance(error, APIStatusError):
        hint = _HINTS.get(error.status_code)
        if error.code == 20012:
            hint = "check --model (`sfagent models` lists the ids)"
        if hint:
            text += f" — {hint}"
    return text


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _redact(text: str) -> str:
    # The library's errors are clean already; this is the last line, for the key in the
    # environment (`Secret.redact`: the key and any 6+ characters of it, nothing for a short key).
    return Secret(os.environ.get(API_KEY_ENV, "").strip()).redact(text)
