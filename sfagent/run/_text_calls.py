"""Tool calls a model wrote into ``content`` instead of ``tool_calls`` → `ToolCall` objects (pure).

Qwen, GLM and Hermes-style models on OpenAI-compatible servers sometimes answer a `stop` turn
with the tool-call markup their chat template taught them, as plain text. `find_text_calls`
recognises three such formats and never guesses: the content must be well-formed markup of one
format, and every call must name a registered tool; anything else returns `None`, so prose that
merely mentions a function stays an answer.

The formats, exactly as the templates emit them, and the sources each follows:

``hermes`` (Hermes 2 Pro / 3, Qwen2.5, Qwen3)
    ``<tool_call>\\n{"name": NAME, "arguments": {...}}\\n</tool_call>``, one block per call,
    blocks joined by ``\\n``.
    Templates: Qwen3's ``tokenizer_config.json`` chat template (copy in ggml-org/llama.cpp
    ``models/templates/Qwen-Qwen3-0.6B.jinja``); NousResearch/Hermes-Function-Calling
    ``prompt_assets/sys_prompt.yml``, whose format uses Python quotes (``{'arguments': ...}``).
    Parsers: vllm-project/vllm ``vllm/entrypoints/openai/tool_parsers/hermes_tool_parser.py``
    (JSON; the last block may lack ``</tool_call>``); NousResearch/Hermes-Function-Calling
    ``utils.py`` (JSON, then a Python-literal fallback).
``qwen3_coder`` (Qwen3-Coder)
    ``<tool_call>\\n<function=NAME>\\n<parameter=KEY>\\nVALUE\\n</parameter>\\n``
    ``</function>\\n</tool_call>``, one parameter block per argument.
    Template: Qwen3-Coder's ``chat_template.jinja`` (copy in ggml-org/llama.cpp
    ``models/templates/Qwen3-Coder.jinja``): values raw, non-strings through Jinja's ``string``
    filter (so ``True``, ``{'a': 1}``).
    Parser: vllm-project/vllm ``vllm/entrypoints/openai/tool_parsers/qwen3coder_tool_parser.py``
    (one ``\\n`` trimmed at each end of a value; values converted by the parameter's schema type;
    a bare ``<function=...>`` block without ``<tool_call>`` accepted as a fallback).
``glm`` (GLM-4.5, GLM-4.6, GLM-4.7)
    GLM-4.5/4.6: ``<tool_call>NAME\\n<arg_key>KEY</arg_key>\\n<arg_value>VALUE</arg_value>\\n``
    ``</tool_call>``, each pair on its own lines; GLM-4.7 writes the same without newlines.
    Template: zai-org's ``chat_template.jinja`` (copy in ggml-org/llama.cpp
    ``models/templates/GLM-4.6.jinja``): string values raw, others through ``tojson``.
    Parsers: vllm-project/vllm ``vllm/tool_parsers/glm4_moe_tool_parser.py`` and
    ``glm47_moe_tool_parser.py`` (a string parameter keeps its text unstripped; others are
    stripped and decoded as JSON, then as a Python literal).

No template escapes values (no CDATA, no ``&lt;``), so none is unescaped here. The work is
linear in the content: ``str.find`` scans that only move forward, one anchored whitespace regex,
and JSON decoding; nesting ends in an error caught here, never in a blown stack.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from sfagent.messages import FunctionCall, ToolCall

__all__ = ["TextCallFormat", "TextCalls", "find_text_calls"]

TextCallFormat = Literal["hermes", "qwen3_coder", "glm"]

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_FUNCTION, _FUNCTION_END = "<function=", "</function>"
_PARAMETER, _PARAMETER_END = "<parameter=", "</parameter>"
_KEY, _KEY_END = "<arg_key>", "</arg_key>"
_VALUE, _VALUE_END = "<arg_value>", "</arg_value>"
# Markup the content may not hold outside a call: a stray one means the calls were misread.
_CLOSERS = (_CLOSE, _FUNCTION_END, _PARAMETER_END, _KEY_END, _VALUE_END)
_HERMES_KEYS = frozenset({"name", "arguments"})

_SPACE = re.compile(r"[ \t\r\n]*")  # anchored with .match(text, pos): linear, no backtracking
_NOT_A_NAME = re.compile(r"[\s<>]")
# The Python-literal fallback (for ``True``, ``{'a': 1}``) parses at most this much text.
_MAX_LITERAL = 100_000
_JSON_KINDS = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})

_Parsed = tuple[TextCallFormat, str, dict[str, Any]]
_Schemas = Mapping[str, Mapping[str, Any]]


class _Fail(Enum):
    FAIL = 0


_FAIL = _Fail.FAIL


@dataclass(frozen=True)
class TextCalls:
    """Tool calls recovered from a message's text.

    Attributes:
        format: Which markup the content used.
        calls: The calls, in the order they appear; arguments are JSON object strings.
        content: The prose outside the markup, each piece stripped and pieces joined by a blank
            line; ``""`` when the content was only markup.
    """

    format: TextCallFormat
    calls: tuple[ToolCall, ...]
    content: str


def find_text_calls(
    content: str,
    tool_names: Collection[str],
    *,
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
    id_prefix: str | None = None,
) -> TextCalls | None:
    """Recognise tool calls written as text in one of the known markups.

    Args:
        content: The assistant message's text.
        tool_names: The names of the registered tools; a call naming any other tool makes the
            whole content an answer (`None`).
        schemas: Each tool's parameters JSON schema, by name. For the XML-like formats a value
            is converted by its property's declared type (a string stays text; numbers,
            booleans, objects and arrays are decoded); without a declared type, a value that
            parses as JSON is decoded and anything else stays text.
        id_prefix: Call ids are this prefix plus the call's index. By default the prefix is
            ``text_call_`` plus 12 hex digits of the content's SHA-256, then ``_``.

    Returns:
        The format, the calls in order and the leftover prose; `None` when the content holds
        no markup, the markup is malformed or mixes formats, or a call names an unknown tool.
    """
    if _OPEN not in content and _FUNCTION not in content:
        return None
    tables = schemas or {}
    split = _split_blocks(content, tables) if _OPEN in content else _split_bare(content, tables)
    if split is None:
        return None
    parsed, prose = split
    formats = {fmt for fmt, _, _ in parsed}
    if len(formats) != 1 or any(name not in tool_names for _, name, _ in parsed):
        return None
    if id_prefix is None:
        digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
        id_prefix = f"text_call_{digest[:12]}_"
    calls = _tool_calls(parsed, id_prefix)
    if calls is None:
        return None
    leftover = "\n\n".join(piece.strip() for piece in prose if piece.strip())
    return TextCalls(format=formats.pop(), calls=calls, content=leftover)


def _tool_calls(parsed: list[_Parsed], id_prefix: str) -> tuple[ToolCall, ...] | None:
    """The parsed calls as `ToolCall`s, ids numbered in order; `None` if an argument is not JSON."""
    calls: list[ToolCall] = []
    for index, (_, name, arguments) in enumerate(parsed):
        text = _dump(arguments)
        if text is None:
            return None
        function = FunctionCall(name=name, arguments=text)
        calls.append(ToolCall(id=f"{id_prefix}{index}", function=function))
    return tuple(calls)


# --- splitting the content into markup and prose ----------------------------------------------


def _split_blocks(content: str, schemas: _Schemas) -> tuple[list[_Parsed], list[str]] | None:
    """Each ``<tool_call>`` block parsed, and the prose around them; `None` if any is malformed."""
    parsed: list[_Parsed] = []
    prose: list[str] = []
    pos = 0
    while (start := content.find(_OPEN, pos)) >= 0:
        prose.append(content[pos:start])
        body_start = start + len(_OPEN)
        end = content.find(_CLOSE, body_start)
        body = content[body_start:] if end < 0 else content[body_start:end]
        call = _parse_block(body.strip(), schemas, closed=end >= 0)
        if call is None:
            return None
        parsed.append(call)
        pos = len(content) if end < 0 else end + len(_CLOSE)
    prose.append(content[pos:])
    return None if _stray_markup(prose) else (parsed, prose)


def _split_bare(content: str, schemas: _Schemas) -> tuple[list[_Parsed], list[str]] | None:
    """Qwen3-Coder's ``<function=...>`` blocks without the ``<tool_call>`` wrapper."""
    parsed: list[_Parsed] = []
    prose: list[str] = []
    pos = 0
    while (start := content.find(_FUNCTION, pos)) >= 0:
        prose.append(content[pos:start])
        found = _parse_function(content, start, schemas)
        if found is None:
            return None
        name, arguments, pos = found
        parsed.append(("qwen3_coder", name, arguments))
    prose.append(content[pos:])
    return None if _stray_markup(prose) else (parsed, prose)


