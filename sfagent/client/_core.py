"""The pure core that `SiliconFlow` and `AsyncSiliconFlow` share.

Everything the clients decide lives here and does no I/O: configuration from arguments and the
environment, request bodies and headers, status and body to typed error, parsing responses and
retry bookkeeping; a stream's bytes go to `sfagent.client.streaming.StreamState`. The clients
and their streams only move bytes, over httpx.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from sfagent._secret import Secret
from sfagent._version import __version__
from sfagent.client.config import TRACE_ID_HEADER, resolve_api_key, resolve_base_url
from sfagent.client.error_bodies import (
    error_from_response,
    error_from_stream_payload,
    invalid_body,
    is_error_reply,
    redacted_excerpt,
)
from sfagent.client.retry import RetryDecision, RetryPolicy, parse_retry_after
from sfagent.exceptions import (
    APIError,
    APIResponseValidationError,
    APIStatusError,
    BadRequestError,
    ConfigurationError,
)
from sfagent.messages import ChatCompletion
from sfagent.settings import ChatRequest, encode_body

__all__ = ["Attempts", "ClientCore"]

logger = logging.getLogger("sfagent")

RequestLike = ChatRequest | Mapping[str, Any]


class ClientCore:
    """Configuration and every I/O-free step of a call, shared by the sync and async clients.

    Args:
        api_key: The key, or ``None`` to read ``SILICONFLOW_API_KEY``.
        base_url: The API base (ending in ``/v1``), or ``None`` for ``SILICONFLOW_BASE_URL``
            or the default.
        retry: The retry policy; ``None`` switches retries off.
        default_headers: Headers sent with every request (``Authorization`` is always ours).
    """

    __slots__ = ("_auth", "_key", "base_url", "headers", "retry", "stream_usage")

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        retry: RetryPolicy | None,
        default_headers: Mapping[str, str] | None,
    ) -> None:
        self._key = Secret(resolve_api_key(api_key))  # never in a repr
        self.base_url = resolve_base_url(base_url)
        self.retry = retry if retry is not None else RetryPolicy.disabled()
        headers = {"User-Agent": f"sfagent/{__version__}", "Accept": "application/json"}
        headers.update(
            (name, value)
            for name, value in (default_headers or {}).items()
            if name.lower() != "authorization"
        )
        self.headers: dict[str, str] = headers
        """Headers for every request, without the credentials."""
        self._auth = {**headers, "Authorization": f"Bearer {self._key.value}"}
        self.stream_usage = not _sends_usage_unasked(self.base_url)
        """Whether streams ask for usage (``stream_options.include_usage``): OpenAI, vLLM and
        others send none unless asked; SiliconFlow sends running totals unasked, so it is not
        sent there. Turned off for good when an endpoint refuses the field."""

    def __repr__(self) -> str:
        return f"ClientCore(base_url={self.base_url!r})"

    # --- requests -------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The absolute URL of an endpoint path such as ``"/chat/completions"``."""
        return self.base_url + path

    def request_headers(self, *, stream: bool = False, json_body: bool = True) -> dict[str, str]:
        """Headers for one request, credentials included (never log these)."""
        headers = dict(self._auth)
        if json_body:
            headers["Content-Type"] = "application/json"
        if stream:
            headers["Accept"] = "text/event-stream"
        return headers

    def chat_body(self, request: RequestLike, *, stream: bool) -> bytes:
        """The JSON body of a chat completion, with ``stream`` set as the method asks.

        Raises:
            ConfigurationError: For a request that is not a `ChatRequest` or a dict, or that
                holds a value JSON cannot carry.
        """
        if isinstance(request, ChatRequest):
            body = request.to_body()
        elif isinstance(request, Mapping):
            body = dict(request)
        else:
            raise ConfigurationError(
                f"request must be a ChatRequest or a dict, got {type(request).__name__}"
            )
        if stream:
            body["stream"] = True
            if self.stream_usage and "stream_options" not in body:
                body["stream_options"] = {"include_usage": True}
        else:
            body.pop("stream", None)
        return encode_body(body)

    def refused_stream_usage(self, error: BaseException) -> bool:
        """Whether `error` is an endpoint refusing ``stream_options`` that we added; if so,
        streams stop asking (the caller sends the request again without it)."""
        if not self.stream_usage or not isinstance(error, BadRequestError):
            return False
        if "stream_options" not in error.message.lower():
            return False
        logger.warning("endpoint rejected stream_options; streams no longer ask for usage")
        self.stream_usage = False
        return True

    # --- responses ------------------------------------------------------------------------------

    def status_error(
        self, status_code: int, body: bytes, headers: Mapping[str, str]
    ) -> APIStatusError:
        """The typed error for an error status; the key is redacted from body and trace id."""
        trace_id = headers.get(TRACE_ID_HEADER)
        error = error_from_response(status_code, body, trace_id=trace_id, redact=self.redact)
        error.retry_after = parse_retry_after(headers.get("retry-after"))
        return error

    def redact(self, text: str) -> str:
        """`text` without the key or any run of 6 or more of its characters (`Secret.redact`).

        Everything the server sends that an error, a log line or an event keeps goes through
        this first: bodies before they are parsed and cut, trace ids, transport messages.
        """
        return self._key.redact(text)

    def parse_completion(self, body: bytes, *, trace_id: str | None) -> ChatCompletion:
        """Read a non-stream response body.

        Raises:
            APIResponseValidationError: When the body is not a chat completion.
            APIStatusError: When an HTTP 200 body is an error object (some gateways do this).
        """
        error: APIError
        try:
            completion = ChatCompletion.model_validate_json(body)
        except ValidationError as exc:
            error = invalid_body(
                "The response is not a chat completion", exc, body, redact=self.redact
            )
        else:
            if not is_error_reply(completion):
                return completion
            error = error_from_stream_payload(body, trace_id=trace_id, redact=self.redact)
        # Raised outside the handler: the parser's error quotes the raw body, so it must not
        # become this error's __context__.
        raise error

    def parse_models(self, body: bytes) -> list[str]:
        """Read ``GET /models``: the model ids, in the server's order."""
        try:
            data = json.loads(body)
            return [str(entry["id"]) for entry in data["data"]]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            problem = self.redact(repr(exc))
        # Outside the handler, for the reason `parse_completion` gives (a JSON error's .doc is
        # the whole body).
        error = APIResponseValidationError(
            f"The model list is not {{'data': [{{'id': ...}}]}}: {problem}",
            body=redacted_excerpt(body, self.redact),
        )
        raise error

    def attempts(self, *, deadline: float = math.inf) -> Attempts:
        """Fresh retry bookkeeping for one call.

        Args:
            deadline: The `time.monotonic` time the call must end by; no retry waits past it.
        """
        return Attempts(self.retry, deadline=deadline)


