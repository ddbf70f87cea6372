"""A tool's parameters as one object: the JSON schema the model sees, and `bind`, which checks it.

Both views come from one definition, so they cannot drift apart. There are two kinds:

- `FunctionSchema` (`sfagent.tools._signature`): built from a Python signature; a pydantic
  class made from the same signature validates and converts the arguments;
- `GivenSchema` (here): a JSON schema given as is (`Tool.from_schema`); `jsonschema` validates
  against it and the arguments arrive as parsed JSON.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol

from sfagent.exceptions import ArgumentProblem, ToolArgumentsError
from sfagent.tools._arguments import Arguments, CallArgs, tool_arguments
from sfagent.tools._json_schema import JSONSchema
from sfagent.tools._meta_schema import check_meta_schema


class ParametersSchema(Protocol):
    """What a `Tool` needs from its parameters, whichever kind they are."""

    @property
    def parameters(self) -> JSONSchema:
        """The `parameters` JSON schema sent to the API."""
        ...

    @property
    def takes_context(self) -> bool:
        """Whether the call needs the run's `RunContext`."""
        ...

    def bind(self, arguments: Arguments, context: Any) -> CallArgs:
        """Parse and validate the model's `arguments` into the call's `(args, kwargs)`.

        Raises:
            ToolArgumentsError: the arguments are malformed or invalid (all problems at once).
        """
        ...


class GivenSchema:
    """A hand-written (or imported) JSON schema and its `jsonschema` validator.

    Attributes:
        parameters: The schema, `type` and `properties` filled in when missing.
        takes_context: Always ``False``: the arguments are the call's only keywords.
    """

    takes_context = False

    def __init__(self, parameters: Mapping[str, Any] | None, *, tool_name: str) -> None:
        """Copy and complete `parameters`, then check it against the meta-schema.

        Raises:
            ToolDefinitionError: the schema is not valid JSON Schema, or not of type object.
        """
        from jsonschema import Draft202012Validator

        schema = copy.deepcopy(dict(parameters)) if parameters is not None else {}
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        check_meta_schema(schema, tool_name=tool_name)
        self.parameters: JSONSchema = schema
        self._validator = Draft202012Validator(schema)  # built once, reused for every call
        self._tool_name = tool_name

    def bind(self, arguments: Arguments, context: Any) -> CallArgs:
        """Validate the parsed arguments against the schema; they become keyword arguments."""
        data = tool_arguments(arguments, tool_name=self._tool_name)
        errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            problems = [
                ArgumentProblem(".".join(str(p) for p in e.absolute_path), e.message)
                for e in errors
            ]
            raise ToolArgumentsError(self._tool_name, problems)
        return (), data