def _stray_markup(prose: list[str]) -> bool:
    """Whether the prose holds a closing tag or a ``<function=`` no call accounted for."""
    return any(tag in piece for piece in prose for tag in (*_CLOSERS, _FUNCTION))


def _parse_block(text: str, schemas: _Schemas, *, closed: bool) -> _Parsed | None:
    """One stripped ``<tool_call>`` body, by its first character; an open one must end itself."""
    if text.startswith("{"):
        hermes = _parse_hermes(text)
        return None if hermes is None else ("hermes", *hermes)
    if text.startswith(_FUNCTION):
        found = _parse_function(text, 0, schemas)
        if found is None or found[2] != len(text):
            return None
        return "qwen3_coder", found[0], found[1]
    glm = _parse_glm(text, schemas) if closed else None
    return None if glm is None else ("glm", *glm)


# --- the three formats --------------------------------------------------------------------------


def _parse_hermes(text: str) -> tuple[str, dict[str, Any]] | None:
    """``{"name": ..., "arguments": {...}}`` as JSON, or as a Python literal (Hermes' examples)."""
    data = _loads(text)
    if data is _FAIL:
        data = _literal(text)
    if not isinstance(data, dict) or not data.keys() <= _HERMES_KEYS:
        return None  # other keys ("parameters", ...) would be dropped unseen: not this format
    name, arguments = data.get("name"), data.get("arguments")
    if arguments is None:
        arguments = {}
    elif isinstance(arguments, str):
        arguments = _loads(arguments)  # the arguments as a JSON string, as the API sends them
    if not isinstance(name, str) or not isinstance(arguments, dict):
        return None
    return name, arguments


