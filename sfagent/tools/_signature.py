"""A Python callable → `FunctionSchema`: one definition with two views, schema and validator.

A pydantic class is made from the signature (its fields are the parameters); it validates the
model's arguments, and the JSON schema sent to the API is generated from that same class, so
the two cannot drift apart. Only public pydantic API is used (`create_model`, `ConfigDict`,
`GenerateJsonSchema`).
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema

from sfagent.context import RunContext
from sfagent.exceptions import ArgumentProblem, ToolArgumentsError, ToolDefinitionError
from sfagent.tools._arguments import (
    Arguments,
    CallArgs,
    problems_from_pydantic,
    render_value,
    tool_arguments,
)
from sfagent.tools._docstrings import parse_docstring
from sfagent.tools._json_schema import (
    JSONSchema,
    drop_default_nulls,
    inline_refs,
    make_strict,
    strip_titles,
)
from sfagent.tools._meta_schema import check_meta_schema

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
    """A function's parameters, derived once from its signature and docstring, and `bind`.

    Attributes:
        tool_name: The tool's name, for error messages.
        description: The tool description from the docstring (may be empty).
        parameters: The `parameters` JSON schema sent to the API.
        arguments_class: The pydantic class made from the signature, one field per parameter:
            it validates the arguments and converts them to Python values.
        call_params: Every parameter in signature order, and where its value comes from.
        context_param: The parameter that receives the `RunContext`, if any.
        bound_self: Whether the function's first parameter is an unbound `self`.
        loose_parameters: Under strict mode, the schema before it was made strict: it tells
            which `null`s stand for "use the default" (strict makes optional fields nullable).
    """

    tool_name: str
    description: str
    parameters: JSONSchema
    arguments_class: type[BaseModel]
    call_params: tuple[ParameterSpec, ...]
    context_param: str | None
    bound_self: bool
    loose_parameters: JSONSchema | None = None
    # Under strict the schema closes every object, nested ones too, but a nested class of the
    # user's keeps its own (lenient) config: the schema itself finds unknown keys.
    _closed: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        closed = None
        if self.loose_parameters is not None:
            from jsonschema import Draft202012Validator

            closed = Draft202012Validator(self.parameters)
        object.__setattr__(self, "_closed", closed)

    @property
    def takes_context(self) -> bool:
        """Whether the function takes a `RunContext` parameter."""
        return self.context_param is not None

    def bind(self, arguments: Arguments, context: Any) -> CallArgs:
        """Validate the model's `arguments` and arrange them (and `context`) for the call.

        Raises:
            ToolArgumentsError: the arguments are malformed or invalid (all problems at once).
        """
        cls = self.arguments_class
        try:
            # Fast path: pydantic parses and validates JSON text in one pass, in Rust. Strict
            # tools need the dict first (to drop "not given" nulls): they take the general path.
            if (
                self.loose_parameters is None
                and isinstance(arguments, str)
                and arguments[:1] == "{"
            ):
                try:
                    validated = cls.model_validate_json(arguments)
                except ValidationError as exc:
                    if not _is_json_syntax_error(exc):
                        raise
                    validated = cls.model_validate(self._parse(arguments))  # repairs it
            else:
                validated = cls.model_validate(self._parse(arguments))
        except ValidationError as exc:
            problems = problems_from_pydantic(exc.errors(include_url=False))
            raise ToolArgumentsError(self.tool_name, problems) from None
        values = validated.__dict__
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for param in self.call_params:
            value = context if param.field is None else values[param.field]
            if param.positional:
                args.append(value)
            else:
                kwargs[param.name] = value
        return tuple(args), kwargs

    def _parse(self, arguments: Arguments) -> dict[str, Any]:
        data = tool_arguments(arguments, tool_name=self.tool_name)
        if self.loose_parameters is not None:
            unknown = _unknown_keys(self._closed, data)
            if unknown:
                raise ToolArgumentsError(self.tool_name, unknown)
            data = drop_default_nulls(data, self.loose_parameters)
        return data


def _is_json_syntax_error(exc: ValidationError) -> bool:
    return any(error["type"] == "json_invalid" for error in exc.errors(include_url=False))


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


def function_schema(fn: Callable[..., Any], *, tool_name: str, strict: bool) -> FunctionSchema:
    """Build the schema and validator for `fn`.

    Raises:
        ToolDefinitionError: a parameter cannot be expressed (`*args`, `**kwargs`, an
            unresolvable annotation, a shape strict mode refuses, an invalid schema).
    """
    signature = _signature(fn, tool_name)
    # A partial's own docstring describes `partial`: read the wrapped function's.
    docs = parse_docstring(inspect.getdoc(_unwrap_partial(fn)))
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
        tool_name=tool_name,
        description=docs.description,
        parameters=parameters,
        arguments_class=model,
        call_params=tuple(call_params),
        context_param=context_param,
        bound_self=bound_self,
        loose_parameters=loose if strict else None,
    )


def _signature(fn: Callable[..., Any], tool_name: str) -> inspect.Signature:
    try:
        return inspect.signature(fn, eval_str=True, locals=_defining_scope(fn))
    except NameError as exc:
        raise ToolDefinitionError(
            f"tool '{tool_name}' has a type annotation that cannot be resolved: {exc} "
            "(types used in annotations must be importable where the function is defined)"
        ) from None
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"tool '{tool_name}': cannot read its signature: {exc}") from None


def _defining_scope(fn: Callable[..., Any]) -> dict[str, Any] | None:
    """The local names of the code defining `fn`, when its string annotations may need them.

    With `from __future__ import annotations`, `def plan(w: Window)` written inside a function
    stores the text "Window". A class local to that function is in neither `plan.__globals__`
    nor its closure (Python makes no cell for a name used only in an annotation): the defining
    frame, still running while `tool(plan)` is called, is the one place it can be found. So for
    a function defined in a function or a class body, and only if it has string annotations,
    this reads the locals of the first frame outside sfagent. A module-level function's
    globals are its whole scope: it is resolved without looking at any frame.
    """
    target: Any = inspect.unwrap(_unwrap_partial(fn))
    target = getattr(target, "__func__", target)  # a bound method: its function
    if not inspect.isfunction(target):  # a callable instance: its class's __call__
        target = getattr(type(target), "__call__", None)  # noqa: B004
    if not inspect.isfunction(target) or "." not in target.__qualname__:
        return None
    if not any(isinstance(a, str) for a in target.__annotations__.values()):
        return None
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("sfagent."):
        frame = frame.f_back  # type: ignore[assignment]
    return frame.f_locals if frame is not None else None


def _unwrap_partial(fn: Callable[..., Any]) -> Any:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    return target


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
