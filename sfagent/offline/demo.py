"""`DemoModel`: an offline model that calls the tools it is given, then sums up the results.

It is the built-in stand-in when no API key is set: deterministic, instant, and good enough to
show a run end to end. Arguments are generated from each tool's JSON schema, filled where it
can from the user's prompt (quoted text, capitalised names, numbers).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sfagent._text import shorten
from sfagent.offline.model import OfflineModel
from sfagent.offline.replies import Reply, ScriptedToolCall
from sfagent.settings import ChatRequest

__all__ = ["DemoModel"]

# An apostrophe with a letter on both sides is part of a word ("What's", "Xi'an"), not a
# quote: single quotes open only where no word precedes them and close where none follows.
_QUOTED = re.compile(
    r"[\"“]([^\"”]{1,60})[\"”]"
    r"|(?<!\w)'((?:[^']|(?<=[^\W\d_])'(?=[^\W\d_])){1,60})'(?!\w)"
)
# A word may hold apostrophes between letters: "Xi'an" is one name, not "Xi".
_NAME_WORD = r"[A-Z](?:[a-zA-Z-]|['’](?=[a-zA-Z]))+"
_NAME = re.compile(rf"\b{_NAME_WORD}(?:\s{_NAME_WORD})*")
_CONTRACTION = re.compile(r"['’](?:s|m|re|ve|ll|d)$")
_POSSESSIVE = re.compile(r"['’]s$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z]+")
# Capitalised words that are not names: they start questions and requests.
_SKIP_WORDS = (
    "A An And Also Answer Are Book But Calculate Can Check Compare Convert Could Create Did "
    "Do Does Explain Find For Get Give He Hello Help Here Hi How I If In Is It Let List Look "
    "Make Now Of On Or Plan Please Search Send She Should Show Summarize Tell Thanks That The "
    "Then There They Translate We What Whats When Where Which Who Why Will Would Write You"
)
_SKIP = frozenset(_SKIP_WORDS.split())
_MAX_CALLS = 4


class DemoModel(OfflineModel):
    """Calls every tool once (or once per name found in the prompt), then summarises.

    On a turn that follows the user's message it calls the tools; on a turn that follows tool
    results it answers with a short summary of them, so any agent completes in two requests.
    """

    model_name = "demo"

    def reply_for(self, request: ChatRequest) -> Reply:
        """Tool calls after a user message; a summary after tool results."""
        body = request.to_body()
        messages: list[Mapping[str, Any]] = body["messages"]
        last = messages[-1] if messages else {}
        tools = body.get("tools") or []
        if last.get("role") == "tool" or not tools or _is_retry(last):
            schema = _output_schema(body)
            if schema is not None:  # structured output: an object that fits the schema
                pool = _Pool(_text(_first_user(messages)), _names(_text(_first_user(messages))))
                return Reply(text=json.dumps(_example(schema, "result", pool)))
            return Reply(text=_summary(messages))
        prompt = _text(last.get("content"))
        calls = [c for spec in tools for c in _calls_for(spec["function"], prompt)]
        return Reply(tool_calls=calls[:_MAX_CALLS]) if calls else Reply(text=_summary(messages))


def _output_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The schema a structured answer must fit, from `response_format` or the instructions."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return fmt.get("json_schema", {}).get("schema")  # type: ignore[no-any-return]
    if fmt.get("type") != "json_object":
        return None
    for message in body["messages"]:
        if message.get("role") == "system":
            schema = _schema_in(_text(message.get("content")))
            if schema is not None:
                return schema
    return {"type": "object", "properties": {}}


def _schema_in(text: str) -> Mapping[str, Any] | None:
    """The first JSON schema object written in `text` (the agent puts the output's there)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict) and ("type" in value or "properties" in value):
            return value
        start = text.find("{", start + 1)
    return None


def _is_retry(message: Mapping[str, Any]) -> bool:
    return message.get("role") == "user" and "did not match the required JSON schema" in _text(
        message.get("content")
    )


def _first_user(messages: Sequence[Mapping[str, Any]]) -> Any:
    return next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")


def _calls_for(function: Mapping[str, Any], prompt: str) -> list[ScriptedToolCall]:
    schema = function.get("parameters") or {}
    properties: Mapping[str, Any] = schema.get("properties", {})
    required = list(schema.get("required", []))
    names = _names(prompt, _vocabulary(function))
    quoted = [m.group(1) or m.group(2) for m in _QUOTED.finditer(prompt)]
    strings = quoted or names
    text_params = [p for p in required if properties.get(p, {}).get("type") == "string"]
    # One call per name in the prompt when the tool takes a single text argument (e.g. two
    # cities asked about at once); otherwise a single call.
    variants = strings[:_MAX_CALLS] if len(text_params) == 1 and len(strings) > 1 else [None]
    calls = []
    for variant in variants:
        pool = _Pool(prompt, [variant] if variant else strings)
        arguments = {p: _example(properties.get(p, {}), p, pool) for p in required}
        calls.append(ScriptedToolCall(function["name"], arguments))
    return calls


def _names(prompt: str, vocabulary: frozenset[str] = frozenset()) -> list[str]:
    """Capitalised names in the prompt, without the question words that precede them.

    Words the tool itself uses (its name, description, parameter names) are the subject of
    the question, not a value: "Weather in Paris" gives get_weather "Paris", not "Weather".
    """
    names = []
    for match in _NAME.findall(prompt):
        words = match.split()
        while words and _not_a_name(words[0], vocabulary):
            words.pop(0)  # "Is Wuhan" -> "Wuhan"
        if words:
            words[-1] = _POSSESSIVE.sub("", words[-1])  # "Paris's weather" -> "Paris"
            names.append(" ".join(words))
    return names


def _not_a_name(word: str, vocabulary: frozenset[str]) -> bool:
    # "I'm" and "It's" start sentences as "I" and "It" do; "Xi'an" is no contraction.
    bare = _CONTRACTION.sub("", word)
    return bare in _SKIP or word in _SKIP or bare.lower() in vocabulary


def _vocabulary(function: Mapping[str, Any]) -> frozenset[str]:
    """The lower-case words a tool's name, description and parameter names are made of."""
    parameters = (function.get("parameters") or {}).get("properties", {})
    text = " ".join([function.get("name", ""), function.get("description") or "", *parameters])
    return frozenset(word.lower() for word in _WORD.findall(text.replace("_", " ")))


class _Pool:
    """Values taken from the prompt, handed out in order."""

    def __init__(self, prompt: str, strings: Sequence[str]) -> None:
        self.strings = list(strings)
        self.numbers = [float(n) for n in _NUMBER.findall(prompt)]
        self.prompt = prompt

    def string(self, name: str) -> str:
        if self.strings:
            return self.strings.pop(0)
        if name in ("query", "q", "text", "prompt", "question", "expression"):
            return self.prompt
        return f"example {name}"

    def number(self) -> float | None:
        return self.numbers.pop(0) if self.numbers else None


def _example(schema: Mapping[str, Any], name: str, pool: _Pool) -> Any:
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key, []) if o.get("type") != "null"]
        if options:
            return _example(options[0], name, pool)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return _by_type(kind, schema, name, pool)


