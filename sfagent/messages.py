"""Wire models for SiliconFlow's chat-completions API: messages, responses, stream chunks.

Pydantic v2 models, tolerant at the edges: response models keep unknown fields (``extra="allow"``),
nullable fields stay nullable, and ``finish_reason`` is any string. Messages are frozen, and each
caches its wire dict the first time it is sent, so replaying a long history costs a list copy per
turn, not a re-validation or a re-dump of every message.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    field_validator,
    model_validator as _model_validator,
)
from typing_extensions import Self

from sfagent.exceptions import APIResponseValidationError, ConfigurationError

__all__ = [
    "AssistantMessage",
    "AudioPart",
    "ChatCompletion",
    "ChatCompletionChunk",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "CompletionTokensDetails",
    "ContentPart",
    "FunctionCall",
    "FunctionCallDelta",
    "ImagePart",
    "ImageURL",
    "Message",
    "MessageBase",
    "PromptTokensDetails",
    "SystemMessage",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "ToolMessage",
    "Usage",
    "UserMessage",
    "VideoPart",
    "image_part",
    "parse_message",
    "parse_messages",
]


class _Wire(BaseModel):
    """Base of every wire model: unknown fields are kept, never rejected.

    Validators are built on first use (`defer_build`), so importing sfagent stays cheap.
    """

    model_config = ConfigDict(extra="allow", defer_build=True)


class _FrozenWire(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


# --- content parts ---------------------------------------------------------------------------


class TextPart(_FrozenWire):
    """A text part of a multi-part message."""

    type: Literal["text"] = "text"
    text: str


class ImageURL(_FrozenWire):
    """An image reference: an ``http(s)`` URL or a base64 ``data:`` URL."""

    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_FrozenWire):
    """An image part (``{"type": "image_url", "image_url": {...}}``); see `image_part`."""

    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


class VideoPart(_FrozenWire):
    """Video (Qwen3-VL/Omni), passed through: ``url``, ``detail``, ``max_frames``, ``fps``."""

    type: Literal["video_url"] = "video_url"
    video_url: dict[str, Any]


class AudioPart(_FrozenWire):
    """An audio part for Qwen3-Omni, passed through (``{"url": ...}``)."""

    type: Literal["audio_url"] = "audio_url"
    audio_url: dict[str, Any]


ContentPart = Annotated[TextPart | ImagePart | VideoPart | AudioPart, Field(discriminator="type")]
"""One part of a multi-part ``content`` list, chosen by its ``type``."""


# --- tool calls ------------------------------------------------------------------------------


class FunctionCall(_FrozenWire):
    """The function a tool call names, with its arguments as a JSON **string**.

    The string may be invalid JSON or name invented parameters: validate it before use. A
    server that sends an object instead of a string is tolerated; the object is re-encoded.
    """

    name: str
    arguments: str = ""

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_as_string(cls, value: object) -> object:
        if value is None:
            return ""
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False)
        return value


class ToolCall(_FrozenWire):
    """One tool call from the assistant (``{"id", "type": "function", "function"}``).

    SiliconFlow ids are 32 hex characters without OpenAI's ``call_`` prefix; never assume one.
    """

    id: str
    type: str = "function"
    function: FunctionCall

    def to_wire(self) -> dict[str, Any]:
        """Return the dict replayed to the API (known fields only, arguments a JSON string)."""
        # A call without arguments streams none at all; "" is not JSON, and strict servers
        # reject it on replay.
        function = {"name": self.function.name, "arguments": self.function.arguments or "{}"}
        return {"id": self.id, "type": self.type or "function", "function": function}


# --- messages --------------------------------------------------------------------------------


class MessageBase(_FrozenWire):
    """Base of the four message classes: frozen, with a cached wire dict."""

    _wire: dict[str, Any] | None = PrivateAttr(default=None)

    def to_wire(self) -> dict[str, Any]:
        """Return the dict sent to the API for this message (cached; do not mutate it)."""
        # The private dict is a slot; going through pydantic's attribute hook costs ~30x more,
        # and this runs for every message of the history on every turn.
        private = self.__pydantic_private__
        wire: dict[str, Any] | None = private.get("_wire") if private is not None else None
        if wire is None:
            wire = self._build_wire()
            self._wire = wire
        return wire

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """Copy the message (see pydantic); an update drops the cached wire dict."""
        copied = super().model_copy(update=update, deep=deep)
        if update:
            copied._wire = None
        return copied

    def _build_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class SystemMessage(MessageBase):
    """A system prompt."""

    role: Literal["system"] = "system"
    content: str | list[ContentPart]


class UserMessage(MessageBase):
    """A user turn: a string, or a list of text, image, video and audio parts."""

    role: Literal["user"] = "user"
    content: str | list[ContentPart]


class AssistantMessage(MessageBase):
    """An assistant turn, as returned by the API and as replayed to it.

    Attributes:
        content: The answer; ``None`` or ``""`` when the turn only calls tools.
        reasoning_content: The chain of thought of reasoning models, kept apart from ``content``.
        tool_calls: The tools the model wants run, in order.
    """

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None

    def _build_wire(self) -> dict[str, Any]:
        # Only the fields the API reads: a response's vendor extras (content_filter_results,
        # annotations...) are kept on the model for inspection but never replayed.
        wire: dict[str, Any] = {"role": "assistant", "content": self.content or ""}
        if self.tool_calls:
            wire["tool_calls"] = [call.to_wire() for call in self.tool_calls]
            # DeepSeek's thinking mode rejects tool-call turns that lost their reasoning.
            if self.reasoning_content is not None:
                wire["reasoning_content"] = self.reasoning_content
        # On plain turns reasoning is not re-fed (the API's guide resends content only).
        return wire


class ToolMessage(MessageBase):
    """A tool's result, answering the assistant tool call with ``tool_call_id``."""

    role: Literal["tool"] = "tool"
    tool_call_id: str
    content: str | list[ContentPart]


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]
"""Any chat message, chosen by its ``role``."""


