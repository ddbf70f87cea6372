"""`@tool`, `Tool` and `ToolOptions`: Python callables as checked `tools` entries, run safely.

A `Tool` is built once, when it is defined: its JSON schema is generated, checked against the
JSON Schema meta-schema, and kept together with the validator made from the same definition
(built then, or on the first call for the common shapes whose schema needs no pydantic class).
Running the model's call (`invoke` / `ainvoke`) parses the `arguments` text, validates it, and
calls the function with real Python values (model instances, `datetime`s, enum members).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, ParamSpec, TypedDict, TypeVar, cast, overload

from typing_extensions import Unpack

from sfagent.context import RunContext
from sfagent.exceptions import ToolDefinitionError, ToolOutputError, UserError
from sfagent.settings import MAX_TOOLS, TOOL_NAME_PATTERN, tool_name_problem
from sfagent.tools._arguments import Arguments, CallArgs
from sfagent.tools._json_schema import JSONSchema
from sfagent.tools._parameters import GivenSchema, ParametersSchema

__all__ = [
    "MAX_TOOLS",
    "NAME_PATTERN",
    "SchemaToolKwargs",
    "Tool",
    "ToolKwargs",
    "ToolOptions",
    "tool",
    "tool_result_text",
]

P = ParamSpec("P")
R = TypeVar("R")

NAME_PATTERN = TOOL_NAME_PATTERN
"""Tool names SiliconFlow (and OpenAI) accept (`sfagent.settings.TOOL_NAME_PATTERN`)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToolOptions:
    """How a tool is named, described and run: the options `tool`, `Tool` and `from_schema` take.

    Checked when built. Each entry point takes them as keyword arguments (`ToolKwargs`); a
    `Tool` keeps them as `Tool.options`, with its name and description filled in.

    Attributes:
        name: The tool's name (1-64 letters, digits, `_` or `-`); defaults to the function's.
        description: Overrides the docstring's summary and long description.
        strict: Emit a strict-mode schema (`"strict": true`); shapes strict mode cannot
            express are refused when the tool is defined, not by the API later.
        requires_approval: In an agent run, ask the approval callback before each call.
        timeout: In an agent run, seconds a call may take before a timeout is reported to
            the model (a sync tool's thread cannot be killed; its result is discarded).
        max_retries: In an agent run, failed calls tolerated before the run ends with
            `ToolRetriesExceeded` (``None``: the agent's `tool_retries`).
        sequential: In an agent run, never run this tool's calls beside other calls.

    Raises:
        ToolDefinitionError: an invalid name, a timeout that is not positive, or a negative
            `max_retries`.
    """

    name: str | None = None
    description: str | None = None
    strict: bool = False
    requires_approval: bool = False
    timeout: float | None = None
    max_retries: int | None = None
    sequential: bool = False

    def __post_init__(self) -> None:
        problem = tool_name_problem(self.name) if self.name is not None else None
        if problem:
            raise ToolDefinitionError(f"{problem} (pass name=... to choose one)")
        which = f"tool '{self.name}': " if self.name else ""
        if self.timeout is not None and not self.timeout > 0:
            raise ToolDefinitionError(f"{which}timeout must be > 0, got {self.timeout!r}")
        if self.max_retries is not None and self.max_retries < 0:
            raise ToolDefinitionError(f"{which}max_retries must be >= 0, got {self.max_retries!r}")


# The keyword forms of `ToolOptions`, for type checkers: Python's typing can type `**kwargs`
# only from a TypedDict (PEP 692), not from a dataclass's fields, so the names appear twice.
class SchemaToolKwargs(TypedDict, total=False):
    """The `ToolOptions` `Tool.from_schema` takes as keywords, besides name and description."""

    strict: bool
    requires_approval: bool
    timeout: float | None
    max_retries: int | None
    sequential: bool


class ToolKwargs(SchemaToolKwargs, total=False):
    """Every `ToolOptions` field as a keyword argument: what `tool(...)` and `Tool(...)` take."""

    name: str | None
    description: str | None