def _by_type(kind: Any, schema: Mapping[str, Any], name: str, pool: _Pool) -> Any:
    if kind == "string":
        return _string(schema, name, pool)
    if kind in ("integer", "number"):
        value = pool.number()
        low, high = schema.get("minimum"), schema.get("maximum")
        value = value if value is not None else (low if low is not None else 1)
        value = min(
            max(value, low if low is not None else value), high if high is not None else value
        )
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "array":
        return [_example(schema.get("items", {}), name, pool)]
    if kind == "object":
        properties = schema.get("properties", {})
        return {p: _example(properties[p], p, pool) for p in schema.get("required", [])}
    return pool.string(name)


def _string(schema: Mapping[str, Any], name: str, pool: _Pool) -> str:
    fmt = schema.get("format")
    today = dt.date.today()
    if fmt == "date":
        return today.isoformat()
    if fmt == "date-time":
        return dt.datetime.combine(today, dt.time(9)).isoformat()
    if fmt == "time":
        return "09:00:00"
    if fmt == "uuid":
        return "00000000-0000-4000-8000-000000000000"
    return pool.string(name)


def _summary(messages: Sequence[Mapping[str, Any]]) -> str:
    # Only this exchange counts: what came after the user's latest message.
    starts = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    messages = messages[starts[-1] :] if starts else messages
    calls: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call["function"]
            calls[call["id"]] = f"{function['name']}({_short(function['arguments'])})"
    lines = [
        f"- {calls.get(m.get('tool_call_id', ''), 'tool')}: {_short(_text(m.get('content')), 200)}"
        for m in messages
        if m.get("role") == "tool"
    ]
    if not lines:
        return "(demo model) I have no tools to call; set SILICONFLOW_API_KEY for real answers."
    return "(demo model) Here is what the tools returned:\n" + "\n".join(lines)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ""


def _short(text: str, limit: int = 80) -> str:
    """`text` on one line: JSON re-encoded compactly, then cut."""
    with contextlib.suppress(ValueError, TypeError):
        text = json.dumps(json.loads(text), ensure_ascii=False)
    return shorten(text, limit)
