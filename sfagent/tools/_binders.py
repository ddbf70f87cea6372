"""Validated arguments → the call's `(args, kwargs)`, for the two kinds of tool.

`ModelBinder` serves tools made from a Python signature (pydantic validates and coerces);
`JsonSchemaBinder` serves tools made from a raw JSON schema (jsonschema validates).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from sfagent.exceptions import ArgumentProblem, ToolArgumentsError
from sfagent.tools._arguments import (
    ArgumentsParseError,
    parse_arguments,
    problems_from_pydantic,
    render_value,
)
from sfagent.tools._json_schema import JSONSchema, drop_default_nulls
from sfagent.tools._signature import FunctionSchema

CallArgs = tuple[tuple[Any, ...], dict[str, Any]]
Arguments = str | bytes | Mapping[str, Any] | None


class ArgumentBinder(Protocol):
    """Turns the model's arguments into call arguments, or raises `ToolArgumentsError`."""

    def bind(self, arguments: Arguments, context: Any) -> CallArgs:
        """Parse, validate and arrange `arguments` for the call."""
        ...


class ModelBinder:
    """Validates with the pydantic model built from the function's signature."""

    def __init__(self, spec: FunctionSchema, *, tool_name: str) -> None:
        self._model = spec.model
        self._params = spec.call_params
        self._loose = spec.loose_parameters
        self._tool_name = tool_name
        # Under strict the schema closes every object, nested ones too, but a nested model of
        # the user's keeps its own (lenient) config: the schema itself finds unknown keys.
        self._closed: Any = None
        if spec.loose_parameters is not None:
            from jsonschema import Draft202012Validator

            self._closed = Draft202012Validator(spec.parameters)
        # Fast path: pydantic parses and validates JSON text in one pass, in Rust. Strict tools
        # need the dict first (to drop "not given" nulls), so they take the general path.
        self._direct_json = spec.loose_parameters is None

    def bind(self, arguments: Arguments, context: Any) -> CallArgs:
        model = self._model
        try:
            if self._direct_json and isinstance(arguments, str) and arguments[:1] == "{":
                try:
                    validated = model.model_validate_json(arguments)
                except ValidationError as exc:
                    if _is_json_syntax_error(exc):
                        validated = model.model_validate(self._parse(arguments))
                    else:
                        raise
            else:
                validated = model.model_validate(self._parse(arguments))
        except ValidationError as exc:
            problems = problems_from_pydantic(exc.errors(include_url=False))
            raise ToolArgumentsError(self._tool_name, problems) from None
        except _UnknownKeys as exc:
            raise ToolArgumentsError(self._tool_name, exc.problems) from None
        values = validated.__dict__
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for param in self._params:
            value = context if param.field is None else values[param.field]
            if param.positional:
                args.append(value)
            else:
                kwargs[param.name] = value
        return tuple(args), kwargs

    def _parse(self, arguments: Arguments) -> dict[str, Any]:
        data = _parse_or_raise(arguments, self._tool_name)
        if self._loose is not None:
            unknown = _unknown_keys(self._closed, data)
            if unknown:
                raise _UnknownKeys(unknown)
            data = drop_default_nulls(data, self._loose)
        return data


class _UnknownKeys(Exception):
    def __init__(self, problems: list[ArgumentProblem]) -> None:
        super().__init__()
        self.problems = problems


def _unknown_keys(validator: Any, data: dict[str, Any]) -> list[ArgumentProblem]:
    problems = []
    for error in validator.iter_errors(data):
        if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
            continue  # everything else is pydantic's to report, in its words
        known = error.schema.get("properties", {})
        prefix = "".join(f"{part}." for part in error.absolute_path)
        for key in error.instance:
            if key not in known:
                got = render_value(error.instance[key])
                problems.append(ArgumentProblem(f"{prefix}{key}", "unknown argument", got=got))
    return problems


class JsonSchemaBinder:
    """Validates with `jsonschema` against a hand-written schema; passes keyword arguments."""

    def __init__(self, schema: JSONSchema, *, tool_name: str) -> None:
        from jsonschema import Draft202012Validator

        self._validator = Draft202012Validator(schema)  # built once, reused for every call
        self._tool_name = tool_name

    def bind(self, arguments: Arguments, context: Any) -> CallArgs:
        data = _parse_or_raise(arguments, self._tool_name)
        errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            problems = [
                ArgumentProblem(".".join(str(p) for p in e.absolute_path), e.message)
                for e in errors
            ]
            raise ToolArgumentsError(self._tool_name, problems)
        return (), data


def _parse_or_raise(arguments: Arguments, tool_name: str) -> dict[str, Any]:
    try:
        return parse_arguments(arguments)
    except ArgumentsParseError as exc:
        raise ToolArgumentsError(tool_name, [exc.problem]) from None


def _is_json_syntax_error(exc: ValidationError) -> bool:
    return any(err["type"] == "json_invalid" for err in exc.errors(include_url=False))
