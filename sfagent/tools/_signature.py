"""A Python callable → one definition with two views: the JSON schema and the validator.

The pydantic model built from the signature validates the model's arguments, and the JSON
schema sent to the API is generated from that same model, so the two cannot drift apart.
Only public pydantic API is used (`create_model`, `ConfigDict`, `GenerateJsonSchema`).
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema

from sfagent.context import RunContext
from sfagent.exceptions import ToolDefinitionError
from sfagent.tools._docstrings import parse_docstring
from sfagent.tools._json_schema import (
    JSONSchema,
    check_meta_schema,
    inline_refs,
    make_strict,
    strip_titles,
)

_POSITIONAL_ONLY = inspect.Parameter.POSITIONAL_ONLY
_UNION_TYPES = (Union, types.UnionType)


class _ToolJsonSchema(GenerateJsonSchema):
    """Draft 2020-12 schema without the per-field titles pydantic adds by default."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


@dataclass(frozen=True)
class ParameterSpec:
    """How one parameter is filled at call time.

    Attributes:
        name: The parameter's name in the signature.
        field: The validator field holding its value (``None`` for the RunContext parameter).
        positional: Whether it must be passed positionally (positional-only).
    """

    name: str
    field: str | None
    positional: bool


@dataclass(frozen=True)
class FunctionSchema:
    """Everything derived once from a function's signature and docstring.

    Attributes:
        description: The tool description from the docstring (may be empty).
        parameters: The `parameters` JSON schema sent to the API.
        model: The pydantic model that validates the model's arguments.
        call_params: Every parameter in signature order, and where its value comes from.
        context_param: The parameter that receives the `RunContext`, if any.
        bound_self: Whether the function's first parameter is an unbound `self`.
        loose_parameters: Under strict mode, the schema before it was made strict: it tells
            which `null`s stand for "use the default" (strict makes optional fields nullable).
    """

    description: str
    parameters: JSONSchema
    model: type[BaseModel]
    call_params: tuple[ParameterSpec, ...]
    context_param: str | None
    bound_self: bool
    loose_parameters: JSONSchema | None = None


def function_schema(
    fn: Callable[..., Any],
    *,
    tool_name: str,
    strict: bool,
    local_names: Mapping[str, Any] | None = None,
) -> FunctionSchema:
    """Build the schema and validator for `fn`.

    `local_names` resolves string annotations that name classes local to the defining
    function (with `from __future__ import annotations`, those are not in `fn.__globals__`).

    Raises:
        ToolDefinitionError: a parameter cannot be expressed (`*args`, `**kwargs`, an
            unresolvable annotation, a shape strict mode refuses, an invalid schema).
    """
    signature = _signature(fn, tool_name, local_names)
    documented: Any = fn
    while isinstance(documented, functools.partial):
        documented = documented.func  # a partial's own docstring describes `partial`
    docs = parse_docstring(inspect.getdoc(documented))
    fields: dict[str, Any] = {}
    call_params: list[ParameterSpec] = []
    context_param: str | None = None
    bound_self = False
    for index, param in enumerate(signature.parameters.values()):
        _refuse_variadic(param, tool_name)
        positional = param.kind is _POSITIONAL_ONLY
        if index == 0 and param.name in ("self", "cls") and param.annotation is param.empty:
            bound_self = True  # a method decorated in its class body; bound later
            continue
        if _is_run_context(param.annotation):
            if context_param is not None:
                raise ToolDefinitionError(
                    f"tool '{tool_name}' takes more than one RunContext parameter "
                    f"('{context_param}' and '{param.name}')"
                )
            context_param = param.name
            call_params.append(ParameterSpec(param.name, None, positional))
            continue
        # Internal field names, with the parameter name as alias: parameters called `json`,
        # `schema` or `_private` would otherwise clash with BaseModel or be dropped by it.
        field_name = f"p{index}"
        fields[field_name] = _field(param, docs.params.get(param.name))
        call_params.append(ParameterSpec(param.name, field_name, positional))
    model = _create_model(tool_name, fields, strict=strict)
    loose = _parameters_schema(model, tool_name=tool_name)
    parameters = make_strict(loose, tool_name=tool_name) if strict else loose
    check_meta_schema(parameters, tool_name=tool_name)
    return FunctionSchema(
        description=docs.description,
        parameters=parameters,
        model=model,
        call_params=tuple(call_params),
        context_param=context_param,
        bound_self=bound_self,
        loose_parameters=loose if strict else None,
    )