class Attempts:
    """Retry bookkeeping for one call: counts tries, tracks the time budget, logs decisions.

    Time spent waiting is counted as the delay asked for, so a fake sleep in tests keeps the
    budget arithmetic exact; time spent in requests is measured. The call's deadline (its total
    timeout) is read on the real clock: no retry starts whose wait would end at or past it.

    Args:
        policy: The client's retry policy.
        rand: Uniform random source for the jitter.
        deadline: The `time.monotonic` time the whole call must end by.
    """

    __slots__ = ("_rand", "_request_started", "_spent", "deadline", "number", "policy")

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        rand: Callable[[], float] = random.random,
        deadline: float = math.inf,
    ) -> None:
        self.policy = policy
        self._rand = rand
        self.deadline = deadline
        self.number = 0
        """The current try, 1 for the first."""
        self._spent = 0.0
        self._request_started = 0.0

    def begin(self) -> int:
        """Mark the start of a try; returns its number."""
        self.number += 1
        self._request_started = time.monotonic()
        return self.number

    def delay_after(self, error: APIError, *, retry_after: str | None = None) -> float:
        """The wait before the next try, or raise ``error`` when there is none.

        Args:
            error: How the try failed.
            retry_after: The response's ``Retry-After`` header, if any.
        """
        self._spent += time.monotonic() - self._request_started
        decision = self.policy.decide(
            error,
            attempt=self.number,
            elapsed=self._spent,
            retry_after=retry_after,
            rand=self._rand,
        )
        if decision.retry and time.monotonic() + decision.delay >= self.deadline:
            decision = RetryDecision(False, 0.0, "the call's total timeout ends first")
        if not decision.retry:
            if self.number > 1 or decision.reason != "not retryable":
                logger.debug("not retrying after attempt %d: %s", self.number, decision.reason)
            raise error
        logger.debug(
            "retrying in %.2f s after attempt %d (%s: %s)",
            decision.delay,
            self.number,
            decision.reason,
            type(error).__name__,
        )
        self._spent += decision.delay
        return decision.delay


_USAGE_UNASKED_HOSTS = ("siliconflow.cn", "siliconflow.com")


def _sends_usage_unasked(base_url: str) -> bool:
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in _USAGE_UNASKED_HOSTS)
