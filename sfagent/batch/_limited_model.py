"""`LimitedModel`: a `Model` whose requests wait their turn under a shared `RateLimiter`.

Every request reserves its estimated tokens before it is sent and is charged its reported usage
after; a 429 slows every run sharing the limiter (honouring ``Retry-After``) and the request
takes its turn again, up to `MAX_RATE_LIMITED` times. The client underneath must not retry 429s
itself (`BatchRunner` gives HTTP models a policy without them), or its retries would be sent
behind the limiter's back and count against the account's RPM.

It also keeps the per-second tally of requests sent and tokens used that the report draws. A
batch without limits still wants that tally, so the limiter is optional: without one, requests
go straight to the model and are only counted (a 429 is then the client's to retry).
"""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

from sfagent.batch._limiter import RateLimits, estimate_tokens
from sfagent.exceptions import RateLimitError, UserError

if TYPE_CHECKING:
    from sfagent.messages import ChatCompletion
    from sfagent.models import AsyncModelStream, Model, ModelStream
    from sfagent.settings import ChatRequest

__all__ = ["MAX_RATE_LIMITED", "Admission", "AdmissionSlot", "LimitedModel", "Timeline"]

MAX_RATE_LIMITED = 6
"""Times one request may be refused with a 429 before the task fails (SiliconFlow's guidance:
back off and retry at most about six times; each refusal also counts against the RPM)."""


class AdmissionSlot(Protocol):
    """A request's turn under a limiter (`Slot` is one)."""

    def settle(self, actual_tokens: int) -> None:
        """Charge the request's real usage."""

    def rate_limited(self, retry_after: float | None = None) -> None:
        """Report a 429 for the request, slowing everyone sharing the limits."""


class Admission(Protocol):
    """What admits a batch's requests: a `RateLimiter` in one process, or a limiter shared
    by many through a database (``sfagent.durable``'s `SharedRateLimiter`)."""

    @property
    def limits(self) -> RateLimits:
        """The limits kept."""

    def request(self, estimate: int) -> AbstractAsyncContextManager[AdmissionSlot]:
        """Wait for a turn for a request estimated at `estimate` tokens."""


class Timeline:
    """Requests sent and tokens used per second since the batch started (the report's input)."""

    def __init__(self, start: float | None = None) -> None:
        self.start = time.monotonic() if start is None else start
        self._seconds: dict[int, list[int]] = {}

    def add(self, requests: int, tokens: int, *, now: float | None = None) -> None:
        """Count what was sent (and used) in the current second."""
        second = int((time.monotonic() if now is None else now) - self.start)
        bucket = self._seconds.setdefault(second, [0, 0])
        bucket[0] += requests
        bucket[1] += tokens

    def buckets(self) -> list[dict[str, int]]:
        """``[{"t": second, "requests": n, "tokens": n}, ...]`` in time order."""
        return [
            {"t": second, "requests": counts[0], "tokens": counts[1]}
            for second, counts in sorted(self._seconds.items())
        ]


class LimitedModel:
    """Wraps a `Model`: whole requests only, each admitted by `limiter` first (if any).

    Args:
        model: The model that answers.
        limiter: Shared by every run against the same endpoint and model; ``None`` sends each
            request at once (tallied all the same).
        timeline: Where requests and tokens are tallied per second.
    """

    def __init__(self, model: Model, limiter: Admission | None, timeline: Timeline) -> None:
        self.model = model
        self.limiter = limiter
        self.timeline = timeline
        self.model_name = getattr(model, "model_name", type(model).__name__)

    def __repr__(self) -> str:
        return f"LimitedModel({self.model!r})"

    async def complete_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatCompletion:
        """Answer `request` once the limiter admits it; wait again after each 429.

        Raises:
            EstimateTooLargeError: The request's estimate is above TPM or TPD: it is not sent.
        """
        if self.limiter is None:
            return await self._unlimited(request, timeout)
        estimate = estimate_tokens(request.to_body())
        for refusals in range(MAX_RATE_LIMITED + 1):
            async with self.limiter.request(estimate) as slot:
                self.timeline.add(1, 0)
                try:
                    response = await self.model.complete_async(request, timeout=timeout)
                except RateLimitError as exc:
                    slot.rate_limited(exc.retry_after)
                    if refusals == MAX_RATE_LIMITED:
                        raise
                    continue
                used = response.usage.total_tokens if response.usage is not None else 0
                slot.settle(used or estimate)
                self.timeline.add(0, used or estimate)
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _unlimited(self, request: ChatRequest, timeout: float | None) -> ChatCompletion:
        self.timeline.add(1, 0)
        response = await self.model.complete_async(request, timeout=timeout)
        used = response.usage.total_tokens if response.usage is not None else 0
        # Estimated only for an answer without usage: most requests never pay for the estimate.
        self.timeline.add(0, used or estimate_tokens(request.to_body()))
        return response

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatCompletion:
        """Not used by the batch runner, which is asynchronous."""
        raise UserError("a batch's model answers on the event loop (complete_async)")

    def stream(self, request: ChatRequest, *, timeout: float | None = None) -> ModelStream:
        """Not used: a batch sends whole requests."""
        raise UserError("a batch sends whole requests, not streams")

    def stream_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncModelStream:
        """Not used: a batch sends whole requests."""
        raise UserError("a batch sends whole requests, not streams")
