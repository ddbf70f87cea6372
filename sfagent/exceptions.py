"""Every error sfagent raises, in one tree.

```
SFAgentError
├── UserError                      misuse found at definition or configuration time
│   ├── ToolDefinitionError        a tool or tool set that cannot be sent to the API
│   └── ConfigurationError         e.g. no API key, an invalid request setting
├── ToolArgumentsError             the model's arguments for a tool are malformed or invalid
├── ToolOutputError                a tool's return value cannot be turned into text
├── ModelRetry                     raised by a tool: send this message to the model instead
├── StopRun                        raised by a tool: end the run now, with this output
├── AgentRunError                  a run ended without an answer; `.result` holds what it did
│   ├── MaxTurnsExceeded
│   ├── BudgetExceeded             the token or wall-clock budget ran out
│   ├── ToolRetriesExceeded        a tool kept failing past its retry budget
│   ├── RunawayLoopError           the same call with the same arguments, over and over
│   ├── OutputTruncatedError       finish_reason "length": the answer or a tool call was cut off
│   ├── OutputValidationError      structured output still invalid after its retries
│   └── ModelRequestError          the model request failed (`.error` is the APIError)
└── APIError                       anything that went wrong talking to the API
    ├── APIConnectionError
    │   └── APITimeoutError
    ├── APIResponseValidationError a response that does not parse
    │   └── ResponseTooLargeError  a body or stream past `max_response_bytes`
    ├── IncompleteStreamError      a stream that ended before `[DONE]`
    └── APIStatusError             an HTTP error status (or an error object mid-stream)
        ├── BadRequestError          400
        ├── AuthenticationError      401
        ├── PermissionDeniedError    403
        ├── NotFoundError            404
        ├── RateLimitError           429
        └── InternalServerError      5xx
            ├── ServiceUnavailableError  503
            └── GatewayTimeoutError      504
```

This module imports nothing from sfagent, so every other module can use it. Errors carry data
as attributes; none of them logs anything, and none ever holds the API key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AgentRunError",
    "ArgumentProblem",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceeded",
    "ConfigurationError",
    "GatewayTimeoutError",
    "IncompleteStreamError",
    "InternalServerError",
    "MaxTurnsExceeded",
    "ModelRequestError",
    "ModelRetry",
    "NotFoundError",
    "OutputTruncatedError",
    "OutputValidationError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseTooLargeError",
    "RunawayLoopError",
    "SFAgentError",
    "ServiceUnavailableError",
    "StopRun",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolOutputError",
    "ToolRetriesExceeded",
    "ToolSelectionError",
    "UserError",
    "status_error_class",
]


class SFAgentError(Exception):
    """Root of every error sfagent raises.

    Every one pickles with its attributes (a durable engine records a step's error that way),
    although most take keyword arguments that `Exception`'s own pickling would not pass back.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_error, (type(self), self.args, dict(self.__dict__)))


def _restore_error(
    cls: type[SFAgentError], args: tuple[Any, ...], state: dict[str, Any]
) -> SFAgentError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


# --- misuse ----------------------------------------------------------------------------------


class UserError(SFAgentError):
    """The library was used in a way that cannot work; found before anything is sent."""


class ToolDefinitionError(UserError):
    """A tool (or tool set) cannot be expressed as a valid `tools` entry.

    Raised when the tool is defined, never later as an HTTP 400.
    """


class ConfigurationError(UserError):
    """A client or request setting is missing or out of range."""


# --- tools at run time -----------------------------------------------------------------------


@dataclass(frozen=True)
class ArgumentProblem:
    """One thing wrong with a tool call's arguments.

    Attributes:
        path: Where the problem is, e.g. ``"city"`` or ``"items.2.qty"``; ``""`` for the
            whole object.
        message: What was expected.
        got: A short rendering of what came instead, or ``None`` when nothing came.
    """

    path: str
    message: str
    got: str | None = None

    def __str__(self) -> str:
        where = self.path or "arguments"
        if self.got is None:
            return f"{where}: {self.message}"
        return f"{where}: {self.message} (got {self.got})"


class ToolArgumentsError(SFAgentError):
    """The model's arguments for a tool could not be parsed or validated.

    The text is short and written to be sent back to the model as the tool's result.

    Attributes:
        tool_name: The tool the arguments were meant for.
        problems: Every problem found, all at once.
    """

    def __init__(self, tool_name: str, problems: Sequence[ArgumentProblem]) -> None:
        self.tool_name = tool_name
        self.problems: tuple[ArgumentProblem, ...] = tuple(problems)
        lines = "; ".join(str(p) for p in self.problems)
        super().__init__(f"Invalid arguments for tool '{tool_name}': {lines}")


class ToolOutputError(SFAgentError):
    """A tool returned a value that cannot be turned into text for the model."""


class ModelRetry(SFAgentError):
    """Raise from a tool to send `message` to the model as the call's result, on purpose.

    Use it when the model can fix the call ("no such city; try its English name"). It counts
    against the tool's retry budget like any failed call.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StopRun(SFAgentError):
    """Raise from a tool to end the run at once; the run's `output` becomes `output`.

    Attributes:
        output: The run's final output (``None`` if not given).
    """

    def __init__(self, output: Any = None) -> None:
        super().__init__("a tool stopped the run")
        self.output = output


# --- agent runs ------------------------------------------------------------------------------


class AgentRunError(SFAgentError):
    """A run ended without a final answer. Nothing is lost: `result` holds the partial run.

    Attributes:
        result: The run so far (a `RunResult`): its messages, usage and turn records, with
            `output` set to ``None``. Pass `result.messages` to a new run to continue.
    """

    def __init__(self, message: str, *, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class MaxTurnsExceeded(AgentRunError):
    """The run used `max_turns` model requests and the model still wanted tools."""


class BudgetExceeded(AgentRunError):
    """The run's token budget or wall-clock budget ran out.

    Attributes:
        budget: ``"tokens"`` or ``"time"``.
    """

    def __init__(self, message: str, *, budget: str, result: Any = None) -> None:
        super().__init__(message, result=result)
        self.budget = budget


class ToolRetriesExceeded(AgentRunError):
    """A tool's calls failed (bad arguments, exceptions, timeouts) more often than its budget.

    Attributes:
        tool_name: The tool whose budget ran out.
    """

    def __init__(self, message: str, *, tool_name: str, result: Any = None) -> None:
        super().__init__(message, result=result)
        self.tool_name = tool_name


class RunawayLoopError(AgentRunError):
    """The model repeated the same tool call with the same arguments too many times.

    Attributes:
        tool_name: The tool being called over and over.
        arguments: The repeated arguments (JSON text).
    """

    def __init__(self, message: str, *, tool_name: str, arguments: str, result: Any = None) -> None:
        super().__init__(message, result=result)
        self.tool_name = tool_name
        self.arguments = arguments


class OutputTruncatedError(AgentRunError):
    """`finish_reason` was ``length``: the output hit `max_tokens` or the context limit.

    A cut-off tool call is never executed.

    Attributes:
        tool_call_truncated: Whether the cut fell inside a tool call.
    """

    def __init__(self, message: str, *, tool_call_truncated: bool, result: Any = None) -> None:
        super().__init__(message, result=result)
        self.tool_call_truncated = tool_call_truncated


class ToolSelectionError(AgentRunError):
    """The agent's `prepare_tools` hook raised, or chose tools a request cannot carry: names
    or tools the agent does not hold, duplicates, more than 128, or an awaitable (the hook is
    sync). Its `__cause__` is what the hook raised, if it raised."""


class OutputValidationError(AgentRunError):
    """The final answer did not match `output_type`, even after the model was re-asked."""


class ModelRequestError(AgentRunError):
    """A model request failed during a run.

    Attributes:
        error: The underlying `APIError` (e.g. `AuthenticationError`, `RateLimitError`).
    """

    def __init__(self, message: str, *, error: Exception, result: Any = None) -> None:
        super().__init__(message, result=result)
        self.error = error


# --- the API ---------------------------------------------------------------------------------


class APIError(SFAgentError):
    """Something went wrong talking to the chat-completions API.

    Attributes:
        message: What went wrong, as the server or the transport said it.
    """

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class APIConnectionError(APIError):
    """The request never got an HTTP answer (DNS, refused, reset, TLS...)."""


class APITimeoutError(APIConnectionError):
    """The request timed out: one phase (connect, read, write, pool) or the call's total bound.

    Attributes:
        partial: For a stream, what was received before the time ran out (a `ChatCompletion`
            with no finish reason filled in), so the text streamed so far is not lost;
            ``None`` otherwise.
    """

    def __init__(self, message: str, *, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial


class APIResponseValidationError(APIError):
    """The server answered, but the body is not a response sfagent can read.

    Attributes:
        body: The raw body text (shortened), for diagnosis.
    """

    def __init__(self, message: str, *, body: str | None = None) -> None:
        super().__init__(message)
        self.body = body


class ResponseTooLargeError(APIResponseValidationError):
    """A response grew past the client's size cap, which no real answer reaches.

    The cap bounds the decoded size of a body (however it was compressed), the text,
    reasoning and tool-call arguments a stream accumulates, and any one unfinished line or
    event of a stream. Raise it with ``max_response_bytes=`` on the client.

    Attributes:
        limit: The cap that was passed, in bytes.
    """

    def __init__(self, message: str, *, limit: int, body: str | None = None) -> None:
        super().__init__(message, body=body)
        self.limit = limit


class IncompleteStreamError(APIError):
    """A stream ended before `data: [DONE]`.

    Attributes:
        partial: What was received before the stream broke (the accumulated response so far).
    """

    def __init__(self, message: str, *, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial


class APIStatusError(APIError):
    """The API answered with an error status, or sent an error object inside a stream.

    Attributes:
        status_code: The HTTP status (for a mid-stream error, the status its code implies).
        code: The error code when the body has one: SiliconFlow's number (e.g. 20012, 20015,
            50505, 60000), or a named code as text (OpenAI's ``"context_length_exceeded"``).
        message: The server's message.
        trace_id: The `x-siliconcloud-trace-id` response header, when present.
        body: The parsed body (dict or string), for diagnosis.
        retry_after: Seconds the response's ``Retry-After`` header asked to wait, if any.
    """

    retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: int | str | None = None,
        trace_id: str | None = None,
        body: object = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.trace_id = trace_id
        self.body = body

    def __str__(self) -> str:
        parts = [f"HTTP {self.status_code}"]
        if self.code is not None:
            parts.append(f"code {self.code}")
        text = f"{', '.join(parts)}: {self.message}"
        if self.trace_id:
            text += f" (trace id {self.trace_id})"
        return text


class BadRequestError(APIStatusError):
    """HTTP 400: bad parameters (SiliconFlow codes 20012 unknown model, 20015 validation)."""


class AuthenticationError(APIStatusError):
    """HTTP 401: the key is missing or invalid (or belongs to the other site, .cn vs .com)."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403: no permission (real-name verification, balance)."""


class NotFoundError(APIStatusError):
    """HTTP 404: wrong path (check that the base URL ends in /v1)."""


class RateLimitError(APIStatusError):
    """HTTP 429: an RPM/RPD/TPM/TPD limit was reached; the message says which."""


class InternalServerError(APIStatusError):
    """HTTP 5xx: the server failed."""


class ServiceUnavailableError(InternalServerError):
    """HTTP 503: the model service is overloaded."""


class GatewayTimeoutError(InternalServerError):
    """HTTP 504: the server timed out; streaming is SiliconFlow's advice for long answers."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    504: GatewayTimeoutError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """Return the exception class for an HTTP status code."""
    cls = _STATUS_CLASSES.get(status_code)
    if cls is not None:
        return cls
    if status_code >= 500:
        return InternalServerError
    return APIStatusError


# --- a failed request inside a run -------------------------------------------------------------

_RUN_FAILURES: dict[type[APIError], type[ModelRequestError]] = {}


def model_request_error(error: APIError, *, message: str, result: Any) -> ModelRequestError:
    """The error a run ends with when a request fails: both a `ModelRequestError` and the
    class of `error`.

    So ``except AuthenticationError`` (or `RateLimitError`, `APITimeoutError`...) around
    ``agent.run_sync(...)`` catches it, as it would around the client, while ``.result`` keeps
    the partial run and ``.error`` the original error. Its attributes (``status_code``,
    ``code``, ``trace_id``...) are the original's.

    Args:
        error: How the request failed.
        message: The run's message for it.
        result: The partial run.
    """
    cls = _RUN_FAILURES.get(type(error))
    if cls is None:
        cls = _RUN_FAILURES[type(error)] = _run_failure_class(type(error))
    combined = cls.__new__(cls)
    combined.__dict__.update(error.__dict__)
    combined.args = (message,)
    combined.result = result
    combined.error = error
    combined._run_message = message  # type: ignore[attr-defined]
    return combined


def _run_failure_class(base: type[APIError]) -> type[ModelRequestError]:
    def __str__(self: Any) -> str:
        return str(self._run_message)

    def __reduce__(self: Any) -> tuple[Any, ...]:
        # The class is made at run time, so pickle cannot find it by name: rebuild it instead.
        return (_restore_run_failure, (self.error, self._run_message, self.result))

    namespace = {
        "__module__": __name__,
        "__str__": __str__,
        "__reduce__": __reduce__,
        "__doc__": ModelRequestError.__doc__,
    }
    # MRO: the run's branch first (its data), then the API error's, meeting at SFAgentError.
    return type(f"ModelRequestError[{base.__name__}]", (ModelRequestError, base), namespace)


def _restore_run_failure(error: APIError, message: str, result: Any) -> ModelRequestError:
    return model_request_error(error, message=message, result=result)
