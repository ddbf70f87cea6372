"""`@tool` and `Tool`: Python callables as checked `tools` entries, run safely.

A `Tool` is built once, when it is defined: its JSON schema is generated, checked against the
JSON Schema meta-schema, and kept together with the validator made from the same definition.
Running the model's call (`invoke` / `ainvoke`) parses the `arguments` text, validates it, and
calls the function with real Python values (model instances, `datetime`s, enum members).
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, ParamSpec, TypeVar, cast, overload

from sfagent.context import RunContext
from sfagent.exceptions import ToolDefinitionError, ToolOutputError, UserError
from sfagent.tools._binders import ArgumentBinder, JsonSchemaBinder, ModelBinder
from sfagent.tools._json_schema import JSONSchema, check_meta_schema
from sfagent.tools._signature import function_schema

__all__ = ["MAX_TOOLS", "NAME_PATTERN", "Tool", "tool", "tool_result_text"]

P = ParamSpec("P")
R = TypeVar("R")

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""Tool names SiliconFlow (and OpenAI) accept."""

MAX_TOOLS = 128
"""The most tools one request may carry on SiliconFlow."""

Arguments = str | bytes | Mapping[str, Any] | None
"""The model's arguments: the JSON text it sent, or an already-parsed object."""


class Tool(Generic[P, R]):
    """A function the model can call: its `tools` schema plus a safe way to run its calls.

    Make one with `@tool`, `tool(fn)`, `Tool(fn)`, or `Tool.from_schema(...)` for a schema that
    comes from elsewhere. The tool stays callable like the original function.

    Attributes:
        name: The name the model calls it by.
        description: What it does, for the model.
        parameters: The JSON schema of its arguments.
        strict: Whether the schema follows OpenAI's strict-mode rules and says so.
        is_async: Whether calling the function returns a coroutine.
        takes_context: Whether the function takes a `RunContext` parameter.
        requires_approval: An agent asks its approval callback before running a call.
        timeout: Seconds an agent lets one call run before reporting a timeout to the model.
        max_retries: Failed calls an agent tolerates in a run before giving up (``None``: the
            agent's default).
        sequential: An agent runs this tool's calls alone, never beside other calls.
    """

    name: str
    description: str
    parameters: JSONSchema
    strict: bool
    is_async: bool
    takes_context: bool

    def __init__(
        self,
        fn: Callable[P, R],
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool = False,
        requires_approval: bool = False,
        timeout: float | None = None,
        max_retries: int | None = None,
        sequential: bool = False,
    ) -> None:
        if not callable(fn):
            raise ToolDefinitionError(f"a tool needs a callable, got {type(fn).__name__}")
        tool_name = _checked_name(name if name is not None else _callable_name(fn))
        spec = function_schema(
            fn, tool_name=tool_name, strict=strict, local_names=_definer_locals()
        )
        self._setup(
            fn,
            name=tool_name,
            description=description if description is not None else spec.description,
            parameters=spec.parameters,
            strict=strict,
            binder=ModelBinder(spec, tool_name=tool_name),
            unbound=spec.bound_self,
        )
        self._set_run_options(requires_approval, timeout, max_retries, sequential)
        self.takes_context = spec.context_param is not None
        functools.update_wrapper(self, fn)

    @classmethod
    def from_schema(
        cls,
        fn: Callable[..., Any],
        /,
        *,
        name: str,
        description: str,
        parameters: Mapping[str, Any] | None = None,
        strict: bool = False,
        requires_approval: bool = False,
        timeout: float | None = None,
        max_retries: int | None = None,
        sequential: bool = False,
    ) -> Tool[..., Any]:
        """Make a tool from a hand-written (or imported) JSON schema.

        The arguments are validated with `jsonschema` against `parameters`, then passed to
        `fn` as keyword arguments, as parsed JSON values.

        Args:
            fn: Called with the validated arguments as keyword arguments.
            name: The tool's name (`^[a-zA-Z0-9_-]{1,64}$`).
            description: What the tool does, for the model.
            parameters: An `object` JSON schema; `None` means no arguments.
            strict: Mark the schema strict (it must already follow strict-mode rules).
            requires_approval: See `tool`.
            timeout: See `tool`.
            max_retries: See `tool`.
            sequential: See `tool`.

        Raises:
            ToolDefinitionError: a bad name or a schema that is not valid JSON Schema.
        """
        if not callable(fn):
            raise ToolDefinitionError(f"a tool needs a callable, got {type(fn).__name__}")
        tool_name = _checked_name(name)
        schema = copy.deepcopy(dict(parameters)) if parameters is not None else {}
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        check_meta_schema(schema, tool_name=tool_name)
        self: Tool[..., Any] = cls.__new__(cls)
        self._setup(
            fn,
            name=tool_name,
            description=description,
            parameters=schema,
            strict=strict,
            binder=JsonSchemaBinder(schema, tool_name=tool_name),
            unbound=False,
        )
        self.takes_context = False
        self._set_run_options(requires_approval, timeout, max_retries, sequential)
        return self

    def _set_run_options(
        self,
        requires_approval: bool,
        timeout: float | None,
        max_retries: int | None,
        sequential: bool,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ToolDefinitionError(f"tool '{self.name}': timeout must be > 0, got {timeout!r}")
        if max_retries is not None and max_retries < 0:
            raise ToolDefinitionError(
                f"tool '{self.name}': max_retries must be >= 0, got {max_retries!r}"
            )
        self.requires_approval = requires_approval
        self.timeout = timeout
        self.max_retries = max_retries
        self.sequential = sequential

    def _setup(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        description: str,
        parameters: JSONSchema,
        strict: bool,
        binder: ArgumentBinder,
        unbound: bool,
    ) -> None:
        self._fn = fn
        self._binder = binder
        self._unbound = unbound
        self.name = name
        self.description = description
        self.parameters = parameters
        self.strict = strict
        self.is_async = _is_async(fn)
        function: dict[str, Any] = {
            "name": name,
            "description": description,
            "parameters": parameters,
        }
        if strict:
            function["strict"] = True
        self._schema: dict[str, Any] = {"type": "function", "function": function}

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

    def bind(
        self, arguments: Arguments, *, context: RunContext[Any] | None = None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
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
        return self._binder.bind(arguments, context)

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


def _definer_locals() -> dict[str, Any]:
    """Local names of the code that defined the tool (the first frame outside sfagent)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("sfagent."):
        frame = frame.f_back  # type: ignore[assignment]
    return frame.f_locals if frame is not None else {}


def _callable_name(fn: Callable[..., Any]) -> str:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    name = getattr(target, "__name__", None)
    if name is None:
        name = type(target).__name__  # a callable instance: its class names it
    return str(name)


def _checked_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ToolDefinitionError(
            f"invalid tool name {name!r}: names must be 1-64 characters of letters, digits, "
            "'_' or '-' (pass name=... to choose one)"
        )
    return name


def _is_async(fn: Callable[..., Any]) -> bool:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target):
        return True
    call = getattr(target, "__call__", None)  # noqa: B004 - a callable instance's method
    return call is not None and inspect.iscoroutinefunction(call)


@overload
def tool(fn: Callable[P, R], /) -> Tool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    requires_approval: bool = False,
    timeout: float | None = None,
    max_retries: int | None = None,
    sequential: bool = False,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    requires_approval: bool = False,
    timeout: float | None = None,
    max_retries: int | None = None,
    sequential: bool = False,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Turn a function into a `Tool`: `@tool`, `@tool(name=..., strict=True)` or `tool(fn)`.

    Args:
        fn: A sync or async function, a bound method or another callable.
        name: The tool's name; defaults to the function's.
        description: Overrides the docstring's summary and long description.
        strict: Emit a strict-mode schema (`"strict": true`); shapes strict mode cannot
            express are refused here, not by the API later.
        requires_approval: In an agent run, ask the approval callback before each call.
        timeout: In an agent run, seconds a call may take before a timeout is reported to
            the model (a sync tool's thread cannot be killed; its result is discarded).
        max_retries: In an agent run, failed calls tolerated before the run ends with
            `ToolRetriesExceeded` (default: the agent's `tool_retries`).
        sequential: In an agent run, never run this tool's calls beside other calls.

    Raises:
        ToolDefinitionError: the function cannot be described as a tool; the message says why.
    """
    options: dict[str, Any] = {
        "name": name,
        "description": description,
        "strict": strict,
        "requires_approval": requires_approval,
        "timeout": timeout,
        "max_retries": max_retries,
        "sequential": sequential,
    }
    if fn is not None:
        return Tool(fn, **options)

    def decorate(func: Callable[P, R]) -> Tool[P, R]:
        return Tool(func, **options)

    return decorate


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
