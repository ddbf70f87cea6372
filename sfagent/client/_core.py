"""The pure core that `SiliconFlow` and `AsyncSiliconFlow` share.

Everything the clients decide lives here and does no I/O: configuration from arguments and the
environment, request bodies and headers, status and body to typed error, parsing responses and
retry bookkeeping; a stream's bytes go to `sfagent.client.streaming.StreamState`. The clients
and their streams only move bytes, over httpx.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from sfagent._text import excerpt
from sfagent._version import __version__
from sfagent.client.config import TRACE_ID_HEADER, resolve_api_key, resolve_base_url
from sfagent.client.error_bodies import (
    error_from_response,
    error_from_stream_payload,
    invalid_body,
    is_error_reply,
)
from sfagent.client.retry import RetryPolicy
from sfagent.exceptions import (
    APIError,
    APIResponseValidationError,
    APIStatusError,
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

    __slots__ = ("_auth", "_key", "base_url", "headers", "retry")

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        retry: RetryPolicy | None,
        default_headers: Mapping[str, str] | None,
    ) -> None:
        self._key = resolve_api_key(api_key)
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
        self._auth = {**headers, "Authorization": f"Bearer {self._key}"}

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

    @staticmethod
    def chat_body(request: RequestLike, *, stream: bool) -> bytes:
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
        else:
            body.pop("stream", None)
        return encode_body(body)

    # --- responses ------------------------------------------------------------------------------

    def status_error(
        self, status_code: int, body: bytes, headers: Mapping[str, str]
    ) -> APIStatusError:
        """The typed error for an error status, with the trace id and the key redacted."""
        error = error_from_response(status_code, body, trace_id=headers.get(TRACE_ID_HEADER))
        return self.redact(error)

    def redact(self, error: APIStatusError) -> APIStatusError:
        """Remove the key from an error's message and body should the server echo it."""
        key = self._key
        if key in error.message:
            error.message = error.message.replace(key, "***")
            error.args = (error.message,)
        if isinstance(error.body, str) and key in error.body:
            error.body = error.body.replace(key, "***")
        elif error.body is not None and not isinstance(error.body, str):
            text = json.dumps(error.body, default=str)
            if key in text:
                error.body = json.loads(text.replace(key, "***"))
        return error

    def parse_completion(self, body: bytes, *, trace_id: str | None) -> ChatCompletion:
        """Read a non-stream response body.

        Raises:
            APIResponseValidationError: When the body is not a chat completion.
            APIStatusError: When an HTTP 200 body is an error object (some gateways do this).
        """
        try:
            completion = ChatCompletion.model_validate_json(body)
        except ValidationError as exc:
            raise invalid_body("The response is not a chat completion", exc, body) from None
        if is_error_reply(completion):
            raise self.redact(error_from_stream_payload(body, trace_id=trace_id))
        return completion

    @staticmethod
    def parse_models(body: bytes) -> list[str]:
        """Read ``GET /models``: the model ids, in the server's order."""
        try:
            data = json.loads(body)
            return [str(entry["id"]) for entry in data["data"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise APIResponseValidationError(
                f"The model list is not {{'data': [{{'id': ...}}]}}: {exc!r}", body=excerpt(body)
            ) from None

    def attempts(self) -> Attempts:
        """Fresh retry bookkeeping for one call."""
        return Attempts(self.retry)


class Attempts:
    """Retry bookkeeping for one call: counts tries, tracks the time budget, logs decisions.

    Time spent waiting is counted as the delay asked for, so a fake sleep in tests keeps the
    budget arithmetic exact; time spent in requests is measured.

    Args:
        policy: The client's retry policy.
        rand: Uniform random source for the jitter.
    """

    __slots__ = ("_rand", "_request_started", "_spent", "number", "policy")

    def __init__(self, policy: RetryPolicy, *, rand: Callable[[], float] = random.random) -> None:
        self.policy = policy
        self._rand = rand
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