@functools.cache
def _adapters() -> tuple[TypeAdapter[Message], TypeAdapter[list[Message]]]:
    # Built on first use, not at import: a program that never parses a stored history
    # should not pay for the validators (the models themselves build on first use too).
    return TypeAdapter(Message), TypeAdapter(list[Message])


def parse_message(data: Mapping[str, Any]) -> Message:
    """Parse one wire dict into the message class its ``role`` names.

    Raises:
        pydantic.ValidationError: When the role is unknown or a field has the wrong type.
    """
    return _adapters()[0].validate_python(data)


def parse_messages(data: list[Mapping[str, Any]]) -> list[Message]:
    """Parse a list of wire dicts (a stored history, say) into messages."""
    return _adapters()[1].validate_python(data)


def to_message_list(
    items: Iterable[MessageBase | Mapping[str, Any]], error: Callable[[str], Exception]
) -> list[MessageBase]:
    """Messages as given, or parsed from their wire dicts (a history a caller hands over).

    Raises:
        Exception: ``error(text)``, for an item that is neither, or a dict that is not a chat
            message (the text names its index).
    """
    out: list[MessageBase] = []
    for i, message in enumerate(items):
        if isinstance(message, MessageBase):
            out.append(message)
        elif isinstance(message, Mapping):
            try:
                out.append(parse_message(message))
            except ValueError as exc:
                raise error(f"messages[{i}] is not a chat message: {exc}") from None
        else:
            raise error(f"messages[{i}] must be a message or a dict, got {type(message).__name__}")
    return out


# --- responses -------------------------------------------------------------------------------


class CompletionTokensDetails(_Wire):
    """Breakdown of completion tokens."""

    reasoning_tokens: int | None = None


class PromptTokensDetails(_Wire):
    """Breakdown of prompt tokens."""

    cached_tokens: int | None = None


class Usage(_Wire):
    """Token counts for one call. In a SiliconFlow stream every chunk repeats the running total."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_tokens_details: CompletionTokensDetails | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    prompt_cache_hit_tokens: int | None = None
    prompt_cache_miss_tokens: int | None = None

    @field_validator("prompt_tokens", "completion_tokens", "total_tokens", mode="before")
    @classmethod
    def _null_is_zero(cls, value: object) -> object:
        return 0 if value is None else value

    @property
    def reasoning_tokens(self) -> int:
        """Tokens spent thinking (0 when the server did not say)."""
        details = self.completion_tokens_details
        return (details.reasoning_tokens or 0) if details is not None else 0

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens served from cache, from whichever field the server filled (0 if none)."""
        details = self.prompt_tokens_details
        if details is not None and details.cached_tokens:
            return details.cached_tokens
        return self.prompt_cache_hit_tokens or 0


class Choice(_Wire):
    """One alternative answer of a non-stream response."""

    index: int = 0
    message: AssistantMessage = Field(default_factory=AssistantMessage)
    finish_reason: str | None = None


