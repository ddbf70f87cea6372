"""Validated arguments → the call's `(args, kwargs)`, for the two kinds of tool.

`ModelBinder` serves tools made from a Python signature (pydantic validates and coerces);
`JsonSchemaBinder` serves tools made from a raw JSON schema (jsonschema validates).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pydantic import ValidationError

from sfagent._arguments import ArgumentsParseError, parse_arguments, problems_from_pydantic
from sfagent._jsonschema import JSONSchema, drop_default_nulls
from sfagent._schema import FunctionSchema
from sfagent.exceptions import ArgumentProblem, ToolArgumentsError

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
            data = drop_default_nulls(data, self._loose)
        return data


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
