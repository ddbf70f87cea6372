"""`StreamAccumulator`: stream chunks folded into exactly the response a non-stream call returns.

Pure (no I/O). Quirks handled (see ``docs/streaming.md``): usage repeated as a running total
on every chunk (SiliconFlow) or sent once at the end (DeepSeek, OpenAI): the last one seen
wins, never a sum; ``content`` and ``reasoning_content`` both nullable and possibly in one
delta; chunks with empty ``choices``; tool-call fragments keyed by ``index`` with ``id`` and
``name`` only in the first (or repeated in every one, as llama.cpp does); two calls that share
an id and carry no index (kept apart). Bounded: given ``max_response_bytes``, the text,
reasoning and arguments it holds raise `ResponseTooLargeError` past it; small pieces are joined
as they come, so memory follows the text, not the chunk count.
"""

from __future__ import annotations

import json

from sfagent.client._body import too_large
from sfagent.messages import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    FunctionCall,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["StreamAccumulator"]


_BUILDER_COST = 256
"""What a new choice or tool call is counted as against the cap, beside its text: a stream of
endless empty calls must reach the cap too."""


class _Text:
    """Text that arrives in many small pieces, joined every 256 so that each costs its size."""

    __slots__ = ("_blocks", "_tail")

    def __init__(self) -> None:
        self._blocks: list[str] = []
        self._tail: list[str] = []

    def add(self, piece: str) -> None:
        tail = self._tail
        tail.append(piece)
        if len(tail) >= 256:
            self._blocks.append("".join(tail))
            tail.clear()

    def value(self) -> str:
        return "".join(self._blocks + self._tail) if self._blocks else "".join(self._tail)


class _ToolCallBuilder:
    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id: str | None = None
        self.type: str | None = None
        self.name: str | None = None
        self.arguments = _Text()

    def add(self, fragment: ToolCallDelta) -> int:
        """Take one fragment; returns the characters it added."""
        # Only the first non-empty id/type/name counts: some servers repeat them (or send "")
        # on later fragments.
        added = 0
        if fragment.id and not self.id:
            self.id = fragment.id
            added += len(fragment.id)
        if fragment.type and not self.type:
            self.type = fragment.type
            added += len(fragment.type)
        function = fragment.function
        if function is not None:
            if function.name and not self.name:
                self.name = function.name
                added += len(function.name)
            if function.arguments:
                self.arguments.add(function.arguments)
                added += len(function.arguments)
        return added

    def is_whole(self) -> bool:
        """Whether the arguments so far are one complete JSON value."""
        text = self.arguments.value().rstrip()
        if text[-1:] not in ("}", "]"):
            return False
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            return False
        return True

    def build(self, position: int) -> ToolCall:
        function = FunctionCall(name=self.name or "", arguments=self.arguments.value())
        # A call that never got an id still needs one for its tool message to answer.
        return ToolCall(id=self.id or f"call_{position}", function=function)


class _ChoiceBuilder:
    __slots__ = (
        "by_id",
        "calls",
        "content",
        "finish_reason",
        "last_call",
        "next_key",
        "reasoning",
    )

    def __init__(self) -> None:
        self.content: _Text | None = None
        self.reasoning = _Text()
        self.calls: dict[int, _ToolCallBuilder] = {}
        self.by_id: dict[str, int] = {}
        self.last_call: int | None = None
        self.next_key = 0  # above every key used so far
        self.finish_reason: str | None = None

    def add_tool_calls(self, fragments: list[ToolCallDelta]) -> int:
        """Fold a delta's tool-call fragments in; returns what they cost against the cap."""
        several = len(fragments) > 1
        added = 0
        for position, fragment in enumerate(fragments):
            key = self._key(fragment, position if several else None)
            builder = self.calls.get(key)
            if builder is None:
                builder = self.calls[key] = _ToolCallBuilder()
                added += _BUILDER_COST
                if key >= self.next_key:
                    self.next_key = key + 1
            added += builder.add(fragment)
            if fragment.id:
                self.by_id[fragment.id] = key  # the latest call with this id
            self.last_call = key
        return added

    def _key(self, fragment: ToolCallDelta, position: int | None) -> int:
        if fragment.index is not None:
            return fragment.index
        # No index (some OpenAI-compatible servers): the id says which call, else the
        # fragment's place in a multi-call delta, else it continues the latest call. Some
        # servers (llama.cpp) repeat the id in every fragment of a call, others reuse one id
        # for two calls: a fragment that opens a JSON value after the call's arguments
        # already form a whole one starts a new call.
        if fragment.id:
            known = self.by_id.get(fragment.id)
            if known is None or self._starts_another(known, fragment):
                return self.next_key
            return known
        if position is not None:
            return position
        if self.last_call is None:
            return 0
        if self._starts_another(self.last_call, fragment):
            return self.next_key
        return self.last_call

    def _starts_another(self, key: int, fragment: ToolCallDelta) -> bool:
        function = fragment.function
        arguments = function.arguments if function is not None else None
        if not arguments or arguments.lstrip()[:1] not in ("{", "["):
            return False
        return self.calls[key].is_whole()

    def build(self, index: int) -> Choice:
        calls = [b.build(i) for i, (_, b) in enumerate(sorted(self.calls.items()))]
        message = AssistantMessage(
            content=self.content.value() if self.content is not None else None,
            reasoning_content=self.reasoning.value() or None,
            tool_calls=calls or None,
        )
        return Choice(index=index, message=message, finish_reason=self.finish_reason)


