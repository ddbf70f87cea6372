"""Counting a run's tokens: what the server reports, or an honest estimate when it reports none.

Some servers send no usage in streams (llama.cpp's, OpenAI's unless asked). Leaving those
turns at zero would switch `max_total_tokens` off without a word, so their tokens are
estimated from the text's length and the run's usage says so (`RunUsage.estimated`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sfagent.messages import AssistantMessage, ChatCompletion, MessageBase
from sfagent.usage import RunUsage

CHARS_PER_TOKEN = 4
"""A rough, tokenizer-free rate: English runs near 4 characters a token, Chinese nearer 1.5,
so the estimate errs low for Chinese; it exists so budgets hold, not to bill."""


def add_usage(usage: RunUsage, response: ChatCompletion, prompt: Sequence[MessageBase]) -> None:
    """Add one response's usage to the run's, estimating it when the response has none.

    Args:
        usage: The run's totals, updated in place.
        response: The model's response.
        prompt: The messages the request sent (only read when an estimate is needed).
    """
    usage.requests += 1
    got = response.usage
    if got is not None:
        usage.prompt_tokens += got.prompt_tokens
        usage.completion_tokens += got.completion_tokens
        usage.total_tokens += got.total_tokens or got.prompt_tokens + got.completion_tokens
        usage.reasoning_tokens += got.reasoning_tokens
        return
    prompt_tokens = _tokens(json.dumps([m.to_wire() for m in prompt], ensure_ascii=False))
    answer = response.message if response.choices else AssistantMessage()
    completion_tokens = _tokens(_answer_text(answer))
    usage.prompt_tokens += prompt_tokens
    usage.completion_tokens += completion_tokens
    usage.total_tokens += prompt_tokens + completion_tokens
    usage.estimated = True


def _answer_text(message: AssistantMessage) -> str:
    parts = [message.content or "", message.reasoning_content or ""]
    for call in message.tool_calls or ():
        parts += [call.function.name, call.function.arguments]
    return "".join(parts)


def _tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN) if text else 0
