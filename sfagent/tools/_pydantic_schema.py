"""Parameters → the pydantic arguments class, and the JSON schema pydantic makes of that class.

`ParamDef` is the one definition a tool's two views are made from: the validator is always the
pydantic class built here (`arguments_model`); the schema is either generated from that class
(`model_parameters`, any type pydantic supports) or, for common shapes, written in one pass by
`sfagent.tools._fast_schema`, which is held to produce exactly what `model_parameters` would.
Only public pydantic API is used (`create_model`, `ConfigDict`, `Field`, `GenerateJsonSchema`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema

from sfagent.exceptions import ToolDefinitionError
from sfagent.tools._json_schema import JSONSchema, inline_refs, strip_titles

REQUIRED: Any = inspect.Parameter.empty
"""The `ParamDef.default` of a parameter without a default."""


class ToolJsonSchema(GenerateJsonSchema):
    """Draft 2020-12 schema without the per-field titles pydantic adds by default."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


@dataclass(frozen=True)
class ParamDef:
    """One parameter the model fills, as both views read it.

    Attributes:
        name: The parameter's name: the property name in the schema, the field's alias.
        field: The arguments class's field holding it (``p<index>``: a parameter called
            `json`, `schema` or `_private` would otherwise clash with BaseModel).
        annotation: Its type hint (`typing.Any` when it has none).
        default: Its default, or `REQUIRED`.
        doc: Its description from the docstring, if any.
    """

    name: str
    field: str
    annotation: Any
    default: Any
    doc: str | None


def arguments_model(
    tool_name: str, params: tuple[ParamDef, ...], *, strict: bool, defer: bool
) -> type[BaseModel]:
    """The pydantic class validating a call's arguments: one field per parameter.

    Unknown arguments are dropped when lenient (models invent parameters; the call can still be
    right) and rejected under strict, where the schema promises `additionalProperties: false`.

    Args:
        tool_name: For the class name and error messages.
        params: The parameters, in signature order.
        strict: Forbid unknown arguments.
        defer: Leave building the validator to its first use (`model_parameters` builds it
            once; an eager build here would do it twice).

    Raises:
        ToolDefinitionError: a parameter type pydantic cannot validate.
    """
    fields: dict[str, Any] = {p.field: _field(p) for p in params}
    config = ConfigDict(extra="forbid" if strict else "ignore", defer_build=defer)
    try:
        return create_model(f"{tool_name}_arguments", __config__=config, **fields)
    except Exception as exc:  # pydantic raises several types for unsupported annotations
        raise ToolDefinitionError(
            f"tool '{tool_name}' has a parameter type pydantic cannot validate: {exc}"
        ) from None


def model_parameters(model: type[BaseModel], *, tool_name: str) -> JSONSchema:
    """The `parameters` schema of an arguments class: pydantic's, without titles, `$ref`s inlined.

    Raises:
        ToolDefinitionError: a parameter type has no JSON schema (a callable, say).
    """
    try:
        raw = model.model_json_schema(schema_generator=ToolJsonSchema)
    except Exception as exc:  # e.g. PydanticInvalidForJsonSchema for callables
        raise ToolDefinitionError(
            f"tool '{tool_name}' has a parameter type with no JSON schema: {exc}"
        ) from None
    schema = inline_refs(strip_titles(raw))
    schema.setdefault("properties", {})
    return schema


def _field(param: ParamDef) -> tuple[Any, Any]:
    annotation, default, doc = param.annotation, param.default, param.doc
    default = ... if default is REQUIRED else default
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
