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
    "tool": "sfagent.tools",
    "Tool": "sfagent.tools",
    "ToolSet": "sfagent.tools",
    "tool_result_text": "sfagent.tools",
    "RunContext": "sfagent.context",
    "ApprovalRequest": "sfagent.context",
    "RunUsage": "sfagent.usage",
    "Agent": "sfagent.agent",
    "RunResult": "sfagent.result",
    "TurnRecord": "sfagent.result",
    "ToolCallRecord": "sfagent.result",
    "Event": "sfagent.events",
    "TextDelta": "sfagent.events",
    "ReasoningDelta": "sfagent.events",
    "ToolCallStarted": "sfagent.events",
    "ToolResult": "sfagent.events",
    "TurnFinished": "sfagent.events",
    "RunFinished": "sfagent.events",
    "Model": "sfagent.models",
    "ModelStream": "sfagent.models",
    "AsyncModelStream": "sfagent.models",
    "HTTPModel": "sfagent.models",
    "SiliconFlow": "sfagent.client",
    "AsyncSiliconFlow": "sfagent.client",
    "ChatStream": "sfagent.client",
    "AsyncChatStream": "sfagent.client",
    "RetryPolicy": "sfagent.client",
    "ModelSettings": "sfagent.settings",
    "ChatRequest": "sfagent.settings",
    "DEFAULT_MODEL": "sfagent.settings",
    "SystemMessage": "sfagent.messages",
    "UserMessage": "sfagent.messages",
    "AssistantMessage": "sfagent.messages",
    "ToolMessage": "sfagent.messages",
    "Message": "sfagent.messages",
    "MessageBase": "sfagent.messages",
    "TextPart": "sfagent.messages",
    "ImagePart": "sfagent.messages",
    "ImageURL": "sfagent.messages",
    "VideoPart": "sfagent.messages",
    "AudioPart": "sfagent.messages",
    "ToolCall": "sfagent.messages",
    "FunctionCall": "sfagent.messages",
    "ChatCompletion": "sfagent.messages",
    "Choice": "sfagent.messages",
    "ChatCompletionChunk": "sfagent.messages",
    "Usage": "sfagent.messages",
    "image_part": "sfagent.messages",
    "parse_message": "sfagent.messages",
    "parse_messages": "sfagent.messages",
    "StreamAccumulator": "sfagent.streaming",
    "SFAgentError": "sfagent.exceptions",
    "UserError": "sfagent.exceptions",
    "ToolDefinitionError": "sfagent.exceptions",
    "ConfigurationError": "sfagent.exceptions",
    "ToolArgumentsError": "sfagent.exceptions",
    "ArgumentProblem": "sfagent.exceptions",
    "ToolOutputError": "sfagent.exceptions",
    "ModelRetry": "sfagent.exceptions",
    "StopRun": "sfagent.exceptions",
    "AgentRunError": "sfagent.exceptions",
    "MaxTurnsExceeded": "sfagent.exceptions",
    "BudgetExceeded": "sfagent.exceptions",
    "ToolRetriesExceeded": "sfagent.exceptions",
    "RunawayLoopError": "sfagent.exceptions",
    "OutputTruncatedError": "sfagent.exceptions",
    "OutputValidationError": "sfagent.exceptions",
    "ModelRequestError": "sfagent.exceptions",
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
    from sfagent.agent import (
        Agent,
    )
    from sfagent.client import (
        AsyncChatStream,
        AsyncSiliconFlow,
        ChatStream,
        RetryPolicy,
        SiliconFlow,
    )
    from sfagent.context import (
        ApprovalRequest,
        RunContext,
    )
    from sfagent.events import (
        Event,
        ReasoningDelta,
        RunFinished,
        TextDelta,
        ToolCallStarted,
        ToolResult,
        TurnFinished,
    )
    from sfagent.exceptions import (
        AgentRunError,
        APIConnectionError,
        APIError,
        APIResponseValidationError,
        APIStatusError,
        APITimeoutError,
        ArgumentProblem,
        AuthenticationError,
        BadRequestError,
        BudgetExceeded,
        ConfigurationError,
        GatewayTimeoutError,
        IncompleteStreamError,
        InternalServerError,
        MaxTurnsExceeded,
        ModelRequestError,
        ModelRetry,
        NotFoundError,
        OutputTruncatedError,
        OutputValidationError,
        PermissionDeniedError,
        RateLimitError,
        RunawayLoopError,
        ServiceUnavailableError,
        SFAgentError,
        StopRun,
        ToolArgumentsError,
        ToolDefinitionError,
        ToolOutputError,
        ToolRetriesExceeded,
        UserError,
    )
    from sfagent.messages import (
        AssistantMessage,
        AudioPart,
        ChatCompletion,
        ChatCompletionChunk,
        Choice,
        FunctionCall,
        ImagePart,
        ImageURL,
        Message,
        MessageBase,
        SystemMessage,
        TextPart,
        ToolCall,
        ToolMessage,
        Usage,
        UserMessage,
        VideoPart,
        image_part,
        parse_message,
        parse_messages,
    )
    from sfagent.models import (
        AsyncModelStream,
        HTTPModel,
        Model,
        ModelStream,
    )
    from sfagent.result import (
        RunResult,
        ToolCallRecord,
        TurnRecord,
    )
    from sfagent.settings import (
        DEFAULT_MODEL,
        ChatRequest,
        ModelSettings,
    )
    from sfagent.streaming import (
        StreamAccumulator,
    )
    from sfagent.tools import (
        Tool,
        ToolSet,
        tool,
        tool_result_text,
    )
    from sfagent.usage import (
        RunUsage,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sfagent' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
