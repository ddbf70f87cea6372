"""The model's `arguments` → a dict: JSON parsing, unambiguous repairs, error wording.

Open models make a few recurring slips when writing arguments: a Markdown code fence around
the object, a trailing comma, Python's `True`/`False`/`None`, an empty string for "no
arguments", or the object encoded twice. Each repair here is applied only when the result
is the one reading the text can have; anything else is reported, never guessed.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sfagent._text import shorten
from sfagent.exceptions import ArgumentProblem, ToolArgumentsError

Arguments = str | bytes | Mapping[str, Any] | None
"""The model's arguments: the JSON text it sent, or an already-parsed object."""

CallArgs = tuple[tuple[Any, ...], dict[str, Any]]
"""What a tool's function is called with: positional and keyword arguments."""

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
# Outside strings only (see _repair_tokens): Python literals and commas before a closer.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\bTrue\b|\bFalse\b|\bNone\b|,(?=\s*[}\]])', re.DOTALL)
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}
_MAX_GOT = 60


class ArgumentsParseError(ValueError):
    """Internal: raised with the problem to report when arguments are not a JSON object."""

    def __init__(self, problem: ArgumentProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def strip_code_fence(text: str) -> str:
    """The inside of a Markdown code fence (```json ... ```) around all of `text`, else `text`."""
    fenced = _FENCE.match(text)
    return fenced.group(1).strip() if fenced else text


def tool_arguments(arguments: Arguments, *, tool_name: str) -> dict[str, Any]:
    """`parse_arguments` for a call of `tool_name`.

    Raises:
        ToolArgumentsError: the text is not a JSON object, even after the safe repairs.
    """
    try:
        return parse_arguments(arguments)
    except ArgumentsParseError as exc:
        raise ToolArgumentsError(tool_name, [exc.problem]) from None


def parse_arguments(arguments: Arguments) -> dict[str, Any]:
    """Turn the model's `arguments` (JSON text or an already-parsed object) into a dict.

    Raises:
        ArgumentsParseError: the text is not a JSON object, even after the safe repairs.
    """
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if isinstance(arguments, bytes):
        arguments = arguments.decode("utf-8", errors="replace")
    if not isinstance(arguments, str):
        raise ArgumentsParseError(
            ArgumentProblem("", "expected a JSON object", got=type(arguments).__name__)
        )
    text = arguments.strip()
    if not text:
        return {}  # models send "" for tools without parameters
    try:
        value = json.loads(text)
    except json.JSONDecodeError as first_error:
        value = _load_repaired(text, first_error)
    except RecursionError:
        # A degenerate output ("[[[[..." repeated) must not crash the caller.
        raise ArgumentsParseError(
            ArgumentProblem("", "the JSON is nested too deeply", got=shorten(text, _MAX_GOT))
        ) from None
    if isinstance(value, str) and value.strip().startswith("{"):
        # Double-encoded: a JSON string whose content is the object.
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    if not isinstance(value, dict):
        raise ArgumentsParseError(
            ArgumentProblem("", "expected a JSON object", got=render_value(value))
        )
    return value


def _load_repaired(text: str, error: json.JSONDecodeError) -> Any:
    candidate = _repair_tokens(strip_code_fence(text))
    if candidate != text:
        try:
            return json.loads(candidate)
        except (json.JSONDecodeError, RecursionError):
            pass
    raise ArgumentsParseError(
        ArgumentProblem(
            "",
            f"malformed JSON ({error.msg} at line {error.lineno} column {error.colno})",
            got=shorten(text, _MAX_GOT),
        )
    )


def _repair_tokens(text: str) -> str:
    def fix(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith('"'):
            return token  # inside a string: leave untouched
        if token.startswith(","):
            return ""
        return _PY_LITERALS[token]

    return _TOKEN.sub(fix, text)


def render_value(value: Any) -> str:
    """A short JSON-ish rendering of a received value, for error text shown to the model."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return shorten(text, _MAX_GOT)


def problems_from_pydantic(errors: Iterable[Mapping[str, Any]]) -> list[ArgumentProblem]:
    """Turn pydantic's error dicts into short problems that name each offending argument."""
    problems = []
    for err in errors:
        path = ".".join(str(part) for part in err.get("loc", ()))
        kind = err.get("type", "")
        if kind == "missing":
            problems.append(ArgumentProblem(path, "required argument is missing"))
        elif kind == "extra_forbidden":
            problems.append(
                ArgumentProblem(path, "unknown argument", got=render_value(err.get("input")))
            )
        else:
            message = str(err.get("msg", "invalid value"))
            problems.append(ArgumentProblem(path, message, got=render_value(err.get("input"))))
    return problems
