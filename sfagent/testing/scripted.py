"""`ScriptedModel`: an offline model that answers with a fixed script and records requests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sfagent.exceptions import UserError
from sfagent.offline.model import OfflineModel
from sfagent.offline.replies import Reply
from sfagent.settings import ChatRequest

__all__ = ["ScriptedModel"]

ReplySource = Reply | str | Callable[[ChatRequest], "Reply | str"]


class ScriptedModel(OfflineModel):
    """Answers with a fixed list of replies, one per request, and records what it was sent.

    Args:
        replies: Each a `Reply`, a string (a plain text answer), or a function of the
            `ChatRequest` returning either.

    Example:
        >>> model = ScriptedModel([Reply(tool_calls=[ScriptedToolCall("add", {"a": 1})]), "2"])
    """

    model_name = "scripted"

    def __init__(self, replies: Sequence[ReplySource]) -> None:
        super().__init__()
        self._replies = list(replies)
        self._next = 0

    def reply_for(self, request: ChatRequest) -> Reply:
        """The next scripted reply.

        Raises:
            UserError: the script is used up (the test expected fewer requests).
        """
        if self._next >= len(self._replies):
            raise UserError(
                f"ScriptedModel has no reply left for request #{self._next + 1} "
                f"(it was given {len(self._replies)})"
            )
        source = self._replies[self._next]
        self._next += 1
        if callable(source):
            source = source(request)
        return Reply(text=source) if isinstance(source, str) else source

    @property
    def remaining(self) -> int:
        """Replies not used yet."""
        return len(self._replies) - self._next

    def assert_used_up(self) -> None:
        """Fail unless every reply was used.

        Raises:
            AssertionError: some replies were never requested.
        """
        if self.remaining:
            raise AssertionError(f"ScriptedModel: {self.remaining} replies were never requested")
