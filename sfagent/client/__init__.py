"""Talking to the chat-completions API: the sync and async clients and the pure layers below.

- `SiliconFlow` / `AsyncSiliconFlow` (`sfagent.client.clients`): typed, retrying requests over
  httpx, the only code that imports it; `ChatStream` / `AsyncChatStream` (`.streams`) read a
  streamed answer.
- `HTTPModel` (`.http_model`): the agent's `Model` protocol over those clients.
- Pure, shared by both clients: `.config` (key, base URL), `.retry` (`RetryPolicy`),
  `.error_bodies` (error bodies, and error objects sent with HTTP 200, to typed errors),
  `.streaming` (bytes to chunks), `.accumulator` (chunks to one response), `._sse` (the SSE
  decoder), `._body` (bodies within their size cap) and `._core` (request bodies, headers,
  parsing answers, retry bookkeeping).
- Around the I/O: `._deadline` (a call's total bound, the sync watchdog) and `._reading` (one
  try's response read in bounded pieces).

Names load on first use, so importing this package does not import httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfagent._lazy import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "sfagent.client.clients": (
        "SiliconFlow",
        "AsyncSiliconFlow",
        "DEFAULT_TIMEOUT",
        "DEFAULT_RETRY",
        "DEFAULT_TOTAL_TIMEOUT",
        "DEFAULT_MAX_RESPONSE_BYTES",
        "Timeout",
    ),
    "sfagent.client.streams": ("ChatStream", "AsyncChatStream"),
    "sfagent.client.retry": ("RetryPolicy",),
    "sfagent.client.config": ("API_KEY_ENV", "BASE_URL_ENV", "DEFAULT_BASE_URL", "TRACE_ID_HEADER"),
    "sfagent.client.http_model": ("HTTPModel",),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from sfagent.client.clients import (
        DEFAULT_MAX_RESPONSE_BYTES as DEFAULT_MAX_RESPONSE_BYTES,
        DEFAULT_RETRY as DEFAULT_RETRY,
        DEFAULT_TIMEOUT as DEFAULT_TIMEOUT,
        DEFAULT_TOTAL_TIMEOUT as DEFAULT_TOTAL_TIMEOUT,
        AsyncSiliconFlow as AsyncSiliconFlow,
        SiliconFlow as SiliconFlow,
        Timeout as Timeout,
    )
    from sfagent.client.config import (
        API_KEY_ENV as API_KEY_ENV,
        BASE_URL_ENV as BASE_URL_ENV,
        DEFAULT_BASE_URL as DEFAULT_BASE_URL,
        TRACE_ID_HEADER as TRACE_ID_HEADER,
    )
    from sfagent.client.http_model import HTTPModel as HTTPModel
    from sfagent.client.retry import RetryPolicy as RetryPolicy
    from sfagent.client.streams import AsyncChatStream as AsyncChatStream, ChatStream as ChatStream
