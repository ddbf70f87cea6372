"""A Python callable → `FunctionSchema`: one definition with two views, schema and validator.

The signature and docstring are read once into `ParamDef`s, the one definition both views come
from: the validator is a pydantic class made from them (`_pydantic_schema.arguments_model`);
the schema sent to the API is the JSON schema pydantic makes of that same class. For common
shapes that schema is written in one pass instead (`_fast_schema`, held to produce the same
bytes), and the class is then built on the first call that needs it, not at definition.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from sfagent.context import RunContext
from sfagent.exceptions import ArgumentProblem, ToolArgumentsError, ToolDefinitionError
from sfagent.tools import _fast_check
from sfagent.tools._arguments import (
    Arguments,
    CallArgs,
    problems_from_pydantic,
    render_value,
    tool_arguments,
)
from sfagent.tools._docstrings import ParsedDocstring, parse_docstring
from sfagent.tools._fast_schema import fast_parameters
from sfagent.tools._json_schema import JSONSchema, drop_default_nulls, make_strict
from sfagent.tools._meta_schema import check_meta_schema
from sfagent.tools._pydantic_schema import (
    REQUIRED,
    ParamDef,
    arguments_model,
    model_parameters,
)

_POSITIONAL_ONLY = inspect.Parameter.POSITIONAL_ONLY
T = TypeVar("T")
_UNION_TYPES = (Union, types.UnionType)


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


class Lazy(Generic[T]):
    """A value made on first use, once, even when two threads ask at the same time."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._value: T | None = None
        self._make: Callable[[], T] | None = make
        self._lock = threading.Lock()

    @classmethod
    def made(cls, value: T) -> Lazy[T]:
        """A `Lazy` whose value is already there."""
        done: Lazy[T] = cls(lambda: value)
        done._value, done._make = value, None
        return done

    def get(self) -> T:
        """The value, made now if this is the first use."""
        value = self._value
        if value is not None:
            return value
        with self._lock:
            if self._value is None:
                assert self._make is not None
                self._value = self._make()
                self._make = None
            return self._value


@dataclass(frozen=True)
class FunctionSchema:
    """A function's parameters, derived once from its signature and docstring, and `bind`.

    Attributes:
        tool_name: The tool's name, for error messages.
        description: The tool description from the docstring (may be empty).
        parameters: The `parameters` JSON schema sent to the API.
        validator: The pydantic class made from the signature, one field per parameter (it
            validates the arguments and converts them to Python values), possibly not built
            yet: `arguments_class` builds it.
        call_params: Every parameter in signature order, and where its value comes from.
        context_param: The parameter that receives the `RunContext`, if any.
        bound_self: Whether the function's first parameter is an unbound `self`.
        loose_parameters: Under strict mode, the schema before it was made strict: it tells
            which `null`s stand for "use the default" (strict makes optional fields nullable).
    """

    tool_name: str
    description: str
    parameters: JSONSchema
    validator: Lazy[type[BaseModel]] = field(repr=False, compare=False)
    call_params: tuple[ParameterSpec, ...]
    context_param: str | None
    bound_self: bool
    loose_parameters: JSONSchema | None = None
    # Under strict the schema closes every object, nested ones too, but a nested class of the
    # user's keeps its own (lenient) config: the schema itself finds unknown keys.
    _closed: Lazy[Any] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        closed = None
        if self.loose_parameters is not None:
            closed = Lazy(functools.partial(_schema_validator, self.parameters))
        object.__setattr__(self, "_closed", closed)

    @property
    def arguments_class(self) -> type[BaseModel]:
        """The pydantic class validating the arguments (built on first use)."""
        return self.validator.get()

    @property
    def takes_context(self) -> bool:
        """Whether the function takes a `RunContext` parameter."""
        return self.context_param is not None

    def bind(self, arguments: Arguments, context: Any) -> CallArgs:
        """Validate the model's `arguments` and arrange them (and `context`) for the call.

        Raises:
            ToolArgumentsError: the arguments are malformed or invalid (all problems at once).
        """
        cls = self.validator.get()
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
            assert self._closed is not None
            unknown = _unknown_keys(self._closed.get(), data)
            if unknown:
                raise ToolArgumentsError(self.tool_name, unknown)
            data = drop_default_nulls(data, self.loose_parameters)
        return data


def _schema_validator(schema: JSONSchema) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema)


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
    read = _read_parameters(signature, docs, tool_name)
    params = read.params
    loose = fast_parameters(params, forbid_extra=strict)
    if loose is not None and not _fast_check.fast_path_trusted():
        loose = None
    validator: Lazy[type[BaseModel]]
    if loose is None:  # not a common shape: pydantic makes the schema, so build the class now
        model = arguments_model(tool_name, params, strict=strict, defer=True)
        loose = model_parameters(model, tool_name=tool_name)
        validator = Lazy.made(model)
    else:
        if _fast_check.VERIFY:
            _fast_check.verify(loose, tool_name, params, strict=strict)
        validator = Lazy(
            functools.partial(arguments_model, tool_name, params, strict=strict, defer=False)
        )
    parameters = make_strict(loose, tool_name=tool_name) if strict else loose
    check_meta_schema(parameters, tool_name=tool_name)
    return FunctionSchema(
        tool_name=tool_name,
        description=docs.description,
        parameters=parameters,
        validator=validator,
        call_params=read.call_params,
        context_param=read.context_param,
        bound_self=read.bound_self,
        loose_parameters=loose if strict else None,
    )


@dataclass(frozen=True)
class _Read:
    params: tuple[ParamDef, ...]
    call_params: tuple[ParameterSpec, ...]
    context_param: str | None
    bound_self: bool


def _read_parameters(signature: inspect.Signature, docs: ParsedDocstring, tool_name: str) -> _Read:
    params: list[ParamDef] = []
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
        annotation = Any if param.annotation is param.empty else param.annotation
        default = REQUIRED if param.default is param.empty else param.default
        doc = docs.params.get(param.name)
        params.append(ParamDef(param.name, field_name, annotation, default, doc))
        call_params.append(ParameterSpec(param.name, field_name, positional))
    return _Read(tuple(params), tuple(call_params), context_param, bound_self)


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
