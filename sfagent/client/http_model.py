"""`HTTPModel`: the `Model` protocol over `SiliconFlow` and `AsyncSiliconFlow`.

It makes its clients on first use (one async client per event loop), so an agent can be
defined at import time with no network and no event loop. The request guard that tests use
to keep model requests on this machine lives here, beside what it guards.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from sfagent._secret import Secret
from sfagent.client.config import resolve_api_key, resolve_base_url
from sfagent.exceptions import UserError
from sfagent.messages import ChatCompletion
from sfagent.models import AsyncModelStream, ModelStream
from sfagent.settings import ChatRequest

if TYPE_CHECKING:
    from sfagent.client.clients import AsyncSiliconFlow, SiliconFlow
    from sfagent.client.retry import RetryPolicy

__all__ = ["HTTPModel", "RequestGuard"]

_UNSET: Any = object()
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class RequestGuard:
    """Process-wide switch that makes model requests leaving this machine fail (for tests)."""

    blocked = False

    @classmethod
    def check(cls, base_url: str) -> None:
        """Raise `UserError` when requests are blocked and `base_url` is not on loopback."""
        if not cls.blocked:
            return
        from urllib.parse import urlsplit

        if (urlsplit(base_url).hostname or "") not in _LOOPBACK_HOSTS:
            raise UserError(
                f"model requests to {base_url} are blocked (sfagent.testing.block_model_requests);"
                " use an offline model or the loopback server in tests"
            )


class HTTPModel:
    """`Model` over the HTTP clients; each client is made on first use, or given.

    Args:
        client: A `SiliconFlow` client for the sync drivers (made from the settings below
            when not given).
        async_client: An `AsyncSiliconFlow` client for the async drivers (likewise).
        api_key: Key for clients made here; defaults to ``SILICONFLOW_API_KEY``.
        base_url: Base URL for clients made here; defaults to ``SILICONFLOW_BASE_URL`` or
            SiliconFlow's ``.cn`` site.
        retry: Retry policy for clients made here (the client default when not given).
    """

    def __init__(
        self,
        *,
        client: SiliconFlow | None = None,
        async_client: AsyncSiliconFlow | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = _UNSET,
    ) -> None:
        self._client = client
        self._owns_client = client is None
        self._async_client = async_client
        # An async client belongs to the event loop it was opened in: one per loop, so an
        # agent survives being run by several `asyncio.run(...)` calls.
        self._async_by_loop: weakref.WeakKeyDictionary[Any, tuple[AsyncSiliconFlow, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._api_key = Secret(api_key)  # never in a repr, nor in vars()
        self._options: dict[str, Any] = {"base_url": base_url}
        if retry is not _UNSET:
            self._options["retry"] = retry
        if client is None and async_client is None:
            self._check_key()

    def __repr__(self) -> str:
        return "HTTPModel()"

    def with_retry(self, retry: RetryPolicy | None) -> HTTPModel:
        """A sibling with the same key and base URL whose clients retry by `retry` instead.

        Clients given to this model are shared as they are (their policy is theirs).
        """
        if not self._owns_client or self._async_client is not None:
            return self
        return HTTPModel(
            api_key=self._api_key.value, base_url=self._options["base_url"], retry=retry
        )

    @property
    def base_url(self) -> str:
        """Where requests go: the given client's base URL, else this model's (resolved)."""
        given = self._client or self._async_client
        if given is not None:
            return str(given.base_url)
        return resolve_base_url(self._options["base_url"])

    def _check_key(self) -> None:
        resolve_api_key(self._api_key.value)  # fail now, not at the first request

    @property
    def client(self) -> SiliconFlow:
        """The sync client (made on first use)."""
        if self._client is None:
            from sfagent.client.clients import SiliconFlow

            self._client = client = SiliconFlow(api_key=self._api_key.value, **self._options)
            # A script that drops its agent without closing it still releases the sockets.
            weakref.finalize(self, client.close)
        return self._client

    @property
    def async_client(self) -> AsyncSiliconFlow:
        """The async client of the running event loop (made on first use in that loop)."""
        if self._async_client is not None:
            return self._async_client
        import asyncio

        loop = asyncio.get_running_loop()
        held = self._async_by_loop.get(loop)
        if held is None:
            from sfagent.client.clients import AsyncSiliconFlow

            client = AsyncSiliconFlow(api_key=self._api_key.value, **self._options)
            held = self._async_by_loop[loop] = (client, _closed_with_the_loop(client))
        return held[0]

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatCompletion:
        """Answer `request` whole (see `SiliconFlow.complete`)."""
        client = self.client
        RequestGuard.check(client.base_url)
        return client.complete(request, total_timeout=timeout)

    def stream(self, request: ChatRequest, *, timeout: float | None = None) -> ModelStream:
        """Answer `request` as a stream (see `SiliconFlow.stream`)."""
        client = self.client
        RequestGuard.check(client.base_url)
        return client.stream(request, total_timeout=timeout)

    async def complete_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatCompletion:
        """Answer `request` whole (see `AsyncSiliconFlow.complete`)."""
        client = self.async_client
        RequestGuard.check(client.base_url)
        return await client.complete(request, total_timeout=timeout)

    def stream_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> AsyncModelStream:
        """Answer `request` as a stream (see `AsyncSiliconFlow.stream`)."""
        client = self.async_client
        RequestGuard.check(client.base_url)
        return client.stream(request, total_timeout=timeout)

    def close(self) -> None:
        """Close the sync client, if it was made here."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the clients made here: the sync one and the running loop's async one."""
        self.close()
        import asyncio

        held = self._async_by_loop.pop(asyncio.get_running_loop(), None)
        if held is not None:
            await held[0].close()


def _closed_with_the_loop(client: AsyncSiliconFlow) -> Any:
    """Close `client` when its event loop shuts down, if nobody closed it before.

    `asyncio.run(agent.run(...))` is the documented one-shot use, and an agent that was never
    closed would leave aiohttp to complain ("Unclosed client session") at exit. Event loops
    close the async generators still suspended in them when they shut down
    (`loop.shutdown_asyncgens`, which `asyncio.run` calls), so one suspended here closes the
    client then, in its own loop.
    """
    import asyncio

    async def closer() -> Any:
        try:
            yield
        finally:
            await client.close()

    generator = closer()
    # Advanced to its first `yield` by a task, so that the loop tracks it and its `finally`
    # runs on shutdown; the returned references keep both alive as long as the client is held.
    started = asyncio.ensure_future(generator.__anext__())
    return generator, started
