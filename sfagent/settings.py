"""Model settings and the request body, with every documented limit checked before sending.

Which defaults are sent: **only what you set**, plus ``model``. A field left at ``None`` is
omitted from the JSON and the server applies its own default. Note that SiliconFlow's documented
``max_tokens`` default is 512, which cuts off most reasoning answers: set ``max_tokens`` when
you need long output. Vendor fields (``enable_thinking``, ``thinking_budget``, ``min_p``,
``reasoning_effort``, ``top_k``) are opt-in for the same reason: sending ``enable_thinking`` to
a model without a thinking switch is a 400.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, overload

from sfagent.exceptions import ConfigurationError

if TYPE_CHECKING:
    from sfagent.messages import MessageBase

__all__ = [
    "DEFAULT_MODEL",
    "MAX_CHOICES",
    "MAX_STOP_SEQUENCES",
    "MAX_TOOLS",
    "TOOL_NAME_PATTERN",
    "ChatRequest",
    "CheckedTools",
    "ModelSettings",
    "ReasoningEffort",
]

DEFAULT_MODEL = "deepseek-ai/DeepSeek-V3"
"""The model used when a request names none; any model id is accepted."""

MAX_TOOLS = 128
"""SiliconFlow accepts at most this many functions in ``tools``."""

TOOL_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""Function names SiliconFlow (and OpenAI) accept; checked with ``fullmatch``."""

MAX_CHOICES = 16
"""``n`` above this is refused (send more with ``extra_body``)."""

MAX_STOP_SEQUENCES = 4
"""``stop`` takes a string or at most this many strings."""

ReasoningEffort = Literal["low", "medium", "high", "xhigh", "max"]
"""Documented: ``high``, ``max``; the server maps ``low``/``medium`` to high, ``xhigh`` to max."""

_TOOL_CHOICE_MODES = frozenset({"auto", "none", "required"})
_RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
_RESERVED = frozenset({"model", "messages", "stream", "tools"})


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    """Sampling and vendor parameters; ``None`` means "not sent, server default".

    Built once (say per agent) and checked when built, so a bad value fails before any request.

    Attributes:
        max_tokens: Output cap (excludes chain of thought). The server's default is only 512.
        temperature: 0 to 2.
        top_p: 0 to 1.
        top_k: Sample from the k likeliest tokens: a whole number, at least 1.
        frequency_penalty: Penalise repeated tokens, -2 to 2 (OpenAI's range; SiliconFlow's
            card gives only the default, 0.5).
        n: Number of choices to generate, 1 to 16 (the card gives no maximum; each choice costs
            a whole answer's tokens).
        stop: A string or up to 4 strings; the stop text is not returned.
        response_format: ``"text"``, ``"json_object"``, or a dict: ``{"type": "json_object"}`` or
            ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"?}}``.
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or
            ``{"type": "function", "function": {"name": ...}}``. SiliconFlow documents only
            ``"auto"`` and has answered ``"required"`` with 400 (code 20015).
        enable_thinking: Thinking switch of hybrid models (GLM, Qwen3, DeepSeek-V3.1+ ...).
        thinking_budget: Reasoning tokens allowed, 128 to 32768.
        min_p: 0 to 1 (Qwen3 only).
        reasoning_effort: ``"high"`` or ``"max"``; ``low``/``medium``/``xhigh`` are accepted and
            sent as given (the server maps them to high/max).
        extra_body: Anything else, merged into the JSON body as is and never checked (e.g.
            ``parallel_tool_calls``, ``prefix``/``suffix`` for FIM): the escape hatch for a
            value outside the ranges above, too (``extra_body={"n": 32}``). A key may not be
            set here and by its field above at once.
    """

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    frequency_penalty: float | None = None
    n: int | None = None
    stop: str | Sequence[str] | None = None
    response_format: str | Mapping[str, Any] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    enable_thinking: bool | None = None
    thinking_budget: int | None = None
    min_p: float | None = None
    reasoning_effort: ReasoningEffort | None = None
    extra_body: Mapping[str, Any] | None = None
    _body: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_int("max_tokens", self.max_tokens, low=1)
        _check_number("temperature", self.temperature, low=0.0, high=2.0)
        _check_number("top_p", self.top_p, low=0.0, high=1.0)
        _check_number("top_k", self.top_k, low=1)
        if self.top_k is not None and not float(self.top_k).is_integer():
            raise ConfigurationError(f"top_k must be a whole number, got {self.top_k!r}")
        _check_number("frequency_penalty", self.frequency_penalty, low=-2.0, high=2.0)
        _check_int("n", self.n, low=1, high=MAX_CHOICES)
        _check_int("thinking_budget", self.thinking_budget, low=128, high=32768)
        _check_number("min_p", self.min_p, low=0.0, high=1.0)
        if self.enable_thinking is not None and not isinstance(self.enable_thinking, bool):
            raise ConfigurationError("enable_thinking must be True, False or None")
        if self.reasoning_effort is not None and self.reasoning_effort not in (
            "low", "medium", "high", "xhigh", "max"
        ):  # fmt: skip
            raise ConfigurationError(
                f"reasoning_effort must be 'high' or 'max' (or low/medium/xhigh, which the "
                f"server maps), got {self.reasoning_effort!r}"
            )
        body: dict[str, Any] = {}
        for name in _PLAIN_FIELDS:
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.stop is not None:
            body["stop"] = _normalise_stop(self.stop)
        if self.response_format is not None:
            body["response_format"] = _normalise_response_format(self.response_format)
        if self.tool_choice is not None:
            body["tool_choice"] = _normalise_tool_choice(self.tool_choice)
        if self.extra_body is not None:
            body.update(_check_extra_body(self.extra_body, body))
        object.__setattr__(self, "_body", body)

    def to_body(self) -> dict[str, Any]:
        """Return the JSON fields these settings add to a request (a fresh dict)."""
        return dict(self._body)

    def merge(self, other: ModelSettings | None) -> ModelSettings:
        """Return these settings overridden by every field ``other`` sets.

        ``extra_body`` dicts are merged key by key, ``other`` winning.
        """
        if other is None:
            return self
        merged = {name: getattr(self, name) for name in _SETTING_FIELDS}
        for name in _SETTING_FIELDS:
            value = getattr(other, name)
            if value is not None:
                merged[name] = value
        if self.extra_body and other.extra_body:
            merged["extra_body"] = {**self.extra_body, **other.extra_body}
        return ModelSettings(**merged)