class Tool(Generic[P, R]):
    """A function the model can call: its `tools` schema plus a safe way to run its calls.

    Make one with `@tool`, `tool(fn)`, `Tool(fn, **options)`, or `Tool.from_schema(...)` for a
    schema that comes from elsewhere. The tool stays callable like the original function.

    Attributes:
        name: The name the model calls it by.
        description: What it does, for the model.
        parameters: The JSON schema of its arguments.
        options: The `ToolOptions` it was made with, name and description filled in; `strict`,
            `requires_approval`, `timeout`, `max_retries` and `sequential` read them.
        is_async: Whether calling the function returns a coroutine.
        takes_context: Whether the function takes a `RunContext` parameter.
    """

    name: str
    description: str
    parameters: JSONSchema
    options: ToolOptions
    is_async: bool
    takes_context: bool

    def __init__(self, fn: Callable[P, R], /, **options: Unpack[ToolKwargs]) -> None:
        self._define(fn, ToolOptions(**options))

    @classmethod
    def from_schema(
        cls,
        fn: Callable[..., Any],
        /,
        *,
        name: str,
        description: str,
        parameters: Mapping[str, Any] | None = None,
        **options: Unpack[SchemaToolKwargs],
    ) -> Tool[..., Any]:
        """Make a tool from a hand-written (or imported) JSON schema.

        The arguments are validated with `jsonschema` against `parameters`, then passed to
        `fn` as keyword arguments, as parsed JSON values.

        Args:
            fn: Called with the validated arguments as keyword arguments.
            name: The tool's name (`^[a-zA-Z0-9_-]{1,64}$`).
            description: What the tool does, for the model.
            parameters: An `object` JSON schema; `None` means no arguments.
            **options: The other `ToolOptions`; `strict=True` only marks the schema strict
                (it must already follow strict-mode rules).

        Raises:
            ToolDefinitionError: a bad name or a schema that is not valid JSON Schema.
        """
        settings = ToolOptions(name=name, description=description, **options)
        self: Tool[..., Any] = cls.__new__(cls)
        self._define(fn, settings, GivenSchema(parameters, tool_name=name))
        return self

    def _define(
        self, fn: Callable[..., Any], options: ToolOptions, given: GivenSchema | None = None
    ) -> None:
        if not callable(fn):
            raise ToolDefinitionError(f"a tool needs a callable, got {type(fn).__name__}")
        name = options.name if options.name is not None else _callable_name(fn)
        if options.name is None:
            options = dataclasses.replace(options, name=name)  # checks the name it falls back to
        spec: ParametersSchema
        if given is None:
            # The schema machinery (pydantic, docstring parsing) loads with the first tool made.
            from sfagent.tools._signature import function_schema

            signature = function_schema(fn, tool_name=name, strict=options.strict)
            spec, unbound, docstring = signature, signature.bound_self, signature.description
        else:
            spec, unbound, docstring = given, False, ""
        description = options.description if options.description is not None else docstring
        self.options = dataclasses.replace(options, description=description)
        self.name = name
        self.description = description
        self.parameters = spec.parameters
        self.takes_context = spec.takes_context
        self.is_async = _is_async(fn)
        self._fn = fn
        self._spec = spec
        self._unbound = unbound
        function: dict[str, Any] = {
            "name": name,
            "description": description,
            "parameters": spec.parameters,
        }
        if options.strict:
            function["strict"] = True
        self._schema: dict[str, Any] = {"type": "function", "function": function}
        if given is None:
            functools.update_wrapper(self, fn)

    @property
    def strict(self) -> bool:
        """Whether the schema follows OpenAI's strict-mode rules and says so."""
        return self.options.strict

    @property
    def requires_approval(self) -> bool:
        """An agent asks its approval callback before running a call."""
        return self.options.requires_approval

    @property
    def timeout(self) -> float | None:
        """Seconds an agent lets one call run before reporting a timeout to the model."""
        return self.options.timeout

    @property
    def max_retries(self) -> int | None:
        """Failed calls an agent tolerates in a run before giving up (``None``: its default)."""
        return self.options.max_retries

    @property
    def sequential(self) -> bool:
        """An agent runs this tool's calls alone, never beside other calls."""
        return self.options.sequential

    @property
    def schema(self) -> dict[str, Any]:
        """This tool's entry of the request's `tools` array (built once; do not mutate)."""
        return self._schema

    @property
    def function(self) -> Callable[..., Any]:
        """The wrapped callable."""
        return self._fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return cast(R, self._fn(*args, **kwargs))

    def __get__(self, instance: object, owner: type | None = None) -> Tool[..., R]:
        # `@tool` on a method in its class body: `obj.method` is a tool bound to `obj`.
        if instance is None or not self._unbound:
            return self
        bound = copy.copy(self)
        bound._fn = self._fn.__get__(instance, owner)
        bound._unbound = False
        return bound

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, strict={self.strict}, is_async={self.is_async})"

    def bind(self, arguments: Arguments, *, context: RunContext[Any] | None = None) -> CallArgs:
        """Parse and validate the model's arguments into the call's `(args, kwargs)`.

        Raises:
            ToolArgumentsError: the arguments are malformed or invalid (all problems at once).
            UserError: the tool needs a `RunContext` and none was given, or it is an unbound method.
        """
        if self._unbound:
            raise UserError(
                f"tool '{self.name}' is a method; call it through an instance (obj.{self.name})"
            )
        if self.takes_context and context is None:
            raise UserError(
                f"tool '{self.name}' takes a RunContext; pass context=RunContext(deps=...)"
            )
        return self._spec.bind(arguments, context)

    def invoke(self, arguments: Arguments = None, *, context: RunContext[Any] | None = None) -> Any:
        """Run the model's call: validate `arguments` (JSON text or a dict), then call the tool.

        An async tool is run to completion with `asyncio.run`; inside a running event loop use
        `ainvoke` instead.

        Raises:
            ToolArgumentsError: the arguments are malformed or invalid.
        """
        args, kwargs = self.bind(arguments, context=context)
        result = self._fn(*args, **kwargs)
        if inspect.isawaitable(result):
            return _run_awaitable(self.name, result)
        return result

    async def ainvoke(
        self, arguments: Arguments = None, *, context: RunContext[Any] | None = None
    ) -> Any:
        """Like `invoke`, for async code: a sync tool runs in a worker thread, off the event loop.

        Raises:
            ToolArgumentsError: the arguments are malformed or invalid.
        """
        args, kwargs = self.bind(arguments, context=context)
        if self.is_async:
            return await self._fn(*args, **kwargs)
        import asyncio  # deferred: sync-only programs never load it

        result = await asyncio.to_thread(self._fn, *args, **kwargs)
        if inspect.isawaitable(result):  # a sync wrapper that hands back a coroutine
            result = await result
        return result


