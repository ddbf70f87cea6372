"""Token and request counts summed over a run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RunUsage:
    """Totals across every request of a run.

    Attributes:
        requests: Chat-completion requests made.
        prompt_tokens: Prompt tokens, summed over requests.
        completion_tokens: Completion tokens (reasoning included), summed over requests.
        total_tokens: Prompt plus completion tokens, summed over requests.
        reasoning_tokens: Reasoning tokens, when the server reports them.
        tool_calls: Tool calls executed.
        estimated: Some counts are estimates: a response reported no usage (some servers
            send none in streams), so its tokens were estimated from the text's length
            (about four characters a token) rather than left at zero.
    """

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int = 0
    tool_calls: int = 0
    estimated: bool = False

    def __add__(self, other: RunUsage) -> RunUsage:
        return RunUsage(
            requests=self.requests + other.requests,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            tool_calls=self.tool_calls + other.tool_calls,
            estimated=self.estimated or other.estimated,
        )
