"""An MCP server's tool listing → `Tool`s; a `tools/call` result → the text the model reads.

Pure: nothing here talks to a server. A converted tool's function hands each call to the
`Caller` it was made with (the server's link), with the time the run has left, and renders what
comes back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import mcp.types as mt

from sfagent._text import shorten
from sfagent.context import RunContext
from sfagent.exceptions import ModelRetry, ToolDefinitionError
from sfagent.settings import tool_name_problem
from sfagent.tools import Tool
from sfagent.tools._arguments import Arguments, CallArgs
from sfagent.tools._json_schema import (
    drop_default_nulls,
    inline_refs,
    make_strict,
    strip_titles,
)

logger = logging.getLogger("sfagent")

Caller = Callable[[str, dict[str, Any], float | None], Awaitable[mt.CallToolResult]]
"""Sends one `tools/call` (the server's own tool name, the arguments, the seconds the run has
left or ``None``) and returns its result."""

# What `Tool.bind` is given when a server's tool is called outside a run (`tool.invoke(...)`).
_NO_RUN: RunContext[Any] = RunContext(deps=None)


@dataclass(frozen=True)
class ToolPolicy:
    """How an MCP server's tools are named, filtered and run (`MCPServer`'s options)."""

    server: str
    prefix: str | None = None
    include: Collection[str] | None = None
    exclude: Collection[str] = ()
    strict: bool = False
    timeout: float | None = None
    requires_approval: bool = False
    max_retries: int | None = None
    sequential: bool = False
    max_output_chars: int | None = None


def convert_tools(
    specs: Iterable[mt.Tool], policy: ToolPolicy, call: Caller
) -> list[Tool[..., Any]]:
    """The listed tools the policy keeps, as `Tool`s, in the server's order.

    Raises:
        ToolDefinitionError: a kept tool's name (with the prefix) is not one the API accepts,
            or its input schema is not valid JSON Schema; the message names the tool and how
            to leave it out.
    """
    tools = []
    for spec in specs:
        if spec.name in policy.exclude:
            continue
        if policy.include is not None and spec.name not in policy.include:
            continue
        tools.append(_convert(spec, policy, call))
    return tools


def _convert(spec: mt.Tool, policy: ToolPolicy, call: Caller) -> Tool[..., Any]:
    name = f"{policy.prefix}_{spec.name}" if policy.prefix else spec.name
    where = f"MCP server '{policy.server}', tool '{spec.name}'"
    hint = f"leave it out with exclude=[{spec.name!r}]"
    problem = tool_name_problem(name)
    if problem:
        raise ToolDefinitionError(f"{where}: {problem} ({hint})")
    loose = _clean(spec.input_schema, where, hint)
    strict = _strict_form(loose, name) if policy.strict else None
    server_name = spec.name

    async def call_tool(run: RunContext[Any] | None = None, /, **arguments: Any) -> str:
        if strict is not None:
            # Strict mode made optional parameters required and nullable: a null the loose
            # schema would refuse means "not given", and the server should see it left out.
            arguments = drop_default_nulls(arguments, loose)
        result = await call(server_name, arguments, None if run is None else run.time_left)
        text = result_text(result, max_chars=policy.max_output_chars)
        if result.is_error:
            raise ModelRetry(f"Error: tool '{name}' reported an error: {text}")
        return text

    description = spec.description or spec.title or ""
    try:
        made = _ServerTool.from_schema(
            call_tool,
            name=name,
            description=description,
            parameters=strict if strict is not None else loose,
            strict=strict is not None,
            timeout=policy.timeout,
            requires_approval=policy.requires_approval,
            max_retries=policy.max_retries,
            sequential=policy.sequential,
        )
    except ToolDefinitionError as exc:
        raise ToolDefinitionError(f"{where}: {exc} ({hint})") from None
    made.takes_context = True  # in a run, the call learns the time the run has left
    return made


class _ServerTool(Tool[..., str]):
    """A server's tool: in a run, its call is given the run's `RunContext` (first, positional),
    so a blocking run's deadline can cancel the request too; the model never sees it."""

    def bind(self, arguments: Arguments, *, context: RunContext[Any] | None = None) -> CallArgs:
        _, kwargs = super().bind(arguments, context=_NO_RUN if context is None else context)
        return ((context,) if context is not None else ()), kwargs


def _clean(schema: Mapping[str, Any], where: str, hint: str) -> dict[str, Any]:
    """The input schema without titles and with its `$defs` pointers inlined where possible."""
    if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
        raise ToolDefinitionError(f"{where}: its input schema is not an object schema ({hint})")
    try:
        cleaned: dict[str, Any] = inline_refs(strip_titles(dict(schema)))
    except ToolDefinitionError as exc:
        raise ToolDefinitionError(f"{where}: {exc} ({hint})") from None
    cleaned.setdefault("type", "object")
    cleaned.setdefault("properties", {})
    return cleaned


def _strict_form(loose: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The strict-mode form of `loose`, or ``None`` where strict mode cannot express it."""
    try:
        return make_strict(loose, tool_name=name)
    except ToolDefinitionError as exc:
        logger.debug("MCP tool %s stays non-strict: %s", name, exc)
        return None


def result_text(result: mt.CallToolResult, *, max_chars: int | None = None) -> str:
    """A `tools/call` result as the text of a `tool` message.

    Structured content is sent as JSON (its text block, which the spec says mirrors it, is
    then skipped); text blocks as they are; an embedded text resource as its text; images,
    audio, binary resources and links as a one-line note (a `tool` message is text only).
    """
    parts: list[str] = []
    structured = result.structured_content
    if structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False, separators=(",", ":")))
    for block in result.content:
        if isinstance(block, mt.TextContent):
            if structured is None:
                parts.append(block.text)
        elif isinstance(block, mt.EmbeddedResource):
            parts.append(_resource_text(block.resource))
        elif isinstance(block, (mt.ImageContent, mt.AudioContent)):
            kind = "image" if isinstance(block, mt.ImageContent) else "audio"
            parts.append(f"[{kind} {block.mime_type}, {len(block.data) * 3 // 4} bytes]")
        elif isinstance(block, mt.ResourceLink):
            parts.append(f"[resource {block.uri}: {block.name}]")
    text = "\n\n".join(parts)
    if max_chars is not None and len(text) > max_chars:
        omitted = len(text) - max_chars
        text = shorten(text, max_chars) + f"\n[{omitted} more characters not shown]"
    return text


def _resource_text(resource: mt.TextResourceContents | mt.BlobResourceContents) -> str:
    if isinstance(resource, mt.TextResourceContents):
        return resource.text
    mime = resource.mime_type or "application/octet-stream"
    return f"[resource {resource.uri}: {mime}, {len(resource.blob) * 3 // 4} bytes]"
