"""sfagent: tool-calling agents on SiliconFlow's chat-completions API.

Every public name is importable from here. Submodules load on first use (PEP 562), so
``import sfagent`` stays cheap and a run pays only for what it touches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfagent._lazy import lazy_exports
from sfagent._version import __version__

# Defining module -> the public names it provides. The typed imports below say the same for
# type checkers (`X as X` marks a re-export); a test keeps the two equal.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "sfagent.tools.tool": ("tool", "Tool", "tool_result_text"),
    "sfagent.tools.toolset": ("ToolSet",),
    "sfagent.context": ("RunContext", "ApprovalRequest"),
    "sfagent.usage": ("RunUsage",),
    "sfagent.agent": ("Agent",),
    "sfagent.result": ("RunResult", "TurnRecord", "ToolCallRecord"),
    "sfagent.events": (
        "Event",
        "TextDelta",
        "ReasoningDelta",
        "ToolCallStarted",
        "ToolCallsFromText",
        "ToolResult",
        "TurnFinished",
        "RunFinished",
    ),
    "sfagent.models": ("Model", "ModelStream", "AsyncModelStream"),
    "sfagent.client.http_model": ("HTTPModel",),
    "sfagent.client.clients": ("SiliconFlow", "AsyncSiliconFlow"),
    "sfagent.client.streams": ("ChatStream", "AsyncChatStream"),
    "sfagent.client.retry": ("RetryPolicy",),
    "sfagent.settings": ("ModelSettings", "ChatRequest", "DEFAULT_MODEL"),
    "sfagent.messages": (
        "SystemMessage",
        "UserMessage",
        "AssistantMessage",
        "ToolMessage",
        "Message",
        "MessageBase",
        "TextPart",
        "ImagePart",
        "ImageURL",
        "VideoPart",
        "AudioPart",
        "ToolCall",
        "FunctionCall",
        "ChatCompletion",
        "Choice",
        "ChatCompletionChunk",
        "Usage",
        "image_part",
        "parse_message",
        "parse_messages",
    ),
    "sfagent.client.streaming": ("StreamAccumulator",),
    "sfagent.exceptions": (
        "SFAgentError",
        "UserError",
        "ToolDefinitionError",
        "ConfigurationError",
        "ToolArgumentsError",
        "ArgumentProblem",
        "ToolOutputError",
        "ModelRetry",
        "StopRun",
        "AgentRunError",
        "MaxTurnsExceeded",
        "BudgetExceeded",
        "ToolRetriesExceeded",
        "RunawayLoopError",
        "OutputTruncatedError",
        "OutputValidationError",
        "ModelRequestError",
        "APIError",
        "APIConnectionError",
        "APITimeoutError",
        "APIResponseValidationError",
        "IncompleteStreamError",
        "APIStatusError",
        "BadRequestError",
        "AuthenticationError",
        "PermissionDeniedError",
        "NotFoundError",
        "RateLimitError",
        "InternalServerError",
        "ServiceUnavailableError",
        "GatewayTimeoutError",
    ),
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, eager=["__version__"])

if TYPE_CHECKING:
    from sfagent.agent import Agent as Agent
    from sfagent.client.clients import (
        AsyncSiliconFlow as AsyncSiliconFlow,
    )
    from sfagent.client.clients import (
        SiliconFlow as SiliconFlow,
    )
    from sfagent.client.http_model import HTTPModel as HTTPModel
    from sfagent.client.retry import RetryPolicy as RetryPolicy
    from sfagent.client.streaming import StreamAccumulator as StreamAccumulator
    from sfagent.client.streams import AsyncChatStream as AsyncChatStream
    from sfagent.client.streams import ChatStream as ChatStream
    from sfagent.context import ApprovalRequest as ApprovalRequest
    from sfagent.context import RunContext as RunContext
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
        ToolCallsFromText as ToolCallsFromText,
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
    from sfagent.tools.tool import Tool as Tool
    from sfagent.tools.tool import tool as tool
    from sfagent.tools.tool import tool_result_text as tool_result_text
    from sfagent.tools.toolset import ToolSet as ToolSet
    from sfagent.usage import RunUsage as RunUsage