def _parse_function(
    text: str, start: int, schemas: _Schemas
) -> tuple[str, dict[str, Any], int] | None:
    """``<function=NAME>`` at `start`, its parameters and ``</function>``; returns where it ends."""
    head_end = text.find(">", start)
    name = text[start + len(_FUNCTION) : head_end].strip() if head_end >= 0 else ""
    if not _is_name(name):
        return None
    properties = _properties(schemas, name)
    arguments: dict[str, Any] = {}
    pos = head_end + 1
    while True:
        pos = _skip_space(text, pos)
        if text.startswith(_FUNCTION_END, pos):
            return name, arguments, pos + len(_FUNCTION_END)
        if not text.startswith(_PARAMETER, pos):
            return None
        key_end = text.find(">", pos)
        end = text.find(_PARAMETER_END, key_end) if key_end >= 0 else -1
        key = text[pos + len(_PARAMETER) : key_end].strip()
        if end < 0 or not _is_name(key) or key in arguments:
            return None
        arguments[key] = _convert(_trim_newline(text[key_end + 1 : end]), properties.get(key))
        pos = end + len(_PARAMETER_END)


def _parse_glm(text: str, schemas: _Schemas) -> tuple[str, dict[str, Any]] | None:
    """``NAME`` then ``<arg_key>K</arg_key><arg_value>V</arg_value>`` pairs, whitespace between."""
    cut = text.find(_KEY)
    name = (text if cut < 0 else text[:cut]).strip()
    if not _is_name(name):
        return None
    properties = _properties(schemas, name)
    arguments: dict[str, Any] = {}
    pos = len(text) if cut < 0 else cut
    while pos < len(text):
        pair = _glm_pair(text, pos)
        if pair is None or pair[0] in arguments:
            return None
        key, value, pos = pair
        arguments[key] = _convert(value, properties.get(key))
    return name, arguments


