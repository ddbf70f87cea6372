"""Cutting a long conversation to fit, without breaking it (pure functions over message lists).

A history is cut at one point: everything before it goes except the system messages, which
stay (they are the instructions), and everything after it stays in order. The point is never
placed inside a tool exchange: an assistant message with ``tool_calls`` and the ``tool``
messages answering it stay or go together. A ``tool`` message left without its call is the
classic HTTP 400 ("messages with role 'tool' must be a response to a preceding message with
'tool_calls'"); an assistant message whose calls lost their answers is refused as well.

Both strategies keep as much of the end of the conversation as fits: the earliest safe cut
that brings the history within the limit. When none does (the system messages alone are over
it), only the system messages are left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sfagent.exceptions import UserError

if TYPE_CHECKING:
    from sfagent.messages import MessageBase

__all__ = [
    "CHARS_PER_TOKEN",
    "MEDIA_TOKENS",
    "MESSAGE_OVERHEAD",
    "TrimByCount",
    "TrimByTokens",
    "Trimmer",
    "estimate_tokens",
    "history_problems",
    "safe_cuts",
    "trim_history",
]

CHARS_PER_TOKEN = 4
"""ASCII characters per estimated token; any other character (Chinese, say) counts as one."""

MESSAGE_OVERHEAD = 4
"""Tokens a message costs beyond its text (role, separators), as chat templates add them."""

MEDIA_TOKENS = 1000
"""Tokens an image, video or audio part is counted as: a generous flat figure, not its size."""

_MEDIA_PARTS = frozenset({"image_url", "video_url", "audio_url"})


@runtime_checkable
class Trimmer(Protocol):
    """What a session applies to its stored history before sending it: messages in, messages out.

    Any callable of this shape works; `TrimByCount` and `TrimByTokens` are the built-in ones.
    `sfagent.testing.sessions.check_trimmer` holds a new one to the rules above.
    """

    def __call__(self, messages: Sequence[MessageBase], /) -> list[MessageBase]: ...


class TrimByCount:
    """Keep at most `max_messages` messages (system messages count and are always kept).

    Args:
        max_messages: The most messages to send, at least 1.

    Raises:
        UserError: `max_messages` is not a whole number of at least 1.
    """

    def __init__(self, max_messages: int) -> None:
        self.max_messages = _limit("max_messages", max_messages)

    def __call__(self, messages: Sequence[MessageBase], /) -> list[MessageBase]:
        """The end of `messages` that fits, with every system message."""
        return trim_history(messages, self.max_messages, lambda _message: 1)

    def __repr__(self) -> str:
        return f"TrimByCount({self.max_messages})"


class TrimByTokens:
    """Keep the history within `max_tokens` estimated tokens (system messages always kept).

    The limit covers the stored history only: leave room for the agent's instructions, the
    new prompt, the tools' schemas and the answer.

    Args:
        max_tokens: The most tokens the history may be estimated at, at least 1.
        estimate: Tokens of one message; `estimate_tokens` by default (no tokenizer: about
            4 ASCII characters a token, any other character one). Pass a real tokenizer's
            count for a tighter fit.

    Raises:
        UserError: `max_tokens` is not a whole number of at least 1, or `estimate` is not
            callable.
    """

    def __init__(
        self,
        max_tokens: int,
        *,
        estimate: Callable[[MessageBase], int] | None = None,
    ) -> None:
        self.max_tokens = _limit("max_tokens", max_tokens)
        if estimate is not None and not callable(estimate):
            raise UserError(f"estimate must be a function of one message, got {estimate!r}")
        self.estimate = estimate if estimate is not None else estimate_tokens

    def __call__(self, messages: Sequence[MessageBase], /) -> list[MessageBase]:
        """The end of `messages` that fits, with every system message."""
        return trim_history(messages, self.max_tokens, self._cost)

    def _cost(self, message: MessageBase) -> int:
        cost = self.estimate(message)
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise UserError(f"estimate must return a whole number >= 0, got {cost!r}")
        return cost

    def __repr__(self) -> str:
        return f"TrimByTokens({self.max_tokens})"


def _limit(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


def trim_history(
    messages: Sequence[MessageBase], limit: int, cost: Callable[[MessageBase], int]
) -> list[MessageBase]:
    """The system messages and the longest safe end of `messages` whose total cost is <= `limit`.

    Args:
        messages: The history, oldest first.
        limit: The most the kept messages may cost.
        cost: What one message costs (1 each for a count, its tokens for a token limit).
    """
    costs = [cost(m) for m in messages]
    total = sum(costs)
    if total <= limit:
        return list(messages)
    safe = safe_cuts(messages)
    # Cutting at `c` drops the messages before it except system ones; the kept cost only falls
    # as `c` moves right, so the first safe cut within the limit keeps the most.
    kept = total
    cut = len(messages)
    for at, message in enumerate(messages):
        if safe[at] and kept <= limit:
            cut = at
            break
        if _role(message) != "system":
            kept -= costs[at]
    head = [m for m in messages[:cut] if _role(m) == "system"]
    return head + list(messages[cut:])


def safe_cuts(messages: Sequence[MessageBase]) -> list[bool]:
    """For each cut point ``0..len(messages)``, whether it keeps every tool exchange whole.

    Cut point ``c`` keeps ``messages[c:]``. It is unsafe when an assistant message before it
    has a call answered at or after it: the answer would be left without its call.
    """
    n = len(messages)
    unsafe_from = [0] * (n + 2)  # a difference array over cut points
    for start, end in _exchanges(messages):
        unsafe_from[start + 1] += 1
        unsafe_from[end + 1] -= 1
    safe, depth = [], 0
    for at in range(n + 1):
        depth += unsafe_from[at]
        safe.append(depth == 0)
    return safe


def _exchanges(messages: Sequence[MessageBase]) -> list[tuple[int, int]]:
    """``(assistant index, index of its last answer)`` for every assistant message with calls."""
    caller: dict[str, int] = {}
    last_answer: dict[int, int] = {}
    for at, message in enumerate(messages):
        role = _role(message)
        if role == "assistant":
            for call in getattr(message, "tool_calls", None) or ():
                caller[call.id] = at
        elif role == "tool":
            start = caller.get(getattr(message, "tool_call_id", ""))
            if start is not None:
                last_answer[start] = at
    return sorted(last_answer.items())


def history_problems(messages: Sequence[MessageBase]) -> list[str]:
    """What would make the API refuse `messages` as a conversation's tool exchanges.

    A ``tool`` message must answer a call of an assistant message before it, and every call
    of an assistant message must be answered before the next assistant or user message.

    Returns:
        One line per problem; empty when the history is sound.
    """
    problems: list[str] = []
    open_calls: dict[str, int] = {}
    for at, message in enumerate(messages):
        role = _role(message)
        if role in ("assistant", "user"):
            problems += _unanswered(open_calls)
            open_calls = {}
        if role == "assistant":
            for call in getattr(message, "tool_calls", None) or ():
                open_calls[call.id] = at
        elif role == "tool":
            call_id = getattr(message, "tool_call_id", "")
            if call_id in open_calls:
                del open_calls[call_id]
            else:
                problems.append(f"messages[{at}]: tool message answers no call ({call_id!r})")
    problems += _unanswered(open_calls)
    return problems


def _unanswered(open_calls: dict[str, int]) -> list[str]:
    return [
        f"messages[{at}]: assistant call {call_id!r} has no tool message answering it"
        for call_id, at in open_calls.items()
    ]


def estimate_tokens(message: MessageBase) -> int:
    """A message's tokens, estimated without a tokenizer, as it is sent.

    Its text (content, tool calls, reasoning sent back) at `CHARS_PER_TOKEN` ASCII characters
    a token, any other character a token, `MEDIA_TOKENS` per image, video or audio part, and
    `MESSAGE_OVERHEAD`.
    """
    return MESSAGE_OVERHEAD + _tokens_in(message.to_wire())


def _tokens_in(value: Any) -> int:
    if isinstance(value, str):
        ascii_chars = len(value.encode("ascii", "ignore"))
        return -(-ascii_chars // CHARS_PER_TOKEN) + len(value) - ascii_chars
    if isinstance(value, dict):
        if value.get("type") in _MEDIA_PARTS:
            return MEDIA_TOKENS
        return sum(_tokens_in(v) for k, v in value.items() if k not in ("role", "type"))
    if isinstance(value, (list, tuple)):
        return sum(_tokens_in(v) for v in value)
    return 0


def _role(message: MessageBase) -> str:
    return str(getattr(message, "role", ""))
