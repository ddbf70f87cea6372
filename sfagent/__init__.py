"""sfagent: tool-calling agents on SiliconFlow's chat-completions API.

Every public name is importable from here. Submodules load on first use (PEP 562), so
``import sfagent`` stays cheap and a run pays only for what it touches.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # tools
    "tool": "sfagent.tools",
    "Tool": "sfagent.tools",
    "ToolSet": "sfagent.tools",
    "tool_result_text": "sfagent.tools",
    "RunContext": "sfagent.context",
    "RunUsage": "sfagent.usage",
    # errors
    "SFAgentError": "sfagent.exceptions",
    "UserError": "sfagent.exceptions",
    "ToolDefinitionError": "sfagent.exceptions",
    "ConfigurationError": "sfagent.exceptions",
    "ToolArgumentsError": "sfagent.exceptions",
    "ArgumentProblem": "sfagent.exceptions",
    "ToolOutputError": "sfagent.exceptions",
    "APIError": "sfagent.exceptions",
    "APIConnectionError": "sfagent.exceptions",
    "APITimeoutError": "sfagent.exceptions",
    "APIResponseValidationError": "sfagent.exceptions",
    "IncompleteStreamError": "sfagent.exceptions",
    "APIStatusError": "sfagent.exceptions",
    "BadRequestError": "sfagent.exceptions",
    "AuthenticationError": "sfagent.exceptions",
    "PermissionDeniedError": "sfagent.exceptions",
    "NotFoundError": "sfagent.exceptions",
    "RateLimitError": "sfagent.exceptions",
    "InternalServerError": "sfagent.exceptions",
    "ServiceUnavailableError": "sfagent.exceptions",
    "GatewayTimeoutError": "sfagent.exceptions",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

if TYPE_CHECKING:
    from sfagent.context import RunContext
    from sfagent.exceptions import (
        APIConnectionError,
        APIError,
        APIResponseValidationError,
        APIStatusError,
        APITimeoutError,
        ArgumentProblem,
        AuthenticationError,
        BadRequestError,
        ConfigurationError,
        GatewayTimeoutError,
        IncompleteStreamError,
        InternalServerError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        ServiceUnavailableError,
        SFAgentError,
        ToolArgumentsError,
        ToolDefinitionError,
        ToolOutputError,
        UserError,
    )
    from sfagent.tools import Tool, ToolSet, tool, tool_result_text
    from sfagent.usage import RunUsage


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sfagent' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