def _glm_pair(text: str, pos: int) -> tuple[str, str, int] | None:
    """The ``<arg_key>``/``<arg_value>`` pair at `pos`: key, raw value, where the next starts."""
    if not text.startswith(_KEY, pos):
        return None
    key_end = text.find(_KEY_END, pos)
    key = text[pos + len(_KEY) : key_end].strip() if key_end >= 0 else ""
    if not _is_name(key):
        return None
    pos = _skip_space(text, key_end + len(_KEY_END))
    if not text.startswith(_VALUE, pos):
        return None
    value_end = text.find(_VALUE_END, pos)
    if value_end < 0:
        return None
    value = text[pos + len(_VALUE) : value_end]
    return key, value, _skip_space(text, value_end + len(_VALUE_END))


# --- values ------------------------------------------------------------------------------------


def _convert(text: str, schema: object) -> Any:
    """A parameter's text → its value, by the property's declared JSON type(s).

    A string-only property keeps the text as written; a typed one takes the JSON (then the
    Python-literal) reading that fits its type; an untyped one takes JSON if it parses. A value
    that fits nothing is passed on as read, for the tool's validation to report to the model.
    """
    kinds = _kinds(schema) if isinstance(schema, Mapping) else frozenset()
    stripped = text.strip()
    if "null" in kinds and stripped == "null":
        return None
    if kinds and kinds <= {"string", "null"}:
        return text
    value = _loads(stripped)
    if value is not _FAIL and (not kinds or _fits(value, kinds)):
        return value
    if not kinds or "string" in kinds:
        return text
    literal = _literal(stripped)
    if literal is not _FAIL and _fits(literal, kinds):
        return literal
    return text if value is _FAIL else value


def _kinds(schema: Mapping[str, Any], depth: int = 0) -> frozenset[str]:
    """The JSON types a property schema admits; empty when it does not say (or admits any)."""
    declared = schema.get("type")
    kinds: set[str] = set()
    if isinstance(declared, str):
        kinds.add(declared)
    elif isinstance(declared, list):
        kinds.update(kind for kind in declared if isinstance(kind, str))
    for key in ("anyOf", "oneOf", "allOf"):
        members = schema.get(key)
        if not isinstance(members, list) or depth > 8:
            continue
        branches = [
            _kinds(m, depth + 1) if isinstance(m, Mapping) else frozenset() for m in members
        ]
        # A branch that admits anything makes the union admit anything: it adds no type.
        if key == "allOf" or all(branches):
            kinds.update(*branches)
    if not kinds:
        values = schema.get("enum")
        choices = values if isinstance(values, list) else []
        if "const" in schema:
            choices = [*choices, schema["const"]]
        kinds.update(_kind(choice) for choice in choices)
    return frozenset(kinds & _JSON_KINDS)


def _kind(value: object) -> str:
    """The JSON type of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _fits(value: object, kinds: frozenset[str]) -> bool:
    kind = _kind(value)
    return kind in kinds or (kind == "integer" and "number" in kinds)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(text: str) -> Any:
    """Strict JSON (no NaN or Infinity), or `_FAIL`; too-deep nesting fails, it does not crash."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return _FAIL


def _literal(text: str) -> Any:
    """A Python literal that is also JSON data (``True``, ``{'a': 1}``), or `_FAIL`."""
    if len(text) > _MAX_LITERAL:
        return _FAIL
    try:
        # Round-trip through JSON: tuples become lists; sets, bytes, complex and NaN fail.
        return json.loads(json.dumps(ast.literal_eval(text), allow_nan=False))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _FAIL


def _dump(arguments: dict[str, Any]) -> str | None:
    try:
        return json.dumps(arguments, ensure_ascii=False, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return None


# --- small helpers -----------------------------------------------------------------------------


def _properties(schemas: _Schemas, name: str) -> Mapping[str, Any]:
    schema = schemas.get(name)
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    return properties if isinstance(properties, Mapping) else {}


def _is_name(text: str) -> bool:
    """A tool or parameter name as the markup carries it: non-empty, no space, no angle bracket."""
    return bool(text) and _NOT_A_NAME.search(text) is None


def _skip_space(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _trim_newline(value: str) -> str:
    """Drop the one newline the Qwen3-Coder template writes at each end of a value."""
    value = value[1:] if value.startswith("\n") else value
    return value[:-1] if value.endswith("\n") else value