_SETTING_FIELDS = tuple(f.name for f in fields(ModelSettings) if f.name != "_body")
# Fields sent as given; stop, response_format, tool_choice and extra_body are normalised.
_PLAIN_FIELDS = tuple(
    n for n in _SETTING_FIELDS if n not in {"stop", "response_format", "tool_choice", "extra_body"}
)


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions request, checked when built; `to_body` makes the JSON.

    Args:
        messages: The conversation: message models (see `sfagent.messages`) or wire dicts,
            which are sent as given.
        model: Any model id; defaults to `DEFAULT_MODEL`.
        tools: Up to 128 ``{"type": "function", "function": {...}}`` dicts, checked here; or a
            `CheckedTools` (what `ToolSet.request_tools` gives), checked once when it was built.
        settings: Sampling and vendor parameters; only what they set is sent.
        stream: Ask for a server-sent-event stream.

    Raises:
        ConfigurationError: When a documented limit is broken.
    """

    messages: Sequence[MessageBase | Mapping[str, Any]]
    _: KW_ONLY
    model: str = DEFAULT_MODEL
    tools: Sequence[Mapping[str, Any]] | None = None
    settings: ModelSettings | None = None
    stream: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigurationError("model must be a non-empty model id, e.g. " + DEFAULT_MODEL)
        if not self.messages:
            raise ConfigurationError("messages must hold at least one message")
        if isinstance(self.tools, CheckedTools):
            names = self.tools.names
        else:
            names = _check_tools(self.tools) if self.tools else frozenset()
        if self.settings is not None:
            _check_tool_choice_against(self.settings._body.get("tool_choice"), names)

    def to_body(self) -> dict[str, Any]:
        """Build the JSON body: ``model``, ``messages``, what settings set, ``tools``, ``stream``.

        Messages that are models are dumped once and cached on the message, so replaying a
        history costs one list pass per turn. Raises `ConfigurationError` for a message that is
        neither a message model nor a dict.
        """
        from sfagent.messages import MessageBase  # pydantic loads with the first request

        wire: list[Any] = []
        append = wire.append
        for message in self.messages:
            if isinstance(message, MessageBase):
                append(message.to_wire())
            elif isinstance(message, Mapping):
                append(message)
            else:
                raise ConfigurationError(
                    f"messages must be message models or dicts, got {type(message).__name__}"
                )
        body: dict[str, Any] = {"model": self.model, "messages": wire}
        if self.settings is not None:
            body.update(self.settings._body)
        if self.tools:
            body["tools"] = list(self.tools)
        if self.stream:
            body["stream"] = True
        return body

    def to_json(self) -> bytes:
        """Return `to_body` encoded as compact UTF-8 JSON (see `encode_body`)."""
        return encode_body(self.to_body())


def encode_body(body: Mapping[str, Any]) -> bytes:
    """Encode a request body as compact UTF-8 JSON: the one encoder every request goes through.

    Values JSON lacks are written as pydantic writes them (a ``date`` as ``"2024-01-02"``).

    Raises:
        ConfigurationError: When a value cannot be encoded; the message says where it is.
    """
    # pydantic-core's encoder is about 4x faster than json.dumps on a long history; it loads at
    # the first request, so that defining tools and agents does not wait for it.
    from pydantic_core import PydanticSerializationError, to_json

    try:
        return to_json(body)
    except PydanticSerializationError as exc:
        where = _unencodable_path(body)
        at = f" at {where}" if where else ""
        raise ConfigurationError(f"the request cannot be encoded as JSON{at}: {exc}") from exc


def _unencodable_path(body: Any, *, max_depth: int = 32) -> str:
    # Only on failure: walk down into the first member that fails too, to name where it is.
    path, value = "", body
    seen: set[int] = set()
    while isinstance(value, (Mapping, list, tuple)) and id(value) not in seen:
        seen.add(id(value))
        is_map = isinstance(value, Mapping)
        members = value.items() if isinstance(value, Mapping) else enumerate(value)
        failing = next(((key, item) for key, item in members if not _encodes(item)), None)
        if failing is None:
            break  # every member encodes alone: the whole fails (a cycle, or too deep)
        if len(seen) >= max_depth:
            return ""  # nested past any real request: the depth is the problem, not a value
        key, value = failing
        path += f".{key}" if is_map else f"[{key}]"
    return path.lstrip(".")


def _encodes(value: Any) -> bool:
    from pydantic_core import PydanticSerializationError, to_json

    try:
        to_json(value)
    except PydanticSerializationError:
        return False
    return True


# --- checks ----------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(
    name: str, value: object, *, low: float | None = None, high: float | None = None
) -> None:
    if value is None:
        return
    if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise ConfigurationError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):  # type: ignore[operator]
        raise ConfigurationError(f"{name} must be between {low} and {high}, got {value!r}")


def _check_int(name: str, value: object, *, low: int, high: int | None = None) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigurationError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigurationError(f"{name} must be {bound}, got {value}")


def _normalise_stop(stop: str | Sequence[str]) -> str | list[str]:
    if isinstance(stop, str):
        return stop
    items = list(stop)
    if not 1 <= len(items) <= MAX_STOP_SEQUENCES or not all(isinstance(s, str) for s in items):
        raise ConfigurationError(
            f"stop must be a string or 1 to {MAX_STOP_SEQUENCES} strings, got {stop!r}"
        )
    return items


def _normalise_response_format(value: str | Mapping[str, Any]) -> dict[str, Any]:
    fmt: dict[str, Any] = {"type": value} if isinstance(value, str) else dict(value)
    kind = fmt.get("type")
    if kind not in _RESPONSE_FORMATS:
        raise ConfigurationError(
            f"response_format type must be text, json_object or json_schema, got {kind!r}"
        )
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if (
            not isinstance(spec, Mapping)
            or not isinstance(spec.get("name"), str)
            or not isinstance(spec.get("schema"), Mapping)
        ):
            raise ConfigurationError(
                "response_format json_schema needs "
                '{"json_schema": {"name": str, "schema": dict, "strict": bool (optional)}}'
            )
        if spec.get("strict") is not None and not isinstance(spec["strict"], bool):
            raise ConfigurationError("response_format json_schema.strict must be a bool")
    return fmt


def _normalise_tool_choice(value: str | Mapping[str, Any]) -> str | dict[str, Any]:
    if isinstance(value, str):
        if value not in _TOOL_CHOICE_MODES:
            raise ConfigurationError(
                f"tool_choice must be 'auto', 'none', 'required' or "
                f'{{"type": "function", "function": {{"name": ...}}}}, got {value!r}'
            )
        return value
    ok = isinstance(value, Mapping) and value.get("type") == "function"
    function = value.get("function") if ok else None
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise ConfigurationError(
            f'tool_choice dict must be {{"type": "function", "function": {{"name": ...}}}}, '
            f"got {value!r}"
        )
    return {"type": "function", "function": {"name": function["name"]}}


def _check_extra_body(extra: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(extra, Mapping):
        raise ConfigurationError("extra_body must be a dict")
    reserved = sorted(k for k in extra if k in _RESERVED or k == "extra_body")
    if reserved:
        raise ConfigurationError(
            f"extra_body may not set {', '.join(reserved)}: the request sets those"
        )
    twice = sorted(k for k in extra if k in body)
    if twice:
        raise ConfigurationError(
            f"extra_body may not set {', '.join(twice)}: the named setting already does"
        )
    return dict(extra)


# --- tools ----------------------------------------------------------------------------------
# The rules of a request's `tools` live here, once; `sfagent.tools` applies them when a tool or
# a tool set is defined, each caller raising its own error type around the same wording.


def tool_name_problem(name: object) -> str | None:
    """Why `name` cannot name a function in ``tools``, or ``None`` when it can."""
    if isinstance(name, str) and TOOL_NAME_PATTERN.fullmatch(name):
        return None
    return (
        f"invalid tool name {name!r}: names must be 1-64 characters of letters, digits, '_' or '-'"
    )


def tool_count_problem(count: int) -> str | None:
    """Why one request cannot carry `count` tools, or ``None`` when it can."""
    if count <= MAX_TOOLS:
        return None
    return f"too many tools: a request may carry at most {MAX_TOOLS} tools, got {count}"


@dataclass(frozen=True)
class CheckedTools(Sequence[Mapping[str, Any]]):
    """A request's ``tools``, checked once when built, so a request that carries it is not.

    A `ToolSet` keeps one (`ToolSet.request_tools`) and an agent sends it every turn.

    Args:
        schemas: ``{"type": "function", "function": {"name": ..., ...}}`` dicts: at most 128,
            with valid, unique names.

    Attributes:
        names: The functions' names.

    Raises:
        ConfigurationError: When an entry is malformed or a limit is broken.
    """

    schemas: tuple[Mapping[str, Any], ...]
    names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        schemas = tuple(self.schemas)
        object.__setattr__(self, "schemas", schemas)
        object.__setattr__(self, "names", _check_tools(schemas))

    @overload
    def __getitem__(self, index: int) -> Mapping[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Mapping[str, Any], ...]: ...

    def __getitem__(self, index: int | slice) -> Mapping[str, Any] | tuple[Mapping[str, Any], ...]:
        return self.schemas[index]

    def __len__(self) -> int:
        return len(self.schemas)

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self.schemas)


def _check_tools(tools: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    problem = tool_count_problem(len(tools))
    if problem:
        raise ConfigurationError(problem)
    names: list[str] = []
    for i, tool in enumerate(tools):
        ok = isinstance(tool, Mapping) and tool.get("type") == "function"
        function = tool.get("function") if ok else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str):
            raise ConfigurationError(
                f'tools[{i}] must be {{"type": "function", "function": {{"name": ..., ...}}}}'
            )
        problem = tool_name_problem(name)
        if problem:
            raise ConfigurationError(f"tools[{i}]: {problem}")
        names.append(name)
    unique = frozenset(names)
    if len(unique) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ConfigurationError(f"tool names must be unique, repeated: {', '.join(dupes)}")
    return unique


def _check_tool_choice_against(choice: object, names: frozenset[str]) -> None:
    if choice == "required" and not names:
        raise ConfigurationError("tool_choice='required' needs at least one tool")
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        if name not in names:
            raise ConfigurationError(f"tool_choice names {name!r}, which is not among the tools")
