"""Usage when a server reports none: estimated, marked so, and still enforcing the budget."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sfagent import tool
from sfagent.agent import Agent
from sfagent.exceptions import BudgetExceeded
from sfagent.messages import ChatCompletion
from sfagent.settings import ChatRequest
from tests.run.agent_support import DRIVERS, drive


class NoUsage:
    """Answers like a server that sends no usage (llama.cpp's streams): a tool call, then text."""

    model_name = "no-usage"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    def _reply(self, request: ChatRequest) -> ChatCompletion:
        self.requests.append(request)
        if len(self.requests) == 1:
            call = {
                "id": "c1",
                "type": "function",
                "function": {"name": "echo", "arguments": '{"text": "' + "x" * 200 + '"}'},
            }
            message: dict[str, Any] = {"role": "assistant", "content": "", "tool_calls": [call]}
            finish = "tool_calls"
        else:
            message, finish = {"role": "assistant", "content": "done " * 40}, "stop"
        return ChatCompletion.model_validate(
            {"choices": [{"message": message, "finish_reason": finish}]}
        )

    def complete(self, request: ChatRequest, *, timeout: float | None = None) -> ChatCompletion:
        return self._reply(request)

    async def complete_async(
        self, request: ChatRequest, *, timeout: float | None = None
    ) -> ChatCompletion:
        return self._reply(request)

    def stream(self, request: ChatRequest, *, timeout: float | None = None) -> Any:
        return _Whole(self._reply(request))

    def stream_async(self, request: ChatRequest, *, timeout: float | None = None) -> Any:
        return _AsyncWhole(self._reply(request))


class _Whole:
    """A stream with no chunks whose final response is given."""

    def __init__(self, response: ChatCompletion) -> None:
        self.response = response

    def __enter__(self) -> _Whole:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def get_final_response(self) -> ChatCompletion:
        return self.response


class _AsyncWhole:
    """The async twin of `_Whole`."""

    def __init__(self, response: ChatCompletion) -> None:
        self.response = response

    async def __aenter__(self) -> _AsyncWhole:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def __aiter__(self) -> AsyncIterator[Any]:
        for chunk in ():
            yield chunk

    async def get_final_response(self) -> ChatCompletion:
        return self.response


@tool
def echo(text: str) -> str:
    """Echo."""
    return text


@pytest.mark.parametrize("driver", DRIVERS)
def test_missing_usage_is_estimated_and_marked(driver: str) -> None:
    result = drive(Agent(NoUsage(), tools=[echo]), driver, "go").result
    usage = result.usage
    assert usage.estimated
    assert usage.requests == 2
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens >= 50 + 40  # the call's ~210 characters, the answer's 200
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_token_budget_holds_on_estimates(driver: str) -> None:
    # A 30-token budget used to be silently off when the server reported no usage.
    with pytest.raises(BudgetExceeded) as info:
        drive(Agent(NoUsage(), tools=[echo], max_total_tokens=30), driver, "go")
    assert info.value.budget == "tokens"
    assert info.value.result.usage.estimated
    assert info.value.result.usage.requests == 1