def _signature(
    fn: Callable[..., Any], tool_name: str, local_names: Mapping[str, Any] | None
) -> inspect.Signature:
    try:
        return inspect.signature(fn, eval_str=True, locals=local_names)
    except NameError as exc:
        raise ToolDefinitionError(
            f"tool '{tool_name}' has a type annotation that cannot be resolved: {exc} "
            "(types used in annotations must be importable where the function is defined)"
        ) from None
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"tool '{tool_name}': cannot read its signature: {exc}") from None


def _refuse_variadic(param: inspect.Parameter, tool_name: str) -> None:
    if param.kind is inspect.Parameter.VAR_POSITIONAL:
        raise ToolDefinitionError(
            f"tool '{tool_name}' takes *{param.name}: the model sends named arguments only, "
            "so give each one a name (a list parameter works for many values)"
        )
    if param.kind is inspect.Parameter.VAR_KEYWORD:
        raise ToolDefinitionError(
            f"tool '{tool_name}' takes **{param.name}: its arguments cannot be described in "
            "a schema; name each parameter, or use a dict[str, ...] parameter"
        )


def _is_run_context(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in _UNION_TYPES:  # `RunContext[D] | None`
        return any(_is_run_context(arg) for arg in get_args(annotation) if arg is not type(None))
    candidate = get_origin(annotation) or annotation
    return isinstance(candidate, type) and issubclass(candidate, RunContext)


def _field(param: inspect.Parameter, doc: str | None) -> tuple[Any, Any]:
    annotation = Any if param.annotation is param.empty else param.annotation
    default: Any = ... if param.default is param.empty else param.default
    describe = bool(doc) and not _has_description(annotation, default)
    if isinstance(default, FieldInfo):
        # The user wrote `= Field(...)`: put our alias (and the docstring) *before* it in the
        # metadata, so everything the user set still wins.
        ours = Field(alias=param.name, description=doc) if describe else Field(alias=param.name)
        return Annotated[annotation, ours], default
    # One FieldInfo per parameter; a description set in Annotated[..., Field(...)] is applied
    # after it by pydantic and so wins over the docstring.
    if describe:
        return annotation, Field(default, alias=param.name, description=doc)
    return annotation, Field(default, alias=param.name)


def _has_description(annotation: Any, default: Any) -> bool:
    if isinstance(default, FieldInfo) and default.description:
        return True
    if get_origin(annotation) is Annotated:
        return any(isinstance(m, FieldInfo) and m.description for m in get_args(annotation)[1:])
    return False


def _create_model(tool_name: str, fields: dict[str, Any], *, strict: bool) -> type[BaseModel]:
    # Unknown arguments: dropped when lenient (models invent parameters; the call can still
    # be right), rejected under strict, where the schema promises additionalProperties: false.
    # defer_build: the schema below builds the model once; an eager build here did it twice.
    config = ConfigDict(extra="forbid" if strict else "ignore", defer_build=True)
    try:
        return create_model(f"{tool_name}_arguments", __config__=config, **fields)
    except Exception as exc:  # pydantic raises several types for unsupported annotations
        raise ToolDefinitionError(
            f"tool '{tool_name}' has a parameter type pydantic cannot validate: {exc}"
        ) from None


def _parameters_schema(model: type[BaseModel], *, tool_name: str) -> JSONSchema:
    try:
        raw = model.model_json_schema(schema_generator=_ToolJsonSchema)
    except Exception as exc:  # e.g. PydanticInvalidForJsonSchema for callables
        raise ToolDefinitionError(
            f"tool '{tool_name}' has a parameter type with no JSON schema: {exc}"
        ) from None
    schema = inline_refs(strip_titles(raw))
    schema.setdefault("properties", {})
    return schema