class ChatCompletion(_Wire):
    """A non-stream response (and what a stream accumulates to).

    ``finish_reason`` is any string: ``stop``, ``eos``, ``length``, ``tool_calls``,
    ``content_filter``… A top-level ``tool_calls`` list (as SiliconFlow's API card shows) is moved
    into the first choice's message when that message has none.
    """

    id: str = ""
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None

    @_model_validator(mode="before")
    @classmethod
    def _hoist_top_level_tool_calls(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("tool_calls"):
            return data
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return data
        message = choices[0].get("message")
        if not isinstance(message, dict) or message.get("tool_calls"):
            return data
        rest = {k: v for k, v in data.items() if k != "tool_calls"}
        first = {**choices[0], "message": {**message, "tool_calls": data["tool_calls"]}}
        return rest | {"choices": [first, *choices[1:]]}

    @property
    def choice(self) -> Choice:
        """The first choice.

        Raises:
            APIResponseValidationError: When the response has no choices.
        """
        if not self.choices:
            raise APIResponseValidationError("The response has no choices", body=None)
        return self.choices[0]

    @property
    def message(self) -> AssistantMessage:
        """The first choice's message (see `choice`)."""
        return self.choice.message

    @property
    def finish_reason(self) -> str | None:
        """The first choice's finish reason (see `choice`)."""
        return self.choice.finish_reason


# --- stream chunks ---------------------------------------------------------------------------


class FunctionCallDelta(_Wire):
    """A fragment of a streamed function call: the name comes once, arguments in pieces."""

    name: str | None = None
    arguments: str | None = None

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_as_string(cls, value: object) -> object:
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False)
        return value


class ToolCallDelta(_Wire):
    """A fragment of a streamed tool call, keyed by ``index``; ``id`` and ``type`` come once."""

    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: FunctionCallDelta | None = None


class ChoiceDelta(_Wire):
    """What one chunk adds to a choice. ``content`` and ``reasoning_content`` may both be set."""

    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(_Wire):
    """One choice inside a stream chunk."""

    index: int = 0
    delta: ChoiceDelta = Field(default_factory=ChoiceDelta)
    finish_reason: str | None = None


class ChatCompletionChunk(_Wire):
    """One ``data:`` event of a stream; ``choices`` may be empty, ``usage`` on every chunk."""

    id: str = ""
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None


# --- images ----------------------------------------------------------------------------------

_URL_PREFIXES = ("http://", "https://", "data:")
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
# ISO base media files (HEIF family) name their brand right after "ftyp".
_ISO_BRANDS = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"avif": "image/avif",
}


def image_part(
    source: str | Path | bytes,
    *,
    detail: Literal["auto", "low", "high"] | None = None,
    mime_type: str | None = None,
) -> ImagePart:
    """Build an image part from a URL, a local file or raw bytes.

    URLs (``http://``, ``https://``, ``data:``) are passed through; files and bytes become a
    base64 ``data:`` URL, which every SiliconFlow vision model accepts (TeleMM accepts only that).

    Args:
        source: A URL, a path to an image file, or the image's bytes.
        detail: ``"auto"``, ``"low"`` or ``"high"``; ``None`` leaves it to the server (auto).
        mime_type: The image type, e.g. ``"image/png"``; read from the bytes' signature when
            omitted (never from a file's name: a file that is not an image is refused).

    Raises:
        ConfigurationError: When the file cannot be read, or its bytes are not an image.
    """
    if isinstance(source, str) and source.startswith(_URL_PREFIXES):
        return ImagePart(image_url=ImageURL(url=source, detail=detail))
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = None
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"image_part: {str(source)!r} is not an http(s)/data URL and cannot be read "
                f"as a file ({exc.strerror or exc})"
            ) from exc
        name = str(source)
    mime = _image_type(data, mime_type, name)
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return ImagePart(image_url=ImageURL(url=url, detail=detail))


def _image_type(data: bytes, mime_type: str | None, name: str | None) -> str:
    """The MIME type to send: the one given (an ``image/`` type), else the bytes' own.

    The bytes decide, not a file's name: ``image_part("server.py")`` must not be sent.
    """
    if mime_type is not None:
        if not mime_type.startswith("image/"):
            raise ConfigurationError(f"image_part: mime_type must be image/..., got {mime_type!r}")
        return mime_type
    sniffed = _sniff_image_type(data)
    if sniffed is None:
        what = repr(name) if name is not None else "these bytes"
        raise ConfigurationError(
            f"image_part: {what} is not an image sfagent recognises (PNG, JPEG, GIF, WebP, "
            "BMP, TIFF, HEIC, AVIF); for another image format pass mime_type='image/...'"
        )
    return sniffed


def _sniff_image_type(data: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in _ISO_BRANDS:
        return _ISO_BRANDS[data[8:12]]
    return None