class StreamAccumulator:
    """Fold stream chunks into exactly the `ChatCompletion` a non-stream call returns.

    Example:
        >>> acc = StreamAccumulator()
        >>> for chunk in chunks:  # doctest: +SKIP
        ...     acc.add(chunk)
        >>> response = acc.result()  # doctest: +SKIP

    Args:
        max_response_bytes: A cap on what is accumulated (text, reasoning, tool-call ids,
            names and arguments, in characters, plus a small fixed cost per choice and call);
            ``None`` for none.
    """

    __slots__ = (
        "_choices",
        "_created",
        "_fingerprint",
        "_id",
        "_limit",
        "_model",
        "_usage",
        "chunks",
        "size",
    )

    def __init__(self, *, max_response_bytes: int | None = None) -> None:
        self._limit = max_response_bytes
        self.size = 0
        """What has been accumulated so far, as counted against ``max_response_bytes``."""
        self._choices: dict[int, _ChoiceBuilder] = {}
        self._id = ""
        self._model = ""
        self._created = 0
        self._fingerprint: str | None = None
        self._usage: Usage | None = None
        self.chunks = 0
        """How many chunks were added."""

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Fold one chunk in.

        Raises:
            ResponseTooLargeError: When the response passes ``max_response_bytes``.
        """
        self.chunks += 1
        if not self._id:
            self._id, self._model, self._created = chunk.id, chunk.model, chunk.created
        if chunk.system_fingerprint is not None:
            self._fingerprint = chunk.system_fingerprint
        if chunk.usage is not None:
            self._usage = chunk.usage  # a running total (SiliconFlow) or the final count
        size = self.size
        for choice in chunk.choices:
            builder = self._choices.get(choice.index)
            if builder is None:
                builder = self._choices[choice.index] = _ChoiceBuilder()
                size += _BUILDER_COST
            delta = choice.delta
            content = delta.content
            if content is not None:
                if builder.content is None:
                    builder.content = _Text()
                if content:
                    builder.content.add(content)
                    size += len(content)
            if delta.reasoning_content:
                builder.reasoning.add(delta.reasoning_content)
                size += len(delta.reasoning_content)
            if delta.tool_calls:
                size += builder.add_tool_calls(delta.tool_calls)
            if choice.finish_reason is not None:
                builder.finish_reason = choice.finish_reason
        self.size = size
        if self._limit is not None and size > self._limit:
            self._choices = {}  # let the memory go: the stream cannot be finished
            what = "The streamed answer (its text, reasoning and tool-call arguments)"
            raise too_large(what, self._limit)

    def result(self, *, default_finish_reason: str | None = "stop") -> ChatCompletion:
        """Return the response folded so far.

        Args:
            default_finish_reason: Used for a choice that never got one (a stream that ended
                with ``[DONE]`` but no ``finish_reason`` stopped normally); ``None`` for a
                snapshot of an unfinished stream.
        """
        choices = []
        for index in sorted(self._choices):
            choice = self._choices[index].build(index)
            if choice.finish_reason is None:
                choice.finish_reason = default_finish_reason
            choices.append(choice)
        return ChatCompletion(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=choices,
            usage=self._usage,
            system_fingerprint=self._fingerprint,
        )
