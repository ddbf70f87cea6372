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
        Agent as Agent,
    )
    from sfagent.client import (
        AsyncChatStream as AsyncChatStream,
    )
    from sfagent.client import (
        AsyncSiliconFlow as AsyncSiliconFlow,
    )
    from sfagent.client import (
        ChatStream as ChatStream,
    )
    from sfagent.client import (
        RetryPolicy as RetryPolicy,
    )
    from sfagent.client import (
        SiliconFlow as SiliconFlow,
    )
    from sfagent.context import (
        ApprovalRequest as ApprovalRequest,
    )
    from sfagent.context import (
        RunContext as RunContext,
    )
    from sfagent.events import (
        Event as Event,
    )
    from sfagent.events import (
        ReasoningDelta as ReasoningDelta,
    )
    from sfagent.events import (
        RunFinished as RunFinished,
    )
    from sfagent.events import (
        TextDelta as TextDelta,
    )
    from sfagent.events import (
        ToolCallStarted as ToolCallStarted,
    )
    from sfagent.events import (
        ToolResult as ToolResult,
    )
    from sfagent.events import (
        TurnFinished as TurnFinished,
    )
    from sfagent.exceptions import (
        AgentRunError as AgentRunError,
    )
    from sfagent.exceptions import (
        APIConnectionError as APIConnectionError,
    )
    from sfagent.exceptions import (
        APIError as APIError,
    )
    from sfagent.exceptions import (
        APIResponseValidationError as APIResponseValidationError,
    )
    from sfagent.exceptions import (
        APIStatusError as APIStatusError,
    )
    from sfagent.exceptions import (
        APITimeoutError as APITimeoutError,
    )
    from sfagent.exceptions import (
        ArgumentProblem as ArgumentProblem,
    )
    from sfagent.exceptions import (
        AuthenticationError as AuthenticationError,
    )
    from sfagent.exceptions import (
        BadRequestError as BadRequestError,
    )
    from sfagent.exceptions import (
        BudgetExceeded as BudgetExceeded,
    )
    from sfagent.exceptions import (
        ConfigurationError as ConfigurationError,
    )
    from sfagent.exceptions import (
        GatewayTimeoutError as GatewayTimeoutError,
    )
    from sfagent.exceptions import (
        IncompleteStreamError as IncompleteStreamError,
    )
    from sfagent.exceptions import (
        InternalServerError as InternalServerError,
    )
    from sfagent.exceptions import (
        MaxTurnsExceeded as MaxTurnsExceeded,
    )
    from sfagent.exceptions import (
        ModelRequestError as ModelRequestError,
    )
    from sfagent.exceptions import (
        ModelRetry as ModelRetry,
    )
    from sfagent.exceptions import (
        NotFoundError as NotFoundError,
    )
    from sfagent.exceptions import (
        OutputTruncatedError as OutputTruncatedError,
    )
    from sfagent.exceptions import (
        OutputValidationError as OutputValidationError,
    )
    from sfagent.exceptions import (
        PermissionDeniedError as PermissionDeniedError,
    )
    from sfagent.exceptions import (
        RateLimitError as RateLimitError,
    )
    from sfagent.exceptions import (
        RunawayLoopError as RunawayLoopError,
    )
    from sfagent.exceptions import (
        ServiceUnavailableError as ServiceUnavailableError,
    )
    from sfagent.exceptions import (
        SFAgentError as SFAgentError,
    )
    from sfagent.exceptions import (
        StopRun as StopRun,
    )
    from sfagent.exceptions import (
        ToolArgumentsError as ToolArgumentsError,
    )
    from sfagent.exceptions import (
        ToolDefinitionError as ToolDefinitionError,
    )
    from sfagent.exceptions import (
        ToolOutputError as ToolOutputError,
    )
    from sfagent.exceptions import (
        ToolRetriesExceeded as ToolRetriesExceeded,
    )
    from sfagent.exceptions import (
        UserError as UserError,
    )
    from sfagent.messages import (
        AssistantMessage as AssistantMessage,
    )
    from sfagent.messages import (
        AudioPart as AudioPart,
    )
    from sfagent.messages import (
        ChatCompletion as ChatCompletion,
    )
    from sfagent.messages import (
        ChatCompletionChunk as ChatCompletionChunk,
    )
    from sfagent.messages import (
        Choice as Choice,
    )
    from sfagent.messages import (
        FunctionCall as FunctionCall,
    )
    from sfagent.messages import (
        ImagePart as ImagePart,
    )
    from sfagent.messages import (
        ImageURL as ImageURL,
    )
    from sfagent.messages import (
        Message as Message,
    )
    from sfagent.messages import (
        MessageBase as MessageBase,
    )
    from sfagent.messages import (
        SystemMessage as SystemMessage,
    )
    from sfagent.messages import (
        TextPart as TextPart,
    )
    from sfagent.messages import (
        ToolCall as ToolCall,
    )
    from sfagent.messages import (
        ToolMessage as ToolMessage,
    )
    from sfagent.messages import (
        Usage as Usage,
    )
    from sfagent.messages import (
        UserMessage as UserMessage,
    )
    from sfagent.messages import (
        VideoPart as VideoPart,
    )
    from sfagent.messages import (
        image_part as image_part,
    )
    from sfagent.messages import (
        parse_message as parse_message,
    )
    from sfagent.messages import (
        parse_messages as parse_messages,
    )
    from sfagent.models import (
        AsyncModelStream as AsyncModelStream,
    )
    from sfagent.models import (
        HTTPModel as HTTPModel,
    )
    from sfagent.models import (
        Model as Model,
    )
    from sfagent.models import (
        ModelStream as ModelStream,
    )
    from sfagent.result import (
        RunResult as RunResult,
    )
    from sfagent.result import (
        ToolCallRecord as ToolCallRecord,
    )
    from sfagent.result import (
        TurnRecord as TurnRecord,
    )
    from sfagent.settings import (
        DEFAULT_MODEL as DEFAULT_MODEL,
    )
    from sfagent.settings import (
        ChatRequest as ChatRequest,
    )
    from sfagent.settings import (
        ModelSettings as ModelSettings,
    )
    from sfagent.streaming import (
        StreamAccumulator as StreamAccumulator,
    )
    from sfagent.tools import (
        Tool as Tool,
    )
    from sfagent.tools import (
        ToolSet as ToolSet,
    )
    from sfagent.tools import (
        tool as tool,
    )
    from sfagent.tools import (
        tool_result_text as tool_result_text,
    )
    from sfagent.usage import (
        RunUsage as RunUsage,
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