def _run_awaitable(name: str, awaitable: Awaitable[Any]) -> Any:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:

        async def wait() -> Any:
            return await awaitable

        return asyncio.run(wait())
    if inspect.iscoroutine(awaitable):
        awaitable.close()  # never awaited: close it so no warning leaks
    raise UserError(f"tool '{name}' is async; inside an event loop use `await tool.ainvoke(...)`")


def _callable_name(fn: Callable[..., Any]) -> str:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    name = getattr(target, "__name__", None)
    if name is None:
        name = type(target).__name__  # a callable instance: its class names it
    return str(name)


def _is_async(fn: Callable[..., Any]) -> bool:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(target, "__call__", None)  # noqa: B004 - a callable instance's method
    return call is not None and inspect.iscoroutinefunction(call)


@overload
def tool(fn: Callable[P, R], /, **options: Unpack[ToolKwargs]) -> Tool[P, R]: ...


@overload
def tool(**options: Unpack[ToolKwargs]) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None, /, **options: Unpack[ToolKwargs]
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Turn a function into a `Tool`: `@tool`, `@tool(name=..., strict=True)` or `tool(fn, ...)`.

    Args:
        fn: A sync or async function, a bound method or another callable.
        **options: `ToolOptions` fields: `name` (default: the function's), `description`
            (default: from the docstring), `strict`, `requires_approval`, `timeout`,
            `max_retries`, `sequential`.

    Raises:
        ToolDefinitionError: the function cannot be described as a tool, or an option is
            invalid (when the decorator is made); the message says why.
    """
    checked = ToolOptions(**options)
    if fn is not None:
        return _new_tool(fn, checked)

    def decorate(func: Callable[P, R]) -> Tool[P, R]:
        return _new_tool(func, checked)

    return decorate


def _new_tool(fn: Callable[P, R], options: ToolOptions) -> Tool[P, R]:
    made: Tool[P, R] = Tool.__new__(Tool)
    made._define(fn, options)
    return made


def tool_result_text(value: Any) -> str:
    """Turn a tool's return value into the text sent back to the model.

    `str` is sent as is; pydantic models, dataclasses, dicts, lists, numbers, `None`, dates,
    enums and UUIDs as JSON (never Python `repr`).

    Raises:
        ToolOutputError: the value cannot be serialised; the message names its type.
    """
    if isinstance(value, str):
        return value
    from pydantic_core import PydanticSerializationError, to_json

    try:
        return to_json(value).decode("utf-8")
    except (PydanticSerializationError, ValueError, TypeError) as exc:
        raise ToolOutputError(
            f"cannot turn a {type(value).__name__} into text for the model ({exc}); "
            "return a str, a dict, a list, a number, a dataclass or a pydantic model"
        ) from None
